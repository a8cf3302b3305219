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
    SCHEDULED = "scheduled"
    LIVE = "live"
    FINAL = "final"
    POSTPONED = "postponed"
    CANCELLED = "cancelled"


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
EVENT_KINDS = (
    GAME_STARTED,
    PERIOD_STARTED,
    SCORE_CHANGED,
    LEAD_CHANGED,
    PERIOD_ENDED,
    GAME_FINAL,
    STATS_CORRECTED,
    POSTPONED,
    CANCELLED,
    RESCHEDULED,
)


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

    def __post_init__(self) -> None:
        object.__setattr__(self, "start_time", _utc(self.start_time))
        object.__setattr__(self, "status", GameStatus(self.status))

    def to_dict(self) -> dict[str, Any]:
        return {
            "game_id": self.game_id,
            "provider": self.provider,
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


@dataclass(frozen=True)
class BoxScore:
    """A normalized snapshot of one game at one poll.

    ``period`` is None before tip-off (or when the feed's value is unusable); ``clock_seconds``
    is the time remaining in ``period``, None when unknown.
    """

    game_id: str
    provider: str
    status: GameStatus
    period: int | None
    clock_seconds: float | None
    home: TeamLine
    away: TeamLine
    players: tuple[PlayerLine, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", GameStatus(self.status))

    def to_dict(self) -> dict[str, Any]:
        return {
            "game_id": self.game_id,
            "provider": self.provider,
            "status": self.status.value,
            "period": self.period,
            "clock_seconds": self.clock_seconds,
            "home": self.home.to_dict(),
            "away": self.away.to_dict(),
            "players": [p.to_dict() for p in self.players],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BoxScore:
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
        )

    def score_line(self) -> str:
        """``"ORL 97 - BOS 124"``: away first, as box scores are read."""
        return f"{self.away.tricode} {self.away.score} - {self.home.tricode} {self.home.score}"

    def summary(self) -> dict[str, Any]:
        """The short form the CLI prints: no players, no team stats."""
        return {
            "game_id": self.game_id,
            "provider": self.provider,
            "status": self.status.value,
            "period": self.period,
            "clock_seconds": self.clock_seconds,
            "score": self.score_line(),
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
