"""The daily schedule's work, free of Dagster: a league's day of games -> scheduled tasks.

Idempotent: a game already scheduled is left alone, a game whose time moved is moved, a
postponed or cancelled game, or one that vanished from the day's listing, is CANCELLED while it
has not started, and a game already final is not scheduled (a suspended one is: it is not
over). A league's task types are created on its first ingest when missing; types that exist,
edited or soft-deleted by a user, are left as they are.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from otf_dagster.core import task_types
from otf_dagster.core.models import TaskState
from otf_dagster.core.store import TaskStore
from otf_dagster.exceptions import StaleTransition, UnknownTaskType
from otf_dagster.feeds import GameStatus, Provider, ScheduleEntry

SKIP_STATUSES = (GameStatus.FINAL,)
CANCEL_STATUSES = (GameStatus.POSTPONED, GameStatus.CANCELLED)


@dataclass
class IngestReport:
    day: date
    entries: list[ScheduleEntry]
    outcomes: dict[str, str] = field(default_factory=dict)  # game id -> created/moved/unchanged/...

    def count(self, outcome: str) -> int:
        return sum(1 for v in self.outcomes.values() if v == outcome)


def day_window(day: date, tz: str) -> tuple[datetime, datetime]:
    zone = ZoneInfo(tz)
    start = datetime.combine(day, time(0), tzinfo=zone)
    return start, datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone)


def ensure_task_types(store: TaskStore, specs: Iterable[Mapping[str, Any]]) -> list[str]:
    """Create the types of ``specs`` that do not exist yet (not even soft-deleted); the names created."""
    created = []
    for spec in specs:
        checked = task_types.validate(spec)
        try:
            store.get_task_type(checked.name, include_deleted=True)
        except UnknownTaskType:
            store.apply_task_type(checked)
            created.append(checked.name)
    return created


def ingest_day(
    store: TaskStore, provider: Provider, day: date, *, task_type: str, tz: str
) -> IngestReport:
    entries = sorted(provider.schedule(day), key=lambda e: (e.start_time, e.game_id))
    report = IngestReport(day=day, entries=entries)
    to_schedule = []
    for e in entries:
        if e.status in SKIP_STATUSES:
            report.outcomes[e.game_id] = "skipped: final"
        elif e.status in CANCEL_STATUSES:
            report.outcomes[e.game_id] = f"cancel: {e.status}"
        else:
            to_schedule.append(
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
    if to_schedule:
        for (key, _, _), (_, outcome) in zip(
            to_schedule,
            store.schedule_tasks(task_type, to_schedule, source="game_schedule"),
            strict=True,
        ):
            report.outcomes[key] = outcome

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
