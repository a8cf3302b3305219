"""The relay: sends each endpoint's events from its durable position, at least once, in order
per task, and records what happened, under a lease per endpoint.

One cycle of one endpoint (``run_cycle``):
1. the due retries: each task's first owed event (``delivery_pending``), when its time came;
2. the new events past the position, in ``seq`` order: an event of a task that still owes an
   earlier one is held (a pending row, no send); the others are sent in batches;
3. one fenced commit: pending rows resolved, failed or held, failed attempts, and the position
   past every event now either accepted or pending. Nothing is advanced past an event that was
   neither, so a relay killed before the commit re-sends those events (same ids) later.
The first failure ends the cycle (a dead or hanging receiver costs one timeout per cycle, not
one per event); the failed event waits for its next attempt on the retry schedule, its task's
later events wait behind it, other tasks' go on in the next cycle.

``Relay.run`` hosts the cycles: it takes leases on active endpoints (renewed every third of the
lease), runs one worker thread per leased endpoint (a hanging receiver blocks only its own),
wakes the workers on NOTIFY ``otf_events`` and stops on its ``stop`` event. ``otf relay`` and
the Dagster relay job both run it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from otf_dagster import settings
from otf_dagster.core.delivery.nats_sink import NatsSink
from otf_dagster.core.delivery.sink import EventBody, Outcome, Sink
from otf_dagster.core.delivery.webhook import WebhookSink, validate_secret
from otf_dagster.core.store import delivery as dstore
from otf_dagster.core.store.db import connect, listen, translated_errors
from otf_dagster.core.store.store import TaskStore
from otf_dagster.exceptions import ConfigError, DatabaseUnavailable, OtfError

log = logging.getLogger("otf.relay")

CHANNEL = "otf_events"
DEFAULT_SCHEDULE: tuple[float, ...] = settings.DELIVERY_RETRY_SCHEDULE.default  # Svix's


@dataclass(frozen=True)
class RelaySettings:
    retry_schedule: tuple[float, ...] = DEFAULT_SCHEDULE
    timeout: float = settings.DELIVERY_TIMEOUT.default  # a webhook's answer (its headers)
    retry_after_cap: float = settings.DELIVERY_RETRY_AFTER_CAP.default
    disable_after: float = settings.DELIVERY_DISABLE_AFTER.default  # failing this long: disabled
    warn_after: float = settings.DELIVERY_WARN_AFTER.default  # failing this long: "warning"
    lease_seconds: float = settings.DELIVERY_LEASE_SECONDS.default
    read_batch: int = 500
    idle_wait: float = 2.0  # a worker re-checks this often without a NOTIFY
    max_endpoints: int = 500
    nats_url: str | None = None  # for NATS endpoints without a URL of their own

    ENV = {
        "retry_schedule": settings.DELIVERY_RETRY_SCHEDULE,
        "timeout": settings.DELIVERY_TIMEOUT,
        "retry_after_cap": settings.DELIVERY_RETRY_AFTER_CAP,
        "disable_after": settings.DELIVERY_DISABLE_AFTER,
        "warn_after": settings.DELIVERY_WARN_AFTER,
        "lease_seconds": settings.DELIVERY_LEASE_SECONDS,
    }

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> RelaySettings:
        """Defaults, then the OTF_DELIVERY_* variables (seconds), then ``overrides``."""
        values: dict[str, Any] = {name: s.read(env) for name, s in cls.ENV.items()}
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


def parse_schedule(raw: str, what: str = "retry schedule") -> tuple[float, ...]:
    return settings.delays(raw, what)


def event_id(seq: int) -> str:
    """The event's stable id: the same on every retry and replay (seq never changes)."""
    return f"evt_{seq}"


def event_body(row: Mapping[str, Any]) -> EventBody:
    at = row["time"]
    if isinstance(at, datetime):
        at = at.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return EventBody(
        id=event_id(row["seq"]),
        seq=row["seq"],
        task_id=row["task_id"],
        task_runner_id=row.get("task_runner_id"),
        task_type=row["task_type"],
        task_seq=row["task_seq"],
        kind=row["kind"],
        time=str(at),
        payload=row["payload"] or {},
        key=row.get("external_key") or row["task_id"],
    )


def make_sink(
    endpoint: Mapping[str, Any],
    settings: RelaySettings,
    *,
    env: Mapping[str, str] | None = None,
    clock: Callable[[], float] = time.time,
) -> Sink:
    """The endpoint's sink; ConfigError (one line) when its secret or server is missing. The
    signature's timestamp is wall-clock time (receivers check it), whatever ``clock`` says."""
    env = os.environ if env is None else env
    if endpoint["sink"] == "webhook":
        secrets = [validate_secret(v, env.get(v)) for v in endpoint["secret_envs"]]
        return WebhookSink(
            endpoint["url"],
            secrets,
            batched=endpoint["batch_size"] > 1,
            timeout=settings.timeout,
            retry_after_cap=settings.retry_after_cap,
            allow_link_local=endpoint["allow_link_local"],
        )
    url = endpoint["url"] or settings.nats_url
    if not url:
        raise ConfigError(
            f"endpoint {endpoint['endpoint_id']} has no NATS server: set OTF_NATS_URL or add it "
            "with --nats-url"
        )
    return NatsSink(endpoint["nats_subject"], url, timeout=min(settings.timeout, 10.0))


def _at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


class RateLimiter:
    """A token bucket: ``wait_time(n)`` says how long to wait before sending n events."""

    def __init__(self, per_second: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = per_second
        self.clock = clock
        self.tokens = max(1.0, per_second)
        self.burst = max(1.0, per_second)
        self.at = clock()

    def wait_time(self, n: int) -> float:
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        need = min(float(n), self.burst)
        if self.tokens >= need:
            self.tokens -= need
            return 0.0
        wait = (need - self.tokens) / self.rate
        self.tokens -= need  # reserved: the caller waits, then sends
        return wait


@dataclass
class CycleResult:
    sent: int = 0  # events accepted this cycle
    failed: int = 0  # events whose attempt failed
    held: int = 0
    more: bool = False  # a full read: run again at once
    wait: float | None = None  # the endpoint is held (Retry-After) this long


def _failure_rows(
    rows: Sequence[Mapping[str, Any]],
    outcome: Outcome,
    now: float,
    settings: RelaySettings,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Pending rows and attempt rows for events whose attempt failed."""
    pending, attempts = [], []
    for row in rows:
        made = int(row.get("attempts") or 0) + 1
        dead = made >= len(settings.retry_schedule)
        delay = 0.0 if dead else settings.retry_schedule[made]
        if outcome.retry_after is not None:
            delay = max(delay, outcome.retry_after)
        pending.append(
            {
                "seq": row["seq"],
                "task_id": row["task_id"],
                "attempts": made,
                "next_attempt_at": _at(now + delay),
                "dead": dead,
                "last_status": outcome.status,
                "last_error": outcome.error,
            }
        )
        attempts.append(
            {
                "seq": row["seq"],
                "attempt": made,
                "at": _at(now),
                "status": outcome.status,
                "error": outcome.error,
                "response_start": outcome.response_start[:512] or None,
            }
        )
    return pending, attempts


def run_cycle(
    store: TaskStore,
    endpoint: Mapping[str, Any],
    sink: Sink,
    *,
    holder: str,
    settings: RelaySettings,
    clock: Callable[[], float] = time.time,
    limiter: RateLimiter | None = None,
    sleep: Callable[[float], Any] = time.sleep,
) -> CycleResult:
    """One cycle of one endpoint (see the module docstring); LeaseLost when its lease went."""
    eid = endpoint["endpoint_id"]
    result = CycleResult()
    now = clock()
    hold = endpoint.get("hold_until")
    if hold is not None and hold.timestamp() > now:
        result.wait = hold.timestamp() - now
        return result
    all_or_nothing = getattr(sink, "all_or_nothing", False)
    batch = max(1, int(endpoint["batch_size"]))
    w = dstore.CycleWrite(
        endpoint_id=eid,
        holder=holder,
        now=_at(now),
        position=endpoint["position"],
        failing_since=endpoint.get("failing_since"),
    )
    failure: Outcome | None = None

    def send(rows: Sequence[Mapping[str, Any]]) -> Outcome:
        if limiter is not None:
            wait = limiter.wait_time(len(rows))
            if wait > 0:
                sleep(wait)
        return sink.send([event_body(r) for r in rows])

    def settle(chunk: Sequence[Mapping[str, Any]], outcome: Outcome) -> tuple[list, list]:
        """Count what the sink accepted, owe what it refused: (accepted rows, failed rows).
        A sink that takes a batch whole or not at all fails every refused row; otherwise only
        the first refused one was tried."""
        ok = list(chunk[: outcome.accepted])
        w.delivered += len(ok)
        result.sent += len(ok)
        w.succeeded = w.succeeded or bool(ok)
        rest = chunk[outcome.accepted :]
        bad = list(rest) if all_or_nothing else list(rest[:1])
        if bad:
            pending, attempts = _failure_rows(bad, outcome, now, settings)
            w.pending.extend(pending)
            w.attempts.extend(attempts)
            result.failed += len(bad)
        return ok, bad

    # 1. due retries: each task's first owed event
    heads = dstore.due_pending(store, eid, _at(now), settings.read_batch)
    for i in range(0, len(heads), batch):
        chunk = heads[i : i + batch]
        outcome = send(chunk)
        ok, bad = settle(chunk, outcome)
        w.delivered_pending.extend(r["seq"] for r in ok)
        if bad:
            failure = outcome
            break

    # 2. new events past the position
    if failure is None:
        events, horizon = dstore.new_events(store, endpoint, settings.read_batch)
        blocked = dstore.blocked_tasks(store, eid, sorted({e["task_id"] for e in events}))
        position = endpoint["position"]
        i = 0
        while i < len(events) and failure is None:
            ev = events[i]
            if ev["task_id"] in blocked:  # an earlier event of this task is still owed
                w.pending.append(
                    {
                        "seq": ev["seq"],
                        "task_id": ev["task_id"],
                        "attempts": 0,
                        "next_attempt_at": _at(now),
                        "dead": False,
                        "last_status": None,
                        "last_error": None,
                    }
                )
                result.held += 1
                position = ev["seq"]
                i += 1
                continue
            chunk = []
            while i < len(events) and len(chunk) < batch and events[i]["task_id"] not in blocked:
                chunk.append(events[i])
                i += 1
            outcome = send(chunk)
            ok, bad = settle(chunk, outcome)
            if ok:
                position = ok[-1]["seq"]
            if bad:
                position = bad[-1]["seq"]
                failure = outcome
        if failure is None and len(events) < settings.read_batch:
            position = max(position, horizon)  # every matching event <= horizon is handled
        else:
            result.more = failure is None
        w.position = max(position, endpoint["position"])

    if failure is not None:
        w.failed = True
        w.error = failure.error
        w.failing_since = endpoint.get("failing_since") or _at(now)
        if failure.retry_after is not None:
            w.hold_until = _at(now + failure.retry_after)
        if failure.gone:
            w.disable_reason = f"410 Gone at {_at(now).isoformat(timespec='seconds')}"
        elif now - w.failing_since.timestamp() >= settings.disable_after:
            w.disable_reason = (
                f"failing since {w.failing_since.isoformat(timespec='seconds')}, longer than "
                f"{settings.disable_after / 86400:g} days: resume it when the service is back"
            )
    elif w.succeeded:
        w.failing_since = None
    if w.delivered or w.pending or w.attempts or w.position != endpoint["position"] or w.failed:
        dstore.commit_cycle(store, w)
    return result


# --- health ---------------------------------------------------------------------------------


def health(
    store: TaskStore, endpoint: Mapping[str, Any], settings: RelaySettings, now: float | None = None
) -> dict[str, Any]:
    """What a person asks of an endpoint: its state (active, failing, warning before it is
    disabled, paused, disabled), lag in events, last success and failure."""
    now = time.time() if now is None else now
    counts = dstore.lag(store, endpoint["endpoint_id"])
    state = endpoint["state"]
    since = endpoint.get("failing_since")
    if state == "active" and since is not None:
        failing_for = now - since.timestamp()
        state = "warning" if failing_for >= settings.warn_after else "failing"
    target = endpoint["url"] if endpoint["sink"] == "webhook" else endpoint["nats_subject"]
    return {
        "endpoint_id": endpoint["endpoint_id"],
        "owner": endpoint["owner"],
        "sink": endpoint["sink"],
        "target": target,
        "state": state,
        "reason": endpoint.get("state_reason"),
        "lag": counts["unsent"] + counts["pending"],
        "pending": counts["pending"],
        "dead": counts["dead"],
        "delivered": endpoint["delivered"],
        "position": endpoint["position"],
        "failing_since": since,
        "last_success_at": endpoint.get("last_success_at"),
        "last_failure_at": endpoint.get("last_failure_at"),
        "last_error": endpoint.get("last_error"),
        "leased_by": endpoint.get("lease_holder")
        if endpoint.get("lease_until") and endpoint["lease_until"].timestamp() > time.time()
        else None,
    }


# --- the host -----------------------------------------------------------------------------


def relay_id() -> str:
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class _Worker(threading.Thread):
    def __init__(self, relay: Relay, endpoint: Mapping[str, Any]) -> None:
        super().__init__(name=f"relay-endpoint-{endpoint['endpoint_id']}", daemon=True)
        self.relay = relay
        self.endpoint_id = endpoint["endpoint_id"]
        self.wake = threading.Event()
        self.halt = threading.Event()
        self.sink: Sink | None = None
        self.limiter: RateLimiter | None = None

    def run(self) -> None:
        r = self.relay
        try:
            while not self.halt.is_set() and not r.stop_event.is_set():
                wait = r.settings.idle_wait
                try:
                    endpoint = dstore.read_leased(r.store, self.endpoint_id, r.holder)
                    if endpoint is None or endpoint["state"] != "active":
                        return  # lease lost, paused, disabled or removed
                    if self.sink is None:
                        self.sink = self._sink(endpoint)
                        if self.sink is None:
                            self.halt.wait(max(wait, 10.0))
                            continue
                    result = run_cycle(
                        r.store,
                        endpoint,
                        self.sink,
                        holder=r.holder,
                        settings=r.settings,
                        clock=r.clock,
                        limiter=self.limiter,
                        sleep=self.halt.wait,
                    )
                    r.count(result)
                    if result.more:
                        continue
                    if result.wait is not None:
                        wait = min(result.wait, 60.0)
                    else:
                        due = dstore.next_due(r.store, self.endpoint_id)
                        if due is not None:
                            wait = max(0.0, min(wait, due.timestamp() - r.clock()))
                except dstore.LeaseLost:
                    return
                except DatabaseUnavailable as exc:
                    log.warning("relay: %s; retrying", exc)
                    wait = max(wait, 1.0)
                except OtfError as exc:
                    log.warning("relay: endpoint %s: %s", self.endpoint_id, exc)
                    wait = max(wait, 5.0)
                if wait > 0:
                    self.wake.wait(wait)
                    self.wake.clear()
        finally:
            if self.sink is not None:
                with contextlib.suppress(Exception):
                    self.sink.close()

    def _sink(self, endpoint: Mapping[str, Any]) -> Sink | None:
        r = self.relay
        try:
            sink = make_sink(endpoint, r.settings, env=r.env, clock=r.clock)
        except ConfigError as exc:
            log.warning("relay: endpoint %s: %s", self.endpoint_id, exc)
            with contextlib.suppress(OtfError):
                dstore.commit_cycle(
                    r.store,
                    dstore.CycleWrite(
                        endpoint_id=self.endpoint_id,
                        holder=r.holder,
                        now=_at(r.clock()),
                        position=endpoint["position"],
                        failed=True,
                        error=str(exc),
                        failing_since=endpoint.get("failing_since") or _at(r.clock()),
                    ),
                )
            return None
        if endpoint.get("rate_per_s"):
            self.limiter = RateLimiter(endpoint["rate_per_s"])
        return sink


class Relay:
    """Hosts the cycles of every endpoint this relay leases; see the module docstring."""

    def __init__(
        self,
        url: str,
        *,
        settings: RelaySettings | None = None,
        holder: str | None = None,
        clock: Callable[[], float] = time.time,
        env: Mapping[str, str] | None = None,
        pool_size: int = 4,
        deployment_id: str | None = None,
        run_id: str | None = None,
    ) -> None:
        self.deployment_id = deployment_id
        self.run_id = run_id
        self.url = url
        self.settings = settings or RelaySettings.from_env()
        self.holder = holder or relay_id()
        self.clock = clock
        self.env = os.environ if env is None else env
        self.store = TaskStore.pooled(url, size=pool_size, application_name="otf-relay")
        self.stop_event = threading.Event()
        self.workers: dict[int, _Worker] = {}
        self.sent = 0
        self.failed = 0
        self._count_lock = threading.Lock()
        self._listen_conn: Any = None
        self._reports: Any = None

    def count(self, result: CycleResult) -> None:
        with self._count_lock:
            self.sent += result.sent
            self.failed += result.failed

    def leased(self) -> list[int]:
        return sorted(eid for eid, w in self.workers.items() if w.is_alive())

    def refresh(self) -> list[dict[str, Any]]:
        """Renew and take leases; start a worker per newly held endpoint, drop finished ones."""
        held = dstore.claim_endpoints(
            self.store, self.holder, self.settings.lease_seconds, self.settings.max_endpoints
        )
        ids = {e["endpoint_id"] for e in held}
        for eid, worker in list(self.workers.items()):
            if eid not in ids or not worker.is_alive():
                worker.halt.set()
                worker.wake.set()
                if not worker.is_alive():
                    del self.workers[eid]
        for endpoint in held:
            if endpoint["endpoint_id"] not in self.workers:
                worker = _Worker(self, endpoint)
                self.workers[endpoint["endpoint_id"]] = worker
                worker.start()
        self._route_reports(held)
        dstore.relay_heartbeat(
            self.store,
            self.holder,
            deployment_id=self.deployment_id,
            run_id=self.run_id,
            endpoints=len(held),
            delivered=self.sent,
        )
        return held

    def wake_all(self) -> None:
        for worker in list(self.workers.values()):
            worker.wake.set()

    def run(self, stop: threading.Event | None = None, *, on_tick: Callable[[], Any] | None = None):
        """Deliver until ``stop`` is set (or ``self.stop_event``)."""
        stop = stop or self.stop_event
        renew_every = max(0.2, self.settings.lease_seconds / 3)
        next_renew = 0.0
        try:
            while not stop.is_set():
                if time.monotonic() >= next_renew:
                    try:
                        self.refresh()
                        next_renew = time.monotonic() + renew_every
                    except DatabaseUnavailable as exc:
                        log.warning("relay: %s; retrying in 1 s", exc)
                        next_renew = time.monotonic() + 1.0
                    if on_tick is not None:
                        on_tick()
                self._wait_notify(min(1.0, max(0.05, next_renew - time.monotonic())), stop)
        finally:
            self.shutdown()

    def _wait_notify(self, seconds: float, stop: threading.Event) -> None:
        try:
            if self._listen_conn is None or self._listen_conn.closed:
                self._listen_conn = connect(self.url, application_name="otf-relay-listen")
                with translated_errors("listen for events"):
                    listen(self._listen_conn, CHANNEL)
            with translated_errors("wait for events"):
                woke = any(True for _ in self._listen_conn.notifies(timeout=seconds, stop_after=1))
            if woke:
                self.wake_all()
        except DatabaseUnavailable:
            with contextlib.suppress(Exception):
                if self._listen_conn is not None:
                    self._listen_conn.close()
            self._listen_conn = None
            stop.wait(seconds)

    def _route_reports(self, held: Sequence[Mapping[str, Any]]) -> None:
        """Reports over NATS (``reports.{prefix}.{owner}``) for the NATS endpoints held."""
        routes = sorted(
            {
                (e["nats_subject"], e["owner"])
                for e in held
                if e["sink"] == "nats"
                and (e["url"] or self.settings.nats_url)
                and (e["url"] or self.settings.nats_url) == self.settings.nats_url
            }
        )
        if not routes and self._reports is None:
            return
        try:
            if self._reports is None:
                from otf_dagster.core.delivery.reports_nats import NatsReports

                self._reports = NatsReports(self.settings.nats_url, routes)
                self._reports.start(self.url)
            else:
                self._reports.update(routes)
        except OtfError as exc:
            log.warning("relay: NATS reports: %s", exc)
            self._reports = None

    def shutdown(self) -> None:
        for worker in self.workers.values():
            worker.halt.set()
            worker.wake.set()
        for worker in self.workers.values():
            worker.join(timeout=self.settings.timeout + 5)
        self.workers.clear()
        with contextlib.suppress(OtfError):
            dstore.release_endpoints(self.store, self.holder)
            dstore.relay_gone(self.store, self.holder)
        if self._reports is not None:
            with contextlib.suppress(Exception):
                self._reports.stop()
            self._reports = None
        if self._listen_conn is not None:
            with contextlib.suppress(Exception):
                self._listen_conn.close()
        self.store.close()

    def health(self) -> list[dict[str, Any]]:
        return [health(self.store, e, self.settings) for e in dstore.list_endpoints(self.store)]


def with_nats_url(settings: RelaySettings, nats_url: str | None) -> RelaySettings:
    return replace(settings, nats_url=nats_url)


__all__ = [
    "DEFAULT_SCHEDULE",
    "Relay",
    "RelaySettings",
    "event_body",
    "event_id",
    "health",
    "make_sink",
    "run_cycle",
]
