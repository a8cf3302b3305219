"""Retention's statements (functions on a connection): the prune's own bookkeeping, the batches
of ended tasks and pools whose Dagster history goes, and the removal of old polls and events
(chunks on TimescaleDB, batched deletes elsewhere). ``core.retention`` holds the policy."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from otf_dagster.core.store.queries import query

# A batch of what the Dagster side removes, by kind: its query, and its key and time columns.
BATCHES = {
    "task": ("history_task_batch", "task_id", "finished_at"),
    "pool": ("history_pool_batch", "pool_id", "ended_at"),
}


def start(c: psycopg.Connection, params: Mapping[str, Any]) -> int:
    return c.execute(query("history_prune_start"), dict(params)).fetchone()["prune_id"]


def progress(
    c: psycopg.Connection,
    prune_id: int,
    removed: dict[str, int] | None,
    held_back_by: str | None,
    *,
    error: str | None = None,
    final: bool = False,
) -> None:
    """The prune's counts so far (in the transaction of the batch that made them), or at its
    end (``final``; a failed prune keeps what its committed batches wrote: ``removed`` None)."""
    params = {
        "prune_id": prune_id,
        "removed": Jsonb(removed) if removed is not None else None,
        "held_back_by": held_back_by,
    }
    if final:
        c.execute(query("history_prune_finish"), {**params, "error": error})
    else:
        c.execute(query("history_prune_progress"), params)


def ended_batch(
    c: psycopg.Connection,
    kind: str,
    *,
    cutoff: datetime,
    after: tuple[datetime, str],
    deployment: str,
    limit: int,
) -> list[dict[str, Any]]:
    """The next ``limit`` tasks (or pools) ended before ``cutoff``, after ``after`` in (time,
    key) order, locked for the batch's transaction; each row has ``key``, ``time``, ``attempt``."""
    name, key, time = BATCHES[kind]
    rows = c.execute(
        query(name),
        {
            "cutoff": cutoff,
            "after_time": after[0],
            "after_id": after[1],
            "deployment": deployment,
            "limit": limit,
        },
    ).fetchall()
    return [{"key": r[key], "time": r[time], "attempt": r.get("attempt", 0)} for r in rows]


def mark_pruned(
    c: psycopg.Connection, deployment: str, kind: str, done: list[tuple[str, int, int, int]]
) -> None:
    """What this deployment's storage no longer holds: (key, attempt, partitions, runs) each."""
    keys, attempts, partitions, runs = (list(x) for x in zip(*done, strict=True))
    c.execute(
        query("history_mark_pruned"),
        {
            "deployment": deployment,
            "kind": kind,
            "keys": keys,
            "attempts": attempts,
            "partitions": partitions,
            "runs": runs,
        },
    )


def known_readers(c: psycopg.Connection) -> list[str]:
    return [r["name"] for r in c.execute(query("history_known_readers"))]


def hypertables(c: psycopg.Connection) -> set[str]:
    """This schema's hypertables (empty without TimescaleDB)."""
    if not c.execute(query("history_timescaledb")).fetchone()["installed"]:
        return set()
    return {r["hypertable_name"] for r in c.execute(query("history_hypertables"))}


def chunks_before(c: psycopg.Connection, table: str, cutoff: datetime) -> list[dict[str, Any]]:
    return c.execute(query("history_chunks_before"), {"table": table, "cutoff": cutoff}).fetchall()


def chunk_rows(
    c: psycopg.Connection, chunk: Mapping[str, Any], *, seq: bool = False
) -> dict[str, Any]:
    """A chunk's row count (``n``) and, with ``seq``, its highest event number (``top``)."""
    schema, _, name = chunk["chunk"].partition(".")
    top = sql.SQL("max(seq)" if seq else "NULL::bigint")
    return c.execute(
        sql.SQL("SELECT {} AS top, count(*) AS n FROM {}").format(top, sql.Identifier(schema, name))
    ).fetchone()


def drop_chunk(c: psycopg.Connection, table: str, chunk: Mapping[str, Any]) -> None:
    c.execute(
        query("history_drop_chunk"),
        {"table": table, "range_start": chunk["range_start"], "range_end": chunk["range_end"]},
    )


def count_old_polls(c: psycopg.Connection, cutoff: datetime) -> int:
    return c.execute(query("history_polls_count"), {"cutoff": cutoff}).fetchone()["rows"]


def delete_old_polls(c: psycopg.Connection, cutoff: datetime, limit: int) -> int:
    return c.execute(
        query("history_polls_delete_batch"), {"cutoff": cutoff, "limit": limit}
    ).rowcount


def set_polls_policy(c: psycopg.Connection, days: int) -> str | None:
    """TimescaleDB's retention policy on task_polls set to ``days``; a note when it changed."""
    wanted = f"{days} days" if days != 1 else "1 day"
    row = c.execute(query("history_polls_policy")).fetchone()
    if row is None:
        c.execute(query("history_polls_policy_add"), {"days": days})
        return f"task_polls: retention policy added ({wanted})"
    if row["drop_after"] != wanted:
        c.execute(query("history_polls_policy_set"), {"job_id": row["job_id"], "days": wanted})
        return f"task_polls: retention policy {row['drop_after']} -> {wanted}"
    return None


def event_holders(c: psycopg.Connection, forced: Sequence[str]) -> list[dict[str, Any]]:
    """Every reader's position over task_events, lowest first (forced ones left out)."""
    return c.execute(query("history_event_holders"), {"forced": list(forced)}).fetchall()


def held_now(c: psycopg.Connection, forced: Sequence[str]) -> int | None:
    """The lowest position a reader holds, read in the caller's transaction."""
    return c.execute(query("history_events_guard_now"), {"forced": list(forced)}).fetchone()[
        "held_at"
    ]


def old_event_counts(
    c: psycopg.Connection, cutoff: datetime, forced: Sequence[str]
) -> dict[str, Any]:
    """Events older than ``cutoff``: ``removable`` (every reader has passed) and ``held``."""
    return c.execute(
        query("history_events_counts"), {"cutoff": cutoff, "forced": list(forced)}
    ).fetchone()


def delete_old_events(
    c: psycopg.Connection, cutoff: datetime, forced: Sequence[str], limit: int
) -> int:
    return c.execute(
        query("history_events_delete_batch"),
        {"cutoff": cutoff, "forced": list(forced), "limit": limit},
    ).rowcount


def table_status(
    c: psycopg.Connection, table: str, column: str | None, hypertable: bool
) -> dict[str, Any]:
    """A history table's rows, oldest row (by ``column``) and size (chunks on TimescaleDB)."""
    ident = sql.Identifier(table)
    if column is None:
        statement = sql.SQL("SELECT count(*) AS rows, NULL::timestamptz AS oldest FROM {}").format(
            ident
        )
    else:
        statement = sql.SQL("SELECT count(*) AS rows, min({}) AS oldest FROM {}").format(
            sql.Identifier(column), ident
        )
    row = c.execute(statement).fetchone()
    name = "history_table_size_hyper" if hypertable else "history_table_size_plain"
    size = c.execute(query(name), {"table": table}).fetchone()
    return {"table": table, "hypertable": hypertable, **row, **size}


def tasks_due(c: psycopg.Connection, cutoff: datetime, deployment: str | None) -> int:
    return c.execute(
        query("history_tasks_due"), {"cutoff": cutoff, "deployment": deployment}
    ).fetchone()["tasks"]


def last_prunes(c: psycopg.Connection, limit: int = 3) -> list[dict[str, Any]]:
    return c.execute(query("history_last_prunes"), {"limit": limit}).fetchall()
