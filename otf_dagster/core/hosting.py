"""How a task is hosted, in both modes: a run of one task (``TaskRunner.run``, the Dagster
runner job) is a pool of one, held by the same :class:`HostedTask` a runner pool holds each of
its thousands of tasks by. The policy, written once:

- the runner is started once (the task must be STARTED at its attempt), then polled; a runner
  fenced out (another attempt owns the task) ends quietly, with nothing written;
- the next poll is due at the runner's own plan (when its poll finished plus the delay), never
  past the task's deadline: a task past it is polled at once and the poll ends it, so a
  deadline ends a task in the middle of a wait in both modes;
- a database that went away is retried, the poll's results kept in memory meanwhile; a poll
  that raised anyway (the database stayed away, a bug) is tried again after the type's
  interval from the committed checkpoint: nothing of it was written;
- a waiting task heartbeats often enough never to look stale (a third of its staleness): the
  run heartbeats its one task as it waits, a pool all its healthy tasks in one statement.

What differs is only the mechanism: the run waits on its clock (a virtual one in tests), the
pool keeps a timer heap and hands due polls to worker threads.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, TypeVar

from otf_dagster.exceptions import DatabaseUnavailable, OtfError, StaleTransition
from otf_dagster.vocab.poll import Outcome
from otf_dagster.vocab.tasks import EventRecord, TaskState, TaskType

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


@dataclass
class PollReport:
    """What one poll did, for the Dagster adapter (or the CLI) to show."""

    poll: int
    events: list[EventRecord]
    display: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    outcome: Outcome = Outcome.CONTINUE
    url: str | None = None
    lateness_seconds: float | None = None  # how late the poll started against its due time


@dataclass
class RunOutcome:
    task_id: str
    attempt: int
    state: TaskState | None  # the task's overall state after the run (None: fenced out)
    reason: str | None
    polls: int
    events: int
    display: dict[str, Any] = field(default_factory=dict)  # the last poll's
    detail: dict[str, Any] = field(default_factory=dict)  # the handler's end detail
    follow_ups: list[str] = field(default_factory=list)  # task ids scheduled at the end


@dataclass
class Step:
    """One poll: its report, the outcome when the runner has ended, else the next delay."""

    report: PollReport | None
    ended: RunOutcome | None = None
    delay: float = 0.0
    busy: str | None = None  # the feed host whose turn the poll waits for (HostBusy): not made


class Clock(Protocol):
    def now(self) -> datetime: ...

    def sleep(self, seconds: float) -> None: ...


class Runner(Protocol):
    """What a host drives (``core.runner.TaskRunner``)."""

    task_id: str
    attempt: int
    task_type: TaskType | None
    due: datetime | None
    clock: Clock

    def start(self) -> Any: ...

    def poll(self) -> Step: ...

    def fenced_out(self, reason: str) -> RunOutcome: ...

    def seconds_to_deadline(self) -> float: ...

    def wait(self, seconds: float) -> RunOutcome | None: ...


class HostedTask:
    """One task as a host holds it, whichever host: a run of one, or one of a pool's tasks."""

    def __init__(self, runner: Runner, *, fallback_interval: float = 5.0) -> None:
        self.runner = runner
        self.started = False
        self.fallback_interval = fallback_interval

    @property
    def task_id(self) -> str:
        return self.runner.task_id

    @property
    def attempt(self) -> int:
        return self.runner.attempt

    def poll(self) -> Step:
        """Start once, then one poll; a fenced-out runner ends with nothing written."""
        runner = self.runner
        try:
            if not self.started:
                runner.start()
                self.started = True
            return runner.poll()  # past its deadline, the poll ends the task with the reason
        except StaleTransition as exc:
            log.warning("runner for %s fenced out: %s", runner.task_id, exc)
            return Step(None, runner.fenced_out(str(exc)))

    def next_poll_in(self, step: Step) -> float:
        """Seconds until the next poll after ``step``: the runner's own plan, not the host's
        pick-up time (polls do not drift later by a busy host), capped by the deadline."""
        runner = self.runner
        return next_poll_in(
            step.delay, runner.due, runner.clock.now(), runner.seconds_to_deadline()
        )

    def retry_in(self, error: BaseException) -> float:
        """Seconds until a poll that raised is tried again (the type's interval): a database
        that stayed away past the retries, or a handler or host bug (logged with its trace)."""
        if not isinstance(error, OtfError):
            log.error("poll of %s failed", self.runner.task_id, exc_info=error)
        else:
            log.warning("poll of %s failed: %s", self.runner.task_id, error)
        ttype = self.runner.task_type
        return ttype.poll_interval_seconds if ttype else self.fallback_interval


def host_one(runner: Runner) -> RunOutcome:
    """Host one task until it ends here: a pool of one, waiting on the runner's clock and
    heartbeating its task as it waits."""
    task = HostedTask(runner)
    while True:
        try:
            step = task.poll()
        except Exception as exc:  # noqa: BLE001 - the pool's policy: tried again later
            delay = task.retry_in(exc)
        else:
            if step.ended is not None:
                return step.ended
            delay = task.next_poll_in(step)
        try:
            ended = runner.wait(delay)
        except StaleTransition as exc:  # a heartbeat found another attempt owning the task
            return runner.fenced_out(str(exc))
        if ended is not None:
            return ended
