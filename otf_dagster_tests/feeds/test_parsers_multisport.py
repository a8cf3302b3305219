"""Every recorded ESPN response beyond the NBA parses to the values read off the files."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from otf_dagster.exceptions import MalformedFeed, UnknownGame
from otf_dagster.feeds.espn import parse_espn_scoreboard, parse_espn_summary, scoreboard_boxscores
from otf_dagster.feeds.leagues import league
from otf_dagster.feeds.models import BoxScore, GameStatus
from otf_dagster.feeds.sports import espn_status, inning_half, match_seconds, period_over
from otf_dagster_tests.helpers import FIXTURES, load

MS = "espn-multisport"
FOLDER_LEAGUE = {
    "nfl": "nfl",
    "mlb": "mlb",
    "nhl": "nhl",
    "college-football": "ncaaf",
    "usa.1": "mls",
}
FILES = sorted(str(p.relative_to(FIXTURES)) for p in (FIXTURES / MS).rglob("*.json"))

NFL_WEEK1 = f"{MS}/nfl/scoreboard/scoreboard_2022-09-11_in-pre-post_week1.json"
NFL_WEEK15 = f"{MS}/nfl/scoreboard/scoreboard_2024-12-15_post_week15.json"
NFL_SB = f"{MS}/nfl/scoreboard/scoreboard_2025-02-09_post_KC-vs-PHI_superbowl-LIX.json"
NFL_PRE = f"{MS}/nfl/scoreboard/scoreboard_2025-09-04_pre_week1.json"
NFL_SUMMARY = f"{MS}/nfl/summary/summary_2023-09-17_post_GB-at-ATL_401547417.json"
MLB_2022 = f"{MS}/mlb/scoreboard/scoreboard_2022-09-17_in-pre-post.json"
MLB_2025 = f"{MS}/mlb/scoreboard/scoreboard_2025-06-04_in-post-postponed.json"
MLB_SUMMARY = f"{MS}/mlb/summary/summary_2023-07-19_post_CLE-at-PIT_401472463.json"
NHL_SB = f"{MS}/nhl/scoreboard/scoreboard_2024-06-01_post_NYR-at-FLA.json"
NHL_SUMMARY = f"{MS}/nhl/summary/summary_2024-06-01_post_NYR-at-FLA_401672881.json"
NCAAF_2022 = (
    f"{MS}/college-football/scoreboard/scoreboard_2022-09-17_in-halftime-pre-post_week3.json"
)
NCAAF_2025 = f"{MS}/college-football/scoreboard/scoreboard_2025-08-28_pre_week1-SEC.json"
MLS_2022 = f"{MS}/usa.1/scoreboard/scoreboard_2022-09-17_in-pre-post.json"
MLS_2025 = f"{MS}/usa.1/scoreboard/scoreboard_2025-06-01_pre_MIN-at-SEA.json"


def league_of(relative: str):
    return league(FOLDER_LEAGUE[Path(relative).parts[1]])


def boxes(relative: str) -> dict[str, BoxScore]:
    return scoreboard_boxscores(load(relative), league_of(relative))


def line(box: BoxScore) -> tuple:
    """(status, period, clock seconds, display clock, score, home periods, away periods)."""
    return (
        box.status,
        box.period,
        box.clock_seconds,
        box.display_clock,
        box.score_line(),
        box.home.periods,
        box.away.periods,
    )


def test_the_project_has_every_shared_multisport_fixture() -> None:
    shared = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / MS
    if shared.is_dir():  # beside the project on a developer's machine; the copy is what counts
        assert sorted(str(p.relative_to(shared)) for p in shared.rglob("*.json")) == sorted(
            str(Path(f).relative_to(MS)) for f in FILES
        )
    assert len(FILES) == 14


@pytest.mark.parametrize("relative", FILES)
def test_every_file_parses_and_round_trips(relative: str) -> None:
    doc = load(relative)
    lg = league_of(relative)
    if "events" in doc:
        entries = parse_espn_scoreboard(doc, lg)
        parsed = list(scoreboard_boxscores(doc, lg).values())
        assert len(entries) == len(parsed) == len(doc["events"]) > 0
        assert {e.league for e in entries} == {lg.alias}
    else:
        parsed = [parse_espn_summary(doc, doc["header"]["id"], lg)]
    for box in parsed:
        assert (box.league, box.sport) == (lg.alias, lg.sport)
        assert box.home.tricode != "UNK" and box.away.tricode != "UNK"
        if box.status is GameStatus.FINAL and box.home.periods:
            assert sum(box.home.periods) == box.home.score
            assert sum(box.away.periods) == box.away.score
        assert BoxScore.from_dict(json.loads(json.dumps(box.to_dict()))) == box


def test_nfl_live_scoreboard_countdown_clock_and_possession() -> None:
    b = boxes(NFL_WEEK1)
    assert line(b["401437650"]) == (
        GameStatus.LIVE,
        4,
        48.0,
        "0:48",
        "NO 24 - ATL 26",
        (3, 13, 7, 3),
        (7, 0, 3, 14),
    )
    # the Saints stay "NO": NBA tricodes are the NBA's only
    assert b["401437650"].away.tricode == "NO" and b["401437650"].possession == "NO"
    assert b["401437650"].summary()["period_label"] == "Q4"
    assert line(b["401437630"])[:5] == (GameStatus.FINAL, 4, 0.0, "0:00", "NE 7 - MIA 20")
    # scheduled: ESPN's "15:00 - 1st" and a zero linescore mean nothing yet
    assert line(b["401437640"]) == (GameStatus.SCHEDULED, None, None, None, "NYG 0 - TEN 0", (), ())
    assert line(b["401437646"])[1:3] == (4, 265.0) and b["401437646"].possession == "WSH"


def test_nfl_final_scoreboards() -> None:
    week15 = boxes(NFL_WEEK15)
    assert len(week15) == 13 and {b.status for b in week15.values()} == {GameStatus.FINAL}
    assert line(week15["401671681"])[4:] == ("BUF 48 - DET 42", (0, 14, 7, 21), (14, 7, 14, 13))
    assert line(week15["401671854"])[4:] == ("KC 21 - CLE 7", (0, 0, 7, 0), (7, 7, 7, 0))
    [superbowl] = boxes(NFL_SB).values()
    assert line(superbowl)[4:] == ("KC 22 - PHI 40", (7, 17, 10, 6), (0, 0, 6, 16))
    pre = boxes(NFL_PRE)
    assert len(pre) == 16 and {b.status for b in pre.values()} == {GameStatus.SCHEDULED}
    assert line(pre["401772510"])[4] == "DAL 0 - PHI 0"


def test_nfl_summary_scoring_plays_and_players() -> None:
    box = parse_espn_summary(load(NFL_SUMMARY), "401547417", league("nfl"))
    assert line(box)[:5] == (GameStatus.FINAL, 4, 0.0, None, "GB 24 - ATL 25")
    assert (box.home.periods, box.away.periods) == ((3, 6, 3, 13), (0, 10, 14, 0))
    assert box.format.regulation == 4 and box.format.name == "quarter"
    assert [(p.team, p.period, p.clock) for p in box.plays][:2] == [
        ("ATL", 1, "3:50"),
        ("GB", 2, "13:33"),
    ]
    assert len(box.plays) == 10 and {p.kind for p in box.plays} == {"scoring_play"}
    assert (box.plays[-1].home_score, box.plays[-1].away_score) == (25, 24)
    love = next(p for p in box.players if p.name == "Jordan Love")
    assert love.team == "GB" and love.stats["passing.passingYards"] == 151
    assert love.stats["rushing.rushingYards"] == 23  # one line per player, tables merged
    assert len({(p.team, p.player_id) for p in box.players}) == len(box.players)


def test_mlb_live_innings_have_no_clock() -> None:
    b = boxes(MLB_2025)
    top9 = b["401695818"]
    assert line(top9) == (
        GameStatus.LIVE,
        9,
        None,
        "Top 9th",
        "ARI 1 - ATL 0",
        (0, 0, 0, 0, 0, 0, 0, 0),
        (0, 0, 1, 0, 0, 0, 0, 0, 0),
    )
    assert top9.inning_half == "top" and top9.summary()["period_label"] == "9"
    end3 = b["401764549"]
    assert (end3.period, end3.inning_half, end3.display_clock) == (3, "end", "End 3rd")
    assert period_over(end3) and not period_over(top9)
    bot5 = b["401695828"]
    assert (bot5.inning_half, bot5.home.periods, bot5.away.periods) == (
        "bottom",
        (0, 0, 0, 1, 0),
        (0, 0, 0, 0, 0),
    )
    # the home side is one half-inning behind in the top of an inning
    top5 = b["401695826"]
    assert (len(top5.home.periods), len(top5.away.periods)) == (4, 5)
    final = b["401695822"]  # the home side did not bat in the 9th: 8 linescores
    assert line(final) == (
        GameStatus.FINAL,
        9,
        None,
        None,
        "HOU 0 - PIT 3",
        (0, 2, 1, 0, 0, 0, 0, 0),
        (0,) * 9,
    )


def test_the_postponed_mlb_game_is_not_final() -> None:
    b = boxes(MLB_2025)
    postponed = b["401695827"]
    assert postponed.status is GameStatus.POSTPONED and postponed.status_detail == "postponed"
    assert (postponed.period, postponed.clock_seconds) == (None, None)
    [entry] = [
        e for e in parse_espn_scoreboard(load(MLB_2025), league("mlb")) if e.game_id == "401695827"
    ]
    assert entry.status is GameStatus.POSTPONED and (entry.home, entry.away) == ("STL", "KC")
    statuses = [x.status for x in b.values()]
    assert statuses.count(GameStatus.FINAL) == 8 and statuses.count(GameStatus.LIVE) == 6


def test_mlb_2022_scoreboard_and_summary() -> None:
    b = boxes(MLB_2022)
    assert line(b["401356376"])[:5] == (GameStatus.LIVE, 5, None, "Bot 5th", "MIA 3 - WSH 5")
    assert line(b["401423263"])[4:] == (
        "MIN 1 - CLE 5",
        (1, 0, 1, 2, 0, 1, 0, 0),
        (0, 0, 0, 0, 0, 0, 0, 1, 0),
    )
    assert b["401356371"].status is GameStatus.SCHEDULED and b["401356371"].period is None
    box = parse_espn_summary(load(MLB_SUMMARY), "401472463", league("mlb"))
    assert line(box) == (
        GameStatus.FINAL,
        9,
        None,
        None,
        "CLE 5 - PIT 7",
        (0, 0, 0, 0, 2, 0, 5, 0),
        (0, 0, 0, 1, 3, 0, 0, 1, 0),
    )
    assert box.format.name == "inning" and box.plays == ()
    kwan = next(p for p in box.players if p.name == "Steven Kwan")
    assert kwan.stats["batting.atBats"] == 4 and kwan.stats["batting.hits-atBats"] == "0-4"


def test_nhl_scoreboard_and_summary_goals_and_penalties() -> None:
    [sb] = boxes(NHL_SB).values()
    assert line(sb) == (GameStatus.FINAL, 3, 0.0, "0:00", "NYR 1 - FLA 2", (1, 0, 1), (0, 0, 1))
    box = parse_espn_summary(load(NHL_SUMMARY), "401672881", league("nhl"))
    assert line(box)[4:] == ("NYR 1 - FLA 2", (1, 0, 1), (0, 0, 1))
    assert box.format.regulation == 3 and box.format.name == "period"
    goals = [(p.team, p.period, p.clock) for p in box.plays if p.kind == "goal"]
    assert goals == [("FLA", 1, "19:10"), ("FLA", 3, "9:08"), ("NYR", 3, "18:20")]
    penalties = [(p.team, p.period) for p in box.plays if p.kind == "penalty"]
    assert penalties == [("NYR", 1), ("FLA", 1)]


def test_college_football_halftime_is_live_and_a_period_break() -> None:
    b = boxes(NCAAF_2022)
    half = b["401403888"]
    assert line(half) == (GameStatus.LIVE, 2, 0.0, "0:00", "UGA 24 - SC 0", (0, 0), (14, 10))
    assert half.status_detail == "halftime" and period_over(half)
    assert line(b["401403884"])[:5] == (GameStatus.LIVE, 3, 516.0, "8:36", "YSU 0 - UK 28")
    assert not period_over(b["401403884"])
    assert line(b["401411114"])[4:] == ("WOF 7 - VT 27", (3, 17, 0, 7), (0, 0, 0, 7))
    statuses = [x.status_detail for x in b.values()]
    assert statuses.count("halftime") == 5 and statuses.count("in_progress") == 12
    sec = boxes(NCAAF_2025)
    assert len(sec) == 16 and all(x.status is GameStatus.SCHEDULED for x in sec.values())
    assert sec["401752678"].home.tricode == "TA&M"


def test_mls_match_minutes_goals_and_full_time() -> None:
    b = boxes(MLS_2022)
    ft = b["623597"]
    assert line(ft) == (GameStatus.FINAL, 2, 5400.0, "90'+5'", "NY 0 - NYC 2", (), ())
    assert ft.status_detail == "full_time" and ft.away.tricode == "NY"  # the Red Bulls, not NYK
    assert [(p.kind, p.team, p.clock) for p in ft.plays] == [
        ("goal", "NYC", "1'"),
        ("goal", "NYC", "23'"),
    ]
    assert line(b["623601"])[:5] == (GameStatus.LIVE, 2, 3480.0, "58'", "MTL 0 - NE 0")
    orl = b["623600"]
    assert [p.clock for p in orl.plays] == ["9'", "22'", "47'"] and orl.home.score == 3
    assert "Own Goal" in orl.plays[2].text
    assert line(b["623602"])[:5] == (GameStatus.LIVE, 1, 2700.0, "45'", "CLT 0 - CHI 2")
    assert b["623602"].summary()["period_label"] == "H1"
    [pre] = boxes(MLS_2025).values()
    assert line(pre) == (GameStatus.SCHEDULED, None, None, None, "MIN 0 - SEA 0", (), ())


def test_a_red_card_is_a_play_and_an_id_is_stable() -> None:
    doc = load(MLS_2022)
    event = next(e for e in doc["events"] if e["id"] == "623599")
    card = event["competitions"][0]["details"][0]
    card.update(redCard=True, yellowCard=False)
    box = scoreboard_boxscores(doc, league("mls"))["623599"]
    assert [(p.kind, p.team, p.clock) for p in box.plays] == [("red_card", "PHI", "11'")]
    again = scoreboard_boxscores(copy.deepcopy(doc), league("mls"))["623599"]
    assert again.plays == box.plays


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (
            {"name": "STATUS_SUSPENDED", "state": "post", "completed": False},
            (GameStatus.SUSPENDED, "suspended"),
        ),
        (
            {"name": "STATUS_POSTPONED", "state": "post", "completed": False},
            (GameStatus.POSTPONED, "postponed"),
        ),
        (
            {"name": "STATUS_CANCELED", "state": "post", "completed": False},
            (GameStatus.CANCELLED, "canceled"),
        ),
        (
            {"name": "STATUS_FORFEIT", "state": "post", "completed": True},
            (GameStatus.FINAL, "forfeit"),
        ),
        (
            {"name": "STATUS_FULL_TIME", "state": "post", "completed": True},
            (GameStatus.FINAL, "full_time"),
        ),
        (
            {"name": "STATUS_RAIN_DELAY", "state": "in", "completed": False},
            (GameStatus.LIVE, "rain_delay"),
        ),
        (
            {"name": "STATUS_DELAYED", "state": "pre", "completed": False},
            (GameStatus.SCHEDULED, "delayed"),
        ),
        (
            {"name": "STATUS_END_PERIOD", "state": "in", "completed": False},
            (GameStatus.LIVE, "end_period"),
        ),
        (
            {"name": "STATUS_HALFTIME", "state": "in", "completed": False},
            (GameStatus.LIVE, "halftime"),
        ),
        (
            {"name": "STATUS_ABANDONED", "state": "post", "completed": False},
            (GameStatus.SUSPENDED, "abandoned"),
        ),
        ({"name": "STATUS_FINAL", "state": "post", "completed": True}, (GameStatus.FINAL, "final")),
        ({"state": "pre"}, (GameStatus.SCHEDULED, None)),
    ],
)
def test_post_is_not_final(status: dict, expected: tuple) -> None:
    assert espn_status({"type": status}) == expected


def test_inning_and_minute_texts() -> None:
    assert inning_half("Top 9th") == ("top", 9)
    assert inning_half("Mid 4th") == ("mid", 4)
    assert inning_half("End 3rd") == ("end", 3)
    assert inning_half("Bottom of the 11th") == ("bottom", 11)
    assert inning_half("Final/10") == (None, None)
    assert match_seconds("58'") == 3480.0 and match_seconds("90'+10'") == 6000.0
    assert match_seconds("HT") is None


def test_a_suspended_game_keeps_its_score_and_inning() -> None:
    doc = load(MLB_2025)
    event = next(e for e in doc["events"] if e["id"] == "401695826")
    event["competitions"][0]["status"]["type"].update(
        name="STATUS_SUSPENDED",
        state="post",
        completed=False,
        shortDetail="Suspended",
        detail="Suspended",
    )
    event["competitions"][0]["wasSuspended"] = True
    box = scoreboard_boxscores(doc, league("mlb"))["401695826"]
    assert (box.status, box.period, box.score_line()) == (GameStatus.SUSPENDED, 5, "DET 4 - CHW 3")
    assert box.home.periods == (0, 0, 2, 1)


# --- bad input: parsed as far as it goes, or refused naming the league and the field ---------------


def test_no_format_no_linescores_and_string_scores_parse_as_far_as_they_go() -> None:
    doc = load(NFL_WEEK1)
    comp = next(e for e in doc["events"] if e["id"] == "401437650")["competitions"][0]
    del comp["format"]
    for c in comp["competitors"]:
        del c["linescores"]
    comp["competitors"][0]["score"] = " 26 "
    comp["competitors"][1]["score"] = "n/a"
    box = scoreboard_boxscores(doc, league("nfl"))["401437650"]
    assert (box.format.regulation, box.format.name) == (4, "quarter")  # the league's own
    assert (box.home.periods, box.away.periods) == ((), ())
    assert (box.home.score, box.away.score, box.period, box.clock_seconds) == (26, 0, 4, 48.0)


def test_missing_competitors_are_refused_naming_league_and_field() -> None:
    doc = load(NHL_SUMMARY)
    del doc["header"]["competitions"][0]["competitors"]
    with pytest.raises(MalformedFeed, match=r"NHL.*401672881.*competitors"):
        parse_espn_summary(doc, "401672881", league("nhl"))
    with pytest.raises(MalformedFeed, match="NFL summary"):
        parse_espn_summary({"boxscore": {}}, "401547417", league("nfl"))


def test_an_event_of_another_league_is_an_unknown_game() -> None:
    with pytest.raises(UnknownGame, match=r"401547417.*NFL.*not MLB"):
        parse_espn_summary(load(NFL_SUMMARY), "401547417", league("mlb"))
    with pytest.raises(UnknownGame, match="nfl games, not NHL"):
        parse_espn_scoreboard(load(NFL_WEEK15), league("nhl"))
