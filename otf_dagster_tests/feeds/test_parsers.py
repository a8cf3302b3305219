"""Every recorded fixture parses to the values read off the files; odd fields degrade."""

from __future__ import annotations

import copy
import json
from datetime import UTC, date, datetime

import pytest

from otf_dagster.exceptions import MalformedFeed, UnknownGame
from otf_dagster.feeds.espn import parse_espn_scoreboard, parse_espn_summary
from otf_dagster.feeds.models import BoxScore, GameStatus, ScheduleEntry
from otf_dagster.feeds.nba_cdn import (
    parse_nba_boxscore,
    parse_nba_schedule,
    parse_nba_scoreboard,
    scoreboard_boxscores,
    scoreboard_date,
)
from otf_dagster.feeds.normalize import duration_seconds, nba_tricode
from otf_dagster_tests.helpers import load

NBA_FINAL = "nba_cdn/boxscore/boxscore_0042200123_PHI-at-BKN_status3_final.json"
NBA_PREGAME = "nba_cdn/boxscore/boxscore_0022300682_DEN-at-OKC_status1_pregame.json"
SB_2023 = "nba_cdn/scoreboard/todaysScoreboard_00_2023-04-20_live-and-final.json"
SB_2025 = "nba_cdn/scoreboard/todaysScoreboard_00_2025-01-06_pre-live-final.json"
SCHEDULE = "nba_cdn/schedule/scheduleLeagueV2_EXCERPT_2026-01-07_2games_2026-01-08_1game.json"
ESPN_POST = "espn/summary/summary_401585135_BOS-at-IND_post.json"
ESPN_PRE = "espn/summary/summary_401812480_PHI-vs-NY_pre.json"
ESPN_404 = "espn/summary/summary_401673394_error_404.json"
ESPN_LIVE_SB = "espn/scoreboard/scoreboard_2026-05-02_in_PHI-at-BOS.json"
ESPN_PRE_SB = "espn/scoreboard/scoreboard_2025-10-02_pre.json"
ESPN_11_SB = "espn/scoreboard/scoreboard_2026-03-01_pre_11games.json"


def test_nba_final_boxscore() -> None:
    box = parse_nba_boxscore(load(NBA_FINAL))
    assert box.status is GameStatus.FINAL
    assert (box.game_id, box.provider, box.period, box.clock_seconds) == (
        "0042200123",
        "nba_cdn",
        4,
        0.0,
    )
    assert box.score_line() == "PHI 102 - BKN 97"
    assert box.home.periods == (28, 19, 35, 15)
    assert box.away.periods == (32, 26, 18, 26)
    assert sum(box.home.periods) == box.home.score
    assert len(box.players) == 30
    johnson = next(p for p in box.players if p.name == "Cameron Johnson")
    assert johnson.team == "BKN"
    assert johnson.stats["points"] == 17
    assert johnson.stats["minutes"] == 43 * 60 + 44.0
    assert box.home.stats["rebounds"] == 36


def test_nba_pregame_boxscore() -> None:
    box = parse_nba_boxscore(load(NBA_PREGAME))
    assert box.status is GameStatus.SCHEDULED
    assert box.period is None  # period 0 in the file
    assert box.clock_seconds is None  # "PT27M33.00S" means nothing before tip-off
    assert (box.home.tricode, box.away.tricode) == ("OKC", "DEN")
    assert box.home.periods == () and box.home.score == 0
    assert box.players and all(p.stats["points"] == 0 for p in box.players)


def test_nba_scoreboard_live_and_final() -> None:
    doc = load(SB_2023)
    assert scoreboard_date(doc) == date(2023, 4, 20)
    entries = {e.game_id: e for e in parse_nba_scoreboard(doc)}
    assert entries["0042200123"].status is GameStatus.FINAL
    assert entries["0042200163"].status is GameStatus.LIVE
    assert entries["0042200123"].start_time == datetime(2023, 4, 20, 23, 30, tzinfo=UTC)
    boxes = scoreboard_boxscores(doc)
    gsw = boxes["0042200163"]
    assert (gsw.period, gsw.clock_seconds) == (2, 7 * 60 + 15.0)  # "PT07M15.00S"
    assert gsw.home.periods == (29, 10)  # zero-filled Q3/Q4 dropped
    assert boxes["0042200173"].clock_seconds == 6 * 60 + 5.0
    assert boxes["0042200123"].score_line() == "PHI 102 - BKN 97"


def test_nba_scoreboard_padded_final_and_pregame() -> None:
    doc = load(SB_2025)
    raw = {g["gameId"]: g for g in doc["scoreboard"]["games"]}
    assert raw["0022400496"]["gameStatusText"] != "Final"  # padded with spaces
    boxes = scoreboard_boxscores(doc)
    assert boxes["0022400496"].status is GameStatus.FINAL
    assert boxes["0022400496"].score_line() == "ORL 103 - NYK 94"
    pre = boxes["0022400501"]
    assert pre.status is GameStatus.SCHEDULED and pre.period is None and pre.home.periods == ()
    live = boxes["0022400498"]
    assert (live.status, live.period, live.clock_seconds) == (GameStatus.LIVE, 4, 341.0)
    assert live.away.tricode == "SAS"
    statuses = [e.status for e in parse_nba_scoreboard(doc)]
    assert statuses.count(GameStatus.FINAL) == 5 and statuses.count(GameStatus.LIVE) == 3


def test_nba_schedule_by_day() -> None:
    doc = load(SCHEDULE)
    first = parse_nba_schedule(doc, date(2026, 1, 7))
    assert [e.game_id for e in first] == ["0022500525", "0022500526"]
    # the schedule's gameTimeUTC carries a 1900 date: the start is gameDateTimeUTC
    assert first[0].start_time == datetime(2026, 1, 8, 1, 0, tzinfo=UTC)
    assert (first[0].home, first[0].away, first[0].status) == ("OKC", "UTA", GameStatus.LIVE)
    assert [e.game_id for e in parse_nba_schedule(doc, date(2026, 1, 8))] == ["0022500528"]
    assert parse_nba_schedule(doc, date(2026, 1, 9)) == []


def test_espn_final_summary() -> None:
    box = parse_espn_summary(load(ESPN_POST), "401585135")
    assert box.status is GameStatus.FINAL
    assert box.score_line() == "BOS 131 - IND 133"
    assert (box.period, box.clock_seconds) == (4, 0.0)
    assert box.home.periods == (33, 26, 44, 30)
    assert box.away.periods == (34, 34, 33, 30)
    horford = next(p for p in box.players if p.name == "Al Horford")
    assert horford.team == "BOS"
    assert horford.stats["points"] == 11 and horford.stats["rebounds"] == 6
    assert (horford.stats["fg_made"], horford.stats["fg_attempted"]) == (4, 5)
    assert horford.stats["minutes"] == 32 * 60
    assert box.away.stats["rebounds"] == 42
    assert sum(p.stats.get("points") or 0 for p in box.players if p.team == "IND") == 133


def test_espn_players_are_mapped_by_keys_not_position() -> None:
    doc = load(ESPN_POST)
    shuffled = copy.deepcopy(doc)
    for group in shuffled["boxscore"]["players"]:
        table = group["statistics"][0]
        order = list(reversed(range(len(table["keys"]))))
        table["keys"] = [table["keys"][i] for i in order]
        for row in table["athletes"]:
            row["stats"] = [row["stats"][i] for i in order] if row["stats"] else row["stats"]
    assert parse_espn_summary(shuffled, "401585135") == parse_espn_summary(doc, "401585135")


def test_espn_pregame_summary() -> None:
    box = parse_espn_summary(load(ESPN_PRE), "401812480")
    assert box.status is GameStatus.SCHEDULED
    assert (box.period, box.clock_seconds) == (None, None)
    assert (box.home.tricode, box.away.tricode) == ("NYK", "PHI")  # ESPN "NY"
    assert box.home.score == 0 and box.players == ()


def test_espn_error_body_is_unknown_game() -> None:
    with pytest.raises(UnknownGame, match="401673394"):
        parse_espn_summary(load(ESPN_404), "401673394")


def test_espn_live_scoreboard() -> None:
    doc = load(ESPN_LIVE_SB)
    [entry] = parse_espn_scoreboard(doc)
    assert (entry.game_id, entry.home, entry.away) == ("401869412", "BOS", "PHI")
    assert entry.status is GameStatus.LIVE
    # the live competition parsed as a box score: 4th quarter, 8:41 left, string scores
    competition = doc["events"][0]["competitions"][0]
    box = parse_espn_summary({"header": {"competitions": [competition]}}, "401869412")
    assert (box.period, box.clock_seconds) == (4, 521.0)
    assert box.score_line() == "PHI 92 - BOS 87"
    assert box.home.periods == (19, 31, 25, 12)


def test_espn_pre_scoreboards_and_tricodes() -> None:
    entries = parse_espn_scoreboard(load(ESPN_11_SB))
    assert len(entries) == 11
    assert all(e.status is GameStatus.SCHEDULED for e in entries)
    first = entries[0]
    assert (first.game_id, first.home, first.away) == ("401810723", "NYK", "SAS")
    assert first.start_time == datetime(2026, 3, 1, 18, 0, tzinfo=UTC)
    pre = parse_espn_scoreboard(load(ESPN_PRE_SB))
    assert [(e.home, e.away) for e in pre] == [("NYK", "PHI"), ("NOP", "MEL")]
    assert parse_espn_scoreboard({"events": []}) == []


@pytest.mark.parametrize(
    ("parse", "body"),
    [
        (parse_nba_boxscore, []),
        (parse_nba_boxscore, {"meta": {}}),
        (parse_nba_scoreboard, {"game": {}}),
        (lambda d: parse_nba_schedule(d, None), "text"),
        (lambda d: parse_espn_summary(d, "401585135"), {"boxscore": {}}),
        (parse_espn_scoreboard, [{"events": []}]),
    ],
)
def test_not_the_feed_is_malformed(parse, body) -> None:
    with pytest.raises(MalformedFeed):
        parse(body)


def test_odd_fields_degrade_not_crash() -> None:
    doc = load(NBA_FINAL)
    game = doc["game"]
    game["gameStatus"] = "2"
    game["gameClock"] = "garbage"
    game["period"] = None
    game["homeTeam"]["score"] = None
    game["homeTeam"]["periods"] = "nope"
    game["awayTeam"]["players"][0]["statistics"] = None
    game["awayTeam"]["players"][1] = "not a player"
    box = parse_nba_boxscore(doc)
    assert box.status is GameStatus.LIVE
    assert (box.period, box.clock_seconds) == (None, None)
    assert box.home.score == 0 and box.home.periods == ()
    assert box.away.score == 102
    assert len(box.players) == 29

    espn = load(ESPN_POST)
    comp = espn["header"]["competitions"][0]
    comp["status"] = {"type": {"state": "in"}, "displayClock": "0:45.3", "period": "x"}
    comp["competitors"][0]["score"] = "n/a"
    box = parse_espn_summary(espn, "401585135")
    assert box.status is GameStatus.LIVE
    assert box.period == 4  # from the linescores when period is unusable
    assert box.home.score == 0 and box.away.score == 131


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("PT07M15.00S", 435.0),
        ("PT00M53.70S", 53.7),
        ("PT12M", 720.0),
        ("8:41", 521.0),
        ("45.3", 45.3),
        (521.0, 521.0),
        ("", None),
        (None, None),
        ("PT", None),
        ("soon", None),
    ],
)
def test_duration_seconds(text, seconds) -> None:
    assert duration_seconds(text) == seconds


def test_tricodes_agree_across_providers() -> None:
    assert [nba_tricode(x) for x in ("SA", "NO", "NY", "GS", "UTAH", "WSH", " bos ")] == [
        "SAS",
        "NOP",
        "NYK",
        "GSW",
        "UTA",
        "WAS",
        "BOS",
    ]


@pytest.mark.parametrize("relative", [NBA_FINAL, NBA_PREGAME, ESPN_POST, ESPN_PRE])
def test_boxscore_round_trips_through_json(relative: str) -> None:
    doc = load(relative)
    box = parse_nba_boxscore(doc) if relative.startswith("nba") else parse_espn_summary(doc, "1")
    stored = json.loads(json.dumps(box.to_dict()))
    assert BoxScore.from_dict(stored) == box
    assert BoxScore.from_dict(stored).to_dict() == box.to_dict()


def test_schedule_entry_round_trip() -> None:
    entry = parse_espn_scoreboard(load(ESPN_11_SB))[3]
    assert ScheduleEntry.from_dict(json.loads(json.dumps(entry.to_dict()))) == entry
