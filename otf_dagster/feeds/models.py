"""Typed, provider-neutral models of a game: what the rest of the project stores and compares.

Everything here is immutable and JSON round-trippable, because a :class:`BoxScore` is kept as
a JSON checkpoint between polls and the next poll is diffed against it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any


class GameStatus(StrEnum):
    """Where a game stands. SUSPENDED is stopped mid-game to be finished later: not final."""

    SCHEDULED = "scheduled"
    LIVE = "live"
    FINAL = "final"
    POSTPONED = "postponed"
    CANCELLED = "cancelled"
    SUSPENDED = "suspended"


# Event kinds emitted by otf_dagster.feeds.derive.
GAME_STARTED = "game_started"
PERIOD_STARTED = "period_started"
SCORE_CHANGED = "score_changed"
LEAD_CHANGED = "lead_changed"
PERIOD_ENDED = "period_ended"
GAME_FINAL = "game_final"
STATS_CORRECTED = "stats_corrected"
POSTPONED = "postponed"
CANCELLED = "cancelled"
RESCHEDULED = "rescheduled"
SUSPENDED = "suspended"
RESUMED = "resumed"  # a suspended or delayed game is played again
DELAYED = "delayed"  # rain delay, delayed start: the game waits, not over
# what each sport's feed tells beyond the score
SCORING_PLAY = "scoring_play"  # football
POSSESSION_CHANGED = "possession_changed"  # football
HALF_INNING_STARTED = "half_inning_started"  # baseball
HALF_INNING_ENDED = "half_inning_ended"  # baseball: the runs of that half
GOAL = "goal"  # hockey, soccer
PENALTY = "penalty"  # hockey
RED_CARD = "red_card"  # soccer
PLAY_CORRECTED = "play_corrected"  # a play the feed changed or took back


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError(f"start_time {value!r} is naive; give a tz-aware UTC datetime")
    return value.astimezone(UTC)


@dataclass(frozen=True)
class ScheduleEntry:
    """One game of a provider's day listing."""

    game_id: str
    provider: str
    start_time: datetime
    home: str
    away: str
    status: GameStatus
    league: str = "nba"

    def __post_init__(self) -> None:
        object.__setattr__(self, "start_time", _utc(self.start_time))
        object.__setattr__(self, "status", GameStatus(self.status))

    def to_dict(self) -> dict[str, Any]:
        return {
            "game_id": self.game_id,
            "provider": self.provider,
            "league": self.league,
            "start_time": self.start_time.isoformat(),
            "home": self.home,
            "away": self.away,
            "status": self.status.value,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ScheduleEntry:
        return cls(
            game_id=d["game_id"],
            provider=d["provider"],
            start_time=datetime.fromisoformat(d["start_time"]),
            home=d["home"],
            away=d["away"],
            status=GameStatus(d["status"]),
            league=d.get("league", "nba"),
        )


@dataclass(frozen=True)
class TeamLine:
    """A team's side of a box score; ``periods`` has one entry per period started."""

    tricode: str
    score: int
    periods: tuple[int, ...] = ()
    stats: dict[str, Any] = field(default_factory=dict, hash=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "tricode": self.tricode,
            "score": self.score,
            "periods": list(self.periods),
            "stats": dict(self.stats),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TeamLine:
        return cls(
            tricode=d["tricode"],
            score=int(d["score"]),
            periods=tuple(int(p) for p in d.get("periods", ())),
            stats=dict(d.get("stats") or {}),
        )


@dataclass(frozen=True)
class PlayerLine:
    """One player's line; ``stats`` uses the normalized keys of feeds.normalize."""

    team: str
    player_id: str
    name: str
    stats: dict[str, Any] = field(default_factory=dict, hash=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "team": self.team,
            "player_id": self.player_id,
            "name": self.name,
            "stats": dict(self.stats),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PlayerLine:
        return cls(
            team=d["team"],
            player_id=str(d["player_id"]),
            name=d["name"],
            stats=dict(d.get("stats") or {}),
        )


_PERIOD_LETTERS = {"quarter": "Q", "half": "H", "period": "P", "inning": ""}


@dataclass(frozen=True)
class GameFormat:
    """How a game is divided: ``regulation`` periods called ``name`` (quarter, half, period,
    inning), what comes after them (``extra``: overtime, extra_innings, extra_time) and how its
    clock runs (``clock``: countdown, innings, minutes)."""

    regulation: int = 4
    name: str = "quarter"
    extra: str = "overtime"
    clock: str = "countdown"

    def to_dict(self) -> dict[str, Any]:
        return {
            "regulation": self.regulation,
            "name": self.name,
            "extra": self.extra,
            "clock": self.clock,
        }

    def label(self, period: int) -> str:
        """Q1..Q4 then OT1, OT2; H1, H2 then ET1, ET2, PEN; innings 1..9 then 10, 11; P1..P3 then OT1."""
        if self.extra == "extra_innings":
            return str(period)
        extra = period - self.regulation
        if extra <= 0:
            return f"{_PERIOD_LETTERS.get(self.name, 'P')}{period}"
        if self.extra == "extra_time":
            return ("ET1", "ET2", "PEN")[extra - 1] if extra <= 3 else f"P{period}"
        return f"OT{extra}"

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> GameFormat:
        d = d or {}
        return cls(
            regulation=int(d.get("regulation", 4)),
            name=str(d.get("name", "quarter")),
            extra=str(d.get("extra", "overtime")),
            clock=str(d.get("clock", "countdown")),
        )


@dataclass(frozen=True)
class Play:
    """A play the feed lists that matters beyond the score: a scoring play (football), a goal
    or penalty (hockey), a goal or red card (soccer). ``clock`` is as the feed shows it."""

    play_id: str
    kind: str
    team: str
    period: int | None = None
    clock: str | None = None
    text: str = ""
    home_score: int | None = None
    away_score: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "play_id": self.play_id,
            "kind": self.kind,
            "team": self.team,
            "period": self.period,
            "clock": self.clock,
            "text": self.text,
            "home_score": self.home_score,
            "away_score": self.away_score,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Play:
        return cls(
            play_id=str(d["play_id"]),
            kind=str(d["kind"]),
            team=str(d.get("team") or ""),
            period=None if d.get("period") is None else int(d["period"]),
            clock=d.get("clock"),
            text=str(d.get("text") or ""),
            home_score=None if d.get("home_score") is None else int(d["home_score"]),
            away_score=None if d.get("away_score") is None else int(d["away_score"]),
        )


NBA_FORMAT = GameFormat()


@dataclass(frozen=True)
class BoxScore:
    """A normalized snapshot of one game at one poll.

    ``period`` is None before the start (or when the feed's value is unusable).
    ``clock_seconds`` is the period's clock as the sport runs it: seconds left for countdown
    sports, match seconds played for soccer, None for baseball (and when unknown);
    ``display_clock`` is the clock as the feed shows it ("0:48", "58'", "90'+5'", "Top 9th").
    ``status_detail`` is the feed's status name normalized ("halftime", "end_period",
    "rain_delay", "full_time", ...); ``inning_half`` is baseball's top/mid/bottom/end;
    ``possession`` the team with the ball (football), when the feed says.
    """

    game_id: str
    provider: str
    status: GameStatus
    period: int | None
    clock_seconds: float | None
    home: TeamLine
    away: TeamLine
    players: tuple[PlayerLine, ...] = ()
    league: str = "nba"
    sport: str = "basketball"
    format: GameFormat = NBA_FORMAT
    status_detail: str | None = None
    display_clock: str | None = None
    inning_half: str | None = None
    possession: str | None = None
    plays: tuple[Play, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", GameStatus(self.status))

    def to_dict(self) -> dict[str, Any]:
        return {
            "game_id": self.game_id,
            "provider": self.provider,
            "league": self.league,
            "sport": self.sport,
            "format": self.format.to_dict(),
            "status": self.status.value,
            "status_detail": self.status_detail,
            "period": self.period,
            "clock_seconds": self.clock_seconds,
            "display_clock": self.display_clock,
            "inning_half": self.inning_half,
            "possession": self.possession,
            "home": self.home.to_dict(),
            "away": self.away.to_dict(),
            "plays": [p.to_dict() for p in self.plays],
            "players": [p.to_dict() for p in self.players],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BoxScore:
        """Also reads checkpoints written before leagues existed (NBA, basketball)."""
        clock = d.get("clock_seconds")
        return cls(
            game_id=d["game_id"],
            provider=d["provider"],
            status=GameStatus(d["status"]),
            period=None if d.get("period") is None else int(d["period"]),
            clock_seconds=None if clock is None else float(clock),
            home=TeamLine.from_dict(d["home"]),
            away=TeamLine.from_dict(d["away"]),
            players=tuple(PlayerLine.from_dict(p) for p in d.get("players", ())),
            league=d.get("league", "nba"),
            sport=d.get("sport", "basketball"),
            format=GameFormat.from_dict(d.get("format")),
            status_detail=d.get("status_detail"),
            display_clock=d.get("display_clock"),
            inning_half=d.get("inning_half"),
            possession=d.get("possession"),
            plays=tuple(Play.from_dict(p) for p in d.get("plays", ())),
        )

    def score_line(self) -> str:
        """``"ORL 97 - BOS 124"``: away first, as box scores are read."""
        return f"{self.away.tricode} {self.away.score} - {self.home.tricode} {self.home.score}"

    def period_labels(self) -> list[str]:
        """A label per period either side has a score for (Q1..Q4, OT1; 1..9, 10; H1, H2, ET1)."""
        count = max(len(self.home.periods), len(self.away.periods))
        return [self.format.label(k) for k in range(1, count + 1)]

    def summary(self) -> dict[str, Any]:
        """The short form the CLI prints: no players, no team stats."""
        return {
            "game_id": self.game_id,
            "provider": self.provider,
            "league": self.league,
            "sport": self.sport,
            "status": self.status.value,
            "status_detail": self.status_detail,
            "period": self.period,
            "period_label": None if self.period is None else self.format.label(self.period),
            "clock_seconds": self.clock_seconds,
            "display_clock": self.display_clock,
            "inning_half": self.inning_half,
            "score": self.score_line(),
            "period_labels": self.period_labels(),
            "home": {
                "tricode": self.home.tricode,
                "score": self.home.score,
                "periods": list(self.home.periods),
            },
            "away": {
                "tricode": self.away.tricode,
                "score": self.away.score,
                "periods": list(self.away.periods),
            },
        }


@dataclass(frozen=True)
class GameEvent:
    """Something that happened between two polls; ``payload`` is JSON-able."""

    kind: str
    payload: dict[str, Any] = field(default_factory=dict, hash=False)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "payload": dict(self.payload)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GameEvent:
        return cls(kind=d["kind"], payload=dict(d.get("payload") or {}))
