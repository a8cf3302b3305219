"""Pure parsers of the ESPN site API (site.api.espn.com) JSON into the models.

Scores are strings, linescores grow as periods start, player stats are mapped by ``keys``;
abbreviations are turned into NBA tricodes (SA -> SAS ...) so both providers agree.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from otf_dagster.exceptions import MalformedFeed, UnknownGame
from otf_dagster.feeds.models import BoxScore, GameStatus, PlayerLine, ScheduleEntry, TeamLine
from otf_dagster.feeds.normalize import (
    dig,
    duration_seconds,
    espn_stats,
    nba_tricode,
    parse_utc,
    to_float,
    to_int,
)

PROVIDER = "espn"
SCOREBOARD_PATH = "/apis/site/v2/sports/basketball/nba/scoreboard"
SUMMARY_PATH = "/apis/site/v2/sports/basketball/nba/summary"

_EPOCH = datetime.fromisoformat("1970-01-01T00:00:00+00:00")


def espn_status(status: Any) -> GameStatus:
    """``status.type``: state pre/in/post, with postponed/cancelled told by its name."""
    kind = status.get("type") if isinstance(status, dict) else None
    if not isinstance(kind, dict):
        return GameStatus.SCHEDULED
    name = str(kind.get("name") or "").upper()
    if "POSTPONED" in name:
        return GameStatus.POSTPONED
    if "CANCEL" in name:
        return GameStatus.CANCELLED
    state = str(kind.get("state") or "").strip().lower()
    if state == "in":
        return GameStatus.LIVE
    if state == "post" or kind.get("completed") is True:
        return GameStatus.FINAL
    return GameStatus.SCHEDULED


def _linescores(competitor: dict[str, Any]) -> tuple[int, ...]:
    raw = competitor.get("linescores")
    if not isinstance(raw, list):
        return ()
    out = []
    for entry in raw:
        if not isinstance(entry, dict):
            out.append(0)
            continue
        value = to_int(entry.get("value"))
        if value is None:
            value = to_int(entry.get("displayValue"), 0)
        out.append(value or 0)
    return tuple(out)


def _competitors(competition: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(home, away) competitor objects; {} when missing."""
    home: dict[str, Any] = {}
    away: dict[str, Any] = {}
    raw = competition.get("competitors") if isinstance(competition, dict) else None
    for index, comp in enumerate(raw if isinstance(raw, list) else []):
        if not isinstance(comp, dict):
            continue
        side = comp.get("homeAway") or ("home" if index == 0 else "away")
        if side == "home":
            home = comp
        else:
            away = comp
    return home, away


def _abbreviation(competitor: dict[str, Any]) -> str:
    return nba_tricode(dig(competitor, "team", "abbreviation"))


def _period_and_clock(
    status: Any, state: GameStatus, linescores: int
) -> tuple[int | None, float | None]:
    if state in (GameStatus.SCHEDULED, GameStatus.POSTPONED, GameStatus.CANCELLED):
        return None, None
    status = status if isinstance(status, dict) else {}
    period = to_int(status.get("period"))
    if period is None or period < 1:
        period = linescores or None
    if state is GameStatus.FINAL:
        return period, 0.0
    clock = to_float(status.get("clock"))
    if clock is None:
        clock = duration_seconds(status.get("displayClock"))
    return period, clock


def _team_stats(boxscore: Any) -> dict[str, dict[str, Any]]:
    """boxscore.teams[].statistics[{name, displayValue}] -> normalized, by tricode."""
    out: dict[str, dict[str, Any]] = {}
    teams = boxscore.get("teams") if isinstance(boxscore, dict) else None
    for team in teams if isinstance(teams, list) else []:
        if not isinstance(team, dict) or not isinstance(team.get("statistics"), list):
            continue
        stats = [s for s in team["statistics"] if isinstance(s, dict)]
        keys = [s.get("name") for s in stats]
        values = [s.get("displayValue") for s in stats]
        out[_abbreviation(team)] = espn_stats(keys, values)
    return out


def _players(boxscore: Any) -> list[PlayerLine]:
    out: list[PlayerLine] = []
    groups = boxscore.get("players") if isinstance(boxscore, dict) else None
    for group in groups if isinstance(groups, list) else []:
        if not isinstance(group, dict):
            continue
        tricode = _abbreviation(group)
        for table in group.get("statistics") or []:
            if not isinstance(table, dict):
                continue
            keys = table.get("keys")
            for row in table.get("athletes") or []:
                if not isinstance(row, dict):
                    continue
                athlete = row.get("athlete") if isinstance(row.get("athlete"), dict) else {}
                out.append(
                    PlayerLine(
                        team=tricode,
                        player_id=str(athlete.get("id") or ""),
                        name=str(
                            athlete.get("displayName") or athlete.get("shortName") or "unknown"
                        ),
                        stats=espn_stats(keys, row.get("stats")),
                    )
                )
    return out


def parse_espn_summary(doc: Any, event_id: str | None = None) -> BoxScore:
    """``summary?event=ID`` -> BoxScore; the 404 error body -> UnknownGame."""
    if isinstance(doc, dict) and "header" not in doc and to_int(doc.get("code")) == 404:
        raise UnknownGame(
            f"ESPN does not know event {event_id!r}: {str(doc.get('message'))[:80]!r}; "
            "check the event id (9 digits) on the ESPN scoreboard for that day"
        )
    competition = dig(doc, "header", "competitions", 0)
    if not isinstance(competition, dict):
        got = type(doc).__name__ if not isinstance(doc, dict) else f"keys {sorted(doc)[:6]}"
        raise MalformedFeed(
            f"ESPN summary for event {event_id!r} has no header.competitions[0] (got {got}); "
            "check the base URL"
        )
    status_raw = competition.get("status")
    status = espn_status(status_raw)
    home_c, away_c = _competitors(competition)
    home_lines, away_lines = _linescores(home_c), _linescores(away_c)
    period, clock = _period_and_clock(status_raw, status, max(len(home_lines), len(away_lines)))
    if status is GameStatus.SCHEDULED:
        home_lines, away_lines = (), ()
    boxscore = doc.get("boxscore")
    team_stats = _team_stats(boxscore)
    home_code, away_code = _abbreviation(home_c), _abbreviation(away_c)
    return BoxScore(
        game_id=str(event_id or competition.get("id") or dig(doc, "header", "id") or ""),
        provider=PROVIDER,
        status=status,
        period=period,
        clock_seconds=clock,
        home=TeamLine(
            tricode=home_code,
            score=to_int(home_c.get("score"), 0) or 0,
            periods=home_lines,
            stats=team_stats.get(home_code, {}),
        ),
        away=TeamLine(
            tricode=away_code,
            score=to_int(away_c.get("score"), 0) or 0,
            periods=away_lines,
            stats=team_stats.get(away_code, {}),
        ),
        players=tuple(_players(boxscore)),
    )


def parse_espn_scoreboard(doc: Any) -> list[ScheduleEntry]:
    """``scoreboard?dates=YYYYMMDD`` -> that day's games (``"events": []`` -> [])."""
    if not isinstance(doc, dict) or not isinstance(doc.get("events", None), list):
        got = type(doc).__name__ if not isinstance(doc, dict) else f"keys {sorted(doc)[:6]}"
        raise MalformedFeed(
            f"ESPN scoreboard body has no 'events' list (got {got}); check the base URL"
        )
    out = []
    for event in doc["events"]:
        if not isinstance(event, dict) or not event.get("id"):
            continue
        competition = dig(event, "competitions", 0) or {}
        home, away = _competitors(competition)
        start = parse_utc(event.get("date")) or parse_utc(competition.get("date")) or _EPOCH
        out.append(
            ScheduleEntry(
                game_id=str(event["id"]),
                provider=PROVIDER,
                start_time=start,
                home=_abbreviation(home),
                away=_abbreviation(away),
                status=espn_status(event.get("status") or competition.get("status")),
            )
        )
    return out


def scoreboard_boxscores(doc: Any) -> dict[str, BoxScore]:
    """Scoreboard events as player-less box scores, by event id."""
    out = {}
    for event in doc.get("events") or [] if isinstance(doc, dict) else []:
        competition = dig(event, "competitions", 0)
        if isinstance(competition, dict) and event.get("id"):
            fake = {"header": {"competitions": [competition]}}
            out[str(event["id"])] = parse_espn_summary(fake, str(event["id"]))
    return out
