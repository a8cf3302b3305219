"""Issue 17's delivery benchmark: the relay's webhook throughput, commit-to-receipt latency per
sink, and the relay's memory with 100 endpoints.

    python bench/bench_delivery.py [--quick] [--repeats N] [--no-write]

``delivery.webhook_throughput``: events of 10 tasks in the real task database (a type the owner
subscribes to), delivered by ``run_cycle`` (the relay's own cycle: read past the position,
send, one fenced commit per cycle) through a ``WebhookSink`` endpoint with ``batch_size`` 1 (one
signed POST per event) to one loopback receiver (a threaded ``http.server`` answering 204, not
verifying). Baseline: a raw loop POSTing the same bodies (the ones the receiver got from the
relay) with the same, pre-signed headers through the same client (a ``requests.Session`` with
one pooled keep-alive connection, no retries). Repeats interleaved, medians. Goal >= 0.5x.

``delivery.commit_to_receipt_p99.webhook`` / ``.nats``: a writer thread commits 10 events (10
tasks) every 10 ms on a steady clock (1,000 events/s) while an ``otf relay`` subprocess (the
long-running relay, woken by NOTIFY) delivers them to one endpoint: a loopback receiver, or a
core-NATS subscriber on the subject of a JetStream endpoint (embedded nats-server). Latency is
the receipt time at the receiver/subscriber minus the time the writer sent COMMIT (one clock,
both in this process). Baseline, same events, same run: a durable ``Consumer`` in this process
following with LISTEN/NOTIFY (the database's own delivery, what the relay's hop adds to).
p50 beside p99; goal p99 <= 1 s.

``delivery.relay_rss_100_endpoints``: RSS of an ``otf relay`` subprocess serving 100 webhook
endpoints (to 4 loopback receivers) after it has delivered a steady load (10 events/s, so
1,000 POSTs/s) for a while; baseline: the same process and load with 1 endpoint. Goal <= 150 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402  (sets sys.path for the project too)
import nats  # noqa: E402
import requests  # noqa: E402
from requests.adapters import HTTPAdapter  # noqa: E402

from otf_dagster.core.consumer import Consumer  # noqa: E402
from otf_dagster.core.delivery.relay import RelaySettings, make_sink, run_cycle  # noqa: E402
from otf_dagster.core.services import subscribe  # noqa: E402
from otf_dagster.core.store import TaskStore, polls  # noqa: E402
from otf_dagster.core.store import delivery as dstore  # noqa: E402
from otf_dagster.local import nats as embedded_nats  # noqa: E402
from otf_dagster.vocab.tasks import EventRecord, TaskType  # noqa: E402

GOAL_RATIO = 0.5
GOAL_P99_MS = 1000.0
GOAL_RSS_MB = 150.0
TASK_TYPE = "NBA_GAME_BOXSCORE"
OWNER = "bench"
SECRET_ENV = "OTF_BENCH_HOOK_SECRET"
SECRET = "whsec_" + base64.b64encode(b"bench-delivery-secret-32-bytes!!").decode()
TASKS = 10
FULL = {
    "throughput_events": 3_000,
    "latency_seconds": 20.0,
    "rss_endpoints": 100,
    "rss_receivers": 4,
    "rss_rate": 10,
    "rss_seconds": 40.0,
}
QUICK = {
    "throughput_events": 300,
    "latency_seconds": 3.0,
    "rss_endpoints": 100,
    "rss_receivers": 4,
    "rss_rate": 2,
    "rss_seconds": 5.0,
}
LATENCY_TICK = 0.010  # one transaction of TASKS events every 10 ms: 1,000 events/s


def log(msg: str) -> None:
    print(msg, flush=True)


# --- the receiver ---------------------------------------------------------------------------


class Receiver:
    """A fast loopback webhook receiver: 204 to every POST, keep-alive, no verification. Counts
    requests; with ``capture`` keeps the bodies; with ``timing`` the receipt time per payload i."""

    def __init__(self, *, capture: bool = False, timing: bool = False) -> None:
        self.lock = threading.Lock()
        self.count = 0
        self.bodies: list[bytes] = []
        self.times: dict[int, float] = {}
        self.capture = capture
        self.timing = timing
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                at = time.perf_counter()
                with receiver.lock:
                    receiver.count += 1
                    if receiver.capture:
                        receiver.bodies.append(body)
                    if receiver.timing:
                        receiver.times.setdefault(json.loads(body)["payload"]["i"], at)
                self.send_response_only(204)
                self.send_header("content-length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# --- the database ---------------------------------------------------------------------------


def prepare(url: str) -> TaskStore:
    store = TaskStore(url, application_name="bench-delivery")
    store.apply_task_type(
        TaskType(
            name=TASK_TYPE,
            handler="nba_cdn.boxscore",
            url_template="/boxscore/{key}.json",
            poll_interval_seconds=10,
        )
    )
    subscribe(store, OWNER, TASK_TYPE)
    return store


def event_rows(start: int, n: int) -> list[polls.EventRow]:
    """Events ``start`` .. ``start + n - 1`` of TASKS games, payload ``i`` = the index."""
    rows = []
    for i in range(start, start + n):
        game = i % TASKS
        rows.append(
            (
                f"nba_game_boxscore:{game:010d}",
                f"run-{game}",
                TASK_TYPE,
                EventRecord(
                    i // TASKS + 1,
                    "score_changed",
                    {"i": i, "home": i % 120, "away": i % 117, "period": 1 + i % 4},
                ),
            )
        )
    return rows


def webhook_endpoint(store: TaskStore, url: str) -> dict:
    return dstore.add_endpoint(
        store, owner=OWNER, sink="webhook", url=url, secret_envs=[SECRET_ENV], batch_size=1,
        from_start=True,
    )  # fmt: skip


# --- webhook throughput --------------------------------------------------------------------


def through_relay(store: TaskStore, receiver: Receiver, n: int) -> float:
    """A fresh endpoint from the start; run_cycle until all n events are accepted."""
    holder = f"bench-{time.time_ns()}"
    eid = webhook_endpoint(store, receiver.url)["endpoint_id"]
    dstore.claim_endpoints(store, holder, 300, 10_000)
    settings = RelaySettings()
    sink = make_sink(dstore.get_endpoint(store, eid), settings, env={SECRET_ENV: SECRET})
    before = receiver.count
    began = time.perf_counter()
    while receiver.count - before < n:
        endpoint = dstore.read_leased(store, eid, holder)
        result = run_cycle(store, endpoint, sink, holder=holder, settings=settings)
        if result.failed:
            raise SystemExit(f"bench: the relay failed a POST: {result}")
        if result.sent == 0 and not result.more:
            break
    elapsed = time.perf_counter() - began
    sink.close()
    delivered = receiver.count - before
    if delivered != n:
        raise SystemExit(f"bench: the relay delivered {delivered} of {n} events")
    dstore.set_state(store, eid, "paused")
    dstore.release_endpoints(store, holder)
    return n / elapsed


def raw_posts(url: str, bodies: list[bytes]) -> float:
    """The same bodies, pre-signed, POSTed one by one with the sink's client set-up."""
    signer = make_sink(
        {"sink": "webhook", "url": url, "secret_envs": [SECRET_ENV], "batch_size": 1,
         "allow_link_local": False},
        RelaySettings(),
        env={SECRET_ENV: SECRET},
    )  # fmt: skip
    now = time.time()
    requests_ = [(body, signer.headers(json.loads(body)["id"], body, now)) for body in bodies]
    signer.close()
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=1, pool_maxsize=1, max_retries=0)
    session.mount("http://", adapter)
    session.post(url, data=requests_[0][0], headers=requests_[0][1], timeout=15).close()
    began = time.perf_counter()
    for body, headers in requests_:
        response = session.post(
            url, data=body, headers=headers, timeout=(5.0, 15.0), allow_redirects=False
        )
        if response.status_code != 204:
            raise SystemExit(f"bench: raw POST answered {response.status_code}")
        response.close()
    elapsed = time.perf_counter() - began
    session.close()
    return len(requests_) / elapsed


def webhook_throughput(server, sizes: dict, repeats: int, common: dict) -> list[dict]:
    n = sizes["throughput_events"]
    results: list[dict] = []
    with server.fresh_database() as url:
        store = prepare(url)
        for start in range(0, n, 1000):
            store.append_events(event_rows(start, min(1000, n - start)))
        receiver = Receiver(capture=True)
        relay_rates: list[float] = []
        raw_rates: list[float] = []
        try:
            for r in range(repeats):
                receiver.capture = r == 0
                relay_rates.append(through_relay(store, receiver, n))
                raw_rates.append(raw_posts(receiver.url, receiver.bodies))
                log(
                    f"  repeat {r + 1}: relay={relay_rates[-1]:,.0f}/s "
                    f"raw POST loop={raw_rates[-1]:,.0f}/s"
                )
        finally:
            receiver.close()
            store.close()
    value, baseline = statistics.median(relay_rates), statistics.median(raw_rates)
    _common.record(
        results,
        "delivery.webhook_throughput",
        value,
        "events/s",
        "raw POST loop of the same bodies, pre-signed, same requests.Session set-up",
        baseline,
        goal=f">= {GOAL_RATIO}x",
        goal_met=value / baseline >= GOAL_RATIO,
        samples=relay_rates,
        baseline_samples=raw_rates,
        events=n,
        batch_size=1,
        note=(
            "run_cycle (read 500 past the position, one signed POST per event, one fenced "
            "commit per cycle) to one threaded http.server on 127.0.0.1 answering 204"
        ),
        **common,
    )
    return results


# --- commit to receipt ---------------------------------------------------------------------


def otf_executable() -> str:
    path = Path(sys.executable).parent / "otf"
    if not path.exists():
        raise SystemExit(f"bench: {path} not found: install the project (pip install -e .)")
    return str(path)


@contextlib.contextmanager
def relay_process(url: str, log_path: Path):
    env = {**os.environ, "OTF_DATABASE_URL": url, SECRET_ENV: SECRET}
    env.pop("OTF_NATS_URL", None)
    with open(log_path, "wb") as out:
        proc = subprocess.Popen([otf_executable(), "relay"], env=env, stdout=out, stderr=out)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def rss_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of a process in MB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    return fields["VmRSS"], fields["VmHWM"]


class Writer(threading.Thread):
    """Commits ``per_tick`` events every ``tick`` s on a steady clock for ``seconds``;
    ``sent[i]`` = when the COMMIT of event i was sent (perf_counter)."""

    def __init__(self, url: str, start: int, per_tick: int, tick: float, seconds: float):
        super().__init__(daemon=True)
        self.store = TaskStore(url, application_name="bench-writer")
        self.start_i, self.per_tick, self.tick, self.seconds = start, per_tick, tick, seconds
        self.sent: dict[int, float] = {}
        self.late: list[float] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            conn = self.store.conn
            ticks = int(round(self.seconds / self.tick))
            t0 = time.perf_counter()
            i = self.start_i
            for k in range(ticks):
                due = t0 + k * self.tick
                now = time.perf_counter()
                if due > now:
                    time.sleep(due - now)
                else:
                    self.late.append(now - due)
                rows = event_rows(i, self.per_tick)
                with conn.transaction():
                    polls.copy_events(conn, rows)
                    at = time.perf_counter()  # the block's end sends COMMIT
                for j in range(i, i + self.per_tick):
                    self.sent[j] = at
                i += self.per_tick
            self.elapsed = time.perf_counter() - t0
        except BaseException as exc:  # reported by the caller
            self.error = exc
        finally:
            self.store.close()


class Follower(threading.Thread):
    """The baseline: a durable Consumer following with NOTIFY; receipt time per payload i."""

    def __init__(self, url: str, store: TaskStore, name: str) -> None:
        super().__init__(daemon=True)
        subscribe(store, name, TASK_TYPE)
        self.url, self.name = url, name
        self.times: dict[int, float] = {}
        self.ready = threading.Event()
        self.stop = threading.Event()

    def run(self) -> None:
        with Consumer(self.url, self.name, start="end", application_name="bench-follower") as c:
            stream = c.iter_events(follow=True, batch=500, poll_interval=5.0, timeout=1.0)
            self.ready.set()
            while not self.stop.is_set():
                for ev in stream:
                    self.times.setdefault(ev["payload"]["i"], time.perf_counter())
                stream = c.iter_events(follow=True, batch=500, poll_interval=5.0, timeout=1.0)


class NatsSubscriber:
    """A core-NATS subscriber on ``prefix.>``: receipt time per payload i."""

    def __init__(self, url: str, prefix: str) -> None:
        self.times: dict[int, float] = {}
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

        async def connect():
            nc = await nats.connect(url)

            async def on_msg(msg):
                at = time.perf_counter()
                self.times.setdefault(json.loads(msg.data)["payload"]["i"], at)

            await nc.subscribe(f"{prefix}.>", cb=on_msg)
            await nc.flush()
            return nc

        self.nc = asyncio.run_coroutine_threadsafe(connect(), self.loop).result(10)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.nc.close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def wait_until(condition, seconds: float, every: float = 0.05) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(every)
    return condition()


def latency_run(server, sink: str, sizes: dict, nats_url: str | None) -> dict:
    """One sink: warm up, then the steady writer; latencies (ms) of relay and follower."""
    with server.fresh_database() as url:
        store = prepare(url)
        receiver = subscriber = None
        if sink == "webhook":
            receiver = Receiver(timing=True)
            webhook_endpoint(store, receiver.url)
            times = receiver.times
        else:
            prefix = f"bench.latency{time.time_ns()}"
            subscriber = NatsSubscriber(nats_url, prefix)
            dstore.add_endpoint(
                store, owner=OWNER, sink="nats", url=nats_url, nats_subject=prefix, from_start=True
            )
            times = subscriber.times
        follower = Follower(url, store, f"follower-{sink}")
        follower.start()
        follower.ready.wait(10)
        log_path = _common.ROOT / ".otf" / f"bench-delivery-relay-{sink}.log"
        try:
            with relay_process(url, log_path) as proc:
                # Warm-up: a few events until the relay has leased the endpoint and delivers.
                warm = 0
                while not times:
                    if proc.poll() is not None:
                        raise SystemExit(f"bench: otf relay exited; see {log_path}")
                    store.append_events(event_rows(10_000_000 + warm, 1))
                    warm += 1
                    time.sleep(0.2)
                    if warm > 300:
                        raise SystemExit(f"bench: no delivery within 60 s; see {log_path}")
                time.sleep(0.5)
                start = 0
                writer = Writer(url, start, TASKS, LATENCY_TICK, sizes["latency_seconds"])
                writer.start()
                writer.join()
                if writer.error is not None:
                    raise writer.error
                expected = set(writer.sent)
                wait_until(lambda: all(i in times for i in expected), 30, 0.2)
                wait_until(lambda: all(i in follower.times for i in expected), 10, 0.2)
                rss, hwm = rss_mb(proc.pid)
        finally:
            follower.stop.set()
            follower.join(10)
            if receiver is not None:
                receiver.close()
            if subscriber is not None:
                subscriber.close()
            store.close()
    got = [(times[i] - writer.sent[i]) * 1000 for i in writer.sent if i in times]
    base = [(follower.times[i] - writer.sent[i]) * 1000 for i in writer.sent if i in follower.times]
    missing = len(writer.sent) - len(got)
    # An event never received counts as later than any received one.
    padded = got + [float("inf")] * missing
    return {
        "sink": sink,
        "p50": percentile(padded, 50),
        "p99": percentile(padded, 99),
        "max": max(padded),
        "base_p50": percentile(base, 50),
        "base_p99": percentile(base, 99),
        "events": len(writer.sent),
        "received": len(got),
        "missing": missing,
        "rate": len(writer.sent) / writer.elapsed,
        "writer_late_ticks": len(writer.late),
        "writer_max_late_ms": max(writer.late, default=0.0) * 1000,
        "relay_rss_mb": rss,
        "relay_hwm_mb": hwm,
    }


def commit_to_receipt(server, sizes: dict, common: dict) -> list[dict]:
    results: list[dict] = []
    folder = _common.ROOT / ".otf" / "bench-nats"
    embedded_nats.stop(folder)
    nats_server = embedded_nats.start(folder)
    runs = []
    try:
        for sink in ("webhook", "nats"):
            log(f"latency: {sink}, {1 / LATENCY_TICK * TASKS:,.0f} events/s for "
                f"{sizes['latency_seconds']:g} s, otf relay subprocess ...")  # fmt: skip
            run = latency_run(server, sink, sizes, nats_server.url)
            log(
                f"  {sink}: p50={run['p50']:.1f} ms p99={run['p99']:.1f} ms "
                f"(consumer p50={run['base_p50']:.1f} p99={run['base_p99']:.1f} ms), "
                f"{run['received']:,}/{run['events']:,} received, writer {run['rate']:,.0f}/s"
            )
            runs.append(run)
    finally:
        nats_server.stop()
    for run in runs:
        extra = {k: v for k, v in run.items() if k not in ("p99", "base_p99")}
        _common.record(
            results,
            f"delivery.commit_to_receipt_p99.{run['sink']}",
            run["p99"],
            "ms",
            "durable Consumer following with LISTEN/NOTIFY, same events, same run (p99)",
            run["base_p99"],
            goal=f"<= {GOAL_P99_MS:g} ms",
            goal_met=run["p99"] <= GOAL_P99_MS,
            lower_is_better=True,
            note=(
                f"writer commits {TASKS} events every {LATENCY_TICK * 1000:g} ms; otf relay "
                "subprocess (NOTIFY-woken); from the writer sending COMMIT to receipt at the "
                + (
                    "loopback receiver (batch_size 1)"
                    if run["sink"] == "webhook"
                    else "core-NATS subscriber of the JetStream endpoint's subjects"
                )
            ),  # fmt: skip
            **extra,
            **common,
        )
    return results


# --- relay memory ---------------------------------------------------------------------------


def rss_run(server, endpoints: int, sizes: dict) -> dict:
    with server.fresh_database() as url:
        store = prepare(url)
        receivers = [Receiver() for _ in range(min(sizes["rss_receivers"], endpoints))]
        for k in range(endpoints):
            webhook_endpoint(store, receivers[k % len(receivers)].url)
        log_path = _common.ROOT / ".otf" / f"bench-delivery-relay-rss{endpoints}.log"

        def delivered() -> int:
            return sum(r.count for r in receivers)

        try:
            with relay_process(url, log_path) as proc:
                store.append_events(event_rows(10_000_000, 1))
                if not wait_until(lambda: delivered() >= endpoints, 60, 0.1):
                    raise SystemExit(f"bench: warm-up not delivered in 60 s; see {log_path}")
                idle_rss, _ = rss_mb(proc.pid)
                rate = sizes["rss_rate"]
                # one transaction of `rate` events a second, as `rate` runners' polls
                writer = Writer(url, 0, rate, 1.0, sizes["rss_seconds"])
                writer.start()
                samples = []
                while writer.is_alive():
                    writer.join(1.0)
                    samples.append(rss_mb(proc.pid)[0])
                if writer.error is not None:
                    raise writer.error
                expected = endpoints * (len(writer.sent) + 1)
                caught_up = wait_until(lambda: delivered() >= expected, 60, 0.1)
                rss, hwm = rss_mb(proc.pid)
                if proc.poll() is not None:
                    raise SystemExit(f"bench: otf relay exited; see {log_path}")
        finally:
            for r in receivers:
                r.close()
            store.close()
    return {
        "rss": rss,
        "hwm": hwm,
        "idle_rss": idle_rss,
        "samples": samples,
        "delivered": delivered(),
        "expected": expected,
        "caught_up": caught_up,
        "posts_per_s": endpoints * rate,
    }


def relay_rss(server, sizes: dict, common: dict) -> list[dict]:
    results: list[dict] = []
    runs = {}
    for endpoints in (1, sizes["rss_endpoints"]):
        log(
            f"rss: otf relay, {endpoints} endpoint(s), {sizes['rss_rate']} events/s "
            f"for {sizes['rss_seconds']:g} s ..."
        )
        runs[endpoints] = rss_run(server, endpoints, sizes)
        r = runs[endpoints]
        log(
            f"  {endpoints}: RSS {r['rss']:.1f} MB (peak {r['hwm']:.1f}, idle {r['idle_rss']:.1f}), "
            f"delivered {r['delivered']:,}/{r['expected']:,}"
        )
    many, one = runs[sizes["rss_endpoints"]], runs[1]
    _common.record(
        results,
        "delivery.relay_rss_100_endpoints",
        many["rss"],
        "MB",
        "the same otf relay process and load with 1 endpoint (RSS)",
        one["rss"],
        goal=f"<= {GOAL_RSS_MB:g} MB",
        goal_met=many["rss"] <= GOAL_RSS_MB and many["caught_up"],
        lower_is_better=True,
        endpoints=sizes["rss_endpoints"],
        receivers=sizes["rss_receivers"],
        peak_mb=many["hwm"],
        idle_mb=many["idle_rss"],
        rss_samples=many["samples"],
        delivered=many["delivered"],
        expected=many["expected"],
        caught_up=many["caught_up"],
        posts_per_s=many["posts_per_s"],
        baseline_peak_mb=one["hwm"],
        events_per_s=sizes["rss_rate"],
        seconds=sizes["rss_seconds"],
        note=(
            "VmRSS of the otf relay subprocess (one worker thread per endpoint, store pool of 4) "
            "after the load, every event delivered to every endpoint"
        ),
        **common,
    )
    return results


def run(quick: bool, repeats: int) -> list[dict]:
    sizes = QUICK if quick else FULL
    results: list[dict] = []
    with _common.bench_server() as server:
        info = server.machine()
        log(f"machine: {_common.machine_line(info)}")
        common = {"machine": info, "mode": "quick" if quick else "full", "repeats": repeats}
        log(f"webhook throughput: {sizes['throughput_events']:,} events, batch_size 1 ...")
        results += webhook_throughput(server, sizes, repeats, common)
        common1 = {**common, "repeats": 1}
        results += commit_to_receipt(server, sizes, common1)
        results += relay_rss(server, sizes, common1)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smoke sizes (figures not comparable)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="do not touch bench/results.json")
    args = parser.parse_args()
    results = run(args.quick, args.repeats)
    print()
    _common.print_table(results)
    if not args.no_write:
        path = _common.write_results(results)
        log(f"\nmerged into {path}")


if __name__ == "__main__":
    main()
