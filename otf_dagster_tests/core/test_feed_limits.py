"""Requests at a time per feed host (``OTF_FEED_MAX_PER_HOST``, ``OTF_FEED_HOST_LIMITS``), on
loopback servers that count what they are serving and answer only when the test lets them:
the limit holds per host, across every base URL on it, and a host that does not answer does
not hold back a pool's tasks on another host."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from otf_dagster.feeds.clients import Clients
from otf_dagster.handlers import task_types
from otf_dagster.vocab.tasks import TaskState
from otf_dagster_tests.core.test_pool import PoolThread, ping_type, schedule, script, tick
from otf_dagster_tests.helpers import ScriptedFeed, wait_for


class GatedFeed:
    """A JSON endpoint on 127.0.0.1 that answers a request only with a ticket (``admit``) or
    once opened (``open``); it counts the requests it holds at once (``in_flight``, ``most``)."""

    def __init__(self, doc: Any) -> None:
        self.body = json.dumps(doc).encode()
        self.in_flight = self.most = self.served = 0
        self.tickets = 0
        self.opened = False
        self.cond = threading.Condition()
        feed = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                feed._enter()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(feed.body)))
                self.end_headers()
                self.wfile.write(feed.body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _enter(self) -> None:
        with self.cond:
            self.in_flight += 1
            self.most = max(self.most, self.in_flight)
            self.cond.notify_all()
            self.cond.wait_for(lambda: self.opened or self.tickets > 0)
            if not self.opened:
                self.tickets -= 1
            self.in_flight -= 1
            self.served += 1
            self.cond.notify_all()

    def admit(self) -> None:
        with self.cond:
            self.tickets += 1
            self.cond.notify_all()

    def open(self) -> None:
        with self.cond:
            self.opened = True
            self.cond.notify_all()

    def state(self) -> tuple[int, int]:
        with self.cond:
            return self.in_flight, self.served

    def __enter__(self) -> GatedFeed:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.open()
        self.server.shutdown()
        self.server.server_close()

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"


def test_no_more_than_the_hosts_limit_is_in_flight_across_its_base_urls():
    """Planted: no semaphore (``limit`` ignored): the server held all 12 at once; and the
    override not read (the default 1 applied): ``most`` was 1."""
    k, n = 3, 12
    # the default is 1; the override for 127.0.0.1 (any port) is k
    clients = Clients(per_host=1, host_limits={"127.0.0.1": k}, hosts={}, timeout=(3.05, 300.0))
    with GatedFeed({"ok": True}) as feed, clients:
        bases = [f"{feed.base_url}/a", f"{feed.base_url}/b"]  # two clients, one host
        errors: list[BaseException] = []

        def get(i: int) -> None:
            try:
                clients.for_base(bases[i % 2]).get_json(f"/doc{i}.json")
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=get, args=(i,), daemon=True) for i in range(n)]
        for t in threads:
            t.start()
        wait_for(lambda: feed.state()[0] >= k, f"{k} requests held by the server", 60, every=0.01)
        for done in range(1, n + 1):
            feed.admit()  # one answer; the next waiting request takes its turn
            left = n - done
            wait_for(
                lambda d=done, left=left: feed.state() == (min(k, left), d),
                f"{done} answered and {min(k, left)} held",
                60,
                every=0.01,
            )
        for t in threads:
            t.join(30)
        assert not errors, errors
    assert feed.served == n
    assert feed.most == k, f"the server held {feed.most} requests at once; the limit is {k}"


def test_a_host_that_does_not_answer_does_not_hold_back_tasks_on_another_host(db_url, store):
    """Four tasks on a host that answers nothing until released, three on another host, one
    pool with 8 workers and 2 requests at a time per host: the three finish while the four wait.
    Planted: one semaphore for every host (a global limit of 2): the slow host's two held
    requests took both permits and the three never finished."""
    with GatedFeed({"n": 0, "done": True}) as slow, ScriptedFeed() as fast:
        task_types.apply(store, [ping_type(fast.base_url), ping_type(slow.base_url, name="SLOW")])
        for key in ("a", "b", "c"):
            script(fast, key)
        schedule(store, ["a", "b", "c"])
        store.schedule_tasks("SLOW", [(f"s{i}", datetime.now(UTC), {}) for i in range(4)])
        report = tick(store, capacity=10)
        [pool_id] = report.assigned
        with PoolThread(
            db_url, pool_id, 10, workers=8, per_host=2, host_limits={}, timeout=(1.0, 300.0)
        ) as pool:
            wait_for(lambda: slow.state()[0] == 2, "two held polls of the slow host", 60)
            # generous: a loaded machine is slow, not wrong
            wait_for(
                lambda: len(pool.ended) >= 3, "a, b and c beside the slow host", 120, every=0.05
            )
            assert sorted(t for t, _ in pool.ended) == ["ping:a", "ping:b", "ping:c"]
            assert slow.state() == (2, 0) and slow.most == 2  # still held, never more than 2
            assert {store.get_task(f"slow:s{i}").state for i in range(4)} == {TaskState.STARTED}
            slow.open()
            pool.wait()
    assert {store.get_task(f"slow:s{i}").state for i in range(4)} == {TaskState.FINISHED}
    assert slow.most == 2


def test_a_full_host_holds_no_worker_so_more_slow_tasks_than_workers_starve_nothing(db_url, store):
    """Twelve tasks on a host that answers nothing until released, three on another host,
    a pool of 4 workers and 2 requests at a time per host: a poll finding the slow host's
    turns taken comes back at once (HostBusy) and waits without a thread, so the other host's
    three finish while the slow host holds two requests. Planted: a poll waiting for its
    host's turn (``when_busy="wait"`` in the pool): the slow host's polls took every worker
    and the three never finished."""
    with GatedFeed({"n": 0, "done": True}) as slow, ScriptedFeed() as fast:
        task_types.apply(store, [ping_type(fast.base_url), ping_type(slow.base_url, name="SLOW")])
        now = datetime.now(UTC)
        # the slow host's tasks fall due first, so they are first in line for the workers
        store.schedule_tasks(
            "SLOW", [(f"s{i:02}", now - timedelta(seconds=30), {}) for i in range(12)]
        )
        for key in ("a", "b", "c"):
            script(fast, key)
        schedule(store, ["a", "b", "c"])
        report = tick(store, capacity=20)
        [pool_id] = report.assigned
        with PoolThread(
            db_url, pool_id, 20, workers=4, per_host=2, host_limits={}, timeout=(1.0, 300.0)
        ) as pool:
            wait_for(lambda: slow.state()[0] == 2, "two held polls of the slow host", 60)
            wait_for(
                lambda: len(pool.ended) >= 3, "a, b and c beside the slow host", 120, every=0.05
            )
            assert sorted(t for t, _ in pool.ended) == ["ping:a", "ping:b", "ping:c"]
            assert slow.state() == (2, 0) and slow.most == 2
            assert pool.pool.summary.held_back >= 10  # the other ten came back, not waited
            slow.open()
            pool.wait()
    assert {store.get_task(f"slow:s{i:02}").state for i in range(12)} == {TaskState.FINISHED}
    assert slow.most == 2
