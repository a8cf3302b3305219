"""Pure parsers of the NBA CDN (cdn.nba.com) live-data JSON into the models.

Status is the integer ``gameStatus`` (1/2/3), never ``gameStatusText`` (padded, free text).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from otf_dagster.exceptions import MalformedFeed
from otf_dagster.feeds.models import BoxScore, GameStatus, PlayerLine, ScheduleEntry, TeamLine
from otf_dagster.feeds.normalize import (
    dig,
    duration_seconds,
    nba_stats,
    nba_tricode,
    parse_utc,
    to_int,
)

PROVIDER = "nba_cdn"
SCOREBOARD_PATH = "/static/json/liveData/scoreboard/todaysScoreboard_00.json"
BOXSCORE_PATH = "/static/json/liveData/boxscore/boxscore_{game_id}.json"
PLAYBYPLAY_PATH = "/static/json/liveData/playbyplay/playbyplay_{game_id}.json"
SCHEDULE_PATH = "/static/json/staticData/scheduleLeagueV2.json"

_EPOCH = datetime.fromisoformat("1970-01-01T00:00:00+00:00")


def nba_status(game: dict[str, Any]) -> GameStatus:
    """``gameStatus`` 1/2/3; postponement from ``postponedStatus`` or a "PPD"/"Cancelled" text."""
    text = str(game.get("gameStatusText") or "").strip().lower()
    postponed = str(game.get("postponedStatus") or "").strip().upper()
    if text.startswith("cancel") or postponed == "C":
        return GameStatus.CANCELLED
    if text in ("ppd", "postponed") or postponed in ("Y", "P"):
        return GameStatus.POSTPONED
    code = to_int(game.get("gameStatus"))
    if code == 2:
        return GameStatus.LIVE
    if code == 3:
        return GameStatus.FINAL
    return GameStatus.SCHEDULED


def _detail(game: dict[str, Any], status: GameStatus) -> str:
    """The status in ESPN's normalized words: halftime and end_period from the text."""
    if status is not GameStatus.LIVE:
        return {GameStatus.SCHEDULED: "scheduled", GameStatus.FINAL: "final"}.get(
            status, status.value
        )
    text = str(game.get("gameStatusText") or "").strip().lower()
    if text.startswith("half"):
        return "halftime"
    if text.startswith("end"):
        return "end_period"
    return "in_progress"


def _display_clock(clock: float | None) -> str | None:
    if clock is None:
        return None
    minutes, seconds = divmod(clock, 60)
    return f"{int(minutes)}:{int(seconds):02d}" if clock >= 60 else f"{clock:.1f}"


def _period_and_clock(game: dict[str, Any], status: GameStatus) -> tuple[int | None, float | None]:
    if status in (GameStatus.SCHEDULED, GameStatus.POSTPONED, GameStatus.CANCELLED):
        return None, None  # the pregame clock is meaningless
    period = to_int(game.get("period"))
    if period is not None and period < 1:
        period = None
    if status is GameStatus.FINAL:
        return period, 0.0
    return period, duration_seconds(game.get("gameClock"))


def _team_periods(team: dict[str, Any], period: int | None, status: GameStatus) -> tuple[int, ...]:
    raw = team.get("periods")
    if not isinstance(raw, list) or status is GameStatus.SCHEDULED:
        return ()
    numbered: list[tuple[int, int]] = []
    for index, entry in enumerate(raw, start=1):
        if not isinstance(entry, dict):
            continue
        number = to_int(entry.get("period"), index) or index
        numbered.append((number, to_int(entry.get("score"), 0) or 0))
    numbered.sort()
    if period is not None:
        # periods[] is zero-filled ahead (always 4 entries): keep the ones started
        numbered = [(n, s) for n, s in numbered if n <= period]
    return tuple(s for _, s in numbered)


def _team_line(team: Any, period: int | None, status: GameStatus) -> TeamLine:
    if not isinstance(team, dict):
        return TeamLine(tricode="UNK", score=0)
    return TeamLine(
        tricode=nba_tricode(team.get("teamTricode")),
        score=to_int(team.get("score"), 0) or 0,
        periods=_team_periods(team, period, status),
        stats=nba_stats(team.get("statistics")),
    )


def _players(team: Any) -> list[PlayerLine]:
    if not isinstance(team, dict) or not isinstance(team.get("players"), list):
        return []
    tricode = nba_tricode(team.get("teamTricode"))
    out = []
    for player in team["players"]:
        if not isinstance(player, dict):
            continue
        name = (
            player.get("name")
            or " ".join(str(player.get(k) or "") for k in ("firstName", "familyName")).strip()
        )
        out.append(
            PlayerLine(
                team=tricode,
                player_id=str(player.get("personId") or ""),
                name=str(name or "unknown"),
                stats=nba_stats(player.get("statistics")),
            )
        )
    return out


def _require_game(doc: Any, what: str) -> dict[str, Any]:
    game = doc.get("game") if isinstance(doc, dict) else None
    if not isinstance(game, dict):
        got = type(doc).__name__ if not isinstance(doc, dict) else f"keys {sorted(doc)[:6]}"
        raise MalformedFeed(
            f"NBA {what} body has no 'game' object (got {got}); "
            "is the base URL pointing at cdn.nba.com or the simulator?"
        )
    return game


def game_to_boxscore(game: dict[str, Any], with_players: bool = True) -> BoxScore:
    """A ``game`` object of a box score (or a scoreboard entry, without players) -> BoxScore."""
    status = nba_status(game)
    period, clock = _period_and_clock(game, status)
    home, away = game.get("homeTeam"), game.get("awayTeam")
    players: tuple[PlayerLine, ...] = ()
    if with_players:
        players = tuple(_players(home) + _players(away))
    return BoxScore(
        game_id=str(game.get("gameId") or ""),
        provider=PROVIDER,
        status=status,
        period=period,
        clock_seconds=clock,
        home=_team_line(home, period, status),
        away=_team_line(away, period, status),
        players=players,
        status_detail=_detail(game, status),
        display_clock=_display_clock(clock),
    )


def parse_nba_boxscore(doc: Any) -> BoxScore:
    """``boxscore_{id}.json`` -> BoxScore."""
    return game_to_boxscore(_require_game(doc, "box score"))


def _entry(game: dict[str, Any], start_field: str) -> ScheduleEntry | None:
    if not isinstance(game, dict) or not game.get("gameId"):
        return None
    start = parse_utc(game.get(start_field)) or parse_utc(game.get("gameTimeUTC")) or _EPOCH
    return ScheduleEntry(
        game_id=str(game["gameId"]),
        provider=PROVIDER,
        start_time=start,
        home=nba_tricode(dig(game, "homeTeam", "teamTricode")),
        away=nba_tricode(dig(game, "awayTeam", "teamTricode")),
        status=nba_status(game),
    )


def _scoreboard(doc: Any) -> dict[str, Any]:
    board = doc.get("scoreboard") if isinstance(doc, dict) else None
    if not isinstance(board, dict):
        raise MalformedFeed(
            f"NBA scoreboard body has no 'scoreboard' object (got {type(doc).__name__}); "
            "check the base URL"
        )
    return board


def scoreboard_date(doc: Any) -> date | None:
    """The day a ``todaysScoreboard_00.json`` is about (its ``gameDate``)."""
    try:
        return date.fromisoformat(str(_scoreboard(doc).get("gameDate") or "").strip())
    except ValueError:
        return None


def parse_nba_scoreboard(doc: Any) -> list[ScheduleEntry]:
    """``todaysScoreboard_00.json`` -> the day's games."""
    games = _scoreboard(doc).get("games")
    entries = [_entry(g, "gameTimeUTC") for g in games] if isinstance(games, list) else []
    return [e for e in entries if e is not None]


def scoreboard_boxscores(doc: Any) -> dict[str, BoxScore]:
    """Scoreboard games as player-less box scores, by game id (fallback before a box exists)."""
    games = _scoreboard(doc).get("games")
    out = {}
    for game in games if isinstance(games, list) else []:
        if isinstance(game, dict) and game.get("gameId"):
            out[str(game["gameId"])] = game_to_boxscore(game, with_players=False)
    return out


def _schedule_day(value: Any) -> date | None:
    """``"01/07/2026 00:00:00"`` (the schedule's Eastern game day) -> date."""
    text = str(value or "").strip().split(" ")[0]
    for fmt in ("%m/%d/%Y", "%Y-%m-%d"):
        try:
            return datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    return None


def parse_nba_schedule(doc: Any, day: date | None = None) -> list[ScheduleEntry]:
    """``scheduleLeagueV2.json`` -> the games listed under ``day`` (every game when None)."""
    schedule = doc.get("leagueSchedule") if isinstance(doc, dict) else None
    if not isinstance(schedule, dict):
        raise MalformedFeed(
            f"NBA schedule body has no 'leagueSchedule' object (got {type(doc).__name__}); "
            "check the base URL"
        )
    out = []
    for game_date in schedule.get("gameDates") or []:
        if not isinstance(game_date, dict):
            continue
        if day is not None and _schedule_day(game_date.get("gameDate")) != day:
            continue
        for game in game_date.get("games") or []:
            entry = _entry(game, "gameDateTimeUTC")
            if entry is not None:
                out.append(entry)
    return out
