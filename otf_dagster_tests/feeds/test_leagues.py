"""Leagues as data: the packaged file, user files, lookups, and each league's task types."""

from __future__ import annotations

import os

import pytest

from otf_dagster.exceptions import ConfigError
from otf_dagster.feeds.leagues import default_leagues, league, load_leagues
from otf_dagster.handlers.task_types import validate

ALIASES = ["epl", "mlb", "mls", "nba", "ncaaf", "ncaam", "ncaaw", "nfl", "nhl", "ucl", "wnba"]


def test_the_packaged_leagues() -> None:
    leagues = default_leagues()
    assert leagues.aliases == ALIASES
    assert [league(a).pair for a in ("nfl", "ncaaf", "ncaam", "epl", "mls", "ucl")] == [
        "football/nfl",
        "football/college-football",
        "basketball/mens-college-basketball",
        "soccer/eng.1",
        "soccer/usa.1",
        "soccer/uefa.champions",
    ]
    assert league("soccer/eng.1").alias == "epl" and league(" NFL ").alias == "nfl"
    assert league().alias == "nba" and league("nba").team_codes == "nba"
    assert {lg.team_codes for lg in leagues if lg.alias != "nba"} == {"own"}
    mlb, ncaam, nhl = league("mlb"), league("ncaam"), league("nhl")
    assert (mlb.clock, mlb.periods, mlb.period_name, mlb.extra) == (
        "innings",
        9,
        "inning",
        "extra_innings",
    )
    assert (ncaam.periods, ncaam.period_name) == (2, "half")  # the line overrides basketball's
    assert (nhl.periods, nhl.clock) == (3, "countdown")
    assert league("epl").clock == "minutes"


def test_each_leagues_task_types_validate() -> None:
    for lg in default_leagues():
        boxscore, confirm = (validate(spec) for spec in lg.task_type_specs())
        assert boxscore.handler == "espn.boxscore" and confirm.handler == "espn.confirm"
        assert boxscore.params["league"] == confirm.params["league"] == lg.alias
        assert boxscore.params["follow_up_type"] == confirm.name
        assert boxscore.url_template == f"/apis/site/v2/sports/{lg.pair}/summary?event={{key}}"
    nfl = league("nfl").task_type_specs()[0]
    assert (nfl["name"], nfl["params"]) == (
        "NFL_GAME_BOXSCORE",
        {"league": "nfl", "follow_up_type": "NFL_GAME_CONFIRM", "follow_up_delay_seconds": 600},
    )
    # the NBA keeps the names of the ESPN types already in defaults/task_types.yaml
    assert [s["name"] for s in league("nba").task_type_specs()] == [
        "ESPN_GAME_BOXSCORE",
        "ESPN_GAME_CONFIRM",
    ]
    assert league("mlb").task_type_specs()[0]["deadline_seconds"] > nfl["deadline_seconds"]


def test_unknown_leagues_are_refused_listing_the_known_ones() -> None:
    for bad in ("xfl", "football/xfl", ""):
        with pytest.raises(ConfigError) as err:
            league(bad) if bad else default_leagues().parse_list(bad)
        assert all(a in str(err.value) for a in ("nfl", "mlb", "epl"))
    assert [lg.alias for lg in default_leagues().parse_list("nba, nfl,nba,baseball/mlb")] == [
        "nba",
        "nfl",
        "mlb",
    ]


def test_a_user_file_adds_and_replaces_lines(tmp_path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(
        "sports:\n  rugby: {clock: countdown, periods: 2, period_name: half, extra: extra_time,"
        " poll_interval_seconds: 30, deadline_seconds: 10800}\n"
        "leagues:\n"
        "  - {alias: urc, path: rugby/270557, name: United Rugby Championship}\n"
        "  - {alias: nfl, path: football/nfl, name: National Football League, poll_interval_seconds: 5}\n"
        "  - {alias: afl, path: australian-football/afl, name: AFL}\n"
        "follow: [nfl, urc]\n"
    )
    leagues = load_leagues(path)
    urc = leagues.get("urc")
    assert (urc.sport, urc.periods, urc.period_name, urc.task_prefix) == ("rugby", 2, "half", "URC")
    assert leagues.get("nfl").poll_interval_seconds == 5.0
    assert leagues.get("afl").period_name == "period"  # a sport not listed: the default line
    assert leagues.follow == ("nfl", "urc")
    assert len(leagues) == len(ALIASES) + 2
    assert default_leagues().get("nfl").poll_interval_seconds == 15.0


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("leagues:\n  - {alias: X1, path: football/x, name: X}\n", ["alias 'X1'"]),
        (
            "leagues:\n  - {alias: x, path: footballx, name: X}\n",
            ["path 'footballx'", "sport/league"],
        ),
        ("leagues:\n  - {alias: x, path: football/x}\n", ["name"]),
        ("leagues:\n  - {alias: x, path: football/x, name: X, colour: red}\n", ["colour"]),
        ("leagues:\n  - {alias: x, path: football/x, name: X, periods: 0}\n", ["periods", "0"]),
        (
            "leagues:\n  - {alias: x, path: baseball/x, name: X, team_codes: mlb}\n",
            ["team_codes 'mlb'"],
        ),
        ("sports:\n  curling: {clock: sundial}\n", ["curling", "missing"]),
        ("follow: [nfl, xfl]\n", ["unknown league 'xfl'"]),
        ("- just a list\n", ["must be a mapping"]),
        ("leagues: [\n", ["not valid YAML"]),
    ],
)
def test_a_bad_user_file_is_refused_naming_the_value(tmp_path, text: str, words: list[str]) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_leagues(path)
    assert str(path) in str(err.value) and all(w in str(err.value) for w in words), err.value


def test_a_missing_user_file_names_the_setting(tmp_path) -> None:
    with pytest.raises(ConfigError, match="OTF_LEAGUES_FILE"):
        load_leagues(tmp_path / "nope.yaml")


def test_a_user_file_is_read_again_only_when_it_changed(tmp_path) -> None:
    """Runners load the leagues on every poll: the file is parsed once per version of it (its
    modification time, size or inode), and an edit applies at the next load."""
    path = tmp_path / "mine.yaml"
    line = (
        "leagues:\n  - {alias: nfl, path: football/nfl, name: National Football League,"
        " poll_interval_seconds: %d}\n"
    )
    path.write_text(line % 5)
    first = load_leagues(path)
    assert load_leagues(path) is first  # not parsed again
    assert load_leagues(str(path)) is first
    path.write_text(line % 7)  # the same size: the modification time tells
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    edited = load_leagues(path)
    assert edited is not first and edited.get("nfl").poll_interval_seconds == 7.0
    assert load_leagues(path) is edited
    path.unlink()
    with pytest.raises(ConfigError, match="OTF_LEAGUES_FILE"):
        load_leagues(path)  # a file gone is said, not served from the cache
