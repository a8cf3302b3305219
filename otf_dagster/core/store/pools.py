"""Deployments' leases and runner pools (functions on a connection)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import psycopg

from otf_dagster.core.store.queries import query
from otf_dagster.vocab.tasks import PoolState


def new_pool_id() -> str:
    return f"pool-{uuid.uuid4().hex[:12]}"


def renew_lease(c: psycopg.Connection, deployment: str, name: str, lease_seconds: float) -> Any:
    return c.execute(
        query("renew_lease"),
        {"deployment": deployment, "name": name, "lease_seconds": lease_seconds},
    ).fetchone()["lease_expires_at"]


def assign(
    c: psycopg.Connection,
    deployment: str,
    tasks: Sequence[tuple[str, int]],
    capacity: int,
    stale_seconds: float,
) -> tuple[dict[str, list[str]], list[str]]:
    """Put ``tasks`` (task id, attempt) on this deployment's pools with spare capacity, first
    fit in creation order (full pools first, so idle ones can end), creating pools of
    ``capacity`` for the rest: ({pool id: task ids assigned}, new pool ids to launch)."""
    if not tasks:
        return {}, []
    pools = c.execute(
        query("lock_live_pools"), {"deployment": deployment, "stale_seconds": stale_seconds}
    ).fetchall()
    spare = [[p["pool_id"], p["capacity"] - p["load"]] for p in pools]
    new_pools: list[str] = []
    task_ids, attempts, pool_ids = [], [], []
    for task_id, attempt in tasks:
        slot = next((s for s in spare if s[1] > 0), None)
        if slot is None:
            pool_id = new_pool_id()
            c.execute(
                query("insert_pool"),
                {"pool_id": pool_id, "deployment": deployment, "capacity": capacity},
            )
            new_pools.append(pool_id)
            slot = [pool_id, capacity]
            spare.append(slot)
        slot[1] -= 1
        task_ids.append(task_id)
        attempts.append(attempt)
        pool_ids.append(slot[0])
    rows = c.execute(
        query("assign_tasks"), {"task_ids": task_ids, "attempts": attempts, "pool_ids": pool_ids}
    ).fetchall()
    assigned: dict[str, list[str]] = {}
    for row in rows:
        assigned.setdefault(row["pool_id"], []).append(row["task_id"])
    if assigned:
        c.execute(query("notify_pools"), {"pool_ids": sorted(assigned)})
    return assigned, new_pools


def end_if_idle(c: psycopg.Connection, pool_id: str, detail: str) -> bool:
    """End the pool unless a task is assigned to it: the pool row's lock orders this after any
    assignment in flight, and the check after the lock sees what that assignment committed."""
    row = c.execute(query("lock_pool"), {"pool_id": pool_id}).fetchone()
    if row is None or not PoolState(row["state"]).live:
        return True
    if c.execute(query("pool_has_tasks"), {"pool_id": pool_id}).fetchone()["busy"]:
        return False
    end(c, pool_id, PoolState.ENDED, detail)
    return True


def end(c: psycopg.Connection, pool_id: str, state: PoolState, detail: str) -> None:
    c.execute(
        query("end_pool"), {"pool_id": pool_id, "state": PoolState(state).value, "detail": detail}
    )


def fail(c: psycopg.Connection, pool_id: str, detail: str) -> bool:
    """FAILED unless it has ended already; whether this call failed it."""
    return (
        c.execute(query("fail_pool"), {"pool_id": pool_id, "detail": detail}).fetchone() is not None
    )


def register(
    c: psycopg.Connection, pool_id: str, deployment: str, capacity: int, run_id: str
) -> bool:
    """The pool run taking its row: False when the pool has ended or failed already."""
    row = c.execute(
        query("register_pool"),
        {"pool_id": pool_id, "deployment": deployment, "capacity": capacity, "run_id": run_id},
    ).fetchone()
    return row is not None


def tasks_of(c: psycopg.Connection, pool_id: str) -> list[tuple[str, int]]:
    rows = c.execute(query("pool_tasks"), {"pool_id": pool_id}).fetchall()
    return [(r["task_id"], r["attempt"]) for r in rows]


def heartbeat(c: psycopg.Connection, pool_id: str, tasks: Sequence[tuple[str, int]]) -> bool:
    """The pool's heartbeat and its healthy tasks'; False when the pool is no longer RUNNING
    (failed by a Task Manager that found it stale)."""
    alive = c.execute(query("heartbeat_pool"), {"pool_id": pool_id}).fetchone()
    if alive and tasks:
        c.execute(
            query("heartbeat_pool_tasks"),
            {
                "pool_id": pool_id,
                "task_ids": [t for t, _ in tasks],
                "attempts": [a for _, a in tasks],
            },
        )
    return alive is not None


def release(c: psycopg.Connection, pool_id: str, task_ids: Sequence[str]) -> list[str]:
    rows = c.execute(
        query("release_pool_tasks"), {"pool_id": pool_id, "task_ids": list(task_ids)}
    ).fetchall()
    return [r["task_id"] for r in rows]
