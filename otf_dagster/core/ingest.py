"""The daily schedule's work, free of Dagster: a league's day of games -> scheduled tasks.

Idempotent: a game already scheduled is left alone, a game whose time moved is moved, a
postponed or cancelled game, or one that vanished from the day's listing, is CANCELLED while it
has not started. A game the feed already reports final (a past day's, or one of today's
played before the first ingest) is backfill work: a task in the ``backfill`` lane, which the
claim serves after live work and its runner polls once for the final state and the events
(a suspended game is not final: it is live work). A league's task types are created on its
first ingest when missing; types that exist, edited or soft-deleted by a user, are left as
they are. A day the feed cannot list raises :class:`DayUnavailable`, naming the day.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from otf_dagster.core.store import TaskStore
from otf_dagster.exceptions import ConfigError, FeedError, StaleTransition, UnknownTaskType
from otf_dagster.feeds import GameStatus, Provider, ScheduleEntry
from otf_dagster.feeds.leagues import League
from otf_dagster.vocab.poll import HandlerRegistry
from otf_dagster.vocab.tasks import BACKFILL, LIVE, TaskState

BACKFILL_STATUSES = (GameStatus.FINAL,)
CANCEL_STATUSES = (GameStatus.POSTPONED, GameStatus.CANCELLED)


class DayUnavailable(FeedError):
    """The feed could not list a day's games (an unknown day, a refused date, an outage)."""


@dataclass
class IngestReport:
    day: date
    entries: list[ScheduleEntry]
    outcomes: dict[str, str] = field(default_factory=dict)  # game id -> created/moved/unchanged/...
    backfill: set[str] = field(default_factory=set)  # tasks created final: in the backfill lane

    def count(self, outcome: str) -> int:
        return sum(1 for v in self.outcomes.values() if v == outcome)


def day_window(day: date, tz: str) -> tuple[datetime, datetime]:
    zone = ZoneInfo(tz)
    start = datetime.combine(day, time(0), tzinfo=zone)
    return start, datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone)


def ensure_task_types(
    store: TaskStore, specs: Iterable[Mapping[str, Any]], handlers: HandlerRegistry
) -> list[str]:
    """Create the types of ``specs`` that do not exist yet (not even soft-deleted), each
    checked by ``handlers``; the names created."""
    created = []
    for spec in specs:
        checked = handlers.validate(spec)
        try:
            store.get_task_type(checked.name, include_deleted=True)
        except UnknownTaskType:
            store.apply_task_type(checked)
            created.append(checked.name)
    return created


def is_past(day: date, tz: str, now: datetime | None = None) -> bool:
    """Whether ``day`` has ended in the schedule's time zone: a backfill's day."""
    return day < (now or datetime.now(ZoneInfo(tz))).astimezone(ZoneInfo(tz)).date()


def list_day(provider: Provider, day: date) -> list[ScheduleEntry]:
    """The day's games from the feed, or DayUnavailable naming the league, the day and why."""
    try:
        return provider.schedule(day)
    except FeedError as exc:
        raise DayUnavailable(
            f"{provider.league.alias} {day.isoformat()}: {provider.name} could not list the "
            f"day's games: {exc}"
        ) from exc


def ingest_day(
    store: TaskStore, provider: Provider, day: date, *, task_type: str, tz: str
) -> IngestReport:
    entries = sorted(list_day(provider, day), key=lambda e: (e.start_time, e.game_id))
    report = IngestReport(day=day, entries=entries)
    lanes: dict[str, list] = {LIVE: [], BACKFILL: []}
    for e in entries:
        if e.status in CANCEL_STATUSES:
            report.outcomes[e.game_id] = f"cancel: {e.status}"
            continue
        lane = BACKFILL if e.status in BACKFILL_STATUSES else LIVE
        lanes[lane].append(
            (
                e.game_id,
                e.start_time,
                {
                    "home": e.home,
                    "away": e.away,
                    "provider": e.provider,
                    "league": e.league,
                    "day": day.isoformat(),
                },
            )
        )
    for lane, items in lanes.items():
        if not items:
            continue
        for (key, _, _), (_, outcome) in zip(
            items,
            store.schedule_tasks(task_type, items, source="game_schedule", lane=lane),
            strict=True,
        ):
            report.outcomes[key] = outcome
            if lane == BACKFILL and outcome == "created":
                report.backfill.add(key)

    listed = {e.game_id for e in entries if e.status not in CANCEL_STATUSES}
    start, end = day_window(day, tz)
    for row in store.scheduled_between(task_type, start, end):
        key = row["external_key"]
        if row["state"] != TaskState.SCHEDULED or key in listed:
            continue
        reason = report.outcomes.get(key, "vanished from the day's schedule")
        try:
            store.cancel_task(
                row["task_id"],
                f"game {key}: {reason.removeprefix('cancel: ')}",
                source="game_schedule",
            )
            report.outcomes[key] = "cancelled"
        except StaleTransition:
            report.outcomes[key] = "started before it could be cancelled"
    return report


# --- a backfill: past days, one league's day at a time ----------------------------------------

MAX_BACKFILL_DAYS = 366


@dataclass
class DayResult:
    """One league's day of a backfill: its ingest report, or why the feed could not list it."""

    day: date
    league: str
    report: IngestReport | None = None
    error: str | None = None
    created_types: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        r = self.report
        return {
            "day": self.day.isoformat(),
            "league": self.league,
            "ok": self.error is None,
            "games": len(r.entries) if r else 0,
            "created": r.count("created") if r else 0,
            "backfill": len(r.backfill) if r else 0,
            "unchanged": r.count("unchanged") if r else 0,
            "cancelled": r.count("cancelled") if r else 0,
            "error": self.error,
        }


def backfill_range(start: date, end: date, tz: str, now: datetime | None = None) -> list[date]:
    """The days from ``start`` to ``end`` inclusive, each a past day; refused otherwise, with
    what to give instead."""
    if end < start:
        raise ConfigError(
            f"--to {end.isoformat()} is before --from {start.isoformat()}; give the first day first"
        )
    today = (now or datetime.now(ZoneInfo(tz))).astimezone(ZoneInfo(tz)).date()
    if end >= today:
        raise ConfigError(
            f"--to {end.isoformat()} is not a past day (today is {today.isoformat()} in {tz}): "
            "a backfill ingests days that have ended; today's games are the daily schedule's"
        )
    days = (end - start).days + 1
    if days > MAX_BACKFILL_DAYS:
        raise ConfigError(
            f"--from {start.isoformat()} --to {end.isoformat()} is {days} days; backfill at "
            f"most {MAX_BACKFILL_DAYS} at a time (a season), in several commands"
        )
    return [start + timedelta(days=i) for i in range(days)]


def backfill_days(
    store: TaskStore,
    days: Iterable[date],
    leagues: Iterable[League],
    provider_for: Callable[[League], Provider],
    task_type_for: Callable[[League], str],
    *,
    handlers: HandlerRegistry,
    tz: str,
) -> Iterator[DayResult]:
    """Ingest each day once per league, in order, as the schedule asset does for one partition:
    the games already final become backfill tasks. A day the feed cannot list is reported
    (``DayResult.error``) and the others go on."""
    leagues = list(leagues)
    for day in days:
        for league in leagues:
            provider = provider_for(league)
            result = DayResult(day, league.alias)
            if provider.name == "espn":
                result.created_types = ensure_task_types(store, league.task_type_specs(), handlers)
            try:
                result.report = ingest_day(
                    store, provider, day, task_type=task_type_for(league), tz=tz
                )
            except DayUnavailable as exc:
                result.error = str(exc)
            yield result
