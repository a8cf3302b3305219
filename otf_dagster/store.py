"""The task store: task types, tasks, their states and events, over psycopg 3 (no Dagster).

Every write that must be atomic is one transaction; every state change is guarded by the
state and attempt the writer expects, so a stale runner or a second manager is refused
(:class:`StaleTransition`) instead of silently overwriting newer state.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from otf_dagster.aggregate import overall_state
from otf_dagster.db import connect, translated_errors
from otf_dagster.exceptions import (
    DatabaseUnavailable,
    StaleTransition,
    StoreError,
    UnknownTask,
    UnknownTaskType,
)
from otf_dagster.models import (
    RUNNER_SERVICE,
    TASK_SERVICE,
    ClaimedTask,
    EventRecord,
    Task,
    TaskState,
    TaskType,
)

EVENTS_LOCK_KEY = 0x07F0_0002
# time is left to the column default now(): the transaction's time on the database clock, as
# for the state rows written beside the events.
_EVENT_COLUMNS = ("task_id", "task_runner_id", "task_type", "task_seq", "kind", "payload")
_TASK_ID_SAFE = re.compile(r"^[A-Za-z0-9_.-]{1,120}$")


def _load_queries() -> dict[str, str]:
    text = (Path(__file__).parent / "queries.sql").read_text(encoding="utf-8")
    queries: dict[str, str] = {}
    for chunk in text.split("-- name: ")[1:]:
        name, _, body = chunk.partition("\n")
        queries[name.strip()] = body.strip().rstrip(";")
    return queries


Q = _load_queries()


def task_id_for(task_type: str, external_key: str) -> str:
    """The task id (and Dagster partition key) of (type, key): readable when the key is tame,
    a digest when it holds characters a partition key may not (the key is stored verbatim)."""
    prefix = task_type.lower()
    if _TASK_ID_SAFE.match(external_key) and "..." not in external_key:
        return f"{prefix}:{external_key}"
    digest = hashlib.sha256(external_key.encode("utf-8")).hexdigest()[:20]
    return f"{prefix}:h-{digest}"


def utcnow() -> datetime:
    return datetime.now(UTC)


def _log_state(
    c: psycopg.Connection,
    *,
    task_id: str,
    attempt: int,
    service: str,
    state: TaskState,
    previous_state: TaskState | str | None,
    source: str | None,
    detail: Jsonb | None,
) -> None:
    """One row of a task's history (task_states), in the caller's transaction."""
    c.execute(
        Q["insert_state"],
        {
            "task_id": task_id,
            "attempt": attempt,
            "service": service,
            "state": state,
            "previous_state": previous_state,
            "source": source,
            "detail": detail,
        },
    )


class TaskStore:
    """One connection to the task database; reconnects after the server went away."""

    def __init__(self, url: str, *, application_name: str = "otf-store") -> None:
        self.url = url
        self.application_name = application_name
        self._conn: psycopg.Connection | None = None

    # --- connection ------------------------------------------------------------------------

    @property
    def conn(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed or self._conn.broken:
            if self._conn is not None:
                self._conn.close()
            self._conn = connect(self.url, application_name=self.application_name)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> TaskStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self, what: str, fn):
        """Run ``fn(conn)`` in one transaction, translating errors; drop a broken connection."""
        try:
            with translated_errors(what):
                conn = self.conn
                with conn.transaction():
                    return fn(conn)
        except DatabaseUnavailable:
            self.close()
            raise

    # --- task types ------------------------------------------------------------------------

    def apply_task_type(self, tt: TaskType) -> bool:
        """Create or update a task type (un-deleting it); True if created."""
        params = tt.to_dict()
        params["params"] = Jsonb(tt.params)
        params["required_services"] = list(tt.required_services)
        row = self._run(
            f"apply task type {tt.name!r}",
            lambda c: c.execute(Q["upsert_task_type"], params).fetchone(),
        )
        return bool(row["inserted"])

    def apply_task_types(self, types: Iterable[TaskType]) -> list[tuple[str, bool]]:
        """Apply several types in one transaction: all or nothing."""
        types = list(types)

        def work(c: psycopg.Connection) -> list[tuple[str, bool]]:
            out = []
            for tt in types:
                params = tt.to_dict()
                params["params"] = Jsonb(tt.params)
                params["required_services"] = list(tt.required_services)
                out.append(
                    (tt.name, bool(c.execute(Q["upsert_task_type"], params).fetchone()["inserted"]))
                )
            return out

        return self._run("apply task types", work)

    def get_task_type(self, name: str, *, include_deleted: bool = False) -> TaskType:
        row = self._run(
            "read task type", lambda c: c.execute(Q["get_task_type"], {"name": name}).fetchone()
        )
        if row is None or (row["deleted_at"] is not None and not include_deleted):
            raise UnknownTaskType(
                f"task type {name!r} does not exist{'' if row is None else ' (it is soft-deleted)'}; "
                "see `otf task-types list` or apply it with `otf task-types apply FILE`"
            )
        return TaskType.from_row(row)

    def list_task_types(self, *, include_deleted: bool = False) -> list[TaskType]:
        rows = self._run(
            "list task types",
            lambda c: c.execute(
                Q["list_task_types"], {"include_deleted": include_deleted}
            ).fetchall(),
        )
        return [TaskType.from_row(r) for r in rows]

    def delete_task_type(self, name: str) -> None:
        """Soft delete: its tasks are no longer claimed; running ones see it and stop."""
        row = self._run(
            "delete task type",
            lambda c: c.execute(Q["soft_delete_task_type"], {"name": name}).fetchone(),
        )
        if row is None:
            raise UnknownTaskType(
                f"task type {name!r} does not exist or is already deleted; see `otf task-types list`"
            )

    # --- scheduling ------------------------------------------------------------------------

    def schedule_task(
        self,
        task_type: str,
        external_key: str,
        scheduled_at: datetime,
        *,
        params: dict[str, Any] | None = None,
        parent_task_id: str | None = None,
        source: str = "scheduler",
    ) -> tuple[str, str]:
        """Schedule (type, key) idempotently: (task_id, outcome) with outcome one of
        'created', 'moved' (still SCHEDULED, time or params changed) or 'unchanged'."""
        return self.schedule_tasks(
            task_type,
            [(external_key, scheduled_at, params or {})],
            parent_task_id=parent_task_id,
            source=source,
        )[0]

    def schedule_tasks(
        self,
        task_type: str,
        items: Sequence[tuple[str, datetime, dict[str, Any]]],
        *,
        parent_task_id: str | None = None,
        source: str = "scheduler",
    ) -> list[tuple[str, str]]:
        """Schedule many tasks of one type in one transaction (all or nothing)."""
        for key, at, _ in items:
            if not isinstance(key, str) or not 1 <= len(key) <= 200:
                raise StoreError(f"external key {key!r} must be text of 1 to 200 characters")
            if not isinstance(at, datetime) or at.tzinfo is None:
                raise StoreError(
                    f"scheduled time {at!r} for key {key!r} must be a timezone-aware datetime"
                )

        return self._run(
            f"schedule {task_type!r} tasks",
            lambda c: self._schedule_in(
                c, task_type, items, parent_task_id=parent_task_id, source=source
            ),
        )

    def _schedule_in(
        self,
        c: psycopg.Connection,
        task_type: str,
        items: Sequence[tuple[str, datetime, dict[str, Any]]],
        *,
        parent_task_id: str | None,
        source: str,
    ) -> list[tuple[str, str]]:
        # FOR SHARE: a concurrent soft delete waits for us, or we see it and refuse.
        if c.execute(Q["lock_live_task_type"], {"name": task_type}).fetchone() is None:
            raise UnknownTaskType(
                f"cannot schedule: task type {task_type!r} does not exist or is soft-deleted; "
                "see `otf task-types list`"
            )
        out = []
        for key, at, params in items:
            row = c.execute(
                Q["schedule_task"],
                {
                    "task_id": task_id_for(task_type, key),
                    "task_type": task_type,
                    "external_key": key,
                    "scheduled_at": at,
                    "params": Jsonb(params),
                    "parent_task_id": parent_task_id,
                },
            ).fetchone()
            if row is None:
                existing = c.execute(
                    Q["find_task_by_key"], {"task_type": task_type, "external_key": key}
                ).fetchone()
                out.append((existing["task_id"], "unchanged"))
                continue
            if row["inserted"]:
                _log_state(
                    c,
                    task_id=row["task_id"],
                    attempt=0,
                    service=TASK_SERVICE,
                    state=TaskState.SCHEDULED,
                    previous_state=None,
                    source=source,
                    detail=Jsonb(
                        {
                            "scheduled_at": at.isoformat(),
                            **({"parent": parent_task_id} if parent_task_id else {}),
                        }
                    ),
                )
            out.append((row["task_id"], "created" if row["inserted"] else "moved"))
        return out

    def cancel_task(self, task_id: str, reason: str, *, source: str = "scheduler") -> Task:
        """SCHEDULED -> CANCELLED (a postponed or vanished game); refused once it started."""
        task = self.get_task(task_id)
        return self.transition(
            task_id,
            TaskState.SCHEDULED,
            TaskState.CANCELLED,
            task.attempt,
            reason=reason,
            source=source,
        )

    # --- the claim -------------------------------------------------------------------------

    def claim_ready(
        self, limit: int = 500, *, now: datetime | None = None, source: str = "task_manager"
    ) -> list[ClaimedTask]:
        """Claim up to ``limit`` ready tasks: SCHEDULED, due, of a live type; exactly once across
        any number of concurrent claimers."""
        if limit <= 0:
            return []
        now = now or utcnow()

        def work(c: psycopg.Connection) -> tuple[list[dict[str, Any]], dict[str, TaskType]]:
            rows = c.execute(
                Q["claim_ready"], {"now": now, "limit": limit, "source": source}
            ).fetchall()
            names = sorted({r["task_type"] for r in rows})
            trows = c.execute(Q["get_task_types"], {"names": names}).fetchall() if names else []
            return rows, {r["name"]: TaskType.from_row(r) for r in trows}

        rows, types = self._run("claim ready tasks", work)
        return [ClaimedTask(task=Task.from_row(r), task_type=types[r["task_type"]]) for r in rows]

    # --- state changes ---------------------------------------------------------------------

    def transition(
        self,
        task_id: str,
        from_state: TaskState,
        to_state: TaskState,
        attempt: int,
        *,
        reason: str | None = None,
        detail: dict[str, Any] | None = None,
        source: str = "task_manager",
    ) -> Task:
        """Move the task from ``from_state`` to ``to_state`` if it is still there at ``attempt``."""

        def work(c: psycopg.Connection) -> Task:
            row = c.execute(
                Q["transition"],
                {
                    "task_id": task_id,
                    "from_state": from_state,
                    "to_state": to_state,
                    "attempt": attempt,
                    "error": reason,
                },
            ).fetchone()
            if row is None:
                raise self._refusal(c, task_id, f"{from_state} -> {to_state}", from_state, attempt)
            _log_state(
                c,
                task_id=task_id,
                attempt=attempt,
                service=TASK_SERVICE,
                state=to_state,
                previous_state=from_state,
                source=source,
                detail=Jsonb({**(detail or {}), **({"reason": reason} if reason else {})})
                if (detail or reason)
                else None,
            )
            return Task.from_row(row)

        return self._run(f"move task {task_id!r} to {to_state}", work)

    def relaunch(
        self, task_id: str, attempt: int, reason: str, *, source: str = "task_manager"
    ) -> Task:
        """A lost STARTED task gets attempt + 1, recorded in its history."""

        def work(c: psycopg.Connection) -> Task:
            row = c.execute(
                Q["relaunch"], {"task_id": task_id, "attempt": attempt, "reason": reason}
            ).fetchone()
            if row is None:
                raise self._refusal(c, task_id, "re-launch", TaskState.STARTED, attempt)
            _log_state(
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

        return self._run(f"re-launch task {task_id!r}", work)

    def adopt(self, task_id: str, run_id: str, *, source: str = "manual") -> Task:
        """Start ``task_id`` from a hand-launched runner (see queries.sql ``adopt``)."""

        def work(c: psycopg.Connection) -> Task:
            before = c.execute(Q["get_task"], {"task_id": task_id}).fetchone()
            row = c.execute(Q["adopt"], {"task_id": task_id, "run_id": run_id}).fetchone()
            if row is None:
                if before is None:
                    raise UnknownTask(f"task {task_id!r} does not exist; see `otf tasks list`")
                raise StaleTransition(
                    f"task {task_id!r} is {before['state']} (attempt {before['attempt']}) and cannot be "
                    "started by hand; schedule a new task, or check its type is not deleted"
                )
            _log_state(
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

        return self._run(f"adopt task {task_id!r}", work)

    def scheduled_between(
        self, task_type: str, start: datetime, end: datetime
    ) -> list[dict[str, Any]]:
        return self._run(
            "list tasks in window",
            lambda c: c.execute(
                Q["scheduled_between"], {"task_type": task_type, "start": start, "end": end}
            ).fetchall(),
        )

    def _refusal(
        self, c: psycopg.Connection, task_id: str, what: str, expected: TaskState, attempt: int
    ) -> Exception:
        cur = c.execute(
            "SELECT state, attempt FROM tasks WHERE task_id = %s", (task_id,)
        ).fetchone()
        if cur is None:
            return UnknownTask(f"task {task_id!r} does not exist; see `otf tasks list`")
        return StaleTransition(
            f"refused {what} of task {task_id!r}: expected {expected} at attempt {attempt}, "
            f"but it is {cur['state']} at attempt {cur['attempt']} (a newer writer owns it)"
        )

    def set_run_id(self, task_id: str, attempt: int, run_id: str) -> None:
        self._fenced("set_run_id", task_id, attempt, {"run_id": run_id})

    def heartbeat(self, task_id: str, attempt: int) -> None:
        self._fenced("heartbeat", task_id, attempt, {})

    def _fenced(self, query: str, task_id: str, attempt: int, params: dict[str, Any]) -> None:
        def work(c: psycopg.Connection) -> None:
            if (
                c.execute(Q[query], {"task_id": task_id, "attempt": attempt, **params}).fetchone()
                is None
            ):
                raise self._refusal(c, task_id, query.replace("_", " "), TaskState.STARTED, attempt)

        self._run(f"{query} {task_id!r}", work)

    # --- the runner's writes ---------------------------------------------------------------

    def record_poll(
        self,
        task_id: str,
        attempt: int,
        run_id: str,
        checkpoint: dict[str, Any],
        events: Sequence[EventRecord] = (),
        *,
        finish: TaskState | None = None,
        reason: str | None = None,
        detail: dict[str, Any] | None = None,
        expected_seq: int | None = None,
        follow_ups: Sequence[tuple[str, str, datetime]] = (),
    ) -> TaskState | None:
        """One poll's writes in ONE transaction: checkpoint + heartbeat, the events, follow-up
        tasks, and (with ``finish``) the runner's end and the task's derived overall state,
        which is returned.

        Fenced by (STARTED, attempt): a stale runner writes nothing and gets StaleTransition.
        With ``expected_seq`` (the checkpoint's ``next_seq`` this poll started from) it is also
        idempotent: a retry after a commit whose acknowledgement was lost finds the checkpoint
        already moved to ``checkpoint['next_seq']`` and writes nothing twice.
        """

        def work(c: psycopg.Connection) -> TaskState | None:
            row = c.execute(
                Q["save_checkpoint"],
                {
                    "task_id": task_id,
                    "attempt": attempt,
                    "run_id": run_id,
                    "checkpoint": Jsonb(checkpoint),
                    "expected_seq": expected_seq,
                },
            ).fetchone()
            if row is None:
                cur = c.execute(Q["get_task"], {"task_id": task_id}).fetchone()
                if (
                    expected_seq is not None
                    and cur is not None
                    and cur["attempt"] == attempt
                    and cur["checkpoint"] == checkpoint
                ):
                    return (
                        TaskState(cur["state"]) if finish is not None else None
                    )  # already applied
                raise self._refusal(c, task_id, "poll write", TaskState.STARTED, attempt)
            overall = None
            if finish is not None:
                overall = self._finish_service(
                    c, task_id, row["task_type"], attempt, RUNNER_SERVICE, finish, reason, detail
                )
            if events:
                self._copy_events(c, [(task_id, run_id, row["task_type"], e) for e in events])
            for ftype, fkey, fat in follow_ups:
                live = c.execute(Q["lock_live_task_type"], {"name": ftype}).fetchone()
                if live is not None:  # a follow-up of a deleted type is skipped, never fatal
                    self._schedule_in(
                        c, ftype, [(fkey, fat, {})], parent_task_id=task_id, source=RUNNER_SERVICE
                    )
            return overall

        return self._run(f"record poll of {task_id!r}", work)

    def _finish_service(
        self,
        c: psycopg.Connection,
        task_id: str,
        task_type: str,
        attempt: int,
        service: str,
        state: TaskState,
        reason: str | None,
        detail: dict[str, Any] | None,
    ) -> TaskState:
        """Record a service's state and re-derive the task's overall state (same transaction)."""
        payload = {**(detail or {}), **({"reason": reason} if reason else {})} or None
        c.execute(
            Q["upsert_service_state"],
            {
                "task_id": task_id,
                "service": service,
                "state": state,
                "attempt": attempt,
                "detail": Jsonb(payload) if payload else None,
            },
        )
        _log_state(
            c,
            task_id=task_id,
            attempt=attempt,
            service=service,
            state=state,
            previous_state=None,
            source=service,
            detail=Jsonb(payload) if payload else None,
        )
        required = c.execute(
            "SELECT required_services FROM task_types WHERE name = %s", (task_type,)
        ).fetchone()
        states = {
            r["service"]: TaskState(r["state"])
            for r in c.execute(Q["service_states"], {"task_id": task_id})
        }
        overall, why = overall_state(required["required_services"], states)
        if overall.terminal:
            row = c.execute(
                Q["transition"],
                {
                    "task_id": task_id,
                    "from_state": TaskState.STARTED,
                    "to_state": overall,
                    "attempt": attempt,
                    "error": "; ".join(x for x in (why, reason) if x)
                    if overall == TaskState.FAILED
                    else why,
                },
            ).fetchone()
            if row is not None:
                _log_state(
                    c,
                    task_id=task_id,
                    attempt=attempt,
                    service=TASK_SERVICE,
                    state=overall,
                    previous_state=TaskState.STARTED,
                    source="task_manager",
                    detail=Jsonb({"reason": why or reason}) if (why or reason) else None,
                )
        return overall

    def append_events(self, rows: Sequence[tuple[str, str, str, EventRecord]]) -> None:
        """Batched append of (task_id, task_runner_id, task_type, event) rows in one transaction."""
        if rows:
            self._run("append events", lambda c: self._copy_events(c, rows))

    @staticmethod
    def _copy_events(
        c: psycopg.Connection, rows: Sequence[tuple[str, str, str, EventRecord]]
    ) -> None:
        c.execute(Q["lock_events"], {"key": EVENTS_LOCK_KEY})
        with c.cursor().copy(f"COPY task_events ({', '.join(_EVENT_COLUMNS)}) FROM STDIN") as copy:
            for task_id, runner_id, task_type, ev in rows:
                copy.write_row(
                    (task_id, runner_id, task_type, ev.task_seq, ev.kind, Jsonb(ev.payload))
                )

    def fail_runner(
        self, task_id: str, attempt: int, reason: str, *, detail: dict[str, Any] | None = None
    ) -> TaskState:
        """The runner gave up (feed errors, deadline, its run failed for good): runner FAILED."""

        def work(c: psycopg.Connection) -> TaskState:
            row = c.execute(
                "SELECT task_type FROM tasks WHERE task_id = %s AND state = 'STARTED' AND attempt = %s FOR UPDATE",
                (task_id, attempt),
            ).fetchone()
            if row is None:
                raise self._refusal(c, task_id, "fail runner", TaskState.STARTED, attempt)
            return self._finish_service(
                c,
                task_id,
                row["task_type"],
                attempt,
                RUNNER_SERVICE,
                TaskState.FAILED,
                reason,
                detail,
            )

        return self._run(f"fail runner of {task_id!r}", work)

    # --- reads -----------------------------------------------------------------------------

    def get_task(self, task_id: str) -> Task:
        row = self._run(
            "read task", lambda c: c.execute(Q["get_task"], {"task_id": task_id}).fetchone()
        )
        if row is None:
            raise UnknownTask(f"task {task_id!r} does not exist; see `otf tasks list`")
        return Task.from_row(row)

    def list_tasks(
        self,
        *,
        state: TaskState | str | None = None,
        task_type: str | None = None,
        limit: int = 200,
    ) -> list[Task]:
        if state is not None:
            try:
                state = TaskState(str(state).upper())
            except ValueError:
                raise StoreError(
                    f"unknown state {state!r}; use one of {', '.join(s.value for s in TaskState)}"
                ) from None
        rows = self._run(
            "list tasks",
            lambda c: c.execute(
                Q["list_tasks"], {"state": state, "task_type": task_type, "limit": limit}
            ).fetchall(),
        )
        return [Task.from_row(r) for r in rows]

    def _fetch(
        self, what: str, query: str, params: dict[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        """All rows of one named query, in its own transaction."""
        return self._run(what, lambda c: c.execute(Q[query], params or {}).fetchall())

    def running_tasks(self, limit: int = 5000) -> list[dict[str, Any]]:
        return self._fetch("list running tasks", "running_tasks", {"limit": limit})

    def state_history(self, task_id: str) -> list[dict[str, Any]]:
        return self._fetch("read state history", "state_history", {"task_id": task_id})

    def service_states(self, task_id: str) -> list[dict[str, Any]]:
        return self._fetch("read service states", "service_states", {"task_id": task_id})

    def task_events(self, task_id: str) -> list[dict[str, Any]]:
        return self._fetch("read task events", "task_events", {"task_id": task_id})

    def state_enum_values(self) -> list[str]:
        return [r["value"] for r in self._fetch("read enum", "state_enum_values")]
