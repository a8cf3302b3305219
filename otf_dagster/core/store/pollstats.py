"""The runners' poll records: one ``task_polls`` row per poll, in the poll's own transaction.

A poll record says when a runner polled, how late against the time the poll was due, how many
events it wrote and the error of a failed poll; the per-minute stats (``otf stats``, sql/0008)
aggregate them. Written in the caller's transaction (beside ``polls.record_poll``), so a poll
whose write is rolled back leaves no record either.
"""

from __future__ import annotations

import math
from typing import Any

import psycopg

from otf_dagster.core.store.queries import query
from otf_dagster.exceptions import StoreError


def log_poll(
    c: psycopg.Connection,
    *,
    task_id: str,
    task_type: str,
    attempt: int,
    task_runner_id: str,
    lateness_seconds: float,
    events: int,
    error: str | None,
) -> None:
    """Record one poll of ``task_id``: ``lateness_seconds`` after it was due (negative: early),
    ``events`` written, ``error`` (None for a poll that succeeded)."""
    c.execute(
        query("log_poll"),
        poll_row(
            task_id=task_id,
            task_type=task_type,
            attempt=attempt,
            task_runner_id=task_runner_id,
            lateness_seconds=lateness_seconds,
            events=events,
            error=error,
        ),
    )


def log_polls(c: psycopg.Connection, rows: list[dict[str, Any]]) -> None:
    """Several polls' records (each from :func:`poll_row`) in one pipelined round trip."""
    if len(rows) == 1:
        c.execute(query("log_poll"), rows[0])
    elif rows:
        c.cursor().executemany(query("log_poll"), rows)


def poll_row(
    *,
    task_id: str,
    task_type: str,
    attempt: int,
    task_runner_id: str,
    lateness_seconds: float,
    events: int,
    error: str | None,
) -> dict[str, Any]:
    """One ``log_poll`` row's parameters, checked (see :func:`log_poll`)."""
    if not isinstance(lateness_seconds, int | float) or not math.isfinite(lateness_seconds):
        raise StoreError(
            f"poll record of {task_id!r}: lateness_seconds {lateness_seconds!r} is not a finite "
            "number of seconds; pass the time since the poll was due"
        )
    if isinstance(events, bool) or not isinstance(events, int) or events < 0:
        raise StoreError(
            f"poll record of {task_id!r}: events {events!r} must be a count (0 or more) of the "
            "events the poll wrote"
        )
    return {
        "task_id": task_id,
        "task_type": task_type,
        "attempt": attempt,
        "task_runner_id": task_runner_id,
        "lateness_seconds": float(lateness_seconds),
        "events": events,
        "error": error,
    }


def task_polls(c: psycopg.Connection, task_id: str) -> list[dict[str, Any]]:
    """The poll records of one task, oldest first."""
    return c.execute(query("task_polls"), {"task_id": task_id}).fetchall()
