"""Time-bucketed views of the time series: per-minute stats of each task type, and a game's score
timeline. The SQL is the same on plain PostgreSQL and on TimescaleDB (sql/0008 makes the
relations and the bucket function fit the server), so callers never ask which one they are on.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

import psycopg

from otf_dagster.core.services import using_store
from otf_dagster.core.store import TaskStore, query
from otf_dagster.exceptions import StoreError, UnknownTask

_DURATION = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
_UNIT = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_duration(text: str, option: str) -> timedelta:
    """``30s``, ``1m``, ``2h``, ``1d`` as a positive timedelta, or one clear error naming it."""
    m = _DURATION.match(text or "")
    if not m or int(m.group(1)) == 0:
        raise StoreError(
            f"{option} {text!r} is not a duration; write a positive whole number and a unit "
            "(s, m, h or d), e.g. 30s, 1m, 2h, 1d"
        )
    return timedelta(**{_UNIT[m.group(2)]: int(m.group(1))})


def minute_stats(
    store_or_url: TaskStore | str, *, since: datetime, task_type: str | None = None
) -> list[dict[str, Any]]:
    """Per task type and minute since ``since``: polls, errors, events, poll lateness."""
    if since.tzinfo is None:
        raise StoreError(f"since {since!r} must be a timezone-aware datetime")
    with using_store(store_or_url) as store:
        return store.fetch_all(
            "read per-minute stats", "minute_stats", {"since": since, "task_type": task_type}
        )


def score_timeline(
    store_or_url: TaskStore | str, task_id: str, bucket: timedelta
) -> list[dict[str, Any]]:
    """A game's events per ``bucket``: events, score changes, points, and the score at the
    end of each bucket (carried forward through buckets without scoring)."""
    if bucket <= timedelta(0):
        raise StoreError(f"bucket {bucket} must be a positive duration, e.g. 1m")

    def work(c: psycopg.Connection) -> list[dict[str, Any]] | None:
        task = c.execute(query("get_task"), {"task_id": task_id}).fetchone()
        if task is None:
            return None
        # Bounded by the task's lifetime, like the timeline (sql/0017).
        bounds = {"since": task["created_at"], "until": task["finished_at"]}
        return c.execute(
            query("score_timeline"), {"task_id": task_id, "bucket": bucket, **bounds}
        ).fetchall()

    with using_store(store_or_url) as store:
        rows = store.run(f"read score timeline of {task_id!r}", work)
    if rows is None:
        raise UnknownTask(f"task {task_id!r} does not exist; see `otf tasks list`")
    home = away = None
    for r in rows:
        if r["home_score"] is None:
            r["home_score"], r["away_score"] = home, away
        home, away = r["home_score"], r["away_score"]
    return rows
