"""``otf feed`` against the simulator, through click's runner."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from otf_dagster.cli import _register, cli
from otf_dagster.cli.feed import feed
from otf_dagster.exceptions import UnknownGame
from otf_dagster.simulator import Simulator
from otf_dagster_tests.helpers import FakeClock, StaticFeed, load


def test_feed_schedule_and_boxscore(sim: Simulator, clock: FakeClock) -> None:
    runner = CliRunner()
    day = sim.games[0].day.isoformat()
    out = runner.invoke(
        feed,
        ["schedule", "--provider", "espn", "--base-url", sim.base_url, "--date", day, "--json"],
    )
    assert out.exit_code == 0, out.output
    assert [row["game_id"] for row in json.loads(out.output)][0] == sim.games[0].espn_id

    clock.advance(30 + 3000 / sim.speed)
    out = runner.invoke(
        feed,
        [
            "boxscore",
            "--provider",
            "nba_cdn",
            sim.games[0].nba_id,
            "--base-url",
            sim.base_url,
            "--json",
        ],
    )
    assert out.exit_code == 0, out.output
    doc = json.loads(out.output)
    assert doc["status"] == "live" and doc["period"] == 4
    assert doc["home"]["tricode"] == "BOS" and len(doc["home"]["periods"]) == 4

    text = runner.invoke(
        feed, ["boxscore", "--provider", "espn", sim.games[0].espn_id, "--base-url", sim.base_url]
    )
    assert text.exit_code == 0 and "ORL" in text.output and "Q4" in text.output


def test_feed_errors_are_otf_errors(sim: Simulator) -> None:
    out = CliRunner().invoke(
        feed, ["boxscore", "--provider", "espn", "401673394", "--base-url", sim.base_url]
    )
    assert isinstance(out.exception, UnknownGame)
    assert "401673394" in str(out.exception)


# --- leagues ---------------------------------------------------------------------------------

NFL_DAY = "espn-multisport/nfl/scoreboard/scoreboard_2024-12-15_post_week15.json"
MLB_GAME = "espn-multisport/mlb/summary/summary_2023-07-19_post_CLE-at-PIT_401472463.json"


@pytest.fixture
def espn_leagues():
    """The recorded NFL day and MLB game at the real ESPN paths, on 127.0.0.1."""
    with StaticFeed() as static:
        static.docs["/apis/site/v2/sports/football/nfl/scoreboard?dates=20241215"] = load(NFL_DAY)
        static.docs["/apis/site/v2/sports/baseball/mlb/summary?event=401472463"] = load(MLB_GAME)
        yield static


def otf_cli(*args: str):
    _register()
    return CliRunner().invoke(cli, list(args))


def test_feed_schedule_of_a_league(espn_leagues) -> None:
    for league in ("nfl", "football/nfl"):
        out = otf_cli(
            "feed", "schedule", "--provider", "espn", "--league", league,
            "--date", "2024-12-15", "--base-url", espn_leagues.base_url, "--json",
        )  # fmt: skip
        assert out.exit_code == 0, out.output
        rows = json.loads(out.output)
        assert len(rows) == 13 and {r["league"] for r in rows} == {"nfl"}
        det = next(r for r in rows if r["game_id"] == "401671681")
        assert (det["away"], det["home"], det["status"]) == ("BUF", "DET", "final")
    text = otf_cli(
        "feed", "schedule", "--provider", "espn", "--league", "nfl",
        "--date", "2024-12-15", "--base-url", espn_leagues.base_url,
    )  # fmt: skip
    assert text.exit_code == 0 and "401671681" in text.output and "BUF" in text.output


def test_feed_boxscore_of_a_league_as_json_and_text(espn_leagues) -> None:
    args = ["feed", "boxscore", "--provider", "espn", "--league", "mlb", "401472463",
            "--base-url", espn_leagues.base_url]  # fmt: skip
    out = otf_cli(*args, "--json")
    assert out.exit_code == 0, out.output
    doc = json.loads(out.output)
    assert (doc["league"], doc["sport"], doc["status"], doc["period"]) == (
        "mlb",
        "baseball",
        "final",
        9,
    )
    assert (doc["clock_seconds"], doc["display_clock"]) == (None, None)  # baseball has no clock
    assert doc["score"] == "CLE 5 - PIT 7"
    assert doc["home"]["periods"] == [0, 0, 0, 0, 2, 0, 5, 0]
    assert doc["away"]["periods"] == [0, 0, 0, 1, 3, 0, 0, 1, 0]
    assert doc["period_labels"] == [str(k) for k in range(1, 10)]
    text = otf_cli(*args)
    assert text.exit_code == 0, text.output
    assert "CLE 5 - PIT 7" in text.output and "PIT" in text.output
    header = next(line for line in text.output.splitlines() if line.startswith("team"))
    assert header.split() == ["team"] + [str(k) for k in range(1, 10)] + ["total"]


def test_feed_live_clock_in_json(sim: Simulator, clock: FakeClock) -> None:
    clock.advance(30 + 3000 / sim.speed)
    out = otf_cli(
        "feed", "boxscore", "--provider", "espn", sim.games[0].espn_id,
        "--base-url", sim.base_url, "--json",
    )  # fmt: skip
    doc = json.loads(out.output)
    assert doc["status"] == "live" and doc["period_label"] == "Q4"
    minutes, seconds = divmod(int(doc["clock_seconds"]), 60)
    assert doc["display_clock"] == f"{minutes}:{seconds:02d}"


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--provider", "espn", "--league", "xfl"], ["'xfl'", "nfl", "mlb", "epl"]),
        (["--provider", "espn", "--league", "football/xfl"], ["'football/xfl'", "known leagues"]),
        (["--provider", "nba_cdn", "--league", "nfl"], ["NBA CDN", "--provider espn"]),
    ],
)
def test_an_unknown_league_is_one_clear_line(args: list[str], words: list[str]) -> None:
    out = otf_cli(
        "feed", "schedule", *args, "--date", "2024-12-15", "--base-url", "http://127.0.0.1:9"
    )
    assert out.exit_code == 1
    [line] = out.output.strip().splitlines()
    assert line.startswith("error: ") and all(w in line for w in words), line


def test_an_event_of_another_league_is_an_unknown_game(espn_leagues) -> None:
    espn_leagues.docs["/apis/site/v2/sports/hockey/nhl/summary?event=401472463"] = load(MLB_GAME)
    out = otf_cli(
        "feed", "boxscore", "--provider", "espn", "--league", "nhl", "401472463",
        "--base-url", espn_leagues.base_url,
    )  # fmt: skip
    assert out.exit_code == 1 and "MLB game" in out.output and "not NHL" in out.output


def test_a_league_from_a_user_file(espn_leagues, tmp_path) -> None:
    """Adding a league ESPN serves is one line of configuration."""
    day = {k: v for k, v in load(NFL_DAY).items() if k != "leagues"}
    espn_leagues.docs["/apis/site/v2/sports/football/xfl/scoreboard?dates=20241215"] = day
    extra = tmp_path / "leagues.yaml"
    extra.write_text("leagues:\n  - {alias: xfl, path: football/xfl, name: XFL}\n")
    args = ["feed", "schedule", "--provider", "espn", "--league", "xfl", "--date", "2024-12-15",
            "--base-url", espn_leagues.base_url, "--json"]  # fmt: skip
    out = otf_cli(*args, "--leagues-file", str(extra))
    assert out.exit_code == 0, out.output
    assert {r["league"] for r in json.loads(out.output)} == {"xfl"}
    assert "unknown league 'xfl'" in otf_cli(*args).output
