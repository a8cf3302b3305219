"""Scheduling tasks: idempotent by (type, key); a still-SCHEDULED task moves with its time."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from otf_dagster.core.store import task_types
from otf_dagster.core.store.history import log_state
from otf_dagster.core.store.queries import query
from otf_dagster.exceptions import StoreError, UnknownTaskType, shown
from otf_dagster.vocab import urls
from otf_dagster.vocab.tasks import LANES, TASK_SERVICE, TaskState, key_problem

# A key shown verbatim in its task id; fullmatch, as PostgreSQL's '$' (unlike Python's) does
# not accept a trailing newline.
_KEY_VERBATIM = re.compile(r"[A-Za-z0-9_.-]{1,120}")
_TASK_ID_CHARS = re.compile(r"[A-Za-z0-9_:.-]+")

ScheduleItem = tuple[str, datetime, dict[str, Any]]  # (external key, scheduled at, params)


def task_id_for(task_type: str, external_key: str) -> str:
    """The task id (and Dagster partition key) of (type, key): readable when the key is tame,
    a digest when it holds characters a partition key may not (the key is stored verbatim)."""
    readable = f"{task_type.lower()}:{external_key}"
    if _KEY_VERBATIM.fullmatch(external_key) and task_id_is_valid(readable):
        return readable
    digest = hashlib.sha256(external_key.encode("utf-8")).hexdigest()[:20]
    return f"{task_type.lower()}:h-{digest}"


def task_id_is_valid(task_id: str) -> bool:
    """The database's ``tasks_task_id_format`` CHECK (sql/0005) in Python; a test tries values
    on both and holds them equal."""
    return (
        _TASK_ID_CHARS.fullmatch(task_id) is not None
        and len(task_id) <= 200
        and "..." not in task_id
    )


def check_items(items: Sequence[ScheduleItem]) -> None:
    """Refuse malformed items before any database work, naming the value."""
    for key, at, _ in items:
        problem = key_problem(key)
        if problem:
            raise StoreError(f"external key {shown(key)} refused: {problem}")
        if not isinstance(at, datetime) or at.tzinfo is None:
            raise StoreError(
                f"scheduled time {shown(at)} for key {shown(key)} must be a timezone-aware datetime"
            )


def schedule_in(
    c: psycopg.Connection,
    task_type: str,
    items: Sequence[ScheduleItem],
    *,
    parent_task_id: str | None,
    source: str,
    lane: str | None = None,
) -> list[tuple[str, str]]:
    """Schedule ``items`` of one type in the caller's transaction: (task_id, outcome) each,
    outcome 'created', 'moved' (still SCHEDULED, time or params changed) or 'unchanged'.
    A new task goes to ``lane`` (None: its parent's, else live); an existing one keeps its."""
    if lane is not None and lane not in LANES:
        raise StoreError(f"lane {shown(lane)} is not a lane; use one of {', '.join(LANES)}")
    live = task_types.lock_live(c, task_type)
    if live is None:
        raise UnknownTaskType(
            f"cannot schedule: task type {task_type!r} does not exist or is soft-deleted; "
            "see `otf task-types list`"
        )
    needed = urls.required_params(live["url_template"])
    out = []
    for key, at, params in items:
        missing = [n for n in needed if n not in params]
        if missing:
            raise StoreError(
                f"cannot schedule {task_type} {str(key)[:60]!r}: its url_template "
                f"{live['url_template']!r} needs param(s) {', '.join(missing)}; give them with "
                f"--params '{{\"{missing[0]}\": ...}}'"
            )
        row = c.execute(
            query("schedule_task"),
            {
                "task_id": task_id_for(task_type, key),
                "task_type": task_type,
                "external_key": key,
                "scheduled_at": at,
                "params": Jsonb(params),
                "parent_task_id": parent_task_id,
                "lane": lane,
            },
        ).fetchone()
        if row is None:
            existing = c.execute(
                query("find_task_by_key"), {"task_type": task_type, "external_key": key}
            ).fetchone()
            out.append((existing["task_id"], "unchanged"))
            continue
        if row["inserted"]:
            log_state(
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
