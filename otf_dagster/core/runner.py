"""The TaskRunner's poll loop, free of Dagster and of any kind of task: task, store, handler,
clock.

Each poll reads the task type (so a changed interval, URL or soft delete applies at once),
lets the type's handler (``otf_dagster.handlers``) turn the response into a result, and
writes the events, the handler's new state (the checkpoint), follow-up tasks and a heartbeat
in ONE transaction (``TaskStore.record_poll``), fenced by the attempt. A runner that is killed
and started again resumes from the committed checkpoint, so the event stream of an
interrupted task equals that of an uninterrupted one: events are only ever derived from
(committed state, new response) and numbered from the committed counter.

The loop ends when the handler says done or failed, at the type's deadline (counted from
the task's scheduled time and enforced during sleeps too), after ``max_consecutive_errors``
failed polls in a row (FAILED with the last error), on an unknown game, or when the type is
soft-deleted. ``run()`` is the one-task runner a Dagster run executes; a runner pool drives
``start()``, ``poll()`` and ``past_deadline()`` itself.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from otf_dagster.core import hosting, pace
from otf_dagster.core.hosting import Clock, PollReport, RunOutcome, Step
from otf_dagster.core.store import TaskStore, task_id_for
from otf_dagster.core.store.polls import FollowUp, PollRecord, PollWrite
from otf_dagster.exceptions import (
    ConfigError,
    DatabaseUnavailable,
    FeedError,
    HostBusy,
    InvalidTaskType,
    PollError,
    RetriableFeedError,
    StaleTransition,
    StoreError,
    UnknownGame,
    UnknownTaskType,
)
from otf_dagster.feeds.clients import Clients, PollClient
from otf_dagster.feeds.providers import DEFAULT_BASE_URLS
from otf_dagster.vocab import urls
from otf_dagster.vocab.poll import Handler, HandlerRegistry, Outcome, PollContext, PollResult
from otf_dagster.vocab.tasks import EventRecord, Task, TaskState, TaskType

log = logging.getLogger(__name__)

CHECKPOINT_VERSION = 2
# A poll whose feed host had no free turn is tried again this soon, unless its host (a runner
# pool) wakes it sooner, when a turn is given back.
HOST_BUSY_RETRY_SECONDS = 0.5
EVENT_KIND = re.compile(r"^[a-z][a-z0-9_]{0,62}$")  # the task_events_kind_format CHECK
_FINISH = {Outcome.DONE: TaskState.FINISHED, Outcome.FAILED: TaskState.FAILED}


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def sleep(self, seconds: float) -> None:
        time.sleep(max(0.0, seconds))


@dataclass
class Checkpoint:
    """What survives a crash: the handler's state after the last committed poll and the next
    event number."""

    state: Any = None
    next_seq: int = 1
    polls: int = 0
    consecutive_errors: int = 0

    @classmethod
    def load(cls, data: dict[str, Any] | None) -> Checkpoint:
        if not data:
            return cls()
        version = int(data.get("version", 1))
        # version 1 kept a box score's snapshot under "snapshot"
        state = data.get("state") if version >= 2 else data.get("snapshot", data.get("state"))
        return cls(
            state=state,
            next_seq=int(data.get("next_seq", 1)),
            polls=int(data.get("polls", 0)),
            consecutive_errors=int(data.get("consecutive_errors", 0)),
        )

    def dump(self) -> dict[str, Any]:
        return {
            "version": CHECKPOINT_VERSION,
            "state": self.state,
            "next_seq": self.next_seq,
            "polls": self.polls,
            "consecutive_errors": self.consecutive_errors,
        }


class TaskRunner:
    """Polls one task until its handler says done; one instance per task attempt."""

    def __init__(
        self,
        store: TaskStore,
        task_id: str,
        attempt: int,
        run_id: str,
        *,
        handlers: HandlerRegistry,
        clients: Clients | None = None,
        feed_base_url: str | None = None,
        clock: Clock | None = None,
        on_poll: Callable[[PollReport], None] | None = None,
        read_type: Callable[[str], TaskType] | None = None,
        db_retry_seconds: float = 2.0,
        db_retry_limit: int = 150,
        backfill_rps: float | None = None,
        record_poll: Callable[[PollWrite], TaskState | None] | None = None,
    ) -> None:
        self.store = store
        # where a poll's write goes: the store (one transaction per poll), or a pool's group
        # committer (core/store/group_commit.py: same result, same exceptions)
        self._record_poll = record_poll or store.record_poll
        self.task_id = task_id
        self.attempt = attempt
        self.run_id = run_id
        self.handlers = handlers
        self.clients = clients or Clients()
        self.feed_base_url = feed_base_url or None
        self.clock = clock or SystemClock()
        self.on_poll = on_poll or (lambda report: None)
        self._read_type = read_type or store.get_task_type
        self.db_retry_seconds = db_retry_seconds
        self.db_retry_limit = db_retry_limit
        self.task: Task | None = None
        self.task_type: TaskType | None = None
        self.cp = Checkpoint()
        self.events_written = 0
        self.due: datetime | None = None  # when the next poll is meant to start
        # A backfill task's polls keep the backfill's pace (core/pace.py): OTF_BACKFILL_RPS
        # unless given; the slot reserved for the next poll, once it had to wait for one.
        self.backfill_rps = backfill_rps
        self._pace: pace.Pace | None = None
        self._slot_at: datetime | None = None
        # the poll's URL and feed client, for the type's (url_template, base_url, handler)
        self._target: tuple[tuple[Any, ...], str, Any] | None = None

    # --- database calls that survive a restarting server ----------------------------------

    def _db(self, what: str, fn: Callable[[], Any]) -> Any:
        """Retry ``fn`` while the database is unavailable: the poll's results stay in memory
        until they are written, so a restarting server loses nothing."""
        return hosting.retry_db(what, fn, seconds=self.db_retry_seconds, limit=self.db_retry_limit)

    # --- the one-task runner ---------------------------------------------------------------

    def run(self) -> RunOutcome:
        """Poll until the task ends here: hosted as a pool of one (``core.hosting``)."""
        return hosting.host_one(self)

    def start(self) -> Task:
        """Check the task is ours (STARTED at our attempt), record our run id, load the
        committed checkpoint."""
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
        # The first poll is due at the task's scheduled time (a backfill task's: when it was
        # claimed, its game is long over); a resumed attempt's, at the last sign of life of the
        # runner before it (so its lateness shows the gap).
        self.due = self._clock_start() if self.cp.polls == 0 else (task.heartbeat_at or self.due)
        return task

    def _clock_start(self) -> datetime:
        """What the deadline and the first poll count from: the scheduled time, or for a
        backfill task (scheduled at a past game's start) when this attempt started."""
        assert self.task is not None
        if self.task.backfill and self.task.started_at is not None:
            return self.task.started_at
        return self.task.scheduled_at

    def fenced_out(self, reason: str) -> RunOutcome:
        return RunOutcome(
            self.task_id, self.attempt, None, reason, self.cp.polls, self.events_written
        )

    def wait(self, seconds: float) -> RunOutcome | None:
        """Sleep until the next poll, heartbeating often enough never to look stale; the
        deadline ends the runner even in the middle of a sleep."""
        remaining = seconds
        beat = hosting.heartbeat_every(self.task_type)
        while remaining > 0:
            left = self.seconds_to_deadline()
            if left <= 0:
                return self._end(TaskState.FAILED, self._deadline_reason())
            step = min(remaining, beat, left)
            self.clock.sleep(step)
            remaining -= step
            if remaining > 0 and self.seconds_to_deadline() > 0:
                self._db(
                    "heartbeat",
                    lambda: self.store.heartbeat(self.task_id, self.attempt, self.run_id),
                )
        return None

    # --- one poll --------------------------------------------------------------------------

    def seconds_to_deadline(self) -> float:
        if self.task is None or self.task_type is None:
            return float("inf")
        end = self._clock_start() + timedelta(seconds=self.task_type.deadline_seconds)
        return (end - self.clock.now()).total_seconds()

    def past_deadline(self) -> bool:
        return self.seconds_to_deadline() <= 0

    def _deadline_reason(self) -> str:
        assert self.task_type is not None and self.task is not None
        since = "it started (backfill)" if self.task.backfill else "its scheduled time"
        return (
            f"deadline: not done {self.task_type.deadline_seconds}s after {since} "
            f"({self._clock_start().isoformat()})"
        )

    def _current_type(self) -> TaskType | None:
        assert self.task is not None
        try:
            ttype = self._db("read task type", lambda: self._read_type(self.task.task_type))
        except UnknownTaskType:
            return None
        self.task_type = ttype
        return ttype

    def poll(self) -> Step:
        """One poll and its commit; ``Step.ended`` when the task has ended here."""
        assert self.task is not None, "start() first"
        now = self.clock.now()
        lateness = (now - self.due).total_seconds() if self.due else None
        ttype = self._current_type()
        if ttype is None:
            return Step(
                None,
                self._end(
                    TaskState.FAILED,
                    f"task type {self.task.task_type!r} was deleted while the runner ran",
                ),
            )
        if self.past_deadline():
            return Step(None, self._end(TaskState.FAILED, self._deadline_reason()))
        if self.task.backfill:
            wait = self._wait_for_slot(ttype, now)
            if wait > 0:  # not yet: polled at its slot (the loop or the pool waits, heartbeating)
                return Step(None, None, wait)

        cp = replace(self.cp, polls=self.cp.polls + 1)
        url = None
        try:
            handler = self.handlers.get(ttype.handler)
            url, client = self._client_for(ttype, handler)
            ctx = PollContext(
                task=self.task,
                task_type=ttype,
                state=self.cp.state,
                url=url,
                client=client,
                now=now,
                polls=cp.polls,
                consecutive_errors=self.cp.consecutive_errors,
                parent_state=self._parent_state,
            )
            result = handler.poll(ctx)
            follow_ups = list(result.follow_ups)
            if ttype.spawn:
                follow_ups += self.handlers.follow_ups(ttype.spawn, client.last_document, now)
            records = self._records(result)
        except HostBusy as exc:  # not polled: the host's turns are taken (a pool holds it back)
            return Step(None, None, HOST_BUSY_RETRY_SECONDS, busy=exc.host)
        except UnknownGame as exc:
            reason = f"unknown game: {exc}"
            return Step(None, self._end(TaskState.FAILED, reason, cp, (lateness or 0.0, reason)))
        except (FeedError, PollError, ConfigError, InvalidTaskType) as exc:
            kind = "retriable error" if isinstance(exc, RetriableFeedError) else "poll error"
            return self._failed_poll(cp, ttype, f"{kind}: {exc}", url, lateness)
        except Exception as exc:  # a handler bug: counted and named, never a dead runner
            log.exception("handler %s failed on %s", ttype.handler, self.task_id)
            message = f"handler {ttype.handler} raised {type(exc).__name__}: {exc}"
            return self._failed_poll(cp, ttype, message, url, lateness)

        cp.consecutive_errors = 0
        cp.state = result.state
        cp.next_seq = self.cp.next_seq + len(records)
        finish = _FINISH.get(result.outcome)
        try:
            overall = self._commit(
                cp,
                records,
                finish=finish,
                reason=result.reason if finish == TaskState.FAILED else None,
                detail={**result.detail, **({"reason": result.reason} if result.reason else {})}
                if finish
                else None,
                follow_ups=[(f.task_type, f.key, f.at, f.params) for f in follow_ups],
                poll_record=(lateness or 0.0, None),
            )
        except (StaleTransition, DatabaseUnavailable):
            raise
        except StoreError as exc:  # refused by the database (a follow-up it cannot schedule...)
            failed = replace(self.cp, polls=cp.polls)
            return self._failed_poll(failed, ttype, f"write refused: {exc}", url, lateness)

        report = PollReport(cp.polls, records, result.display, None, result.outcome, url, lateness)
        self.on_poll(report)
        if finish is not None:
            return Step(
                report,
                RunOutcome(
                    self.task_id,
                    self.attempt,
                    overall,
                    result.reason if finish == TaskState.FAILED else None,
                    cp.polls,
                    self.events_written,
                    result.display,
                    result.detail,
                    [task_id_for(f.task_type, f.key) for f in follow_ups],
                ),
            )
        return Step(report, None, self._next_delay(result))

    def _wait_for_slot(self, ttype: TaskType, now: datetime) -> float:
        """Seconds until this backfill poll's slot of the pace (0: poll now). The slot is
        reserved once and kept across the wait; a type whose URL cannot be made is left to
        the poll, which reports why."""
        if self._slot_at is None:
            try:
                url, _ = self._client_for(ttype, self.handlers.get(ttype.handler))
            except (ConfigError, InvalidTaskType, PollError):
                return 0.0
            if self._pace is None:
                self._pace = pace.Pace(self.store, self.backfill_rps or pace.configured_rps())
            wait = self._db("reserve a backfill slot", lambda: self._pace.reserve(url))
            if wait <= 0:
                return 0.0
            self._slot_at = now + timedelta(seconds=wait)
        left = (self._slot_at - now).total_seconds()
        if left <= pace.NOW_SECONDS:
            self._slot_at = None
            return 0.0
        self.due = self._slot_at
        return left

    def _client_for(self, ttype: TaskType, handler: Handler) -> tuple[str, PollClient]:
        """The poll's URL and a fresh PollClient on its feed's shared client. The URL and the
        feed client depend only on the type's template, base URL and handler (the task's key
        and params are fixed for the attempt), so they are worked out once per such triple,
        not on every poll; a changed type gets its own at its next poll."""
        key = (ttype.url_template, ttype.base_url, ttype.handler)
        if self._target is None or self._target[0] != key:
            url, feed = self._target_for(ttype, handler)
            self._target = (key, url, feed)
        _, url, feed = self._target
        return url, PollClient(feed)

    def _target_for(self, ttype: TaskType, handler: Handler) -> tuple[str, Any]:
        assert self.task is not None
        path = urls.render(ttype.url_template, self.task.external_key, self.task.params)
        if urls.is_absolute(path):
            scheme, _, rest = path.partition("://")
            base = f"{scheme}://{rest.split('/', 1)[0]}"
        else:
            base = urls.resolve_base(
                ttype.base_url,
                self.feed_base_url,
                handler.default_feed,
                DEFAULT_BASE_URLS,
                f"task type {ttype.name!r}",
            )
        feed = self.clients.for_base(base)
        return feed.url_for(path), feed

    def _records(self, result: PollResult) -> list[EventRecord]:
        records = []
        for i, event in enumerate(result.events):
            if not isinstance(event.kind, str) or not EVENT_KIND.match(event.kind):
                raise PollError(f"event kind {event.kind!r} is malformed (use [a-z][a-z0-9_]*)")
            records.append(EventRecord(self.cp.next_seq + i, event.kind, event.payload))
        return records

    def _parent_state(self) -> Any:
        assert self.task is not None
        if not self.task.parent_task_id:
            return None
        parent = self._db("read parent", lambda: self.store.get_task(self.task.parent_task_id))
        return Checkpoint.load(parent.checkpoint).state

    def _next_delay(self, result: PollResult) -> float:
        """The handler's wish within the type's bounds, from the type as it is now (re-read:
        a changed interval applies from this poll on)."""
        ttype = self._current_type() or self.task_type
        assert ttype is not None
        lo, hi = ttype.poll_bounds()
        wish = result.next_poll_seconds
        delay = ttype.poll_interval_seconds if wish is None else min(max(wish, lo), hi)
        self.due = self.clock.now() + timedelta(seconds=delay)
        return delay

    def _failed_poll(
        self,
        cp: Checkpoint,
        ttype: TaskType,
        message: str,
        url: str | None,
        lateness: float | None,
    ) -> Step:
        """A poll that failed: nothing of it is kept but the count; FAILED at the limit."""
        cp = replace(self.cp, polls=cp.polls, consecutive_errors=self.cp.consecutive_errors + 1)
        report = PollReport(cp.polls, [], {}, message, Outcome.CONTINUE, url, lateness)
        record = (lateness or 0.0, message)
        if cp.consecutive_errors >= ttype.max_consecutive_errors:
            self.on_poll(report)
            reason = f"{cp.consecutive_errors} consecutive poll errors; last: {message}"
            return Step(report, self._end(TaskState.FAILED, reason, cp, record))
        self._commit(cp, [], poll_record=record)
        self.on_poll(report)
        self.due = self.clock.now() + timedelta(seconds=ttype.poll_interval_seconds)
        return Step(report, None, ttype.poll_interval_seconds)

    # --- writes ----------------------------------------------------------------------------

    def _commit(
        self,
        cp: Checkpoint,
        records: list[EventRecord],
        *,
        finish: TaskState | None = None,
        reason: str | None = None,
        detail: dict[str, Any] | None = None,
        follow_ups: Sequence[FollowUp] = (),
        poll_record: PollRecord | None = None,
    ) -> TaskState | None:
        """Write one poll (idempotently, fenced by the committed next_seq); adopt cp on success."""
        write = PollWrite(
            self.task_id,
            self.attempt,
            self.run_id,
            cp.dump(),
            records,
            finish=finish,
            reason=reason,
            detail=detail,
            expected_seq=self.cp.next_seq,
            follow_ups=follow_ups,
            poll_record=poll_record,
        )
        state = self._db("record poll", lambda: self._record_poll(write))
        self.cp = cp
        self.events_written += len(records)
        return state

    def _end(
        self,
        state: TaskState,
        reason: str,
        cp: Checkpoint | None = None,
        poll_record: PollRecord | None = None,
    ) -> RunOutcome:
        overall = self._commit(
            cp or self.cp, [], finish=state, reason=reason, poll_record=poll_record
        )
        return RunOutcome(
            self.task_id, self.attempt, overall, reason, self.cp.polls, self.events_written
        )
