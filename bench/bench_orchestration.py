"""Issue 4's benchmark: the orchestration - the Task Manager sensor, the real system end to end,
a runner's memory, and how many live runners one machine sustains.

    python bench/bench_orchestration.py [--quick] [--repeats N] [--no-write]

1. Sensor tick with 1,000 ready tasks: the real ``task_manager`` sensor
   (``build_task_manager(claim_limit=1000)``) evaluated with ``build_sensor_context`` +
   ``evaluate_tick`` on a real Dagster instance whose storage is PostgreSQL, beside an empty
   tick on the same instance and database (median of several repeats, fresh tasks each time).
   The tick must return 1,000 run requests and one partition-add request of 1,000 keys. Also:
   the daemon-side partition add of those 1,000 keys, and a reconcile tick over 1,000 claimed
   tasks whose runs wait QUEUED and whose heartbeat is older than the grace period.
2. End to end: embedded PostgreSQL, the simulator in-process, the real ``dagster dev``
   (webserver + daemon + code server) with DAGSTER_HOME in a temp folder holding a copy of
   ./dagster.yaml; one NBA_GAME_BOXSCORE task per simulated game, scheduled at its tip-off.
   Per task: first event time - scheduled_at, and claim (STARTED row) - scheduled_at; baseline
   the sensor interval.
3. Memory, sampled every 0.5 s in that same run: peak RSS of each run worker process
   (``dagster api execute_run``) against a bare ``python -c "import dagster"``; RSS of the
   services (webserver, daemon, code servers); peak connections per database.
4. Concurrency: N plain TaskRunners (otf_dagster/runner.py) in N processes, each polling its
   own simulated game every 2 s on the real clock; N ramps up; poll lateness (actual interval
   between two fetches - configured interval) p50/p99, CPU and memory per N.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing as mp
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import warnings  # noqa: E402

import _common  # noqa: E402  (sets sys.path for the project too)

warnings.filterwarnings("ignore", message=".*get_sensor_def will return.*")
import psutil  # noqa: E402
import psycopg  # noqa: E402

from otf_dagster import config  # noqa: E402
from otf_dagster.core.store import TaskStore  # noqa: E402
from otf_dagster.handlers import HANDLERS, task_types  # noqa: E402
from otf_dagster.local import dagster_home  # noqa: E402

TASK_TYPE = "NBA_GAME_BOXSCORE"
TICK_TASKS = 1000
TICK_GOAL_S = 2.0
RUNNER_RSS_GOAL_MB = 150.0
LATENESS_SHARE = 0.10  # a poll is "late" when p99 lateness exceeds this share of the interval

FULL = {
    "repeats": 5,
    "sensor_interval": 5,
    "games": 4,
    "speed": 60.0,
    "first_start": 15.0,
    "spacing": 8.0,
    "ramp": [4, 8, 16, 32, 48, 64, 90],
    "window": 20.0,
    "skip": 2,
    "poll": 2.0,
    "queued_reconcile": True,
}
QUICK = {
    "repeats": 3,
    "sensor_interval": 5,
    "games": 2,
    "speed": 120.0,
    "first_start": 12.0,
    "spacing": 5.0,
    "ramp": [4, 16],
    "window": 10.0,
    "skip": 1,
    "poll": 2.0,
    "queued_reconcile": False,
}


def log(msg: str) -> None:
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {msg}", flush=True)


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    k = (len(s) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def default_types(**overrides: Any) -> list:
    types = []
    for t in task_types.load_file(task_types.DEFAULTS_FILE):
        spec = {**t.to_dict(), **overrides}
        for k in ("created_at", "updated_at", "deleted_at"):
            spec.pop(k, None)
        types.append(task_types.validate(spec))
    return types


@contextlib.contextmanager
def dagster_database(server: _common.BenchServer, tag: str):
    """A separate, empty database for Dagster's storage (its tables would clash with ours)."""
    name = f"otf_bench_dg_{os.getpid()}_{tag}"
    url = server.create_database(name, template=None)
    try:
        yield url
    finally:
        with contextlib.suppress(Exception):
            server.drop_database(name)


# --- 1. the sensor tick -------------------------------------------------------------------------


def seed_ready(url: str, n: int, tag: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        # earlier repeats' tasks end, so each tick sees exactly the fresh ones
        conn.execute("UPDATE tasks SET state = 'FINISHED' WHERE state <> 'FINISHED'")
        conn.execute(
            """
            INSERT INTO tasks (task_id, task_type, external_key, scheduled_at)
            SELECT 'bench:' || %s || ':' || g, %s, %s || '-' || g, now() - interval '1 second' * (g %% 7)
            FROM generate_series(1, %s) g
            """,
            (tag, TASK_TYPE, tag, n),
        )
        conn.execute("ANALYZE tasks")


def bench_sensor(server: _common.BenchServer, cfg: dict, results: list, info: dict) -> None:
    import dagster as dg

    from otf_dagster.definitions import build_definitions
    from otf_dagster.defs.partitions import TASKS_PARTITIONS_NAME
    from otf_dagster.defs.resources import FeedResource, TaskStoreResource

    log(f"1. sensor tick: {TICK_TASKS} ready tasks vs empty, {cfg['repeats']} repeats")
    with server.fresh_database() as task_url, dagster_database(server, "tick") as dg_url:
        with TaskStore(task_url) as store:
            store.apply_task_types(default_types())
        overrides = {"storage": {"postgres": {"postgres_url": config.dagster_storage_url(dg_url)}}}
        with dg.instance_for_test(overrides=overrides) as instance:
            resources = {
                "task_store": TaskStoreResource(database_url=task_url),
                "feeds": FeedResource(provider="nba_cdn", base_url="http://127.0.0.1:9"),
            }
            defs = build_definitions(
                sensor_interval_seconds=30, claim_limit=TICK_TASKS, **resources
            )
            sensor = defs.get_sensor_def("task_manager")
            ref = instance.get_ref()

            def tick():
                # instance_ref, as the code server passes it: the context then loads dynamic
                # partitions (a partitioned RunRequest is validated against them)
                with dg.build_sensor_context(
                    instance_ref=ref, resources=resources, definitions=defs
                ) as ctx:
                    start = time.perf_counter()
                    data = sensor.evaluate_tick(ctx)
                    return time.perf_counter() - start, data

            tick()  # warm-up: imports, first connection paths
            empty, full, adds = [], [], []
            for rep in range(cfg["repeats"]):
                seed_ready(task_url, 0, f"e{rep}")
                t_empty, data = tick()
                if data.run_requests:
                    raise AssertionError(
                        f"empty tick returned {len(data.run_requests)} run requests"
                    )
                empty.append(t_empty)
                seed_ready(task_url, TICK_TASKS, f"r{rep}")
                t_full, data = tick()
                reqs = data.run_requests or []
                dprs = data.dynamic_partitions_requests or []
                if (
                    len(reqs) != TICK_TASKS
                    or len(dprs) != 1
                    or len(dprs[0].partition_keys) != TICK_TASKS
                ):
                    raise AssertionError(
                        f"tick returned {len(reqs)} run requests and {len(dprs)} partition requests "
                        f"({[len(d.partition_keys) for d in dprs]} keys); expected {TICK_TASKS} and 1 of {TICK_TASKS}"
                    )
                if len({r.run_key for r in reqs}) != TICK_TASKS:
                    raise AssertionError("run keys are not unique")
                full.append(t_full)
                # what the daemon does next with the partition request
                start = time.perf_counter()
                instance.add_dynamic_partitions(TASKS_PARTITIONS_NAME, list(dprs[0].partition_keys))
                adds.append(time.perf_counter() - start)
                log(
                    f"   repeat {rep + 1}: empty {t_empty * 1000:.0f} ms, 1000 ready {t_full * 1000:.0f} ms, "
                    f"partition add {adds[-1] * 1000:.0f} ms"
                )

            med_empty, med_full = statistics.median(empty), statistics.median(full)
            common = {"machine": info, "mode": cfg["mode"], "repeats": cfg["repeats"]}
            _common.record(
                results,
                "orchestration.sensor_tick_1000_ready",
                med_full,
                "s",
                "empty tick (same instance, same database)",
                med_empty,
                samples=full,
                baseline_samples=empty,
                goal=f"<= {TICK_GOAL_S} s",
                goal_met=med_full <= TICK_GOAL_S,
                run_requests=TICK_TASKS,
                partition_keys=TICK_TASKS,
                **common,
            )
            _common.record(
                results,
                "orchestration.sensor_tick_1000_ready.vs_budget",
                med_full,
                "s",
                "Dagster's sensor evaluation budget (60 s)",
                60.0,
                **common,
            )
            _common.record(
                results,
                "orchestration.partition_add_1000",
                statistics.median(adds),
                "s",
                "sensor tick with 1000 ready tasks",
                med_full,
                samples=adds,
                note="instance.add_dynamic_partitions of the tick's 1000 keys (done by the daemon after the tick)",
                **common,
            )

            if not cfg["queued_reconcile"]:
                return
            # 1b. the next ticks while those runs wait in the queue (max_concurrent_runs=40):
            # heartbeat older than the grace period -> one Dagster run lookup per task
            log(
                "   reconcile tick: 1000 STARTED tasks whose runs are QUEUED, heartbeat older than grace"
            )
            with psycopg.connect(task_url, autocommit=True) as conn:
                conn.execute("UPDATE tasks SET state = 'FINISHED' WHERE state = 'STARTED'")
                seed_ready(task_url, TICK_TASKS, "q")
            _, data = tick()
            assert len(data.run_requests) == TICK_TASKS
            start = time.perf_counter()
            for r in data.run_requests:
                instance.add_run(
                    dg.DagsterRun(
                        job_name="task_runner",
                        run_id=str(uuid.uuid4()),
                        status=dg.DagsterRunStatus.NOT_STARTED,  # waiting, like QUEUED (needs no origin)
                        tags={**r.tags, "dagster/partition": r.partition_key},
                    )
                )
            t_runs = time.perf_counter() - start
            log(f"   (added {TICK_TASKS} waiting runs in {t_runs:.1f}s)")
            _common.record(
                results,
                "orchestration.add_runs_1000",
                t_runs,
                "s",
                "sensor tick with 1000 ready tasks",
                med_full,
                note="instance.add_run x 1000 (NOT_STARTED runs with the tick's tags) on PostgreSQL storage: "
                "a lower bound of what the daemon spends creating the runs of one 1000-task tick",
                **common,
            )
            with psycopg.connect(task_url, autocommit=True) as conn:
                conn.execute(
                    "UPDATE tasks SET heartbeat_at = now() - interval '90 seconds' WHERE state = 'STARTED'"
                )
            recon = []
            for _ in range(max(2, cfg["repeats"] // 2)):
                t, data = tick()
                if data.run_requests:
                    raise AssertionError(
                        f"reconcile tick re-launched {len(data.run_requests)} queued tasks"
                    )
                recon.append(t)
            med = statistics.median(recon)
            log(f"   reconcile tick: {med:.2f}s (empty {med_empty * 1000:.0f} ms)")
            _common.record(
                results,
                "orchestration.sensor_tick_1000_queued_stale",
                med,
                "s",
                "empty tick (same instance, same database)",
                med_empty,
                samples=recon,
                goal=f"<= {TICK_GOAL_S} s",
                goal_met=med <= TICK_GOAL_S,
                note="1000 STARTED tasks, runs QUEUED in Dagster, heartbeat 90 s old (> grace 60 s): "
                "reconcile looks up each task's run in Dagster's run storage every tick",
                **common,
            )


# --- 2 + 3. the real system end to end ----------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def import_rss(modules: str = "dagster") -> float:
    """RSS (MB) of a fresh interpreter after importing ``modules``."""
    code = f"import {modules}, psutil; print(psutil.Process().memory_info().rss)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    return int(out.stdout.strip().splitlines()[-1]) / 2**20


def classify(cmdline: list[str]) -> str:
    text = " ".join(cmdline)
    # DefaultRunLauncher asks the code server to launch the run; in this Dagster version the code
    # server starts it as a multiprocessing "spawn" child (older ones: `dagster api execute_run`)
    if "execute_run" in text or "execute_step" in text or "multiprocessing.spawn" in text:
        return "run worker"
    # each run's compute-log capture: `tail -F` of stdout/stderr and a watcher that ends them
    if text.startswith("tail -F") or "/dagster/_core/execution/" in text:
        return "run log tailer"
    if "multiprocessing.resource_tracker" in text:
        return "code server"
    if "dagster-webserver" in text or "dagster_webserver" in text:
        return "webserver"
    if "dagster-daemon" in text or "dagster._daemon" in text or "daemon run" in text:
        return "daemon"
    if "grpc" in text or "code-server" in text or "api grpc" in text:
        return "code server"
    if "dagster dev" in text or text.endswith("/dagster dev") or " dev " in text + " ":
        return "dagster dev"
    return "other: " + text[:60]


class Sampler(threading.Thread):
    """Every 0.5 s: RSS of every process below ``root``; every 2 s: connections per database."""

    def __init__(self, root: psutil.Process, admin_url: str, period: float = 0.5) -> None:
        super().__init__(daemon=True, name="rss-sampler")
        self.root = root
        self.admin_url = admin_url
        self.period = period
        self.stop_event = threading.Event()
        self.procs: dict[int, dict[str, Any]] = {}  # pid -> kind, cmd, peak rss, last rss
        self.conns: dict[str, int] = {}
        self.conn_total = 0
        self.seen_pids: dict[int, float] = {}  # pid -> create_time, for cleanup
        self.lock = threading.Lock()

    def run(self) -> None:
        last_conn = 0.0
        admin = None
        with contextlib.suppress(Exception):
            admin = psycopg.connect(self.admin_url, autocommit=True)
        try:
            while not self.stop_event.is_set():
                self.sample()
                if admin is not None and time.monotonic() - last_conn >= 0.5:
                    last_conn = time.monotonic()
                    with contextlib.suppress(Exception):
                        rows = admin.execute(
                            "SELECT datname, count(*) FROM pg_stat_activity WHERE datname IS NOT NULL "
                            "AND pid <> pg_backend_pid() GROUP BY datname"
                        ).fetchall()
                        total = 0
                        for name, n in rows:
                            self.conns[name] = max(self.conns.get(name, 0), n)
                            total += n
                        self.conn_total = max(self.conn_total, total)
                self.stop_event.wait(self.period)
        finally:
            if admin is not None:
                admin.close()

    def sample(self) -> None:
        try:
            procs = [self.root, *self.root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return
        for p in procs:
            try:
                with p.oneshot():
                    rss = p.memory_info().rss
                    cpu = sum(p.cpu_times()[:2])
                    if p.pid not in self.procs:
                        cmd = p.cmdline()
                        self.procs[p.pid] = {
                            "kind": classify(cmd),
                            "cmd": " ".join(cmd)[:160],
                            "peak": 0,
                            "last": 0,
                        }
                        with self.lock:
                            self.seen_pids[p.pid] = p.create_time()
                    rec = self.procs[p.pid]
                    rec["peak"] = max(rec["peak"], rss)
                    rec["last"] = rss
                    rec["cpu"] = cpu
                    rec.setdefault("born", p.create_time())
                    rec["alive_at"] = time.time()
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue

    def live_workers(self) -> int:
        n = 0
        for pid, rec in self.procs.items():
            if rec["kind"] == "run worker" and psutil.pid_exists(pid):
                with contextlib.suppress(psutil.NoSuchProcess):
                    if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                        n += 1
        return n


def stop_group(proc: subprocess.Popen, extra: dict[int, float], timeout: float = 20.0) -> None:
    """SIGTERM the process group we started, then SIGKILL what is left (and any descendant we
    saw, matched by pid + create time so a recycled pid is never hit)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=timeout)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)
    for pid, created in extra.items():
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            p = psutil.Process(pid)
            if abs(p.create_time() - created) < 0.01:
                p.kill()


def wait_for(what: str, fn, timeout: float, period: float = 1.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(period)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


def sensor_ticks(dg_url: str) -> int:
    try:
        with psycopg.connect(dg_url, connect_timeout=5) as conn:
            return conn.execute(
                "SELECT count(*) FROM job_ticks WHERE tick_body LIKE '%%task_manager%%'"
            ).fetchone()[0]
    except psycopg.Error:
        return 0


TASK_TIMES = """
SELECT t.task_id, t.state, t.scheduled_at,
       (SELECT min(s.time) FROM task_states s
         WHERE s.task_id = t.task_id AND s.service = 'task' AND s.state = 'STARTED') AS claimed_at,
       (SELECT min(e.time) FROM task_events e WHERE e.task_id = t.task_id) AS first_event_at,
       (SELECT count(*) FROM task_events e WHERE e.task_id = t.task_id) AS events
FROM tasks t WHERE t.task_type = %s ORDER BY t.scheduled_at
"""


def bench_end_to_end(server: _common.BenchServer, cfg: dict, results: list, info: dict) -> None:
    from otf_dagster.simulator.server import Simulator

    interval = cfg["sensor_interval"]
    log(
        f"2+3. end to end: dagster dev, {cfg['games']} games at speed {cfg['speed']:g}, sensor every {interval}s"
    )
    bare_rss = import_rss("dagster")
    pandas_rss = import_rss("pandas")
    code_rss = import_rss("otf_dagster.definitions")
    log(
        f"   fresh interpreter RSS: import dagster {bare_rss:.0f} MB, import pandas {pandas_rss:.0f} MB, "
        f"import otf_dagster.definitions (the code location) {code_rss:.0f} MB"
    )
    home = Path(tempfile.mkdtemp(prefix="otf-bench-dagster-home-"))
    proc: subprocess.Popen | None = None
    sampler: Sampler | None = None
    sim: Simulator | None = None
    try:
        with server.fresh_database() as task_url, dagster_database(server, "e2e") as dg_url:
            with TaskStore(task_url) as store:
                store.apply_task_types(default_types())
            dagster_home.prepare(home)
            sim_port, web_port = free_port(), free_port()
            env = dict(os.environ)
            env.update(
                {
                    "DAGSTER_HOME": str(home),
                    "OTF_DATABASE_URL": task_url,
                    "DAGSTER_PG_URL": config.dagster_storage_url(dg_url),
                    "OTF_FEED_BASE_URL": f"http://127.0.0.1:{sim_port}",
                    "OTF_FEED_PROVIDER": "nba_cdn",
                    "OTF_SENSOR_INTERVAL_SECONDS": str(interval),
                }
            )
            logfile = open(home / "dagster-dev.log", "wb")  # noqa: SIM115
            t_launch = time.monotonic()
            proc = subprocess.Popen(
                [
                    str(Path(sys.executable).with_name("dagster")),
                    "dev",
                    "-w",
                    "workspace.yaml",
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(web_port),
                ],
                cwd=_common.ROOT,
                env=env,
                stdout=logfile,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            sampler = Sampler(psutil.Process(proc.pid), server.admin_url)
            sampler.start()
            wait_for(
                "the first task_manager sensor tick",
                lambda: proc.poll() is not None or sensor_ticks(dg_url) >= 1,
                timeout=180,
            )
            if proc.poll() is not None:
                raise RuntimeError(
                    f"dagster dev exited with {proc.returncode}; see {home / 'dagster-dev.log'}"
                )
            startup = time.monotonic() - t_launch
            log(f"   dagster dev up, sensor ticking after {startup:.0f}s")
            services_idle = {
                pid: rec["last"]
                for pid, rec in sampler.procs.items()
                if rec["kind"] != "run worker"
            }

            sim = Simulator(
                speed=cfg["speed"],
                games=cfg["games"],
                first_start=cfg["first_start"],
                spacing=cfg["spacing"],
                port=sim_port,
            )
            sim.start()
            with TaskStore(task_url) as store:
                for game in sim.games:
                    store.schedule_task(TASK_TYPE, game.nba_id, game.start_time)
            game_len = 3420.0 / cfg["speed"]  # the recorded game: 3,420 game seconds
            last_start = max(g.start for g in sim.games) - time.time()
            log(
                f"   {len(sim.games)} tasks scheduled; tip-offs in {cfg['first_start']:.0f}..{last_start:.0f}s, "
                f"a game lasts ~{game_len:.0f}s"
            )

            def rows():
                with psycopg.connect(task_url) as conn:
                    conn.row_factory = psycopg.rows.dict_row
                    return conn.execute(TASK_TIMES, (TASK_TYPE,)).fetchall()

            wait_for(
                "every task's first event",
                lambda: all(r["first_event_at"] for r in rows()),
                timeout=last_start + 120,
                period=1.0,
            )
            log("   every task has its first event; waiting for the games to end")
            with contextlib.suppress(TimeoutError):
                wait_for(
                    "every task to end",
                    lambda: all(r["state"] in ("FINISHED", "FAILED") for r in rows()),
                    timeout=last_start + game_len + 90,
                    period=2.0,
                )
            with contextlib.suppress(TimeoutError):  # the runs' last step: materialization, exit
                wait_for(
                    "the run workers to exit",
                    lambda: sampler.live_workers() == 0,
                    timeout=30,
                    period=0.5,
                )
            final = rows()
            sampler.stop_event.set()
            sampler.join(timeout=10)
    finally:
        if sampler is not None:
            sampler.stop_event.set()
        if proc is not None:
            stop_group(proc, dict(sampler.seen_pids) if sampler else {})
        if sim is not None:
            sim.stop()
        shutil.rmtree(home, ignore_errors=True)

    # --- figures
    common = {"machine": info, "mode": cfg["mode"]}
    first = [
        (r["first_event_at"] - r["scheduled_at"]).total_seconds()
        for r in final
        if r["first_event_at"]
    ]
    claim = [
        (r["claimed_at"] - r["scheduled_at"]).total_seconds() for r in final if r["claimed_at"]
    ]
    states = {r["task_id"]: r["state"] for r in final}
    log(f"   tasks: {states}")
    log(f"   first event latency (s): {[round(x, 1) for x in first]}")
    log(f"   claim latency (s):       {[round(x, 1) for x in claim]}")
    goal = interval + 10
    _common.record(
        results,
        "orchestration.first_event_latency_p50",
        statistics.median(first),
        "s",
        "sensor interval",
        float(interval),
        samples=first,
        goal=f"<= {goal} s (interval + 10 s)",
        goal_met=statistics.median(first) <= goal,
        tasks=len(final),
        **common,
    )
    _common.record(
        results,
        "orchestration.first_event_latency_max",
        max(first),
        "s",
        "sensor interval",
        float(interval),
        goal=f"<= {goal} s (interval + 10 s)",
        goal_met=max(first) <= goal,
        **common,
    )
    _common.record(
        results,
        "orchestration.claim_latency_p50",
        statistics.median(claim),
        "s",
        "sensor interval",
        float(interval),
        samples=claim,
        **common,
    )
    _common.record(
        results,
        "orchestration.claim_latency_max",
        max(claim),
        "s",
        "sensor interval",
        float(interval),
        **common,
    )
    workers = [rec for rec in sampler.procs.values() if rec["kind"] == "run worker"]
    tailers = [rec for rec in sampler.procs.values() if rec["kind"] == "run log tailer"]
    services = {
        pid: rec
        for pid, rec in sampler.procs.items()
        if rec["kind"] not in ("run worker", "run log tailer")
    }
    log(f"   processes seen: {len(sampler.procs)}; run workers: {len(workers)}")
    for pid, rec in sorted(sampler.procs.items()):
        log(
            f"     {pid:>7} {rec['kind']:<12} peak {rec['peak'] / 2**20:6.0f} MB  {rec['cmd'][:90]}"
        )
    if workers:
        peaks = [w["peak"] / 2**20 for w in workers]
        _common.record(
            results,
            "orchestration.runner_peak_rss",
            max(peaks),
            "MB",
            "bare `python -c 'import dagster'` process",
            bare_rss,
            samples=peaks,
            goal=f"<= {RUNNER_RSS_GOAL_MB:.0f} MB",
            goal_met=max(peaks) <= RUNNER_RSS_GOAL_MB,
            workers=len(workers),
            code_location_import_rss_mb=round(code_rss, 1),
            pandas_import_rss_mb=round(pandas_rss, 1),
            log_tailer_rss_mb_per_run=round(
                sum(t["peak"] for t in tailers) / 2**20 / len(workers), 1
            ),
            note="max over every run worker process (spawned by the code server for DefaultRunLauncher), "
            "sampled every 0.5 s; each run also has 2 `tail -F` + 2 watcher processes for its compute logs",
            **common,
        )
        lives = [max(w["alive_at"] - w["born"], 1e-3) for w in workers]
        cpu_s = [w.get("cpu", 0.0) for w in workers]
        _common.record(
            results,
            "orchestration.runner_cpu_seconds",
            statistics.median(cpu_s),
            "s",
            "run worker lifetime (s)",
            statistics.median(lives),
            samples=[round(c, 2) for c in cpu_s],
            lifetimes=[round(x, 1) for x in lives],
            note="CPU seconds (user+system) of one Dagster run worker over its life; ratio = cores it used on average",
            **common,
        )
        _common.record(
            results,
            "orchestration.runner_peak_rss.vs_code_location_import",
            max(peaks),
            "MB",
            "fresh `python -c 'import otf_dagster.definitions'` (the code location)",
            code_rss,
            **common,
        )
    else:
        log("   WARNING: no run worker process was seen")
    by_kind: dict[str, float] = {}
    for rec in services.values():
        by_kind[rec["kind"]] = by_kind.get(rec["kind"], 0.0) + rec["peak"] / 2**20
    total = sum(by_kind.values())
    idle_total = sum(services_idle.values()) / 2**20
    _common.record(
        results,
        "orchestration.services_rss",
        total,
        "MB",
        "bare `python -c 'import dagster'` process",
        bare_rss,
        per_kind_mb={k: round(v, 1) for k, v in by_kind.items()},
        idle_total_mb=round(idle_total, 1),
        processes=len(services),
        note="sum of each service process's peak RSS (dagster dev, webserver, daemon, code servers)",
        **common,
    )
    _common.record(
        results,
        "orchestration.db_connections_peak",
        float(sampler.conn_total),
        "connections",
        "PostgreSQL max_connections",
        float(server_max_connections(server)),
        per_database=dict(sampler.conns),
        runs=len(workers),
        note="peak pg_stat_activity rows during the end-to-end run (sampled every 0.5 s; Dagster's psycopg2 connections are short-lived, so this is a lower bound)",
        **common,
    )


def server_max_connections(server: _common.BenchServer) -> int:
    with psycopg.connect(server.admin_url) as conn:
        return int(conn.execute("SHOW max_connections").fetchone()[0])


# --- 4. concurrency: N plain TaskRunners ---------------------------------------------------------


class _Stop(BaseException):
    pass


def runner_child(idx: int, url: str, base_url: str, task_id: str, attempt: int, stop, out) -> None:
    """One TaskRunner in its own process; on ``stop`` it reports its fetch times and exits."""
    from otf_dagster.core.runner import SystemClock, TaskRunner

    class StopClock(SystemClock):
        def sleep(self, seconds: float) -> None:
            if stop.wait(max(0.0, seconds)):
                raise _Stop

    fetches: list[float] = []
    error = None
    try:
        with TaskStore(url, application_name=f"bench-runner-{idx}") as store:
            runner = TaskRunner(
                store,
                task_id,
                attempt,
                f"bench-run-{idx}",
                handlers=HANDLERS,
                feed_base_url=base_url,
                clock=StopClock(),
                on_poll=lambda report: fetches.append(time.time()),
            )
            try:
                outcome = runner.run()
                error = f"runner ended early: {outcome.state} {outcome.reason}"
            except _Stop:
                pass
    except Exception as exc:  # noqa: BLE001  (reported to the parent)
        error = repr(exc)
    me = psutil.Process()
    mem = me.memory_full_info()
    cpu = me.cpu_times()
    out.put(
        {
            "idx": idx,
            "fetches": fetches,
            "rss": mem.rss,
            "uss": mem.uss,
            "pss": getattr(mem, "pss", None),
            "cpu": cpu.user + cpu.system,
            "error": error,
        }
    )


def run_step(
    ctx,
    server: _common.BenchServer,
    base_url: str,
    games: list,
    n: int,
    poll: float,
    window: float,
    skip: int = 2,
) -> dict:
    with server.fresh_database() as url:
        with TaskStore(url) as store:
            store.apply_task_types(
                default_types(poll_interval_seconds=poll, stale_after_seconds=600)
            )
            now = datetime.now(UTC) - timedelta(seconds=1)
            store.schedule_tasks(TASK_TYPE, [(g.nba_id, now, {}) for g in games[:n]])
            claimed = store.claim_ready(n, source="bench")
        assert len(claimed) == n, f"claimed {len(claimed)} of {n}"
        stop = ctx.Event()
        out = ctx.Queue()
        procs = [
            ctx.Process(
                target=runner_child,
                args=(i, url, base_url, c.task.task_id, c.task.attempt, stop, out),
                daemon=True,
            )
            for i, c in enumerate(claimed)
        ]
        me = psutil.Process()
        parent_cpu0 = sum(me.cpu_times()[:2])
        psutil.cpu_percent(None)
        t0 = time.time()
        reports: list[dict] = []
        try:
            for p in procs:
                p.start()
            time.sleep(window)
            sys_cpu = psutil.cpu_percent(None)
            load1 = os.getloadavg()[0]
            stop.set()
            deadline = time.monotonic() + 30
            while len(reports) < n and time.monotonic() < deadline:
                with contextlib.suppress(Exception):
                    reports.append(out.get(timeout=1))
        finally:
            stop.set()
            for p in procs:
                p.join(timeout=5)
                if p.is_alive():
                    p.kill()
                    p.join(timeout=5)
        wall = time.time() - t0
        parent_cpu = sum(me.cpu_times()[:2]) - parent_cpu0
    errors = [r["error"] for r in reports if r["error"]]
    lateness: list[float] = []
    per_proc_polls = []
    for r in reports:
        f = r["fetches"]
        per_proc_polls.append(len(f))
        # skip the first intervals: N processes starting at once on 2 cores
        for a, b in list(zip(f, f[1:], strict=False))[skip:]:
            lateness.append(b - a - poll)
    return {
        "n": n,
        "reports": len(reports),
        "errors": errors,
        "intervals": len(lateness),
        "lateness_p50": pct(lateness, 0.5),
        "lateness_p99": pct(lateness, 0.99),
        "lateness_max": max(lateness) if lateness else float("nan"),
        "polls_min": min(per_proc_polls) if per_proc_polls else 0,
        "runner_cpu_cores": sum(r["cpu"] for r in reports) / wall,
        "simulator_cpu_cores": parent_cpu / wall,
        "system_cpu_percent": sys_cpu,
        "load1": load1,
        "rss_mb_mean": statistics.mean(r["rss"] for r in reports) / 2**20
        if reports
        else float("nan"),
        "uss_mb_mean": statistics.mean(r["uss"] for r in reports) / 2**20
        if reports
        else float("nan"),
    }


def bench_concurrency(server: _common.BenchServer, cfg: dict, results: list, info: dict) -> None:
    from otf_dagster.simulator.server import Simulator

    poll, window, ramp = cfg["poll"], cfg["window"], cfg["ramp"]
    limit = LATENESS_SHARE * poll
    log(
        f"4. concurrency: N plain TaskRunner processes, poll every {poll:g}s, {window:g}s window, N in {ramp}"
    )
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(
        ["otf_dagster.core.runner", "otf_dagster.feeds", "otf_dagster.core.store", "psutil"]
    )
    # speed 5: a game lasts ~11 min, longer than the whole ramp; all games start at once
    sim = Simulator(speed=5.0, games=max(ramp), first_start=0.0, spacing=0.0)
    base_url = sim.start()
    steps = []
    try:
        time.sleep(1.0)
        for n in ramp:
            step = run_step(ctx, server, base_url, sim.games, n, poll, window, skip=cfg["skip"])
            steps.append(step)
            log(
                f"   N={n:>3}: lateness p50 {step['lateness_p50'] * 1000:6.1f} ms, p99 {step['lateness_p99'] * 1000:7.1f} ms, "
                f"max {step['lateness_max'] * 1000:7.1f} ms over {step['intervals']} intervals; runners "
                f"{step['runner_cpu_cores']:.2f} cores, simulator {step['simulator_cpu_cores']:.2f} cores, "
                f"system {step['system_cpu_percent']:.0f}%, load {step['load1']:.1f}; RSS {step['rss_mb_mean']:.0f} MB "
                f"(USS {step['uss_mb_mean']:.0f} MB)/runner"
                + (f"; errors: {step['errors'][:3]}" if step["errors"] else "")
            )
    finally:
        sim.stop()
    ok = [
        s
        for s in steps
        if s["lateness_p99"] <= limit and not s["errors"] and s["reports"] == s["n"]
    ]
    best = max((s["n"] for s in ok), default=0)
    first_late = next((s for s in steps if s not in ok), None)
    common = {"machine": info, "mode": cfg["mode"]}
    _common.record(
        results,
        "orchestration.concurrent_runners_on_time",
        float(best),
        "runners",
        f"smallest N tried (p99 lateness <= {limit * 1000:.0f} ms = {LATENESS_SHARE:.0%} of the {poll:g}s interval)",
        float(ramp[0]),
        ramp=[
            {k: (round(v, 4) if isinstance(v, float) else v) for k, v in s.items() if k != "errors"}
            | {"errors": len(s["errors"])}
            for s in steps
        ],
        first_late_n=first_late["n"] if first_late else None,
        ramp_capped=first_late is None,
        note="plain TaskRunner (otf_dagster/runner.py) per process, real clock, simulator in the parent process",
        **common,
    )
    for s in steps:
        _common.record(
            results,
            f"orchestration.poll_lateness_p99.n{s['n']}",
            s["lateness_p99"],
            "s",
            "poll interval",
            poll,
            lateness_p50=s["lateness_p50"],
            runner_cpu_cores=s["runner_cpu_cores"],
            rss_mb_mean=s["rss_mb_mean"],
            uss_mb_mean=s["uss_mb_mean"],
            **common,
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke sizes (~2 minutes)")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument(
        "--no-write", action="store_true", help="do not merge into bench/results.json"
    )
    parser.add_argument(
        "--only",
        choices=["sensor", "e2e", "concurrency"],
        action="append",
        help="run only these parts (repeatable)",
    )
    args = parser.parse_args(argv)
    cfg = dict(QUICK if args.quick else FULL)
    cfg["mode"] = "quick" if args.quick else "full"
    if args.repeats:
        cfg["repeats"] = args.repeats
    parts = args.only or ["sensor", "e2e", "concurrency"]
    results: list[dict[str, Any]] = []
    started = time.monotonic()
    failures = []
    with _common.bench_server() as server:
        info = server.machine()
        info["max_connections"] = server_max_connections(server)
        info["load_at_start"] = [round(x, 2) for x in os.getloadavg()]
        print(
            "machine:",
            _common.machine_line(info),
            f"max_connections={info['max_connections']}",
            f"load {info['load_at_start']}",
            flush=True,
        )
        for name, fn in (
            ("sensor", bench_sensor),
            ("e2e", bench_end_to_end),
            ("concurrency", bench_concurrency),
        ):
            if name not in parts:
                continue
            try:
                fn(server, cfg, results, info)
            except Exception as exc:  # noqa: BLE001  (the other parts still run)
                import traceback

                traceback.print_exc()
                failures.append(f"{name}: {exc!r}")
    print()
    print("machine:", _common.machine_line(info))
    _common.print_table(results)
    print(f"\n({cfg['mode']} mode, {time.monotonic() - started:.0f}s)")
    if results and not args.no_write:
        print(f"merged into {_common.write_results(results)}")
    if failures:
        print("FAILED parts:", *failures, sep="\n  ", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
