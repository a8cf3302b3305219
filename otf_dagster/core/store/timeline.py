"""The timeline's reads (functions on a connection): a task's states and events, each bounded
by the task's lifetime so TimescaleDB plans the chunks of those days only (sql/0017 keeps every
row of a task inside it). ``core.timeline`` orders and describes them."""

from __future__ import annotations

from typing import Any

import psycopg

from otf_dagster.core.store.queries import query


def timeline_rows(
    c: psycopg.Connection, task_id: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]] | None:
    """(states, events) of ``task_id``; None when the task does not exist."""
    life = c.execute(
        "SELECT created_at, finished_at FROM tasks WHERE task_id = %s", (task_id,)
    ).fetchone()
    if life is None:
        return None
    # The bounds are values, not a join: a custom plan excludes chunks at plan time.
    bounds = {"task_id": task_id, "since": life["created_at"], "until": life["finished_at"]}
    return (
        c.execute(query("timeline_states"), bounds).fetchall(),
        c.execute(query("timeline_events"), bounds).fetchall(),
    )
