"""Services' statements (functions on a connection): reports through ``otf_report``, task
type subscriptions, and the score timeline's read. ``core.services`` and ``core.stats`` hold
the rules around them."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from otf_dagster.core.store.queries import query
from otf_dagster.exceptions import InvalidReport, UnknownTask, UnknownTaskType

# SQLSTATEs raised by otf_report (custom class "OT").
SQLSTATE_UNKNOWN_TASK = "OTF01"
SQLSTATE_REPORT_REFUSED = "OTF02"


def translate_report_error(exc: psycopg.Error) -> Exception | None:
    """otf_report's refusals as the project's exceptions (None for any other error)."""
    message = (exc.diag.message_primary or str(exc)).strip()
    if exc.sqlstate == SQLSTATE_UNKNOWN_TASK:
        return UnknownTask(message)
    if exc.sqlstate == SQLSTATE_REPORT_REFUSED:
        return InvalidReport(message)
    return None


def report(
    c: psycopg.Connection, task_id: str, service: str, state: str, detail: dict[str, Any] | None
) -> dict[str, Any]:
    """``otf_report``'s row (overall, outcome, reason, previous); its refusals translated."""
    try:
        return c.execute(
            query("services_report"),
            (task_id, service, state, Jsonb(detail) if detail is not None else None),
        ).fetchone()
    except psycopg.Error as exc:
        mine = translate_report_error(exc)
        if mine is None:
            raise
        raise mine from None


def subscribe(c: psycopg.Connection, owner: str, task_type: str) -> str:
    """'created', 'revived' (it had been removed) or 'unchanged'; UnknownTaskType for a type
    that does not exist or is soft-deleted."""
    params = {"owner": owner, "task_type": task_type}
    row = c.execute(query("services_subscribe"), params).fetchone()
    if row is not None:
        return "created" if row["inserted"] else "revived"
    if c.execute(query("services_subscription_exists"), params).fetchone() is not None:
        return "unchanged"
    raise UnknownTaskType(
        f"cannot subscribe {owner!r}: task type {task_type!r} does not exist or is soft-deleted; "
        "see `otf task-types list`"
    )


def unsubscribe(c: psycopg.Connection, owner: str, task_type: str) -> bool:
    params = {"owner": owner, "task_type": task_type}
    return c.execute(query("services_unsubscribe"), params).fetchone() is not None


def subscriptions(
    c: psycopg.Connection, owner: str | None, include_deleted: bool
) -> list[dict[str, Any]]:
    params = {"owner": owner, "include_deleted": include_deleted}
    return c.execute(query("services_list_subscriptions"), params).fetchall()


def score_timeline(c: psycopg.Connection, task_id: str, bucket: Any) -> list[dict[str, Any]] | None:
    """The task's score per bucket, read within its lifetime like the timeline (sql/0017);
    None when the task does not exist."""
    task = c.execute(query("get_task"), {"task_id": task_id}).fetchone()
    if task is None:
        return None
    bounds = {"since": task["created_at"], "until": task["finished_at"]}
    return c.execute(
        query("score_timeline"), {"task_id": task_id, "bucket": bucket, **bounds}
    ).fetchall()
