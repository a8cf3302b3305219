"""The TaskRunner's poll loop, free of Dagster: task, store, feed, clock.

Each poll fetches the box score, diffs it with the checkpointed snapshot, and writes the new
events, the new checkpoint and a heartbeat in ONE transaction (``TaskStore.record_poll``). A
runner that is killed and started again resumes from the checkpoint, so the event stream of
an interrupted game equals that of an uninterrupted one: events are only ever derived from
(checkpointed snapshot, new snapshot) and numbered from the checkpointed counter.

The loop ends at the terminal condition (final; postponed/cancelled), at the type's deadline,
after too many consecutive feed errors, or when the task type is soft-deleted. It re-reads the
task type every poll, so a changed poll interval applies at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from otf_dagster.core.models import EventRecord, Task, TaskState, TaskType
from otf_dagster.core.store import TaskStore
from otf_dagster.exceptions import (
    DatabaseUnavailable,
    FeedError,
    RetriableFeedError,
    StaleTransition,
    UnknownGame,
    UnknownTaskType,
)
from otf_dagster.feeds import BoxScore, GameStatus, Provider, derive_events
from otf_dagster.handlers import Handler, handler_for

log = logging.getLogger(__name__)

CHECKPOINT_VERSION = 1
TERMINAL_GAME = (GameStatus.FINAL, GameStatus.POSTPONED, GameStatus.CANCELLED)


class Clock(Protocol):
    def now(self) -> datetime: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def sleep(self, seconds: float) -> None:
        time.sleep(max(0.0, seconds))


@dataclass
class Checkpoint:
    """What survives a crash: the last snapshot written and the next event number."""

    snapshot: dict[str, Any] | None = None
    next_seq: int = 1
    polls: int = 0
    consecutive_errors: int = 0

    @classmethod
    def load(cls, data: dict[str, Any] | None) -> Checkpoint:
        if not data:
            return cls()
        return cls(
            snapshot=data.get("snapshot"),
            next_seq=int(data.get("next_seq", 1)),
            polls=int(data.get("polls", 0)),
            consecutive_errors=int(data.get("consecutive_errors", 0)),
        )

    def dump(self) -> dict[str, Any]:
        return {
            "version": CHECKPOINT_VERSION,
            "snapshot": self.snapshot,
            "next_seq": self.next_seq,
            "polls": self.polls,
            "consecutive_errors": self.consecutive_errors,
        }


@dataclass
class PollReport:
    """What one poll did, for the Dagster adapter to show."""

    poll: int
    snapshot: BoxScore | None
    events: list[EventRecord]
    error: str | None = None


@dataclass
class RunOutcome:
    task_id: str
    attempt: int
    state: TaskState | None  # the task's overall state after the run (None: fenced out)
    reason: str | None
    polls: int
    events: int
    final: BoxScore | None = None
    follow_ups: list[str] = field(default_factory=list)


class TaskRunner:
    """Polls one task's feed until its game ends; one instance per run."""

    def __init__(
        self,
        store: TaskStore,
        provider_for: Callable[[str], Provider],
        task_id: str,
        attempt: int,
        run_id: str,
        *,
        clock: Clock | None = None,
        on_poll: Callable[[PollReport], None] | None = None,
        db_retry_seconds: float = 2.0,
        db_retry_limit: int = 150,
    ) -> None:
        self.store = store
        self.provider_for = provider_for
        self.task_id = task_id
        self.attempt = attempt
        self.run_id = run_id
        self.clock = clock or SystemClock()
        self.on_poll = on_poll or (lambda report: None)
        self.db_retry_seconds = db_retry_seconds
        self.db_retry_limit = db_retry_limit

    # --- database calls that survive a restarting server ----------------------------------

    def _db(self, what: str, fn: Callable[[], Any]) -> Any:
        """Retry ``fn`` while the database is unavailable: the poll's results stay in memory
        until they are written, so a restarting server loses nothing."""
        for attempt in range(self.db_retry_limit):
            try:
                return fn()
            except DatabaseUnavailable as exc:
                log.warning("%s: database unavailable (try %d): %s", what, attempt + 1, exc)
                time.sleep(self.db_retry_seconds)  # wall-clock time: waiting for a server
        return fn()

    # --- the loop --------------------------------------------------------------------------

    def run(self) -> RunOutcome:
        task: Task = self._db("read task", lambda: self.store.get_task(self.task_id))
        if task.state != TaskState.STARTED or task.attempt != self.attempt:
            raise StaleTransition(
                f"task {self.task_id!r} is {task.state} at attempt {task.attempt}, not STARTED at "
                f"attempt {self.attempt}: another runner owns it or it has ended"
            )
        self._db(
            "set run id", lambda: self.store.set_run_id(self.task_id, self.attempt, self.run_id)
        )
        self.task = task
        self.cp = Checkpoint.load(task.checkpoint)  # always the last COMMITTED checkpoint
        self.events_written = 0
        # The deadline counts from the task's scheduled time: waiting in Dagster's run queue or
        # being re-launched does not buy a game more time.
        started = task.scheduled_at
        try:
            while True:
                try:
                    ttype: TaskType = self._db(
                        "read task type", lambda: self.store.get_task_type(task.task_type)
                    )
                except UnknownTaskType:
                    return self._end(
                        TaskState.FAILED,
                        f"task type {task.task_type!r} was deleted while the runner ran",
                    )
                handler = handler_for(ttype.handler)
                if self.clock.now() - started > timedelta(seconds=ttype.deadline_seconds):
                    return self._end(
                        TaskState.FAILED,
                        f"deadline: not final {ttype.deadline_seconds}s after its scheduled time",
                    )
                outcome = self._poll(task, ttype, handler)
                if outcome is not None:
                    return outcome
                try:  # the interval as it is now, not as it was before the poll
                    ttype = self._db(
                        "read task type", lambda: self.store.get_task_type(task.task_type)
                    )
                except UnknownTaskType:
                    continue  # the loop's next turn ends the runner with the reason
                self._sleep(ttype)
        except StaleTransition as exc:
            log.warning("runner for %s fenced out: %s", self.task_id, exc)
            return RunOutcome(
                self.task_id, self.attempt, None, str(exc), self.cp.polls, self.events_written
            )

    def _poll(self, task: Task, ttype: TaskType, handler: Handler) -> RunOutcome | None:
        """One poll; a RunOutcome when the task has ended."""
        cp = replace(self.cp, polls=self.cp.polls + 1)
        try:
            snapshot = self.provider_for(handler.provider).boxscore(task.external_key)
        except UnknownGame as exc:
            return self._end(TaskState.FAILED, f"unknown game: {exc}", cp)
        except FeedError as exc:
            cp.consecutive_errors += 1
            kind = "retriable" if isinstance(exc, RetriableFeedError) else "feed"
            self.on_poll(PollReport(cp.polls, None, [], error=f"{kind} error: {exc}"))
            if cp.consecutive_errors >= ttype.max_consecutive_errors:
                return self._end(
                    TaskState.FAILED,
                    f"{cp.consecutive_errors} consecutive feed errors; last: {exc}",
                    cp,
                )
            self._commit(cp, [])
            return None
        cp.consecutive_errors = 0
        prev = BoxScore.from_dict(self.cp.snapshot) if self.cp.snapshot else self._baseline(task)
        records = [
            EventRecord(self.cp.next_seq + i, e.kind, e.payload)
            for i, e in enumerate(derive_events(prev, snapshot))
        ]
        cp.snapshot = snapshot.to_dict()
        cp.next_seq = self.cp.next_seq + len(records)
        if handler.mode == "confirm" or snapshot.status in TERMINAL_GAME:
            follow_ups = []
            follow_type = ttype.params.get("follow_up_type")
            if follow_type and snapshot.status == GameStatus.FINAL:
                delay = float(ttype.params.get("follow_up_delay_seconds", 600))
                follow_ups.append(
                    (follow_type, task.external_key, self.clock.now() + timedelta(seconds=delay))
                )
            detail = {
                "final": snapshot.score_line(),
                "status": str(snapshot.status),
                "polls": cp.polls,
            }
            state = self._commit(
                cp, records, finish=TaskState.FINISHED, detail=detail, follow_ups=follow_ups
            )
            self.on_poll(PollReport(cp.polls, snapshot, records))
            return RunOutcome(
                self.task_id,
                self.attempt,
                state,
                None,
                cp.polls,
                self.events_written,
                snapshot,
                [f"{t.lower()}:{k}" for t, k, _ in follow_ups],
            )
        self._commit(cp, records)
        self.on_poll(PollReport(cp.polls, snapshot, records))
        return None

    def _baseline(self, task: Task) -> BoxScore | None:
        """A confirmation task diffs against its parent's final snapshot."""
        if task.parent_task_id:
            parent = self._db("read parent", lambda: self.store.get_task(task.parent_task_id))
            snap = (parent.checkpoint or {}).get("snapshot")
            if snap:
                return BoxScore.from_dict(snap)
        return None

    def _commit(self, cp: Checkpoint, records: list[EventRecord], **kw: Any) -> TaskState | None:
        """Write one poll (idempotently, fenced by the committed next_seq); adopt cp on success."""
        expected = self.cp.next_seq
        state = self._db(
            "record poll",
            lambda: self.store.record_poll(
                self.task_id,
                self.attempt,
                self.run_id,
                cp.dump(),
                records,
                expected_seq=expected,
                **kw,
            ),
        )
        self.cp = cp
        self.events_written += len(records)
        return state

    def _end(self, state: TaskState, reason: str, cp: Checkpoint | None = None) -> RunOutcome:
        overall = self._commit(cp or self.cp, [], finish=state, reason=reason)
        return RunOutcome(
            self.task_id, self.attempt, overall, reason, self.cp.polls, self.events_written
        )

    def _sleep(self, ttype: TaskType) -> None:
        """Sleep one poll interval, heartbeating often enough never to look stale."""
        remaining = ttype.poll_interval_seconds
        beat = max(1.0, ttype.stale_after_seconds / 3)
        while remaining > 0:
            step = min(remaining, beat)
            self.clock.sleep(step)
            remaining -= step
            if remaining > 0:
                self._db("heartbeat", lambda: self.store.heartbeat(self.task_id, self.attempt))
