"""Every state change of a task, each guarded by the state and attempt its writer expects.

The attempt is the fencing token: a stale runner or a second manager matches no row and is
refused with :class:`StaleTransition` instead of overwriting newer state. Functions here run
inside the caller's transaction.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import tuple_row
from psycopg.types.json import Jsonb

from otf_dagster.core.store.history import log_state
from otf_dagster.core.store.queries import query
from otf_dagster.exceptions import StaleTransition, UnknownTask
from otf_dagster.vocab.tasks import LIVE, TASK_SERVICE, Task, TaskState


def refusal(
    c: psycopg.Connection,
    task_id: str,
    what: str,
    expected: TaskState,
    attempt: int,
    run_id: str | None = None,
) -> Exception:
    """The exception for a guarded write that matched no row: unknown task, or stale writer
    (an earlier attempt's, or, given ``run_id``, a runner of the same attempt replaced by
    another started since)."""
    cur = c.execute(
        "SELECT state, attempt, run_id FROM tasks WHERE task_id = %s", (task_id,)
    ).fetchone()
    if cur is None:
        return UnknownTask(f"task {task_id!r} does not exist; see `otf tasks list`")
    if (
        run_id is not None
        and cur["state"] == expected
        and cur["attempt"] == attempt
        and cur["run_id"] not in (None, run_id)
    ):
        return StaleTransition(
            f"refused {what} of task {task_id!r} by run {run_id!r}: run {cur['run_id']!r} "
            f"started attempt {attempt} since and owns it now"
        )
    return StaleTransition(
        f"refused {what} of task {task_id!r}: expected {expected} at attempt {attempt}, "
        f"but it is {cur['state']} at attempt {cur['attempt']} (a newer writer owns it)"
    )


def claim_ready(
    c: psycopg.Connection,
    now: datetime,
    limit: int,
    source: str,
    deployment: str | None = None,
    *,
    lane: str = LIVE,
) -> list[tuple[Any, ...]]:
    """SCHEDULED -> STARTED for up to ``limit`` due tasks of ``lane`` no other claimer holds
    (one statement, SKIP LOCKED), with their STARTED history rows; recorded as launched by
    ``deployment``. Rows are tuples in :data:`CLAIM_COLUMNS` order: a dict per row cost the
    claim a share of its speed (issue 19)."""
    with c.cursor(row_factory=tuple_row) as cur:
        return cur.execute(
            query("claim_ready"),
            {"now": now, "limit": limit, "source": source, "deployment": deployment, "lane": lane},
        ).fetchall()


CLAIM_COLUMNS = (
    "task_id",
    "task_type",
    "external_key",
    "scheduled_at",
    "state",
    "attempt",
    "lane",
    "type_version",
)


def started_in_lane(c: psycopg.Connection, lane: str) -> int:
    return int(c.execute(query("started_in_lane"), {"lane": lane}).fetchone()["n"])


def transition(
    c: psycopg.Connection,
    task_id: str,
    from_state: TaskState,
    to_state: TaskState,
    attempt: int,
    *,
    reason: str | None,
    detail: dict[str, Any] | None,
    source: str,
) -> Task:
    row = c.execute(
        query("transition"),
        {
            "task_id": task_id,
            "from_state": from_state,
            "to_state": to_state,
            "attempt": attempt,
            "error": reason,
        },
    ).fetchone()
    if row is None:
        raise refusal(c, task_id, f"{from_state} -> {to_state}", from_state, attempt)
    payload = {**(detail or {}), **({"reason": reason} if reason else {})}
    log_state(
        c,
        task_id=task_id,
        attempt=attempt,
        service=TASK_SERVICE,
        state=to_state,
        previous_state=from_state,
        source=source,
        detail=Jsonb(payload) if payload else None,
    )
    return Task.from_row(row)


def relaunch(
    c: psycopg.Connection,
    task_id: str,
    attempt: int,
    reason: str,
    source: str,
    deployment: str | None = None,
) -> Task:
    """A lost STARTED task gets attempt + 1, recorded in its history."""
    row = c.execute(
        query("relaunch"),
        {"task_id": task_id, "attempt": attempt, "reason": reason, "deployment": deployment},
    ).fetchone()
    if row is None:
        raise refusal(c, task_id, "re-launch", TaskState.STARTED, attempt)
    log_state(
        c,
        task_id=task_id,
        attempt=row["attempt"],
        service=TASK_SERVICE,
        state=TaskState.STARTED,
        previous_state=TaskState.STARTED,
        source=source,
        detail=Jsonb({"relaunch": True, "reason": reason, "previous_attempt": attempt}),
    )
    return Task.from_row(row)


def adopt(
    c: psycopg.Connection, task_id: str, run_id: str, source: str, deployment: str | None = None
) -> Task:
    """A hand-launched runner takes the task (see the ``adopt`` query)."""
    before = c.execute(query("get_task"), {"task_id": task_id}).fetchone()
    row = c.execute(
        query("adopt"), {"task_id": task_id, "run_id": run_id, "deployment": deployment}
    ).fetchone()
    if row is None:
        if before is None:
            raise UnknownTask(f"task {task_id!r} does not exist; see `otf tasks list`")
        raise StaleTransition(
            f"task {task_id!r} is {before['state']} (attempt {before['attempt']}) and cannot be "
            "started by hand; schedule a new task, or check its type is not deleted"
        )
    log_state(
        c,
        task_id=task_id,
        attempt=row["attempt"],
        service=TASK_SERVICE,
        state=TaskState.STARTED,
        previous_state=before["state"],
        source=source,
        detail=Jsonb({"run_id": run_id, "manual": True}),
    )
    return Task.from_row(row)


def fenced(
    c: psycopg.Connection,
    name: str,
    task_id: str,
    attempt: int,
    params: dict[str, Any],
    *,
    run_id: str | None = None,
) -> None:
    """A write that only the runner of (STARTED, attempt) may make (run id, heartbeat);
    ``run_id`` names the runner in a refusal when the query fences by it too."""
    if (
        c.execute(query(name), {"task_id": task_id, "attempt": attempt, **params}).fetchone()
        is None
    ):
        raise refusal(c, task_id, name.replace("_", " "), TaskState.STARTED, attempt, run_id)


def retry(c: psycopg.Connection, task_id: str, reason: str, source: str) -> Task:
    """FAILED or CANCELLED -> SCHEDULED (now), the checkpoint kept, the reason in its history."""
    row = c.execute(query("retry"), {"task_id": task_id}).fetchone()
    if row is None:
        cur = c.execute("SELECT state FROM tasks WHERE task_id = %s", (task_id,)).fetchone()
        if cur is None:
            raise UnknownTask(f"task {task_id!r} does not exist; see `otf tasks list`")
        raise StaleTransition(
            f"task {task_id!r} is {cur['state']}: only a FAILED or CANCELLED task can be retried"
        )
    log_state(
        c,
        task_id=task_id,
        attempt=row["attempt"],
        service=TASK_SERVICE,
        state=TaskState.SCHEDULED,
        previous_state=row["previous_state"],
        source=source,
        detail=Jsonb({"retry": True, "reason": reason}),
    )
    return Task.from_row(row)
