"""Delivery endpoints and the relay's durable progress (sql/0013, queries/delivery.sql).

Two faces: the endpoint admin (``otf endpoints ...``: add, list, show, pause, resume, remove,
replay) and the relay's reads and its one fenced commit per cycle (``commit_cycle``): pending
rows, failed attempts and the new position written together, under the endpoint's lease, so a
relay that lost its lease (or was killed) writes nothing and its successor re-sends.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg

from otf_dagster.core.store.queries import query
from otf_dagster.core.store.store import TaskStore
from otf_dagster.exceptions import StoreError

STATES = ("active", "paused", "disabled", "removed")


class LeaseLost(StoreError):
    """The relay no longer holds this endpoint's lease: its cycle wrote nothing."""


# --- the endpoint admin ---------------------------------------------------------------------------


def add_endpoint(
    store: TaskStore,
    *,
    owner: str,
    sink: str,
    url: str | None = None,
    secret_envs: Sequence[str] = (),
    nats_subject: str | None = None,
    kinds: Sequence[str] | None = None,
    batch_size: int = 1,
    rate_per_s: float | None = None,
    allow_link_local: bool = False,
    from_start: bool = False,
) -> dict[str, Any]:
    """A new endpoint for an owner that subscribes to something; it starts at the newest event
    (``from_start``: at the first)."""

    def work(c: psycopg.Connection) -> dict[str, Any]:
        if c.execute(query("tokens_owner_known"), {"owner": owner}).fetchone() is None:
            raise StoreError(
                f"unknown owner {owner!r}: it subscribes to no task type; "
                f"run `otf subscriptions add {owner} TASK_TYPE` first"
            )
        return c.execute(
            query("delivery_insert_endpoint"),
            {
                "owner": owner,
                "sink": sink,
                "url": url,
                "secret_envs": list(secret_envs),
                "nats_subject": nats_subject,
                "kinds": list(kinds) if kinds else None,
                "batch_size": batch_size,
                "rate_per_s": rate_per_s,
                "allow_link_local": allow_link_local,
                "from_start": from_start,
            },
        ).fetchone()

    return store.run(f"add an endpoint for {owner!r}", work)


def get_endpoint(store: TaskStore, endpoint_id: int) -> dict[str, Any]:
    rows = store.fetch_all(
        f"read endpoint {endpoint_id}", "delivery_get_endpoint", {"endpoint_id": endpoint_id}
    )
    if not rows:
        raise StoreError(f"no endpoint {endpoint_id}; `otf endpoints list` shows their ids")
    return rows[0]


def list_endpoints(
    store: TaskStore, *, owner: str | None = None, include_removed: bool = False
) -> list[dict[str, Any]]:
    return store.fetch_all(
        "list endpoints",
        "delivery_list_endpoints",
        {"owner": owner, "include_removed": include_removed},
    )


def set_state(
    store: TaskStore, endpoint_id: int, state: str, reason: str | None = None
) -> dict[str, Any]:
    if state not in STATES:
        raise StoreError(f"endpoint state {state!r}: use one of {', '.join(STATES)}")
    rows = store.run(
        f"set endpoint {endpoint_id} {state}",
        lambda c: c.execute(
            query("delivery_set_state"),
            {"endpoint_id": endpoint_id, "state": state, "reason": reason},
        ).fetchall(),
    )
    if not rows:
        raise StoreError(
            f"no endpoint {endpoint_id} (or it was removed); `otf endpoints list` shows their ids"
        )
    return rows[0]


def lag(store: TaskStore, endpoint_id: int) -> dict[str, int]:
    rows = store.fetch_all(
        f"measure endpoint {endpoint_id}'s lag", "delivery_lag", {"endpoint_id": endpoint_id}
    )
    return dict(rows[0]) if rows else {"unsent": 0, "pending": 0, "dead": 0}


def failed_attempts(store: TaskStore, endpoint_id: int, limit: int = 20) -> list[dict[str, Any]]:
    return store.fetch_all(
        f"read endpoint {endpoint_id}'s failed attempts",
        "delivery_failed_attempts",
        {"endpoint_id": endpoint_id, "limit": limit},
    )


def replay(
    store: TaskStore,
    endpoint_id: int,
    *,
    from_seq: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> int:
    """Send already-delivered events again (same ids); returns how many were queued."""
    get_endpoint(store, endpoint_id)
    return store.run(
        f"replay endpoint {endpoint_id}",
        lambda c: (
            c.execute(
                query("delivery_replay"),
                {"endpoint_id": endpoint_id, "from_seq": from_seq, "since": since, "until": until},
            ).rowcount
        ),
    )


# --- the relay ----------------------------------------------------------------------------------


def claim_endpoints(
    store: TaskStore, holder: str, lease_seconds: float, limit: int
) -> list[dict[str, Any]]:
    """Take or renew leases; every endpoint this relay holds afterwards (up to ``limit``)."""
    return store.run(
        "claim delivery endpoints",
        lambda c: c.execute(
            query("delivery_claim_endpoints"),
            {"holder": holder, "lease_seconds": lease_seconds, "limit": limit},
        ).fetchall(),
    )


def release_endpoints(store: TaskStore, holder: str) -> None:
    store.run(
        "release delivery endpoints",
        lambda c: c.execute(query("delivery_release_endpoints"), {"holder": holder}),
    )


def read_leased(store: TaskStore, endpoint_id: int, holder: str) -> dict[str, Any] | None:
    rows = store.fetch_all(
        f"read endpoint {endpoint_id}",
        "delivery_read_endpoint",
        {"endpoint_id": endpoint_id, "holder": holder},
    )
    return rows[0] if rows else None


def new_events(
    store: TaskStore, endpoint: dict[str, Any], limit: int
) -> tuple[list[dict[str, Any]], int]:
    """Events past the endpoint's position (its owner's types, its kinds), and the horizon."""
    rows = store.fetch_all(
        f"read events for endpoint {endpoint['endpoint_id']}",
        "delivery_new_events",
        {
            "after": endpoint["position"],
            "owner": endpoint["owner"],
            "kinds": endpoint["kinds"],
            "limit": limit,
        },
    )
    horizon = rows[0]["horizon"] if rows else 0
    return [r for r in rows if r["seq"] is not None], horizon


def due_pending(
    store: TaskStore, endpoint_id: int, now: datetime, limit: int
) -> list[dict[str, Any]]:
    return store.fetch_all(
        f"read endpoint {endpoint_id}'s due events",
        "delivery_due_pending",
        {"endpoint_id": endpoint_id, "now": now, "limit": limit},
    )


def next_due(store: TaskStore, endpoint_id: int) -> datetime | None:
    rows = store.fetch_all(
        f"read endpoint {endpoint_id}'s next retry",
        "delivery_next_due",
        {"endpoint_id": endpoint_id},
    )
    return rows[0]["next_due"] if rows else None


def blocked_tasks(store: TaskStore, endpoint_id: int, task_ids: Sequence[str]) -> set[str]:
    if not task_ids:
        return set()
    rows = store.fetch_all(
        f"read endpoint {endpoint_id}'s held tasks",
        "delivery_blocked_tasks",
        {"endpoint_id": endpoint_id, "task_ids": list(task_ids)},
    )
    return {r["task_id"] for r in rows}


@dataclass
class CycleWrite:
    """What one relay cycle learned about one endpoint, written in one fenced transaction."""

    endpoint_id: int
    holder: str
    now: datetime
    position: int  # the new position (never below the old)
    delivered_pending: list[int] = field(default_factory=list)  # seqs of pending rows now sent
    pending: list[dict[str, Any]] = field(default_factory=list)  # rows to upsert
    attempts: list[dict[str, Any]] = field(default_factory=list)  # failed attempts
    delivered: int = 0
    succeeded: bool = False
    failed: bool = False
    error: str | None = None
    failing_since: datetime | None = None
    hold_until: datetime | None = None
    disable_reason: str | None = None


def commit_cycle(store: TaskStore, w: CycleWrite) -> dict[str, Any]:
    """Write a cycle's outcome under the lease; LeaseLost (nothing written) without it."""

    def work(c: psycopg.Connection) -> dict[str, Any]:
        held = c.execute(
            query("delivery_fence"), {"endpoint_id": w.endpoint_id, "holder": w.holder}
        ).fetchone()
        if held is None:
            raise LeaseLost(f"endpoint {w.endpoint_id}: this relay's lease is gone")
        if w.delivered_pending:
            c.execute(
                query("delivery_delete_pending"),
                {"endpoint_id": w.endpoint_id, "seqs": w.delivered_pending},
            )
        if w.pending:
            with c.cursor() as cur:
                cur.executemany(
                    query("delivery_upsert_pending"),
                    [{"endpoint_id": w.endpoint_id, **row} for row in w.pending],
                )
        if w.attempts:
            with c.cursor() as cur:
                cur.executemany(
                    query("delivery_insert_attempt"),
                    [{"endpoint_id": w.endpoint_id, **row} for row in w.attempts],
                )
        return c.execute(
            query("delivery_advance"),
            {
                "endpoint_id": w.endpoint_id,
                "holder": w.holder,
                "position": w.position,
                "delivered": w.delivered,
                "succeeded": w.succeeded,
                "failed": w.failed,
                "error": w.error,
                "now": w.now,
                "failing_since": w.failing_since,
                "hold_until": w.hold_until,
                "disable": w.disable_reason is not None,
                "disable_reason": w.disable_reason,
            },
        ).fetchone()

    return store.run(f"record delivery to endpoint {w.endpoint_id}", work)


def relay_heartbeat(
    store: TaskStore,
    holder: str,
    *,
    deployment_id: str | None,
    run_id: str | None,
    endpoints: int,
    delivered: int,
) -> None:
    store.run(
        "renew the relay's heartbeat",
        lambda c: c.execute(
            query("delivery_relay_heartbeat"),
            {"holder": holder, "deployment_id": deployment_id, "run_id": run_id,
             "endpoints": endpoints, "delivered": delivered},
        ),
    )  # fmt: skip


def relay_gone(store: TaskStore, holder: str) -> None:
    store.run(
        "end the relay's heartbeat",
        lambda c: c.execute(query("delivery_relay_gone"), {"holder": holder}),
    )


def relay_age(store: TaskStore, run_id: str) -> float | None:
    rows = store.fetch_all("read a relay's heartbeat", "delivery_relay_age", {"run_id": run_id})
    return rows[0]["age"] if rows else None


def active_endpoints(store: TaskStore) -> int:
    return store.fetch_all("count active endpoints", "delivery_active_count")[0]["n"]


def set_url(
    store: TaskStore, endpoint_id: int, url: str, secret_envs: Sequence[str]
) -> dict[str, Any]:
    """Point a webhook endpoint at another URL (``otf dev``'s receiver, on a new port)."""
    params = {"endpoint_id": endpoint_id, "url": url, "secret_envs": list(secret_envs)}
    return store.run(
        f"move endpoint {endpoint_id}",
        lambda c: c.execute(query("delivery_set_url"), params).fetchone(),
    )
