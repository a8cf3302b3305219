"""A consumer's statements (functions on its own session): the cursor, the exclusive lock, and
the reads in commit order. ``core.consumer`` holds the rules (at least once, catching up)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import psycopg

from otf_dagster.core.store.queries import query

# Session advisory lock (class, hashtext(name)) held by a running durable consumer, so two
# processes cannot advance the same cursor at once. Its own key space: the two-int form.
CONSUMER_LOCK_CLASS = 0x07F0_0003


def open_cursor(c: psycopg.Connection, name: str, *, from_end: bool, exclusive: bool) -> int | None:
    """Prepare this session for consumer ``name`` and return its cursor's position; None when
    ``exclusive`` and another session holds the consumer. An ack lost in a server crash only
    means a redelivery, which at-least-once allows: the cursor need not wait for its WAL
    flush (the events themselves are committed durably)."""
    c.execute("SET synchronous_commit = off")
    if exclusive:
        got = c.execute(
            "SELECT pg_try_advisory_lock(%s, hashtext(%s)) AS got", (CONSUMER_LOCK_CLASS, name)
        ).fetchone()["got"]
        if not got:
            return None
    c.execute(query("consumer_open_cursor"), {"consumer": name, "from_end": from_end})
    return read_cursor(c, name)


def release(c: psycopg.Connection, name: str) -> None:
    """The exclusive lock released now, not when the session's server process exits."""
    c.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", (CONSUMER_LOCK_CLASS, name))


def read_cursor(c: psycopg.Connection, name: str) -> int:
    return c.execute(query("consumer_read_cursor"), {"consumer": name}).fetchone()["position"]


def subscribed_events(
    c: psycopg.Connection, owner: str, after: int, limit: int
) -> list[dict[str, Any]]:
    """Up to ``limit`` events of ``owner``'s live subscriptions after seq ``after``, in seq
    order; each row also carries the ``horizon`` (a row with seq None when there is none)."""
    params = {"after": after, "owner": owner, "limit": limit}
    return c.execute(query("consumer_subscribed_events"), params).fetchall()


def filtered_events(
    c: psycopg.Connection,
    after: int,
    limit: int,
    task_types: Sequence[str] | None,
    since: datetime | None,
) -> list[dict[str, Any]]:
    """As :func:`subscribed_events`, for a consumer without a name (types and a start time)."""
    params = {"after": after, "types": task_types, "since": since, "limit": limit}
    return c.execute(query("consumer_filtered_events"), params).fetchall()


def ack(c: psycopg.Connection, name: str, seq: int) -> int:
    """Move the cursor to ``seq`` (never back); its position after."""
    return c.execute(query("consumer_ack"), {"consumer": name, "seq": seq}).fetchone()["position"]
