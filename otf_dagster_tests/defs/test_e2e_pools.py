"""Runner pools under the real Dagster daemon on PostgreSQL storage: a slate of 300 short tasks
across two pools, one pool process SIGKILLed mid-slate; and two deployments (two daemons,
two storages) on one task database, one of them SIGKILLed whole."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import psycopg
import pytest

from otf_dagster import config
from otf_dagster.core.store import TaskStore
from otf_dagster.handlers import task_types
from otf_dagster.local import dagster_home
from otf_dagster.simulator.server import Simulator
from otf_dagster.vocab.tasks import TaskState
from otf_dagster_tests.helpers import wait_for as shared_wait_for

pytestmark = pytest.mark.e2e
BIN = Path(sys.executable).parent
WORKSPACE = """load_from:
  - python_module:
      module_name: otf_dagster.definitions
      attribute: defs
      location_name: otf_dagster
"""
TASKS = 300
STEPS = 20


def counter_type() -> task_types.TaskType:
    return task_types.validate(
        {
            "name": "E2E_COUNTER",
            "handler": "http.json",
            "runner": "pool",
            "url_template": "/demo/count/{key}.json?start={params.start}&steps={params.steps}&every=1",
            "poll_interval_seconds": 1,
            "deadline_seconds": 900,
            "stale_after_seconds": 15,
            "max_attempts": 5,
            "params": {"done_when": "done", "track": {"count": "count"}},
        }
    )


def schedule_slate(store: TaskStore, prefix: str) -> None:
    """Ready now; the counters start counting in 40 s (a pool run takes a while to start)
    and count for STEPS seconds."""
    now = time.time()
    start = now + 40
    items = [
        (f"{prefix}{i:03d}", datetime.fromtimestamp(now, UTC), {"start": start, "steps": STEPS})
        for i in range(TASKS)
    ]
    store.schedule_tasks("E2E_COUNTER", items)


def deployment_env(pg_server, db_url: str, sim: Simulator, tmp_path: Path, name: str) -> dict:
    storage = pg_server.create_database(f"otf_test_dagster_{name}_{os.getpid()}", template=None)
    home = dagster_home.prepare(tmp_path / f"home-{name}")
    (home / "ws.yaml").write_text(WORKSPACE)  # the daemon runs the code location itself
    return {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "OTF_DATABASE_URL": db_url,
        "DAGSTER_PG_URL": config.dagster_storage_url(storage),
        "OTF_FEED_BASE_URL": sim.base_url,
        "OTF_SENSOR_INTERVAL_SECONDS": "2",
        "OTF_POOL_SIZE": "150",
        "OTF_POOL_STALE_SECONDS": "10",
        "OTF_DEPLOYMENT_LEASE_SECONDS": "10",
        "OTF_DEPLOYMENT_NAME": name,
    }


def start_daemon(env: dict, log: Path) -> subprocess.Popen:
    cmd = [str(BIN / "dagster-daemon"), "run", "-w", str(Path(env["DAGSTER_HOME"]) / "ws.yaml")]
    return subprocess.Popen(
        cmd, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True
    )


def kill_group(proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, sig)
        proc.wait(20)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            kill_group(proc)


def wait_for(condition, seconds: float, what: str, logs: list[Path]) -> None:
    """``helpers.wait_for`` with these deployments' log tails on failure."""

    def tails() -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in logs if p.exists())

    shared_wait_for(condition, what, seconds, diagnostics=tails)


def check_streams(store: TaskStore) -> None:
    """Every task FINISHED once; its events a whole chain 0 -> STEPS, each change once."""
    with psycopg.connect(store.url) as conn:
        finished = Counter(
            r[0]
            for r in conn.execute(
                "SELECT task_id FROM task_states WHERE service = 'task' AND state = 'FINISHED'"
            )
        )
    for task in store.list_tasks(task_type="E2E_COUNTER", limit=TASKS * 2):
        assert task.state == TaskState.FINISHED, (task.task_id, task.last_error)
        assert finished[task.task_id] == 1, task.task_id
        events = store.task_events(task.task_id)
        assert [e["task_seq"] for e in events] == list(range(1, len(events) + 1)), task.task_id
        chain = [(e["payload"]["old"], e["payload"]["new"]) for e in events]
        assert chain[0][0] is None and chain[-1][1] == STEPS, (task.task_id, chain)
        assert all(a[1] == b[0] and b[0] < b[1] for a, b in zip(chain, chain[1:], strict=False)), (
            chain
        )


def test_two_pools_host_a_slate_and_a_killed_pool_loses_nothing(
    pg_server, db_url, store, tmp_path, monkeypatch
):
    task_types.apply(store, [counter_type()])
    procs = []
    with Simulator(speed=60, games=1, first_start=3600) as sim:
        env = deployment_env(pg_server, db_url, sim, tmp_path, "solo")
        log = tmp_path / "daemon.log"
        schedule_slate(store, "s")
        procs.append(start_daemon(env, log))
        try:
            for key in ("DAGSTER_HOME", "DAGSTER_PG_URL"):
                monkeypatch.setenv(key, env[key])
            instance = dg.DagsterInstance.get()

            def two_pools_busy() -> bool:
                running = [p for p in store.list_pools() if p["state"] == "RUNNING"]
                return len(running) == 2 and all(p["load"] > 0 for p in running)

            wait_for(two_pools_busy, 120, "two busy pools", [log])
            wait_for(lambda: _events(store) >= 900, 120, "polls in both pools", [log])
            victim = store.list_pools()[0]
            pid = _worker_pid(instance, victim["run_id"])
            assert pid, "the pool's run worker was not found"
            os.kill(pid, signal.SIGKILL)  # mid-slate, without warning
            wait_for(
                lambda: (
                    Counter(t.state for t in store.list_tasks(limit=TASKS * 2))[TaskState.FINISHED]
                    == TASKS
                ),
                240,
                "the slate to finish",
                [log],
            )
        finally:
            for p in procs:
                stop(p)
    check_streams(store)
    pools = store.list_pools(include_ended=True)
    assert len({p["pool_id"] for p in pools}) >= 2
    victims = [t for t in store.list_tasks(limit=TASKS) if t.task_id.startswith("e2e_counter")]
    writers = Counter(
        len({e["task_runner_id"] for e in store.task_events(t.task_id)}) for t in victims
    )
    assert writers[2] > 0, "no task was resumed after the kill"
    assert max(writers) <= 2
    with psycopg.connect(env["DAGSTER_PG_URL"].replace("+psycopg2", "")) as conn:
        jobs = Counter(r[0] for r in conn.execute("SELECT pipeline_name FROM runs"))
    assert jobs.get("task_runner", 0) == 0 and jobs["runner_pool"] >= 2  # pool mode only


def test_two_deployments_share_the_task_database_and_one_takes_over_when_the_other_dies(
    pg_server, db_url, store, tmp_path
):
    task_types.apply(store, [counter_type()])
    with Simulator(speed=60, games=1, first_start=3600) as sim:
        # a few claims a tick, so both deployments take their share of the slate
        env_a = deployment_env(pg_server, db_url, sim, tmp_path, "a") | {"OTF_CLAIM_LIMIT": "25"}
        env_b = deployment_env(pg_server, db_url, sim, tmp_path, "b") | {"OTF_CLAIM_LIMIT": "25"}
        logs = [tmp_path / "a.log", tmp_path / "b.log"]
        schedule_slate(store, "d")
        a = start_daemon(env_a, logs[0])
        b = start_daemon(env_b, logs[1])
        try:

            def both_polling() -> bool:
                owners = Counter(
                    t.deployment_id for t in store.list_tasks(state="STARTED", limit=TASKS)
                )
                return len(owners) == 2 and _events(store) >= 900

            wait_for(both_polling, 180, "both deployments polling", logs)
            relaunched_before = _relaunches(store)
            assert relaunched_before == 0, "a task was re-launched while both deployments lived"
            names = {d["name"]: d["deployment_id"] for d in store.list_deployments()}
            b_tasks = [
                t.task_id
                for t in store.list_tasks(state="STARTED", limit=TASKS)
                if t.deployment_id == names["b"]
            ]
            assert b_tasks
            kill_group(b)  # the whole deployment B: daemon, code server, pool run workers
            wait_for(
                lambda: (
                    Counter(t.state for t in store.list_tasks(limit=TASKS * 2))[TaskState.FINISHED]
                    == TASKS
                ),
                240,
                "the slate to finish under A",
                logs,
            )
            # No run is left waiting in A's queue (B's storage died with B).
            wait_for(lambda: _queued_runs(env_a) == 0, 60, "A's queue to drain", logs)
        finally:
            stop(a)
            stop(b)
    check_streams(store)
    relaunched = _relaunches(store)
    print(
        f"two deployments: {TASKS} tasks FINISHED once, {relaunched_before} re-launches while both"
        f" lived, {relaunched} after B was killed, {len(b_tasks)} of B's tasks, 0 runs left queued"
    )
    for task_id in b_tasks:
        task = store.get_task(task_id)
        if task.attempt > 1:  # taken over by A once B's lease expired and its heartbeat aged
            assert task.deployment_id == names["a"]
            assert "lease expired" in " ".join(
                str(h["detail"]) for h in store.state_history(task_id)
            )
    assert any(store.get_task(t).attempt > 1 for t in b_tasks), "A took nothing over"
    errors = " ".join(t.last_error or "" for t in store.list_tasks(limit=TASKS))
    assert "never appeared" not in errors


def _events(store: TaskStore) -> int:
    with psycopg.connect(store.url) as conn:
        return conn.execute("SELECT count(*) FROM task_events").fetchone()[0]


def _queued_runs(env: dict) -> int:
    with psycopg.connect(env["DAGSTER_PG_URL"].replace("+psycopg2", "")) as conn:
        return conn.execute("SELECT count(*) FROM runs WHERE status = 'QUEUED'").fetchone()[0]


def _relaunches(store: TaskStore) -> int:
    with psycopg.connect(store.url) as conn:
        return conn.execute(
            "SELECT count(*) FROM task_states WHERE detail ->> 'relaunch' = 'true'"
        ).fetchone()[0]


def _worker_pid(instance: dg.DagsterInstance, run_id: str | None) -> int | None:
    if not run_id:
        return None
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is not None and event.event_type_value == "STEP_START" and event.pid:
            return event.pid
    return None
