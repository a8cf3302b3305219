"""A task's history rows (``task_states``): written inside the caller's transaction."""

from __future__ import annotations

import psycopg
from psycopg.types.json import Jsonb

from otf_dagster.core.store.queries import query
from otf_dagster.vocab.tasks import TaskState


def log_state(
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
    """One row of a task's history, in the caller's transaction."""
    c.execute(
        query("insert_state"),
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
