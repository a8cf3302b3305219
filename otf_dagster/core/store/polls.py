"""A runner's writes: one poll's checkpoint, heartbeat, events, follow-ups and end, together.

Functions here run inside the caller's transaction; ``record_poll`` is all-or-nothing for one
task's poll, fenced by (STARTED, attempt, runner) and idempotent through the checkpoint's ``next_seq``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from otf_dagster.core.store import pollstats, scheduling, task_types
from otf_dagster.core.store.queries import query
from otf_dagster.core.store.transitions import refusal
from otf_dagster.exceptions import StaleTransition, StoreError, UnknownTask
from otf_dagster.vocab.tasks import RUNNER_SERVICE, EventRecord, TaskState

EVENTS_LOCK_KEY = 0x07F0_0002
# time is left to the column default now(): the transaction's time on the database clock, as
# for the state rows written beside the events.
_EVENT_COLUMNS = ("task_id", "task_runner_id", "task_type", "task_seq", "kind", "payload")

EventRow = tuple[str, str, str, EventRecord]  # (task_id, task_runner_id, task_type, event)
# (task type, external key, scheduled at, params)
FollowUp = tuple[str, str, datetime, dict[str, Any]]
PollRecord = tuple[float, str | None]  # (lateness in seconds, the error of a failed poll)


@dataclass(frozen=True)
class PollWrite:
    """One poll's writes, committed together by :meth:`TaskStore.record_poll`: the runner's
    checkpoint (and heartbeat), the new events, the follow-up tasks, the ``task_polls`` row
    (``poll_record``: lateness, error) and, with ``finish``, the runner's end (its ``reason``
    and ``detail``). Fenced by (STARTED, ``attempt``, ``run_id``); with ``expected_seq`` (the
    checkpoint's ``next_seq`` the poll started from) a retry of a commit whose
    acknowledgement was lost writes nothing twice."""

    task_id: str
    attempt: int
    run_id: str
    checkpoint: dict[str, Any]
    events: Sequence[EventRecord] = ()
    finish: TaskState | None = None
    reason: str | None = None
    detail: dict[str, Any] | None = None
    expected_seq: int | None = None
    follow_ups: Sequence[FollowUp] = ()
    poll_record: PollRecord | None = None


def record_poll(c: psycopg.Connection, w: PollWrite) -> TaskState | None:
    """See :meth:`TaskStore.record_poll`."""
    row, done = fence(c, w)
    if row is None:
        return done
    overall = apply(c, w, row["task_type"])
    if w.events:
        copy_events(c, [(w.task_id, w.run_id, row["task_type"], e) for e in w.events])
    return overall


def record_polls(
    c: psycopg.Connection, writes: Sequence[PollWrite]
) -> list[TaskState | None | StoreError]:
    """Several tasks' poll writes in the caller's transaction (see :meth:`TaskStore.record_polls`),
    in the order given (the caller sorts them by task id: the lock order). A write its fence
    refuses is its exception in the list, having written nothing (the fence is its first
    statement); any other error propagates and the caller rolls the whole batch back.

    In a few round trips whatever the batch's size: every fence in one pipelined
    ``executemany``, the poll rows in another, the events of every accepted write in one COPY at the end (the
    events lock taken last, after every task row, as in a single write, and held to commit);
    a runner's end and its follow-ups (a task's last poll) one by one."""
    out: list[TaskState | None | StoreError] = [None] * len(writes)
    # one statement per write, pipelined by executemany (the query converted once, not per
    # write); its result sets in the writes' order: the matched row, or none (refused)
    fences = c.cursor()
    fences.executemany(query("save_checkpoint"), map(_fence_params, writes), returning=True)
    matched = [cur.fetchone() for cur in fences.results()]
    accepted: list[tuple[int, PollWrite, str]] = []
    for i, (w, row) in enumerate(zip(writes, matched, strict=True)):
        if row is not None:
            accepted.append((i, w, row["task_type"]))
            continue
        try:
            out[i] = _missed(c, w)
        except (StaleTransition, UnknownTask) as exc:
            out[i] = exc
    pollstats.log_polls(
        c, [_poll_row(w, task_type) for _, w, task_type in accepted if w.poll_record is not None]
    )
    events: list[EventRow] = []
    for i, w, task_type in accepted:
        out[i] = _finish_and_follow_ups(c, w)
        events += [(w.task_id, w.run_id, task_type, e) for e in w.events]
    if events:
        copy_events(c, events)
    return out


def fence(c: psycopg.Connection, w: PollWrite) -> tuple[dict[str, Any] | None, TaskState | None]:
    """The write's first statement: the checkpoint, fenced by (STARTED, attempt, runner) and
    ``expected_seq``. (the task row, None) when it matched; (None, the overall state) when this
    very write was applied already (a retry); refused (nothing written): StaleTransition, or
    UnknownTask."""
    row = c.execute(query("save_checkpoint"), _fence_params(w)).fetchone()
    if row is not None:
        return row, None
    return None, _missed(c, w)


def _fence_params(w: PollWrite) -> dict[str, Any]:
    return {
        "task_id": w.task_id,
        "attempt": w.attempt,
        "run_id": w.run_id,
        "checkpoint": Jsonb(w.checkpoint),
        "expected_seq": w.expected_seq,
    }


def _missed(c: psycopg.Connection, w: PollWrite) -> TaskState | None:
    """A fence that matched no row: this very write applied already (a retry: its result),
    else refused (raised)."""
    cur = c.execute(query("get_task"), {"task_id": w.task_id}).fetchone()
    if (
        w.expected_seq is not None
        and cur is not None
        and cur["attempt"] == w.attempt
        and cur["run_id"] == w.run_id
        and cur["checkpoint"] == w.checkpoint
    ):
        return TaskState(cur["state"]) if w.finish is not None else None  # already applied
    raise refusal(c, w.task_id, "poll write", TaskState.STARTED, w.attempt, w.run_id)


def _poll_row(w: PollWrite, task_type: str) -> dict[str, Any]:
    assert w.poll_record is not None
    return pollstats.poll_row(
        task_id=w.task_id,
        task_type=task_type,
        attempt=w.attempt,
        task_runner_id=w.run_id,
        lateness_seconds=w.poll_record[0],
        events=len(w.events),
        error=w.poll_record[1],
    )


def apply(c: psycopg.Connection, w: PollWrite, task_type: str) -> TaskState | None:
    """The rest of a write whose fence matched, but its events (the caller appends them, last):
    the poll row, the runner's end, the follow-up tasks."""
    if w.poll_record is not None:
        pollstats.log_polls(c, [_poll_row(w, task_type)])
    return _finish_and_follow_ups(c, w)


def _finish_and_follow_ups(c: psycopg.Connection, w: PollWrite) -> TaskState | None:
    overall = None
    if w.finish is not None:
        overall = finish_service(
            c, w.task_id, w.attempt, RUNNER_SERVICE, w.finish, w.reason, w.detail
        )
    for ftype, fkey, fat, fparams in w.follow_ups:
        # A type must exist when one that schedules it is applied (handlers.task_types.apply); a
        # follow-up of a type soft-deleted since then is skipped, never fatal.
        if task_types.lock_live(c, ftype):
            scheduling.schedule_in(
                c, ftype, [(fkey, fat, fparams)], parent_task_id=w.task_id, source=RUNNER_SERVICE
            )
    return overall


def finish_service(
    c: psycopg.Connection,
    task_id: str,
    attempt: int,
    service: str,
    state: TaskState,
    reason: str | None,
    detail: dict[str, Any] | None,
) -> TaskState:
    """Record a service's state and re-derive the task's overall state, in the caller's
    transaction: the rules are the database's (``otf_record_service_state``, sql/0006), the
    same that services' reports go through."""
    payload = {**(detail or {}), **({"reason": reason} if reason else {})} or None
    row = c.execute(
        query("record_service_state"),
        {
            "task_id": task_id,
            "service": service,
            "state": state,
            "attempt": attempt,
            "detail": Jsonb(payload) if payload else None,
            "source": service,
        },
    ).fetchone()
    return TaskState(row["overall"])


def fail_runner(
    c: psycopg.Connection,
    task_id: str,
    attempt: int,
    reason: str,
    detail: dict[str, Any] | None = None,
) -> TaskState:
    """The runner gave up (feed errors, deadline, its run failed for good): runner FAILED."""
    if (
        c.execute(query("lock_started_task"), {"task_id": task_id, "attempt": attempt}).fetchone()
        is None
    ):
        raise refusal(c, task_id, "fail runner", TaskState.STARTED, attempt)
    return finish_service(c, task_id, attempt, RUNNER_SERVICE, TaskState.FAILED, reason, detail)


def copy_events(c: psycopg.Connection, rows: Sequence[EventRow]) -> None:
    """Batched append under the events lock, held to commit (seq order is commit order)."""
    c.execute(query("lock_events"), {"key": EVENTS_LOCK_KEY})
    with c.cursor().copy(f"COPY task_events ({', '.join(_EVENT_COLUMNS)}) FROM STDIN") as copy:
        for task_id, runner_id, task_type, ev in rows:
            copy.write_row((task_id, runner_id, task_type, ev.task_seq, ev.kind, Jsonb(ev.payload)))
