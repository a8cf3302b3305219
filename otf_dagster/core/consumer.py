"""Event delivery: read task events in commit order, durably, at least once.

Why ``seq > cursor`` never skips an event: every insert into ``task_events`` takes one
transaction-scoped advisory lock before its rows draw ``seq`` (store.polls.copy_events does, and the
BEFORE INSERT trigger of sql/0004 makes every other writer do it too), and the lock is released
only after the transaction is visible. So a transaction that draws a larger seq starts drawing
after every smaller seq's transaction has ended: any snapshot that sees seq ``s`` sees every
smaller seq that will ever commit, and a cursor moved to ``s`` has passed nothing still to come.

A durable consumer (``name`` given) reads the events of its live subscriptions (table
``subscriptions``, owner = name) after its cursor (``consumer_cursors``) and moves the cursor
only after the caller has processed the events (``ack``): a crash replays at most the events
after the last ack, identified by ``seq``. A consumer without a name reads from the start or from
``since`` and keeps its position in memory. Waiting followers are woken by NOTIFY on
``otf_events`` (sent at commit by a trigger), with a periodic re-check as a safety net.
"""

from __future__ import annotations

import contextlib
import re
import time
import weakref
from collections.abc import Generator, Iterator, Sequence
from datetime import datetime
from typing import Any

import psycopg

from otf_dagster.core.store import consumers as statements
from otf_dagster.core.store.db import connect, listen, translated_errors
from otf_dagster.exceptions import DatabaseUnavailable, StoreError

CHANNEL = "otf_events"
# The largest read while a consumer catches up. Each read is one statement, and on TimescaleDB
# one statement plans against every chunk of task_events that `seq > position` cannot exclude
# (from an old position, all of them: about 0.2 s for a year of daily chunks), so a consumer
# far behind reads in doubling sizes up to this many events (a few tens of MB of rows at most).
CATCH_UP_BATCH = 50_000

_NAME_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,100}$")


class Consumer:
    """Reads task events in commit (``seq``) order; durable when it has a ``name``.

    Use it as a context manager (it holds up to two connections: one for reads and acks, one
    that LISTENs while following).
    """

    def __init__(
        self,
        url: str,
        name: str | None = None,
        *,
        task_types: Sequence[str] | None = None,
        since: datetime | None = None,
        start: str = "beginning",
        exclusive: bool = True,
        application_name: str = "otf-consumer",
    ) -> None:
        if name is not None:
            if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
                raise StoreError(
                    f"bad consumer name {name!r}: "
                    "use 1 to 100 characters from letters, digits, _ . : -"
                )
            if task_types is not None or since is not None:
                raise StoreError(
                    f"consumer {name!r} reads its subscriptions from its durable cursor: "
                    "task types and --since apply to non-durable reads only "
                    "(see `otf subscriptions add`)"
                )
        if start not in ("beginning", "end"):
            raise StoreError(f"start must be 'beginning' or 'end', not {start!r}")
        if since is not None and since.tzinfo is None:
            raise StoreError(f"since {since!r} must be a timezone-aware datetime")
        self.url = url
        self.name = name
        self.task_types = list(task_types) if task_types is not None else None
        self.since = since
        self.start = start
        self.exclusive = exclusive
        self.application_name = application_name
        self._conn: psycopg.Connection | None = None
        self._listen_conn: psycopg.Connection | None = None
        self._position: int | None = None  # last seq handed out
        self._acked: int | None = None  # last durable position
        self._horizon = 0  # the largest seq committed at the last read
        self._streams: weakref.WeakSet[Generator[dict[str, Any], None, None]] = weakref.WeakSet()

    @property
    def durable(self) -> bool:
        return self.name is not None

    # --- connections ---------------------------------------------------------------------------

    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed or self._conn.broken:
            if self._conn is not None:
                self._close_connections()  # a new session: re-take the lock, re-read the cursor
            conn = connect(self.url, application_name=self.application_name)
            try:
                with translated_errors(f"open consumer {self.name or '(non-durable)'}"):
                    if self.durable:
                        self._open_cursor(conn)
                    elif self._position is None:  # a reconnect keeps a non-durable position
                        self._position = 0
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    def _open_cursor(self, conn: psycopg.Connection) -> None:
        position = statements.open_cursor(
            conn, self.name, from_end=self.start == "end", exclusive=self.exclusive
        )
        if position is None:
            raise StoreError(
                f"consumer {self.name!r} is already running in another session; stop it first, "
                "or give this one another name"
            )
        self._position = self._acked = position

    def close(self) -> None:
        for stream in list(self._streams):
            stream.close()  # acknowledges what its caller finished with
        self._close_connections()

    def _close_connections(self) -> None:
        conn = self._conn
        if (
            self.durable
            and self.exclusive
            and conn is not None
            and not conn.closed
            and not conn.broken
        ):
            # Released now, not when the closed session's server process gets round to exiting:
            # a consumer reopened at once (on a busy server) would find its own name still taken.
            with contextlib.suppress(psycopg.Error):
                statements.release(conn, self.name)
        for conn in (self._conn, self._listen_conn):
            if conn is not None:
                conn.close()  # ends the session: its advisory lock and LISTEN go with it
        self._conn = self._listen_conn = None

    def __enter__(self) -> Consumer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, what: str, fn):
        try:
            with translated_errors(what):
                return fn(self._connection())
        except DatabaseUnavailable:
            self._close_connections()
            raise

    # --- reading -------------------------------------------------------------------------------

    @property
    def position(self) -> int:
        """The seq of the last event handed out (a new consumer: its durable cursor)."""
        self._connection()
        return self._position

    def committed_position(self) -> int | None:
        """The durable cursor as stored (None for a non-durable consumer)."""
        if not self.durable:
            return None
        return self._call("read consumer cursor", lambda c: statements.read_cursor(c, self.name))

    def fetch(self, limit: int = 500) -> list[dict[str, Any]]:
        """Up to ``limit`` events after the position, in seq order; moves the position (not the
        durable cursor: see :meth:`ack`)."""
        if limit < 1:
            raise StoreError(f"batch size must be at least 1, not {limit}")

        def work(c: psycopg.Connection) -> list[dict[str, Any]]:
            if self.durable:
                return statements.subscribed_events(c, self.name, self._position, limit)
            return statements.filtered_events(c, self._position, limit, self.task_types, self.since)

        rows = self._call("read events", work)
        horizon = self._horizon = rows[0]["horizon"]
        events = []
        for r in rows:
            del r["horizon"]
            if r["seq"] is not None:
                events.append(r)
        if events:
            self._position = events[-1]["seq"]
        if len(events) < limit:  # all there is up to the horizon: nothing below it can come
            self._position = max(self._position, horizon)
        return events

    def ack(self, seq: int) -> None:
        """Every event up to ``seq`` is processed: move the durable cursor there (never back)."""
        if not self.durable:
            return
        if self._acked is not None and seq <= self._acked:
            return
        self._acked = self._call(
            f"move cursor of consumer {self.name!r}", lambda c: statements.ack(c, self.name, seq)
        )

    def iter_events(
        self,
        *,
        follow: bool = False,
        batch: int = 500,
        timeout: float | None = None,
        poll_interval: float = 5.0,
        auto_ack: bool = True,
    ) -> Iterator[dict[str, Any]]:
        """Yield events in seq order. Without ``follow``, stop once caught up; with it, wait for
        more (woken by NOTIFY, re-checking every ``poll_interval`` s) and stop after ``timeout``
        seconds without a new event (None: never).

        With ``auto_ack`` an event counts as processed once the caller asks for the next one; the
        cursor is committed after each read (``batch`` events; while reads come back full they
        grow: to ``CATCH_UP_BATCH`` when more than that many seqs are behind the horizon, else
        doubling, so a consumer far behind plans few statements) and when the iterator ends or is closed (closing the
        consumer closes it): a ``break`` leaves the event it broke on unacknowledged, so it is
        delivered again - at least once."""
        if batch < 1:
            raise StoreError(f"batch size must be at least 1, not {batch}")
        stream = self._iter_events(follow, batch, timeout, poll_interval, auto_ack)
        self._streams.add(stream)
        return stream

    def _iter_events(
        self, follow: bool, batch: int, timeout: float | None, poll_interval: float, auto_ack: bool
    ) -> Iterator[dict[str, Any]]:
        if follow:
            self._listen()  # before the first read: a commit after that read wakes us
        done: int | None = None
        idle_since = time.monotonic()
        size = batch  # grows while reads come back full (catching up), back to batch when not
        try:
            while True:
                events = self.fetch(size)
                for ev in events:
                    yield ev
                    done = ev["seq"]
                if events:
                    idle_since = time.monotonic()
                if auto_ack and self.durable and self._position > (self._acked or 0):
                    self.ack(self._position)  # all handed out are processed; maybe the horizon
                if len(events) == size:
                    far = self._horizon - self._position > CATCH_UP_BATCH
                    size = max(batch, CATCH_UP_BATCH if far else min(size * 2, CATCH_UP_BATCH))
                    continue
                size = batch
                if not follow:
                    return
                wait = poll_interval
                if timeout is not None:
                    left = timeout - (time.monotonic() - idle_since)
                    if left <= 0:
                        return
                    wait = min(wait, left)
                self._wait(wait)
        except BaseException:
            # Never reconnect just for this: a closed consumer's lock may belong to another now.
            if auto_ack and done is not None and self._conn is not None and not self._conn.closed:
                with contextlib.suppress(StoreError):
                    self.ack(done)
            raise

    # --- waiting -------------------------------------------------------------------------------

    def _listen(self) -> None:
        if self._listen_conn is None or self._listen_conn.closed or self._listen_conn.broken:
            self._listen_conn = connect(
                self.url, application_name=f"{self.application_name}-listen"
            )
            with translated_errors("listen for events"):
                listen(self._listen_conn, CHANNEL)

    def _wait(self, seconds: float) -> bool:
        """Sleep until a NOTIFY arrives or ``seconds`` pass; True if woken by a notification."""
        try:
            with translated_errors("wait for events"):
                woke = any(True for _ in self._listen_conn.notifies(timeout=seconds, stop_after=1))
                if woke:  # several commits, one read: drop the notifications already queued
                    for _ in self._listen_conn.notifies(timeout=0):
                        pass
                return woke
        except DatabaseUnavailable:
            self._close_connections()
            raise


def read_events(
    url: str,
    *,
    task_types: Sequence[str] | None = None,
    since: datetime | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """A one-off, non-durable read: the events so far, in commit order."""
    out: list[dict[str, Any]] = []
    with Consumer(url, task_types=task_types, since=since) as consumer:
        for ev in consumer.iter_events(batch=1000 if limit is None else max(1, min(limit, 1000))):
            out.append(ev)
            if limit is not None and len(out) >= limit:
                break
    return out
