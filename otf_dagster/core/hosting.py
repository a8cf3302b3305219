"""The hosting rules a one-task run and a runner pool share (a first step towards one hosting
loop: the run's loop and the pool's scheduler still drive them separately).

- a database that went away is retried, the poll's results kept in memory meanwhile;
- a task heartbeats often enough never to look stale (a third of its staleness);
- the next poll is due at the runner's own plan (when its poll finished plus the delay), never
  past the task's deadline, so a deadline ends the task in the middle of a wait in both modes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

from otf_dagster.exceptions import DatabaseUnavailable
from otf_dagster.vocab.tasks import TaskType

log = logging.getLogger(__name__)

T = TypeVar("T")


def retry_db(what: str, fn: Callable[[], T], *, seconds: float, limit: int) -> T:
    """``fn()``, retried every ``seconds`` (wall-clock: waiting for a server) up to ``limit``
    times while the database is unavailable; the last try's error propagates."""
    for attempt in range(limit):
        try:
            return fn()
        except DatabaseUnavailable as exc:
            log.warning("%s: database unavailable (try %d): %s", what, attempt + 1, exc)
            time.sleep(seconds)
    return fn()


def heartbeat_every(ttype: TaskType | None) -> float:
    """Seconds between a waiting task's heartbeats: a third of its type's staleness."""
    return max(1.0, ttype.stale_after_seconds / 3) if ttype else 60.0


def next_poll_in(planned: float, due: datetime | None, now: datetime, to_deadline: float) -> float:
    """Seconds until the next poll: the runner's plan (``due``, else ``planned`` from now),
    capped by the deadline (a task past it is polled at once, and the poll ends it)."""
    delay = planned if due is None else (due - now).total_seconds()
    return max(0.0, min(delay, to_deadline))
