"""Task type rows: create or update, read, soft delete (functions on a connection)."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from otf_dagster.core.store.queries import query
from otf_dagster.vocab.tasks import TaskType


def upsert(c: psycopg.Connection, tt: TaskType) -> bool:
    """Create or update (un-deleting) one type; True if created."""
    params = tt.to_dict()
    params["params"] = Jsonb(tt.params)
    params["spawn"] = Jsonb(tt.spawn) if tt.spawn is not None else None
    params["required_services"] = list(tt.required_services)
    return bool(c.execute(query("upsert_task_type"), params).fetchone()["inserted"])


def get_row(c: psycopg.Connection, name: str) -> dict[str, Any] | None:
    return c.execute(query("get_task_type"), {"name": name}).fetchone()


def get_many(c: psycopg.Connection, names: list[str]) -> dict[str, TaskType]:
    if not names:
        return {}
    rows = c.execute(query("get_task_types"), {"names": names}).fetchall()
    return {r["name"]: TaskType.from_row(r) for r in rows}


def list_all(c: psycopg.Connection, include_deleted: bool) -> list[TaskType]:
    rows = c.execute(query("list_task_types"), {"include_deleted": include_deleted}).fetchall()
    return [TaskType.from_row(r) for r in rows]


def soft_delete(c: psycopg.Connection, name: str) -> bool:
    return c.execute(query("soft_delete_task_type"), {"name": name}).fetchone() is not None


def lock_live(c: psycopg.Connection, name: str) -> dict[str, Any] | None:
    """FOR SHARE on a live type (a concurrent soft delete waits for the caller's commit): its
    name and url_template, or None when it does not exist or is soft-deleted."""
    return c.execute(query("lock_live_task_type"), {"name": name}).fetchone()
