"""The task store: one connection to the task database and the operations on it (no Dagster).

Each method is one transaction; the SQL work lives in the modules beside this one (task types,
scheduling, transitions, polls), as functions on a connection, so a caller that must combine
several of them in one transaction can (``store.run(what, fn)``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from otf_dagster.core.store import polls, pools, scheduling, task_types, transitions
from otf_dagster.core.store.db import CONNECT_TIMEOUT_SECONDS, connect, translated_errors
from otf_dagster.core.store.queries import query
from otf_dagster.exceptions import (
    DatabaseUnavailable,
    InvalidTaskType,
    StoreError,
    UnknownTask,
    UnknownTaskType,
)
from otf_dagster.vocab.tasks import (
    BACKFILL,
    LIVE,
    ClaimedTask,
    PoolState,
    Task,
    TaskState,
    TaskType,
)

T = TypeVar("T")
POOL_WAIT_SECONDS = 30.0


def utcnow() -> datetime:
    return datetime.now(UTC)


_TYPE_VERSION = transitions.CLAIM_COLUMNS.index("type_version")


class TaskStore:
    """One connection to the task database (reconnecting after the server went away), or,
    made with :meth:`pooled`, a bounded pool of them shared by threads."""

    def __init__(self, url: str, *, application_name: str = "otf-store") -> None:
        self.url = url
        self.application_name = application_name
        self._conn: psycopg.Connection | None = None
        self._pool: ConnectionPool | None = None
        # task types the claim returned, by name: (row version, type); read again on a change
        self._claim_types: dict[str, tuple[str, TaskType]] = {}
        self.batch_fallbacks = 0  # record_polls batches rolled back and written one by one

    @classmethod
    def pooled(cls, url: str, *, size: int = 8, application_name: str = "otf-pool") -> TaskStore:
        """A store whose every call borrows a connection from a pool of at most ``size``
        (psycopg_pool): many threads share it, each call one transaction."""
        store = cls(url, application_name=application_name)
        store._pool = ConnectionPool(
            url,
            min_size=min(2, size),
            max_size=size,
            kwargs={
                "autocommit": True,
                "row_factory": dict_row,
                "connect_timeout": CONNECT_TIMEOUT_SECONDS,
                "application_name": application_name,
            },
            timeout=POOL_WAIT_SECONDS,
            open=False,
            name=application_name,
        )
        with translated_errors("open the connection pool"):
            store._pool.open(wait=False)
        return store

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
        if self._pool is not None:
            self._pool.close()

    def __enter__(self) -> TaskStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run(self, what: str, fn: Callable[[psycopg.Connection], T]) -> T:
        """``fn(conn)`` in one transaction, errors translated (``what`` names the operation in
        messages); a broken connection is dropped so the next call reconnects."""
        if self._pool is not None:  # PoolTimeout is an OperationalError: DatabaseUnavailable
            with (
                translated_errors(what),
                self._pool.connection() as conn,
                conn.transaction(),
            ):
                return fn(conn)
        try:
            with translated_errors(what):
                conn = self.conn
                with conn.transaction():
                    return fn(conn)
        except DatabaseUnavailable:
            self.close()
            raise

    def fetch_all(self, what: str, name: str, params: dict[str, Any] | None = None) -> list[dict]:
        """All rows of one named query, in its own transaction."""
        return self.run(what, lambda c: c.execute(query(name), params or {}).fetchall())

    # --- task types ------------------------------------------------------------------------

    def apply_task_type(self, tt: TaskType) -> bool:
        """Create or update a task type (un-deleting it); True if created."""
        return self.run(f"apply task type {tt.name!r}", lambda c: task_types.upsert(c, tt))

    def apply_task_types(
        self,
        types: Iterable[TaskType],
        *,
        references: Mapping[str, Sequence[str]] | None = None,
    ) -> list[tuple[str, bool]]:
        """Apply several types in one transaction: all or nothing. ``references`` (type name ->
        the types it schedules) are checked after the writes: each must be a live type, one of
        these or one already there, or nothing is applied."""
        types = list(types)

        def work(c: psycopg.Connection) -> list[tuple[str, bool]]:
            out = [(tt.name, task_types.upsert(c, tt)) for tt in types]
            for name, refs in (references or {}).items():
                for ref in refs:
                    if not task_types.lock_live(c, ref):
                        raise InvalidTaskType(
                            f"task type {name!r} schedules tasks of type {ref!r}, which does not "
                            "exist or is soft-deleted; apply it in the same file or first"
                        )
            return out

        return self.run("apply task types", work)

    def get_task_type(self, name: str, *, include_deleted: bool = False) -> TaskType:
        row = self.run("read task type", lambda c: task_types.get_row(c, name))
        if row is None or (row["deleted_at"] is not None and not include_deleted):
            raise UnknownTaskType(
                f"task type {name!r} does not exist{'' if row is None else ' (it is soft-deleted)'}; "
                "see `otf task-types list` or apply it with `otf task-types apply FILE`"
            )
        return TaskType.from_row(row)

    def list_task_types(self, *, include_deleted: bool = False) -> list[TaskType]:
        return self.run("list task types", lambda c: task_types.list_all(c, include_deleted))

    def delete_task_type(self, name: str) -> None:
        """Soft delete: its tasks are no longer claimed; running ones see it and stop."""
        if not self.run("delete task type", lambda c: task_types.soft_delete(c, name)):
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
        lane: str | None = None,
    ) -> tuple[str, str]:
        """Schedule (type, key) idempotently: (task_id, outcome) with outcome one of
        'created', 'moved' (still SCHEDULED, time or params changed) or 'unchanged'."""
        return self.schedule_tasks(
            task_type,
            [(external_key, scheduled_at, params or {})],
            parent_task_id=parent_task_id,
            source=source,
            lane=lane,
        )[0]

    def schedule_tasks(
        self,
        task_type: str,
        items: Sequence[scheduling.ScheduleItem],
        *,
        parent_task_id: str | None = None,
        source: str = "scheduler",
        lane: str | None = None,
    ) -> list[tuple[str, str]]:
        """Schedule many tasks of one type in one transaction (all or nothing); new ones go
        to ``lane`` (None: the parent's, else live)."""
        scheduling.check_items(items)
        return self.run(
            f"schedule {task_type!r} tasks",
            lambda c: scheduling.schedule_in(
                c, task_type, items, parent_task_id=parent_task_id, source=source, lane=lane
            ),
        )

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

    def scheduled_between(
        self, task_type: str, start: datetime, end: datetime
    ) -> list[dict[str, Any]]:
        return self.fetch_all(
            "list tasks in window",
            "scheduled_between",
            {"task_type": task_type, "start": start, "end": end},
        )

    # --- the claim and state changes -------------------------------------------------------

    def claim_ready(
        self,
        limit: int = 500,
        *,
        now: datetime | None = None,
        source: str = "task_manager",
        deployment: str | None = None,
        backfill_max_started: int | None = None,
    ) -> list[ClaimedTask]:
        """Claim up to ``limit`` ready tasks: SCHEDULED, due, of a live type; exactly once across
        any number of concurrent claimers; recorded as launched by ``deployment``.

        Live work first: due live tasks take the limit first (oldest first); backfill tasks get
        only what is left of it, and no more than keeps ``backfill_max_started`` of them
        STARTED at once (None: no cap). One transaction."""
        if limit <= 0:
            return []
        now = now or utcnow()

        def work(c: psycopg.Connection) -> tuple[list[tuple[Any, ...]], dict[str, TaskType]]:
            rows = transitions.claim_ready(c, now, limit, source, deployment, lane=LIVE)
            room = limit - len(rows)
            if room > 0 and backfill_max_started is not None:
                room = min(room, backfill_max_started - transitions.started_in_lane(c, BACKFILL))
            if room > 0:
                rows += transitions.claim_ready(c, now, room, source, deployment, lane=BACKFILL)
            # a type is read only when its row changed since the last claim (same snapshot)
            versions = {r[1]: r[_TYPE_VERSION] for r in rows}
            types: dict[str, TaskType] = {}
            for name, version in versions.items():
                hit = self._claim_types.get(name)
                if hit is not None and hit[0] == version:
                    types[name] = hit[1]
            missing = sorted(versions.keys() - types.keys())
            for name, ttype in task_types.get_many(c, missing).items():
                types[name] = ttype
                self._claim_types[name] = (versions[name], ttype)
            return rows, types

        rows, types = self.run("claim ready tasks", work)
        # tuples in transitions.CLAIM_COLUMNS order, built straight into Tasks: the claim's
        # Python between psycopg and the caller (issue 19, store.claim_ready.vs_server_only)
        started = TaskState.STARTED
        return [
            ClaimedTask(
                Task(task_id, ttype, key, scheduled_at, started, attempt, lane=lane or LIVE),
                types[ttype],
            )
            for task_id, ttype, key, scheduled_at, _, attempt, lane, _ in rows
        ]

    def reserve_pace_slot(
        self, host: str, gap_seconds: float, now: datetime | None = None
    ) -> float:
        """Reserve the next slot of ``host``'s backfill pace (one request per ``gap_seconds``
        across every process sharing this database): seconds to wait for it (0: now).
        ``now`` is the caller's clock (a test's); None: the database's clock."""
        row = self.run(
            f"reserve a backfill slot for {host!r}",
            lambda c: c.execute(
                query("reserve_pace_slot"), {"host": host, "gap": gap_seconds, "now": now}
            ).fetchone(),
        )
        return float(row["wait"])

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
        return self.run(
            f"move task {task_id!r} to {to_state}",
            lambda c: transitions.transition(
                c,
                task_id,
                from_state,
                to_state,
                attempt,
                reason=reason,
                detail=detail,
                source=source,
            ),
        )

    def relaunch(
        self,
        task_id: str,
        attempt: int,
        reason: str,
        *,
        source: str = "task_manager",
        deployment: str | None = None,
    ) -> Task:
        """A lost STARTED task gets attempt + 1 under ``deployment``, recorded in its history."""
        return self.run(
            f"re-launch task {task_id!r}",
            lambda c: transitions.relaunch(c, task_id, attempt, reason, source, deployment),
        )

    def adopt(
        self, task_id: str, run_id: str, *, source: str = "manual", deployment: str | None = None
    ) -> Task:
        """Start ``task_id`` from a hand-launched runner (see the ``adopt`` query)."""
        return self.run(
            f"adopt task {task_id!r}",
            lambda c: transitions.adopt(c, task_id, run_id, source, deployment),
        )

    def retry(self, task_id: str, reason: str, *, source: str = "manual") -> Task:
        """Schedule a FAILED or CANCELLED task again, now, on purpose (checkpoint kept)."""
        return self.run(
            f"retry task {task_id!r}", lambda c: transitions.retry(c, task_id, reason, source)
        )

    def set_run_id(self, task_id: str, attempt: int, run_id: str) -> None:
        self.run(
            f"set run id {task_id!r}",
            lambda c: transitions.fenced(c, "set_run_id", task_id, attempt, {"run_id": run_id}),
        )

    def heartbeat(self, task_id: str, attempt: int, run_id: str | None = None) -> None:
        """Fenced by (STARTED, attempt) and, given ``run_id``, by the runner: a runner of the
        same attempt started since then owns the task (StaleTransition)."""
        self.run(
            f"heartbeat {task_id!r}",
            lambda c: transitions.fenced(
                c, "heartbeat", task_id, attempt, {"run_id": run_id}, run_id=run_id
            ),
        )

    # --- the runner's writes ---------------------------------------------------------------

    def record_poll(self, write: polls.PollWrite) -> TaskState | None:
        """One poll's writes (:class:`~otf_dagster.core.store.polls.PollWrite`) in ONE
        transaction: checkpoint + heartbeat, the events, follow-up tasks, the ``task_polls``
        row and (with ``finish``) the runner's end and the task's derived overall state,
        which is returned.

        Fenced by (STARTED, attempt, runner): a stale runner (an earlier attempt's, or one of
        the same attempt whose run id is no longer the task's) writes nothing and gets
        StaleTransition. With ``expected_seq`` it is also idempotent: a retry after a commit
        whose acknowledgement was lost finds the checkpoint already moved and writes nothing
        twice.
        """
        return self.run(f"record poll of {write.task_id!r}", lambda c: polls.record_poll(c, write))

    def record_polls(self, writes: Sequence[polls.PollWrite]) -> list[TaskState | None | Exception]:
        """Several tasks' poll writes in ONE transaction (group commit), each still fenced as
        in :meth:`record_poll`: what ``record_poll`` would have returned for each write, in
        order, or the exception it would have raised.

        Written in task-id order (the lock order). A write its fence refuses has written
        nothing (the fence is its first statement): it gets StaleTransition while the others
        commit. Any other error (a constraint, a deadlock, the server going away) rolls the
        batch back and each write is tried again alone, so a bad write costs only itself
        (``expected_seq`` makes the second try of an acknowledged-but-lost commit a no-op);
        once one of those gets DatabaseUnavailable, the rest get it too, untried (their
        callers retry as they do for one write)."""
        writes = list(writes)
        if len(writes) <= 1:
            return [self._one_poll(w) for w in writes]
        order = sorted(range(len(writes)), key=lambda i: writes[i].task_id)
        try:
            got = self.run(
                f"record {len(writes)} polls",
                lambda c: polls.record_polls(c, [writes[i] for i in order]),
            )
        except Exception:
            self.batch_fallbacks += 1
        else:
            out: list[TaskState | None | Exception] = [None] * len(writes)
            for k, i in enumerate(order):
                out[i] = got[k]
            return out
        results: list[TaskState | None | Exception] = []
        down: DatabaseUnavailable | None = None
        for w in writes:
            result = DatabaseUnavailable(str(down)) if down is not None else self._one_poll(w)
            if isinstance(result, DatabaseUnavailable):
                down = result
            results.append(result)
        return results

    def _one_poll(self, write: polls.PollWrite) -> TaskState | None | Exception:
        try:
            return self.record_poll(write)
        except Exception as exc:
            return exc

    def append_events(self, rows: Sequence[polls.EventRow]) -> None:
        """Batched append of (task_id, task_runner_id, task_type, event) rows in one transaction."""
        if rows:
            self.run("append events", lambda c: polls.copy_events(c, rows))

    def fail_runner(
        self, task_id: str, attempt: int, reason: str, *, detail: dict[str, Any] | None = None
    ) -> TaskState:
        """The runner gave up (feed errors, deadline, its run failed for good): runner FAILED."""
        return self.run(
            f"fail runner of {task_id!r}",
            lambda c: polls.fail_runner(c, task_id, attempt, reason, detail),
        )

    # --- reads -----------------------------------------------------------------------------

    def get_task(self, task_id: str) -> Task:
        row = self.run(
            "read task", lambda c: c.execute(query("get_task"), {"task_id": task_id}).fetchone()
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
        rows = self.fetch_all(
            "list tasks", "list_tasks", {"state": state, "task_type": task_type, "limit": limit}
        )
        return [Task.from_row(r) for r in rows]

    def running_tasks(
        self, limit: int = 5000, *, deployment: str | None = None
    ) -> list[dict[str, Any]]:
        """STARTED tasks still with their runner that ``deployment`` watches (all: None)."""
        return self.fetch_all(
            "list running tasks", "running_tasks", {"limit": limit, "deployment": deployment}
        )

    def launch_params(self, task_ids: Sequence[str]) -> dict[str, tuple[str, dict[str, Any]]]:
        """Each task's (handler, params), for the labels of the runs launched for them."""
        if not task_ids:
            return {}
        rows = self.fetch_all("read launch params", "launch_params", {"task_ids": list(task_ids)})
        return {r["task_id"]: (r["handler"], r["params"] or {}) for r in rows}

    # --- deployments and pools -------------------------------------------------------------

    def renew_lease(self, deployment: str, name: str, lease_seconds: float) -> datetime:
        """Register or renew ``deployment``'s lease; when it expires."""
        return self.run(
            f"renew the lease of deployment {deployment!r}",
            lambda c: pools.renew_lease(c, deployment, name, lease_seconds),
        )

    def list_deployments(self) -> list[dict[str, Any]]:
        return self.fetch_all("list deployments", "list_deployments")

    def assign_to_pools(
        self,
        deployment: str,
        tasks: Sequence[tuple[str, int]],
        *,
        capacity: int,
        stale_seconds: float,
    ) -> tuple[dict[str, list[str]], list[str]]:
        """See :func:`otf_dagster.core.store.pools.assign` (one transaction)."""
        return self.run(
            "assign tasks to pools",
            lambda c: pools.assign(c, deployment, tasks, capacity, stale_seconds),
        )

    def fail_pool(self, pool_id: str, detail: str) -> bool:
        return self.run(f"fail pool {pool_id!r}", lambda c: pools.fail(c, pool_id, detail))

    def register_pool(self, pool_id: str, deployment: str, capacity: int, run_id: str) -> bool:
        """The pool run taking its row: False when the pool has ended or failed already."""
        return self.run(
            f"register pool {pool_id!r}",
            lambda c: pools.register(c, pool_id, deployment, capacity, run_id),
        )

    def pool_tasks(self, pool_id: str) -> list[tuple[str, int]]:
        return self.run("read a pool's tasks", lambda c: pools.tasks_of(c, pool_id))

    def heartbeat_pool(self, pool_id: str, tasks: Sequence[tuple[str, int]]) -> bool:
        """See :func:`otf_dagster.core.store.pools.heartbeat` (one transaction)."""
        return self.run(f"heartbeat pool {pool_id!r}", lambda c: pools.heartbeat(c, pool_id, tasks))

    def release_pool_tasks(self, pool_id: str, task_ids: Sequence[str]) -> list[str]:
        return self.run("release pool tasks", lambda c: pools.release(c, pool_id, task_ids))

    def end_pool_if_idle(self, pool_id: str, detail: str) -> bool:
        return self.run(f"end pool {pool_id!r}", lambda c: pools.end_if_idle(c, pool_id, detail))

    def end_pool(self, pool_id: str, state: PoolState, detail: str) -> None:
        self.run(f"end pool {pool_id!r}", lambda c: pools.end(c, pool_id, state, detail))

    def list_pools(self, *, include_ended: bool = False, limit: int = 200) -> list[dict[str, Any]]:
        return self.fetch_all("list pools", "list_pools", {"all": include_ended, "limit": limit})

    def state_history(self, task_id: str) -> list[dict[str, Any]]:
        return self.fetch_all("read state history", "state_history", {"task_id": task_id})

    def service_states(self, task_id: str) -> list[dict[str, Any]]:
        return self.fetch_all("read service states", "service_states", {"task_id": task_id})

    def task_events(self, task_id: str) -> list[dict[str, Any]]:
        return self.fetch_all("read task events", "task_events", {"task_id": task_id})

    def state_enum_values(self) -> list[str]:
        return [r["value"] for r in self.fetch_all("read enum", "state_enum_values")]
