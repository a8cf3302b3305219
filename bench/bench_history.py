"""Issue 20's benchmark: a synthetic year beside an empty deployment, in the same run.

    python bench/bench_history.py [--quick] [--tasks N] [--events N] [--partitions N]
                                  [--plain-events N] [--read N] [--repeats N] [--no-write]

The year is generated here, with set-based SQL (``generate_series``), not stored: ``tasks``
FINISHED games spread over the last 366 days (the newest a day old), ``events`` task events
spread evenly over them (a game's scoring stream: game_started, score_changed, lead_changed,
game_final), two state rows per task, on TimescaleDB, with the chunks older than the
migrations' compression policy (``task_events`` 7 days, ``task_states`` 30 days) compressed by
``compress_chunk``; and ``partitions`` dynamic partitions (the tasks' ids) in a real Dagster
instance on PostgreSQL storage (``instance.add_dynamic_partitions`` in batches of 10,000),
plus finished runs for a sample of ``runs`` tasks (``instance.add_run``, tagged as the Task
Manager tags them). The empty deployment is a fresh database on the same server and an empty
Dagster storage; it holds only what a figure needs (the one game ``tasks show`` reads).

Ratios against the empty deployment (repeats interleaved, medians):

* ``history.tick_vs_empty``: ``manager.tick`` (what the ``task_manager`` sensor calls each
  tick) with ``sensors.run_lookup`` over the Dagster instance, claiming ``ready`` due tasks.
* ``history.sensor_tick_vs_empty``: the whole sensor evaluation (``evaluate_tick``, the
  context built from an instance ref as the code server does), the same tasks.
* ``history.claim_vs_empty``: ``TaskStore.claim_ready`` in batches of 500 over ``claim``
  ready tasks (tasks/s).
* ``history.tasks_show_year_old``: ``otf tasks show TASK --json`` in process, of the oldest
  game (366 days, compressed), beside the same game in the empty database.
* ``history.consumer_old_position``: a durable ``Consumer`` reading ``read`` events from the
  beginning (the oldest, compressed chunks) in batches of 500, beside one raw psycopg
  ``SELECT ... ORDER BY seq`` of the same rows into dicts.

Absolute (with the machine): the GraphQL query of the asset page for ``task_runs``'s
partitions (``partitionKeysByDimension`` + ``partitionStats``, through a real code server,
``dagster_graphql``'s ``define_out_of_process_context``) before and after the prune and on the
empty instance; the prune's rate (``retention.prune`` with ``defs/history.InstanceSide``, the
code ``otf history prune`` runs, tasks/s); disk per 1,000 events on TimescaleDB
(``hypertable_size``, compressed) and on plain PostgreSQL (``pg_total_relation_size`` of the
same generated events on the plain server).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import time
import uuid
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402  (sets sys.path for the project too)
import bench_timescale  # noqa: E402  (the two embedded servers)

warnings.filterwarnings("ignore", message=".*get_sensor_def will return.*")
warnings.filterwarnings("ignore", category=DeprecationWarning)
import psycopg  # noqa: E402
from click.testing import CliRunner  # noqa: E402
from psycopg.rows import dict_row  # noqa: E402

from otf_dagster import config  # noqa: E402
from otf_dagster.cli import _register, cli  # noqa: E402
from otf_dagster.core import manager, retention  # noqa: E402
from otf_dagster.core.consumer import CATCH_UP_BATCH, Consumer  # noqa: E402
from otf_dagster.core.services import subscribe  # noqa: E402
from otf_dagster.core.store import TaskStore  # noqa: E402
from otf_dagster.handlers import task_types  # noqa: E402

TASK_TYPE = "NBA_GAME_BOXSCORE"
PREFIX = "nba_game_boxscore:y"
CLAIM_BATCH = 500
PARTITION_BATCH = 10_000
GOALS = {"tick": 1.2, "claim": 0.8, "show": 2.0, "consumer": 0.5}

FULL = {
    "tasks": 100_000,
    "events": 5_000_000,
    # Dagster keeps a partition per task it ran; deleting one is a statement of its own (no bulk
    # delete in Dagster 1.13), so the prune's time is the partitions': 100,000 took 617-914 s,
    # more than a whole `make bench` can give one script. 25,000 still shows the asset page's
    # cost growing with them and the prune's rate (per task, whatever the count).
    "partitions": 25_000,
    "plain_events": 5_000_000,
    "runs": 2_000,
    "read": 1_000_000,
    "ready": 100,
    "claim": 5_000,
    "repeats": 5,
    "read_repeats": 2,
    "show_calls": 20,
    "gql_calls": 3,
}
QUICK = {
    "tasks": 2_000,
    "events": 50_000,
    "partitions": 2_000,
    "plain_events": 50_000,
    "runs": 200,
    "read": 40_000,
    "ready": 100,
    "claim": 1_000,
    "repeats": 3,
    "read_repeats": 2,
    "show_calls": 10,
    "gql_calls": 2,
}

GQL = """
query AssetPartitions {
  assetNodeOrError(assetKey: {path: ["task_runs"]}) {
    __typename
    ... on AssetNode {
      partitionKeysByDimension { name partitionKeys }
      partitionStats { numMaterialized numMaterializing numFailed numPartitions }
    }
  }
}
"""


def log(msg: str) -> None:
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {msg}", flush=True)


# --- the synthetic year ------------------------------------------------------------------------

TASKS_SQL = """
INSERT INTO tasks (task_id, task_type, external_key, created_at, scheduled_at, state, attempt,
                   run_id, started_at, finished_at, updated_at)
SELECT %(prefix)s || lpad(g::text, 7, '0'), %(type)s, 'y' || g,
       %(t0)s::timestamptz + %(step)s::interval * (g - 1) - interval '1 day',
       %(t0)s::timestamptz + %(step)s::interval * (g - 1), 'FINISHED', 1, 'run-' || g,
       %(t0)s::timestamptz + %(step)s::interval * (g - 1),
       %(t0)s::timestamptz + %(step)s::interval * (g - 1) + interval '150 minutes',
       %(t0)s::timestamptz + %(step)s::interval * (g - 1) + interval '150 minutes'
FROM generate_series(%(lo)s::int, %(hi)s::int) g
"""
STATES_SQL = """
INSERT INTO task_states (time, task_id, attempt, state, previous_state, source)
SELECT %(t0)s::timestamptz + %(step)s::interval * (g - 1) + interval '150 minutes' * (s - 1),
       %(prefix)s || lpad(g::text, 7, '0'), 1,
       (CASE s WHEN 1 THEN 'STARTED' ELSE 'FINISHED' END)::task_state,
       (CASE s WHEN 1 THEN 'SCHEDULED' ELSE 'STARTED' END)::task_state, 'bench'
FROM generate_series(%(lo)s::int, %(hi)s::int) g, generate_series(1, 2) s
ORDER BY 1
"""
# k events per task over its 150 minutes; inserted in time order, so seq order = time order.
EVENTS_SQL = """
INSERT INTO task_events (time, task_id, task_runner_id, task_type, task_seq, kind, payload)
SELECT %(t0)s::timestamptz + %(step)s::interval * (g - 1) + interval '150 minutes' * s / %(k)s,
       %(prefix)s || lpad(g::text, 7, '0'), 'run-' || g, %(type)s, s,
       CASE WHEN s = 1 THEN 'game_started' WHEN s = %(k)s THEN 'game_final'
            WHEN s %% 7 = 0 THEN 'lead_changed' ELSE 'score_changed' END,
       CASE WHEN s = 1 THEN jsonb_build_object('home', 'BOS', 'away', 'ORL')
            ELSE jsonb_build_object(
                'team', CASE WHEN s %% 2 = 0 THEN 'BOS' ELSE 'ORL' END,
                'side', CASE WHEN s %% 2 = 0 THEN 'home' ELSE 'away' END,
                'points', 1 + (g + s) %% 3, 'home_score', s * 2 + g %% 5, 'away_score', s * 2 - 1,
                'period', 1 + (4 * s) / (%(k)s + 1), 'clock_seconds', ((s * 37) %% 720)::float)
       END
FROM generate_series(%(lo)s::int, %(hi)s::int) g, generate_series(1, %(k)s::int) s
ORDER BY g, s
"""


def year_params(n: int) -> dict:
    """Task g of n starts at t0 + (g-1)*step: from 366 days ago to a day ago."""
    now = datetime.now(UTC)
    t0 = now - timedelta(days=366)
    step = timedelta(days=365) / max(1, n)
    return {"t0": t0, "step": step, "prefix": PREFIX, "type": TASK_TYPE}


def task_id(g: int) -> str:
    return f"{PREFIX}{g:07d}"


def prepare(url: str) -> None:
    with TaskStore(url, application_name="bench-history") as store:
        store.apply_task_types(task_types.load_file(task_types.DEFAULTS_FILE))


def generate(
    url: str, n: int, events: int, *, tasks: bool = True, params: dict | None = None
) -> None:
    """n finished tasks (with their states) and ``events`` events (events // n a task), in
    slices of at most 10,000 tasks, each its own transaction."""
    params = params or year_params(n)
    k = max(1, events // n)
    with psycopg.connect(url, autocommit=True) as conn:
        step = 10_000
        for lo in range(1, n + 1, step):
            p = {**params, "lo": lo, "hi": min(n, lo + step - 1), "k": k}
            with conn.transaction():
                if tasks:
                    conn.execute(TASKS_SQL, p)
                    conn.execute(STATES_SQL, p)
                conn.execute(EVENTS_SQL, p)
            if n > step:
                log(f"   ... {p['hi']:,} of {n:,} tasks, {p['hi'] * k:,} events")


def compress(url: str) -> tuple[int, int, int]:
    """Compress what the migrations' policies would (task_events older than 7 days, task_states
    older than 30); (chunks compressed, bytes before, bytes after) of task_events."""
    with psycopg.connect(url, autocommit=True) as conn:
        after = dict(
            conn.execute(
                "SELECT h.hypertable_name, (j.config->>'compress_after')::interval"
                " FROM timescaledb_information.jobs j"
                " JOIN timescaledb_information.hypertables h USING (hypertable_name)"
                " WHERE j.proc_name = 'policy_compression'"
            ).fetchall()
        )
        if "task_events" not in after:
            raise AssertionError(f"no compression policy on task_events: {after}")
        done = 0
        for table, older in after.items():
            rows = conn.execute(
                "SELECT compress_chunk(c, if_not_compressed => true)"
                " FROM show_chunks(%s::regclass, older_than => %s::interval) c",
                (table, older),
            ).fetchall()
            if table == "task_events":
                done = len(rows)
        before, after_bytes = conn.execute(
            "SELECT before_compression_total_bytes, after_compression_total_bytes"
            " FROM hypertable_compression_stats('task_events')"
        ).fetchone()
        conn.execute("VACUUM ANALYZE tasks, task_states, task_events")
    return done, before, after_bytes


def events_bytes(url: str, hypertable: bool) -> tuple[int, int]:
    """(bytes of task_events with indexes and TOAST, rows)."""
    with psycopg.connect(url) as conn:
        size_sql = (
            "SELECT hypertable_size('task_events')"
            if hypertable
            else "SELECT pg_total_relation_size('task_events')"
        )
        size = conn.execute(size_sql).fetchone()[0]
        rows = conn.execute("SELECT count(*) FROM task_events").fetchone()[0]
    return size, rows


# --- Dagster -----------------------------------------------------------------------------------


@contextlib.contextmanager
def dagster_instance(server: _common.BenchServer, tag: str):
    import dagster as dg

    name = f"otf_bench_dg_{os.getpid()}_{tag}"
    dg_url = server.create_database(name, template=None)
    try:
        overrides = {"storage": {"postgres": {"postgres_url": config.dagster_storage_url(dg_url)}}}
        with dg.instance_for_test(overrides=overrides) as instance:
            yield instance
    finally:
        with contextlib.suppress(Exception):
            server.drop_database(name)


def add_partitions(instance, n: int) -> None:
    from otf_dagster.defs.partitions import TASKS_PARTITIONS_NAME

    for lo in range(1, n + 1, PARTITION_BATCH):
        keys = [task_id(g) for g in range(lo, min(n, lo + PARTITION_BATCH - 1) + 1)]
        instance.add_dynamic_partitions(TASKS_PARTITIONS_NAME, keys)


def add_runs(instance, n_tasks: int, n_runs: int) -> None:
    """A finished run (SUCCESS) for every (n_tasks / n_runs)-th task, tagged as the Task
    Manager tags its runs."""
    import dagster as dg

    every = max(1, n_tasks // max(1, n_runs))
    for g in range(1, n_tasks + 1, every)[:n_runs]:
        tid = task_id(g)
        instance.add_run(
            dg.DagsterRun(
                job_name="task_runner",
                run_id=str(uuid.uuid4()),
                status=dg.DagsterRunStatus.SUCCESS,
                tags={
                    manager.TAG_TASK_ID: tid,
                    manager.TAG_ATTEMPT: "1",
                    "dagster/partition": tid,
                },
            )
        )


def partition_count(instance) -> int:
    from otf_dagster.defs.partitions import TASKS_PARTITIONS_NAME

    return len(instance.get_dynamic_partitions(TASKS_PARTITIONS_NAME))


@contextlib.contextmanager
def graphql_context(instance):
    """A real code server (a subprocess) for otf_dagster/definitions.py; yields its process
    context (a request context is made per query, as the webserver makes one per request:
    the partition keys are cached per request)."""
    from dagster_graphql.test.utils import define_out_of_process_workspace

    path = str(_common.ROOT / "otf_dagster" / "definitions.py")
    with define_out_of_process_workspace(path, None, instance, read_only=True) as process:
        yield process


def graphql_ms(process, calls: int) -> tuple[float, int]:
    """Median ms of the asset page's partition query (a fresh request context each); and how
    many keys it returned."""
    from dagster_graphql.test.utils import execute_dagster_graphql

    samples, keys = [], -1
    for _ in range(calls):
        start = time.perf_counter()
        result = execute_dagster_graphql(process.create_request_context(), GQL)
        samples.append((time.perf_counter() - start) * 1000)
        if result.errors:
            raise AssertionError(f"GraphQL errors: {result.errors}")
        node = result.data["assetNodeOrError"]
        if node["__typename"] != "AssetNode":
            raise AssertionError(f"no asset node: {node}")
        keys = len(node["partitionKeysByDimension"][0]["partitionKeys"])
    return statistics.median(samples), keys


# --- the measurements --------------------------------------------------------------------------


def seed_ready(url: str, n: int, tag: str) -> None:
    """n SCHEDULED tasks due now; earlier ticks' tasks end first (FINISHED now)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "UPDATE tasks SET state = 'FINISHED', finished_at = now() WHERE state IN ('SCHEDULED', 'STARTED')"
        )
        conn.execute(
            """
            INSERT INTO tasks (task_id, task_type, external_key, scheduled_at)
            SELECT 'bench:' || %s || ':' || g, %s, %s || '-' || g, now() - interval '1 second' * (g %% 7)
            FROM generate_series(1, %s) g
            """,
            (tag, TASK_TYPE, tag, n),
        )
        conn.execute("ANALYZE tasks")


def time_tick(url: str, instance, ready: int) -> float:
    from otf_dagster.defs.sensors import run_lookup

    settings = manager.Settings(claim_limit=max(CLAIM_BATCH, ready))
    with TaskStore(url, application_name="bench-history-tick") as store:
        _ = store.conn
        start = time.perf_counter()
        report = manager.tick(store, run_lookup(instance), settings=settings)
        elapsed = time.perf_counter() - start
    if report.claimed != ready:
        raise AssertionError(f"the tick claimed {report.claimed} of {ready}")
    return elapsed


def sensor_ticker(url: str, instance, ready: int):
    import dagster as dg

    from otf_dagster.definitions import build_definitions
    from otf_dagster.defs.resources import FeedResource, TaskStoreResource

    resources = {
        "task_store": TaskStoreResource(database_url=url),
        "feeds": FeedResource(provider="nba_cdn", base_url="http://127.0.0.1:9"),
    }
    defs = build_definitions(
        sensor_interval_seconds=30, claim_limit=max(CLAIM_BATCH, ready), **resources
    )
    sensor = defs.get_sensor_def("task_manager")
    ref = instance.get_ref()

    def tick(expect: int) -> float:
        with dg.build_sensor_context(
            instance_ref=ref, resources=resources, definitions=defs
        ) as ctx:
            start = time.perf_counter()
            data = sensor.evaluate_tick(ctx)
            elapsed = time.perf_counter() - start
        if len(data.run_requests or []) != expect:
            raise AssertionError(
                f"the sensor asked for {len(data.run_requests or [])} runs, not {expect}"
            )
        return elapsed

    return tick


def claim_rate(url: str, n: int) -> float:
    with TaskStore(url, application_name="bench-history-claim") as store:
        _ = store.conn
        claimed = 0
        start = time.perf_counter()
        while batch := store.claim_ready(CLAIM_BATCH, source="bench", deployment=None):
            claimed += len(batch)
        elapsed = time.perf_counter() - start
    if claimed != n:
        raise AssertionError(f"claim_ready claimed {claimed} of {n}")
    return claimed / elapsed


def show_ms(url: str, tid: str, calls: int, events: int | None = None) -> float:
    os.environ[config.TASK_DB_ENV] = url
    runner = CliRunner()
    samples = []
    for _ in range(calls):
        start = time.perf_counter()
        out = runner.invoke(cli, ["tasks", "show", tid, "--json"], catch_exceptions=False)
        samples.append((time.perf_counter() - start) * 1000)
        if out.exit_code != 0 or tid not in out.output:
            raise AssertionError(out.output[:500])
        shown = sum(1 for e in json.loads(out.output)["timeline"] if e["type"] == "event")
        if events is not None and shown != events:
            raise AssertionError(f"tasks show listed {shown} of the game's {events} events")
    return statistics.median(samples)


def consumer_read(url: str, n: int, name: str) -> float:
    subscribe(url, name, TASK_TYPE)
    with Consumer(url, name, application_name="bench-history-consumer") as consumer:
        _ = consumer.position
        count = 0
        start = time.perf_counter()
        for _ev in consumer.iter_events(batch=500):
            count += 1
            if count >= n:
                break
        elapsed = time.perf_counter() - start
    if count != n:
        raise AssertionError(f"the consumer read {count} of {n}")
    return count / elapsed


def raw_read(url: str, n: int) -> float:
    with psycopg.connect(url, row_factory=dict_row) as conn:
        start = time.perf_counter()
        rows = conn.execute(
            "SELECT seq, time, task_id, task_runner_id, task_type, task_seq, kind, payload "
            "FROM task_events WHERE seq > 0 ORDER BY seq LIMIT %s",
            (n,),
        ).fetchall()
        elapsed = time.perf_counter() - start
    if len(rows) != n:
        raise AssertionError(f"the raw read got {len(rows)} of {n}")
    return n / elapsed


def prune(url: str, instance) -> tuple[float, retention.PruneReport]:
    from otf_dagster.defs.history import InstanceSide

    side = InstanceSide(instance)
    with TaskStore(url, application_name="bench-history-prune") as store:
        start = time.perf_counter()
        report = retention.prune(store, side, retention.PruneSettings(), source="bench")
        elapsed = time.perf_counter() - start
    return elapsed, report


def explain(url: str, sql_text: str, params: tuple = ()) -> str:
    with psycopg.connect(url) as conn:
        rows = conn.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql_text, params).fetchall()
    return "\n".join(r[0] for r in rows)


# --- the run -----------------------------------------------------------------------------------


def run(size: dict, mode: str) -> list[dict]:
    n, events, parts = size["tasks"], size["events"], size["partitions"]
    k = max(1, events // n)
    events = k * n
    read = min(size["read"], events)
    reps = size["repeats"]
    sizes = {
        "tasks": n,
        "events": events,
        "events_per_task": k,
        "partitions": parts,
        "runs": size["runs"],
        "mode": mode,
    }
    results: list[dict] = []
    _register()
    with bench_timescale.servers(bench_timescale.timescaledb_build()) as srv:
        ts, plain = srv["hypertable"], srv["plain"]
        info = ts.machine()
        machine = _common.machine_line(info)
        log(f"machine: {machine}")
        log(f"sizes: {sizes}")
        extra = {"machine": machine, **sizes}
        with (
            ts.fresh_database() as year,
            ts.fresh_database() as empty,
            dagster_instance(plain, "year") as dg_year,
            dagster_instance(plain, "empty") as dg_empty,
        ):
            # --- generate -----------------------------------------------------------------
            prepare(year)
            prepare(empty)
            t = time.perf_counter()
            generate(year, n, events)
            t_gen = time.perf_counter() - t
            log(f"generated {n:,} tasks, {events:,} events in {t_gen:.0f} s")
            t = time.perf_counter()
            chunks, before_bytes, after_bytes = compress(year)
            t_comp = time.perf_counter() - t
            log(
                f"compressed {chunks} chunks of task_events in {t_comp:.0f} s: {before_bytes:,} -> {after_bytes:,} bytes"
            )
            # the one game tasks show reads on the empty deployment: the same game, 3 hours ago
            generate(
                empty, 1, k, params={**year_params(1), "t0": datetime.now(UTC) - timedelta(hours=3)}
            )
            with psycopg.connect(empty, autocommit=True) as conn:
                conn.execute("VACUUM ANALYZE tasks, task_states, task_events")
            t = time.perf_counter()
            add_partitions(dg_year, parts)
            t_parts = time.perf_counter() - t
            t = time.perf_counter()
            add_runs(dg_year, n, size["runs"])
            t_runs = time.perf_counter() - t
            log(
                f"added {parts:,} dynamic partitions in {t_parts:.0f} s, {size['runs']:,} runs in {t_runs:.0f} s"
            )
            gen = {
                "generate_seconds": round(t_gen, 1),
                "compress_seconds": round(t_comp, 1),
                "chunks_compressed": chunks,
                "partitions_seconds": round(t_parts, 1),
            }

            # --- the tick -----------------------------------------------------------------
            log(f"tick: manager.tick claiming {size['ready']} due tasks, {reps} repeats")
            samples: dict[str, list[float]] = {
                k_: [] for k_ in ("tick_y", "tick_e", "sens_y", "sens_e", "claim_y", "claim_e")
            }
            sens = {
                "y": sensor_ticker(year, dg_year, size["ready"]),
                "e": sensor_ticker(empty, dg_empty, size["ready"]),
            }
            for url, inst in ((year, dg_year), (empty, dg_empty)):  # warm-up
                seed_ready(url, size["ready"], "w")
                time_tick(url, inst, size["ready"])
            for rep in range(reps):
                order = (("y", year, dg_year), ("e", empty, dg_empty))
                for tag, url, inst in order if rep % 2 == 0 else order[::-1]:
                    seed_ready(url, size["ready"], f"t{rep}")
                    samples[f"tick_{tag}"].append(time_tick(url, inst, size["ready"]))
                    seed_ready(url, size["ready"], f"s{rep}")
                    samples[f"sens_{tag}"].append(sens[tag](size["ready"]))
                    seed_ready(url, size["claim"], f"c{rep}")
                    samples[f"claim_{tag}"].append(claim_rate(url, size["claim"]))
                log(
                    f"   repeat {rep + 1}: tick {samples['tick_y'][-1] * 1000:.0f} / {samples['tick_e'][-1] * 1000:.0f} ms, "
                    f"sensor {samples['sens_y'][-1] * 1000:.0f} / {samples['sens_e'][-1] * 1000:.0f} ms, "
                    f"claim {samples['claim_y'][-1]:,.0f} / {samples['claim_e'][-1]:,.0f} tasks/s (year / empty)"
                )
            for url in (year, empty):
                seed_ready(url, 0, "end")
            med = {k_: statistics.median(v) for k_, v in samples.items()}
            r = med["tick_y"] / med["tick_e"]
            _common.record(
                results,
                "history.tick_vs_empty",
                med["tick_y"],
                "s",
                "manager.tick on the empty deployment (same run)",
                med["tick_e"],
                goal=f"<= {GOALS['tick']}x",
                goal_met=r <= GOALS["tick"],
                samples=samples["tick_y"],
                baseline_samples=samples["tick_e"],
                ready_tasks=size["ready"],
                repeats=reps,
                **extra,
            )
            r = med["sens_y"] / med["sens_e"]
            _common.record(
                results,
                "history.sensor_tick_vs_empty",
                med["sens_y"],
                "s",
                "the task_manager sensor's evaluate_tick on the empty deployment",
                med["sens_e"],
                samples=samples["sens_y"],
                baseline_samples=samples["sens_e"],
                ready_tasks=size["ready"],
                repeats=reps,
                **extra,
            )
            r = med["claim_y"] / med["claim_e"]
            _common.record(
                results,
                "history.claim_vs_empty",
                med["claim_y"],
                "tasks/s",
                "TaskStore.claim_ready on the empty deployment",
                med["claim_e"],
                goal=f">= {GOALS['claim']}x",
                goal_met=r >= GOALS["claim"],
                samples=samples["claim_y"],
                baseline_samples=samples["claim_e"],
                ready_tasks=size["claim"],
                batch=CLAIM_BATCH,
                repeats=reps,
                **extra,
            )

            # --- tasks show ---------------------------------------------------------------
            oldest = task_id(1)
            show = {"y": [], "e": []}
            for rep in range(2):
                for tag, url in (
                    (("y", year), ("e", empty)) if rep == 0 else (("e", empty), ("y", year))
                ):
                    show[tag].append(show_ms(url, oldest, size["show_calls"], k))
            sy, se = statistics.median(show["y"]), statistics.median(show["e"])
            log(f"tasks show of a {366}-day-old game: {sy:.1f} ms, empty deployment {se:.1f} ms")
            _common.record(
                results,
                "history.tasks_show_year_old",
                sy,
                "ms",
                "otf tasks show of the same game on the empty deployment",
                se,
                goal=f"<= {GOALS['show']}x",
                goal_met=sy / se <= GOALS["show"],
                samples=show["y"],
                baseline_samples=show["e"],
                game_age_days=366,
                events_in_task=k,
                calls=size["show_calls"],
                **extra,
            )

            # --- the consumer -------------------------------------------------------------
            log(f"consumer: {read:,} events from the beginning, {size['read_repeats']} repeats")
            cons, raw = [], []
            for rep in range(size["read_repeats"]):
                if rep % 2 == 0:
                    cons.append(consumer_read(year, read, f"bench-history-{rep}"))
                    raw.append(raw_read(year, read))
                else:
                    raw.append(raw_read(year, read))
                    cons.append(consumer_read(year, read, f"bench-history-{rep}"))
                log(
                    f"   repeat {rep + 1}: consumer {cons[-1]:,.0f} events/s, raw SELECT {raw[-1]:,.0f} events/s"
                )
            cy, cr = statistics.median(cons), statistics.median(raw)
            entry = _common.record(
                results,
                "history.consumer_old_position",
                cy,
                "events/s",
                "raw psycopg SELECT ... ORDER BY seq of the same rows",
                cr,
                goal=f">= {GOALS['consumer']}x",
                goal_met=cy / cr >= GOALS["consumer"],
                samples=cons,
                baseline_samples=raw,
                events_read=read,
                batch=500,
                catch_up_batch=CATCH_UP_BATCH,
                **extra,
            )
            if not entry["goal_met"]:
                plan = explain(
                    year,
                    "SELECT seq, time, task_id, task_runner_id, task_type, task_seq, kind, payload"
                    " FROM task_events WHERE seq > %s AND task_type = ANY(ARRAY[%s]) ORDER BY seq LIMIT 500",
                    (read // 2, TASK_TYPE),
                )
                log("EXPLAIN ANALYZE of one consumer batch:\n" + plan)

            # --- GraphQL, prune -----------------------------------------------------------
            os.environ[config.TASK_DB_ENV] = year
            with graphql_context(dg_empty) as ctx:
                g_empty, keys_empty = graphql_ms(ctx, size["gql_calls"])
            with graphql_context(dg_year) as ctx:
                g_before, keys_before = graphql_ms(ctx, size["gql_calls"])
                log(
                    f"GraphQL asset page partitions: {g_before:,.0f} ms ({keys_before:,} keys); empty {g_empty:,.0f} ms"
                )
                t_prune, report = prune(year, dg_year)
                left = partition_count(dg_year)
                log(
                    f"prune: {report.tasks:,} tasks ({report.partitions:,} partitions, {report.runs:,} runs) "
                    f"in {t_prune:.1f} s; {left:,} partitions left"
                )
                g_after, keys_after = graphql_ms(ctx, size["gql_calls"])
            log(f"GraphQL after the prune: {g_after:,.0f} ms ({keys_after:,} keys)")
            if keys_before != parts or keys_after != left:
                raise AssertionError((keys_before, parts, keys_after, left))
            _common.record(
                results,
                "history.graphql_partitions_before_prune",
                g_before,
                "ms",
                "the same query on the empty instance",
                g_empty,
                partition_keys=keys_before,
                calls=size["gql_calls"],
                query="assetNodeOrError(task_runs) { partitionKeysByDimension, partitionStats }",
                **extra,
            )
            _common.record(
                results,
                "history.graphql_partitions_after_prune",
                g_after,
                "ms",
                "the same query before the prune",
                g_before,
                partition_keys=keys_after,
                calls=size["gql_calls"],
                **extra,
            )
            _common.record(
                results,
                "history.prune_rate",
                report.tasks / t_prune,
                "tasks/s",
                seconds=round(t_prune, 2),
                tasks_pruned=report.tasks,
                partitions_deleted=report.partitions,
                runs_deleted=report.runs,
                partitions_left=left,
                older_than_days=30,
                batch=retention.DEFAULT_BATCH_SIZE,
                **extra,
            )

            # --- disk ---------------------------------------------------------------------
            ts_bytes, ts_rows = events_bytes(year, hypertable=True)
        plain_n = size["plain_events"]
        plain_tasks = max(1, plain_n // k)
        with plain.fresh_database() as p_url:
            prepare(p_url)
            t = time.perf_counter()
            generate(p_url, plain_tasks, plain_tasks * k)
            with psycopg.connect(p_url, autocommit=True) as conn:
                conn.execute("VACUUM ANALYZE task_events")
            p_bytes, p_rows = events_bytes(p_url, hypertable=False)
            log(
                f"plain PostgreSQL: {p_rows:,} events, {p_bytes:,} bytes ({time.perf_counter() - t:.0f} s)"
            )
        per_p = p_bytes / (p_rows / 1000)
        per_ts = ts_bytes / (ts_rows / 1000)
        _common.record(
            results,
            "history.disk_per_1000_events.timescaledb",
            per_ts,
            "bytes",
            "plain PostgreSQL, the same generated events",
            per_p,
            bytes=ts_bytes,
            rows=ts_rows,
            uncompressed_chunk_bytes=before_bytes,
            compressed_chunk_bytes=after_bytes,
            measured_by="hypertable_size('task_events')",
            **extra,
            **gen,
        )
        _common.record(
            results,
            "history.disk_per_1000_events.plain",
            per_p,
            "bytes",
            bytes=p_bytes,
            rows=p_rows,
            measured_by="pg_total_relation_size('task_events')",
            **{**extra, "events": p_rows, "tasks": plain_tasks},
        )
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke sizes (2,000 tasks)")
    for key in ("tasks", "events", "partitions", "plain_events", "runs", "read", "repeats"):
        parser.add_argument(f"--{key.replace('_', '-')}", type=int, default=None)
    parser.add_argument(
        "--no-write", action="store_true", help="do not merge into bench/results.json"
    )
    parser.add_argument(
        "--only",
        default=None,
        help="merge only these figures (comma-separated names) into bench/results.json, "
        "e.g. after a smaller run that re-measured a few of them",
    )
    args = parser.parse_args(argv)
    size = dict(QUICK if args.quick else FULL)
    mode = "quick" if args.quick else "full"
    for key in ("tasks", "events", "partitions", "plain_events", "runs", "read", "repeats"):
        value = getattr(args, key)
        if value is not None:
            if value < 1:
                parser.error(f"--{key.replace('_', '-')} {value} must be at least 1")
            size[key] = value
            mode = "custom"
    if size["partitions"] > size["tasks"]:
        parser.error(
            f"--partitions {size['partitions']} is more than --tasks {size['tasks']} (a partition per task)"
        )
    start = time.perf_counter()
    results = run(size, mode)
    print()
    _common.print_table(results)
    log(f"done in {time.perf_counter() - start:.0f} s")
    if args.only is not None:
        names = {n.strip() for n in args.only.split(",") if n.strip()}
        unknown = names - {r["name"] for r in results}
        if unknown:
            print(
                f"--only: no figure named {', '.join(sorted(unknown))} in this run; nothing merged"
            )
            return 2
        results = [r for r in results if r["name"] in names]
    if not args.no_write:
        path = _common.write_results(results)
        print(f"\nmerged {len(results)} figures into {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
