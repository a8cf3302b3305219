"""Services report back over NATS: the same Task Manager path as ``otf report``.

A service publishes JSON ``{"task_id", "service", "state", "detail"}`` to
``reports.{prefix}.{owner}`` (``reports_subject``; the owner token encoded like the event
subjects). The subject is not ``{prefix}.reports.{owner}``: that lies inside the endpoint's
stream (``{prefix}.>``), which would store every report and answer the request with its own
publish ack before we could. The subject's owner must be the message's ``service`` (a service
reports only under the name its subject carries), else the report is refused and nothing
written. A message with a reply subject gets the result (``{"ok": true, ...ReportResult}``) or
``{"ok": false, "error": one line}``. Subscriptions join the queue group ``otf-reports``, so
two relays on one server apply each report once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import nats

from otf_dagster.core import services
from otf_dagster.core.delivery.nats_sink import _close_quietly, _line, _LoopThread, encode_token
from otf_dagster.core.store import TaskStore
from otf_dagster.exceptions import ConfigError, OtfError

QUEUE_GROUP = "otf-reports"


def reports_subject(prefix: str, owner: str) -> str:
    return f"reports.{prefix}.{encode_token(owner)}"


def _owner_name(owner: str) -> str:
    return owner.strip().lower()


class NatsReports:
    """Subscribes ``reports.{prefix}.{owner}`` for each (prefix, owner) of the NATS endpoints
    on one server and applies the reports; ``start``/``stop`` block, the work runs on a private
    loop thread and one database thread."""

    def __init__(
        self, nats_url: str, routes: Iterable[tuple[str, str]], *, timeout: float = 5.0
    ) -> None:
        self.nats_url = nats_url
        self.routes = sorted(set(routes))
        self.timeout = timeout
        self._loop: _LoopThread | None = None
        self._db: ThreadPoolExecutor | None = None
        self._store: TaskStore | None = None
        self._nc: Any = None
        self._subs: dict[tuple[str, str], Any] = {}

    def start(self, store_url: str) -> None:
        """Connect and subscribe; one clear line (ConfigError) when the server cannot be
        reached. The client reconnects by itself afterwards."""
        self._store = TaskStore(store_url, application_name="otf-reports-nats")
        self._db = ThreadPoolExecutor(max_workers=1, thread_name_prefix="otf-reports-db")
        self._loop = _LoopThread("otf-reports-nats")
        try:
            self._loop.run(self._subscribe(), self.timeout + 1.0)
        except Exception as exc:
            self.stop()
            raise ConfigError(
                f"reports over NATS: cannot subscribe at {self.nats_url}: {_line(exc)}"
            ) from None

    def stop(self) -> None:
        if self._loop is not None:
            if self._nc is not None:
                with contextlib.suppress(Exception):
                    self._loop.run(_close_quietly(self._nc), 5.0)
                self._nc = None
            self._subs.clear()
            self._loop.close()
            self._loop = None
        if self._db is not None:
            self._db.shutdown(wait=True)
            self._db = None
        if self._store is not None:
            self._store.close()
            self._store = None

    async def _subscribe(self) -> None:
        nc = nats.NATS()
        try:
            await asyncio.wait_for(
                nc.connect(
                    self.nats_url,
                    name="otf-reports",
                    connect_timeout=min(2.0, self.timeout),
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=0.25,
                    error_cb=_quiet,
                ),
                timeout=self.timeout,
            )
        except (TimeoutError, Exception):
            await _close_quietly(nc)
            raise
        self._nc = nc
        await self._route(self.routes)

    async def _route(self, routes: list[tuple[str, str]]) -> None:
        """Subscribe the routes not yet subscribed, unsubscribe those no longer wanted."""
        for route in [r for r in self._subs if r not in routes]:
            await self._subs.pop(route).unsubscribe()
        for prefix, owner in routes:
            if (prefix, owner) in self._subs:
                continue

            async def handle(msg: Any, owner: str = owner) -> None:
                await self._handle(msg, owner)

            self._subs[(prefix, owner)] = await self._nc.subscribe(
                reports_subject(prefix, owner), queue=QUEUE_GROUP, cb=handle
            )
        await self._nc.flush(timeout=self.timeout)
        self.routes = routes

    def update(self, routes: Iterable[tuple[str, str]]) -> None:
        """The relay's NATS endpoints changed: follow them (blocking; one line on failure)."""
        wanted = sorted(set(routes))
        if self._loop is None:
            self.routes = wanted
            return
        try:
            self._loop.run(self._route(wanted), self.timeout + 1.0)
        except Exception as exc:
            raise ConfigError(
                f"reports over NATS: cannot subscribe at {self.nats_url}: {_line(exc)}"
            ) from None

    async def _handle(self, msg: Any, owner: str) -> None:
        answer = await asyncio.get_running_loop().run_in_executor(
            self._db, self.apply, msg.data, owner
        )
        if msg.reply:
            with contextlib.suppress(Exception):  # the requester left; the report stands
                await msg.respond(json.dumps(answer, default=str).encode())

    def apply(self, data: bytes, owner: str) -> dict[str, Any]:
        """One report message for ``owner``'s subject: the answer sent back (never raises)."""
        try:
            body = json.loads(data)
        except (ValueError, UnicodeDecodeError):
            return {"ok": False, "error": "report refused: the message is not JSON"}
        if not isinstance(body, dict):
            return {"ok": False, "error": "report refused: send a JSON object"}
        service, task_id, state = body.get("service"), body.get("task_id"), body.get("state")
        for name, value in (("service", service), ("task_id", task_id), ("state", state)):
            if not isinstance(value, str) or not value.strip():
                return {"ok": False, "error": f"report refused: {name!r} must be a string"}
        if _owner_name(service) != _owner_name(owner):
            return {
                "ok": False,
                "error": f"report refused: service {service!r} may not report on the "
                f"subject of {owner!r}",
            }
        assert self._store is not None
        try:
            result = services.report(self._store, task_id, service, state, body.get("detail"))
        except OtfError as exc:
            return {"ok": False, "error": str(exc).splitlines()[0]}
        except Exception as exc:  # a broken message must not end the subscriber
            return {"ok": False, "error": f"report failed: {_line(exc)}"}
        return {"ok": True, **result.to_dict()}


async def _quiet(exc: Exception) -> None:
    pass
