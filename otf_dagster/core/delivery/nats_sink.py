"""A sink that publishes events to NATS JetStream, for endpoints with a subject prefix.

Each event goes to ``{prefix}.{task_type}.{task_id}`` (both tokens encoded by ``encode_token``
so a ``.`` never splits them) with header ``Nats-Msg-Id`` = the event's ``id``: JetStream drops
the copies a relay restart re-sends within the stream's duplicate window. An event counts as
accepted only once its publish ack came back. The stream (subjects ``{prefix}.>``) is created
when missing, and again when it was deleted while we publish.

nats-py is asyncio; the relay is threads. Each sink runs one event loop on a private thread and
``send`` blocks on it, bounded by ``timeout``; it never raises to the relay: a fault is an
``Outcome`` with the leading acked count and one error line, and a later ``send`` goes on once
the server is back (the client reconnects by itself; a sink that never connected tries again).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import re
import threading
import time
from collections.abc import Sequence
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any
from urllib.parse import unquote

import nats
import nats.errors
import nats.js.errors
from nats.js.api import StorageType, StreamConfig

from otf_dagster.core.delivery.sink import EventBody, Outcome
from otf_dagster.exceptions import ConfigError

DEFAULT_DUPLICATE_WINDOW = 120.0  # seconds: longer than a relay takes to restart
MAX_IN_FLIGHT = 256  # publishes awaiting their ack at once

# A subject token may not hold '.', '*', '>' or whitespace; '%' is the escape itself.
_UNSAFE = re.compile(r"[%.*>\s\x00-\x1f\x7f]")


def encode_token(value: str) -> str:
    """Percent-encode what would split or wildcard a subject token: ``a.b`` -> ``a%2Eb``."""
    return _UNSAFE.sub(lambda m: "".join(f"%{b:02X}" for b in m.group().encode()), value)


def decode_token(token: str) -> str:
    """The inverse of ``encode_token``."""
    return unquote(token, errors="strict")  # every '%' in a token starts an escape


def event_subject(prefix: str, task_type: str, task_id: str) -> str:
    return f"{prefix}.{encode_token(task_type)}.{encode_token(task_id)}"


def next_window(
    prefix: str, events: Sequence[EventBody], start: int, limit: int = MAX_IN_FLIGHT
) -> list[tuple[str, EventBody]]:
    """The events from ``start`` that may await their acks together: up to ``limit``, and
    stopping before a second event of one subject (one task's events go one ack at a time)."""
    window: list[tuple[str, EventBody]] = []
    subjects: set[str] = set()
    for event in events[start : start + limit]:
        subject = event_subject(prefix, event.task_type, event.task_id)
        if subject in subjects:
            break
        subjects.add(subject)
        window.append((subject, event))
    return window


def validate_prefix(prefix: object) -> str:
    """Refuse a subject prefix that is not plain dotted tokens (one line naming it)."""
    if not isinstance(prefix, str) or not prefix:
        raise ConfigError(f"NATS subject prefix {prefix!r}: give dotted tokens, e.g. otf.events")
    problem = None
    if prefix.startswith(".") or prefix.endswith("."):
        problem = "starts or ends with a dot"
    elif ".." in prefix:
        problem = "has an empty token (two dots)"
    elif re.search(r"[*>]", prefix):
        problem = "has a wildcard (* or >)"
    elif re.search(r"[\s\x00-\x1f\x7f]", prefix):
        problem = "has a space or control character"
    elif prefix.startswith("$"):
        problem = "starts with $, which NATS reserves for its own subjects"
    elif prefix.split(".")[0] == "reports":
        problem = "starts with 'reports', where services send their reports"
    if problem:
        raise ConfigError(
            f"NATS subject prefix {prefix!r} {problem}: use dotted tokens of letters, digits, "
            "- and _ (e.g. otf.events)"
        )
    return prefix


def stream_name(prefix: str) -> str:
    """The stream a prefix gets: readable, and distinct for distinct prefixes (hash suffix)."""
    readable = re.sub(r"[^A-Za-z0-9_-]", "_", prefix).upper()[:48]
    return f"OTF_{readable}_{hashlib.sha1(prefix.encode()).hexdigest()[:8]}"


def _line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text and text[0] else type(exc).__name__


class _LoopThread:
    """One asyncio loop on a daemon thread; ``run`` blocks the caller until a coroutine ends."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self.thread.start()

    def run(self, coro: Any, timeout: float) -> Any:
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except FutureTimeout:
            future.cancel()
            raise

    def close(self) -> None:
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
        if not self.thread.is_alive():
            self.loop.close()


class NatsSink:
    """Publishes an endpoint's events to JetStream; see the module docstring."""

    def __init__(
        self,
        prefix: str,
        nats_url: str,
        *,
        timeout: float = 5.0,
        stream: str | None = None,
        duplicate_window: float = DEFAULT_DUPLICATE_WINDOW,
    ) -> None:
        self.prefix = validate_prefix(prefix)
        self.nats_url = nats_url
        self.timeout = timeout
        self.stream = stream or stream_name(prefix)
        self.duplicate_window = duplicate_window
        self._nc: Any = None
        self._js: Any = None
        self._stream_ready = False
        self._lock = threading.Lock()  # one send at a time per sink
        self._loop = _LoopThread(f"nats-sink-{self.stream}")

    # --- the blocking face the relay calls -------------------------------------------------

    def send(self, events: Sequence[EventBody]) -> Outcome:
        if not events:
            return Outcome(accepted=0)
        with self._lock:
            if self._loop.loop.is_closed():
                return Outcome(accepted=0, error="NATS sink is closed")
            deadline = time.monotonic() + self.timeout
            progress = [0]
            try:
                error = self._loop.run(self._send(events, deadline, progress), self.timeout + 1.0)
            except FutureTimeout:
                error = f"no publish ack from {self.nats_url} within {self.timeout:g} s"
            except Exception as exc:  # never raise to the relay
                error = _line(exc)
            return Outcome(accepted=progress[0], error=error)

    def close(self) -> None:
        with self._lock:
            if self._loop.loop.is_closed():
                return
            with contextlib.suppress(Exception):  # closing must not fail the relay's shutdown
                self._loop.run(self._disconnect(), 5.0)
            self._loop.close()

    # --- on the loop thread ---------------------------------------------------------------

    async def _send(self, events: Sequence[EventBody], deadline: float, progress: list[int]):
        """Publish in windows of distinct subjects (pipelined acks; a task's next event waits
        for the ack of its previous one, so a lost ack can never reorder one task's events).
        ``progress[0]`` is the count of leading acked events; returns an error line or None."""
        error = await self._ready(deadline)
        if error:
            return error
        retried_stream = False
        while progress[0] < len(events):
            window = next_window(self.prefix, events, progress[0])
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return f"no publish ack from {self.nats_url} within {self.timeout:g} s"
            results = await asyncio.gather(
                *(self._publish(subject, event, remaining) for subject, event in window),
                return_exceptions=True,
            )
            for result in results:
                if isinstance(result, BaseException):
                    if isinstance(result, nats.js.errors.NoStreamResponseError) and not (
                        retried_stream
                    ):
                        retried_stream = True  # the stream was deleted: create it, go on
                        self._stream_ready = False
                        error = await self._ready(deadline)
                        if error:
                            return error
                        break
                    if isinstance(result, asyncio.TimeoutError | nats.errors.TimeoutError):
                        return f"no publish ack from {self.nats_url} within {self.timeout:g} s"
                    return f"publishing to {self.nats_url}: {_line(result)}"
                progress[0] += 1
        return None

    async def _publish(self, subject: str, event: EventBody, timeout: float):
        return await self._js.publish(
            subject,
            json.dumps(event.to_dict(), separators=(",", ":")).encode(),
            timeout=timeout,
            stream=self.stream,
            headers={"Nats-Msg-Id": event.id},
        )

    async def _ready(self, deadline: float) -> str | None:
        """Connected, and the stream exists; else an error line."""
        if self._nc is None or self._nc.is_closed:
            nc = nats.NATS()
            try:
                await asyncio.wait_for(
                    nc.connect(
                        self.nats_url,
                        name=f"otf-relay {self.prefix}",
                        connect_timeout=max(0.1, min(2.0, deadline - time.monotonic())),
                        allow_reconnect=True,
                        max_reconnect_attempts=-1,
                        reconnect_time_wait=0.25,
                        error_cb=_quiet,
                        disconnected_cb=_quiet_cb,
                    ),
                    timeout=max(0.1, deadline - time.monotonic()),
                )
            except (TimeoutError, Exception) as exc:
                await _close_quietly(nc)
                if isinstance(exc, asyncio.TimeoutError):
                    return f"cannot connect to NATS at {self.nats_url} within {self.timeout:g} s"
                return f"cannot connect to NATS at {self.nats_url}: {_line(exc)}"
            self._nc, self._js = nc, nc.jetstream(timeout=self.timeout)
            self._stream_ready = False
        if not self._stream_ready:
            try:
                await asyncio.wait_for(
                    self._ensure_stream(), timeout=max(0.1, deadline - time.monotonic())
                )
            except TimeoutError:
                return f"NATS at {self.nats_url} did not answer within {self.timeout:g} s"
            except Exception as exc:
                return f"stream {self.stream} for {self.prefix}.>: {_line(exc)}"
            self._stream_ready = True
        return None

    async def _ensure_stream(self) -> None:
        try:
            await self._js.stream_info(self.stream)
            return
        except nats.js.errors.NotFoundError:
            pass
        await self._js.add_stream(
            StreamConfig(
                name=self.stream,
                subjects=[f"{self.prefix}.>"],
                storage=StorageType.FILE,
                duplicate_window=self.duplicate_window,
            )
        )

    async def _disconnect(self) -> None:
        if self._nc is not None:
            await _close_quietly(self._nc)
            self._nc = self._js = None


async def _quiet(exc: Exception) -> None:
    """nats-py logs every reconnect failure by default; the Outcome carries the error."""


async def _quiet_cb() -> None:
    pass


async def _close_quietly(nc: Any) -> None:
    with contextlib.suppress(Exception, asyncio.TimeoutError):
        await asyncio.wait_for(nc.close(), timeout=2.0)
