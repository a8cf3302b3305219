"""End to end: the real Dagster daemon and webserver on PostgreSQL storage, the simulator,
and a slate of 3 games going SCHEDULED -> STARTED -> FINISHED, checked in the task database
and through Dagster's GraphQL API."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from datetime import date
from pathlib import Path

import dagster as dg
import psycopg
import pytest
import requests

from otf_dagster import config
from otf_dagster.local import dagster_home
from otf_dagster.simulator.server import Simulator
from otf_dagster.vocab.tasks import TaskState
from otf_dagster_tests.helpers import apply_test_types, wait_for

pytestmark = pytest.mark.e2e
BIN = Path(sys.executable).parent
CHECKOUT = Path(__file__).resolve().parents[2]
T = "NBA_GAME_BOXSCORE"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(cmd: list[str], env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        cmd,
        env=env,
        cwd=CHECKOUT,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def server_up(url: str) -> bool:
    try:
        requests.get(f"{url}/server_info", timeout=2).raise_for_status()
    except requests.RequestException:
        return False
    return True


def graphql(url: str, query: str) -> dict:
    r = requests.post(f"{url}/graphql", json={"query": query}, timeout=30)
    r.raise_for_status()
    body = r.json()
    assert "errors" not in body, body
    return body["data"]


RUNS = """{ runsOrError(filter: {pipelineName: "task_runner"}) { __typename
  ... on Runs { results { runId status tags { key value } } } } }"""
MATERIALIZATIONS = """{ assetOrError(assetKey: {path: ["task_runs"]}) { __typename
  ... on Asset { assetMaterializations(limit: 20) { partition runId
    metadataEntries { label ... on TextMetadataEntry { text } ... on IntMetadataEntry { intValue } } } } } }"""
SENSORS = """{ sensorsOrError(repositorySelector: {repositoryLocationName: "otf_dagster", repositoryName: "__repository__"})
  { __typename ... on Sensors { results { name sensorState { status } } } } }"""


class PausableClock:
    """Wall-clock time for the simulator that the test can stop: while it is stopped no game
    moves. The slate waits until the victim's runner watches it, and stands still from the
    check to the kill, so "kill the run mid-game" races nothing on a loaded machine."""

    def __init__(self) -> None:
        self.lost = 0.0
        self.paused_at: float | None = None

    def __call__(self) -> float:
        return (self.paused_at if self.paused_at is not None else time.time()) - self.lost

    def pause(self) -> None:
        self.paused_at = time.time()

    def resume(self) -> None:
        self.lost += time.time() - self.paused_at
        self.paused_at = None


def run_worker_pid(instance: dg.DagsterInstance, run_id: str) -> int | None:
    """The pid of the process executing a run's step, from the run's own event log."""
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is not None and event.event_type_value == "STEP_START" and event.pid:
            return event.pid
    return None


def materialize_day(env: dict, day: date) -> None:
    """The schedule's asset, materialized by the Dagster CLI as a user would."""
    cmd = [str(BIN / "dagster"), "asset", "materialize", "-m", "otf_dagster.definitions", "-a", "defs",
           "--select", "game_schedule", "--partition", f"{day.isoformat()}|nba"]  # fmt: skip
    subprocess.run(cmd, env=env, cwd=CHECKOUT, check=True, capture_output=True, timeout=120)


def test_a_slate_of_games_runs_end_to_end_under_the_daemon(
    pg_server, db_url, store, tmp_path, monkeypatch
):
    """...and one game's run worker is SIGKILLed mid-game: Dagster fails the run and retries it
    (run retries), the new run resumes from the checkpoint, and the game's stream has every
    event once. (When no retry comes, the Task Manager re-launches on a stale heartbeat:
    test_sensor.py.)"""
    storage_name = f"otf_test_dagster_{os.getpid()}"
    storage_url = pg_server.create_database(storage_name, template=None)
    apply_test_types(store, poll=3.0)
    home = tmp_path / "dagster_home"
    dagster_home.prepare(home)
    procs: list[subprocess.Popen] = []
    try:
        clock = PausableClock()
        with Simulator(speed=60, games=3, first_start=20, spacing=8, clock=clock) as sim:
            clock.pause()  # no game starts before the victim's runner polls it
            env = {
                **os.environ,
                "DAGSTER_HOME": str(home),
                "OTF_DATABASE_URL": db_url,
                "DAGSTER_PG_URL": config.dagster_storage_url(storage_url),
                "OTF_FEED_PROVIDER": "nba_cdn",
                "OTF_FEED_BASE_URL": sim.base_url,
                "OTF_SENSOR_INTERVAL_SECONDS": "3",
            }
            materialize_day(env, sim.today())
            boxscores = store.list_tasks(task_type=T)
            assert sorted(t.external_key for t in boxscores) == sorted(g.nba_id for g in sim.games)
            assert {t.state for t in boxscores} == {TaskState.SCHEDULED}

            port = free_port()
            daemon = [str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"]
            web = [
                str(BIN / "dagster-webserver"),
                "-w",
                "workspace.yaml",
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
            ]
            procs.append(start(daemon, env, tmp_path / "daemon.log"))
            procs.append(start(web, env, tmp_path / "webserver.log"))

            for key in ("DAGSTER_HOME", "DAGSTER_PG_URL"):
                monkeypatch.setenv(key, env[key])
            instance = dg.DagsterInstance.get()
            victim = min(boxscores, key=lambda t: t.scheduled_at).task_id
            killed: list[str] = []
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                states = Counter(t.state for t in store.list_tasks(task_type=T))
                if states[TaskState.FINISHED] == 3:
                    break
                daemon_log = (tmp_path / "daemon.log").read_text()
                assert all(p.poll() is None for p in procs), daemon_log[-3000:]
                if clock.paused_at is not None and not killed:
                    if (store.get_task(victim).checkpoint or {}).get("polls", 0) >= 1:
                        clock.resume()  # the victim's runner is watching: play
                elif not killed:
                    clock.pause()  # the game stands still from the check to the kill
                    task = store.get_task(victim)
                    events = store.task_events(victim)
                    if task.run_id and len(events) >= 5 and events[-1]["kind"] != "game_final":
                        pid = run_worker_pid(instance, task.run_id)
                        if pid:
                            os.kill(pid, signal.SIGKILL)  # mid-game, without warning
                            killed.append(task.run_id)
                    clock.resume()
                time.sleep(1)
            else:
                pytest.fail(f"slate did not finish: {states}; daemon log:\n{daemon_log[-4000:]}")
            assert killed, "the victim's run worker was never found to kill"
            # A runner ends its task in the task database, then its run ends in Dagster: wait
            # for that, rather than read the run statuses in between.
            run_ids = {t.task_id: t.run_id for t in store.list_tasks(task_type=T)}

            def runs_finished() -> bool:
                runs = [instance.get_run_by_id(r) for r in [*run_ids.values(), killed[0]]]
                return all(run is not None and run.is_finished for run in runs)

            wait_for(runs_finished, "every runner run to finish in Dagster")

            # In the task database: each game's history, runners and events.
            for task in store.list_tasks(task_type=T):
                history = store.state_history(task.task_id)
                events = store.task_events(task.task_id)
                steps = [(h["service"], h["state"]) for h in history]
                assert steps == [("task", "SCHEDULED"), ("task", "STARTED"),
                                 ("runner", "FINISHED"), ("task", "FINISHED")]  # fmt: skip
                if task.task_id == victim:  # two runs wrote it: the killed one and its retry
                    assert task.attempt == 1 and task.run_id != killed[0]
                    writers = [e["task_runner_id"] for e in events]
                    assert writers[0] == killed[0] and writers[-1] == task.run_id
                    assert set(writers) == {killed[0], task.run_id}
                else:
                    assert {e["task_runner_id"] for e in events} == {task.run_id}
                assert events[0]["kind"] == "game_started" and events[-1]["kind"] == "game_final"
                assert [e["task_seq"] for e in events] == list(range(1, len(events) + 1))
                final = events[-1]["payload"]
                assert (final["home_score"], final["away_score"]) == (124, 97)
                scored = Counter()
                for e in events:
                    if e["kind"] == "score_changed":
                        scored[e["payload"]["side"]] += e["payload"]["points"]
                assert scored == {"home": 124, "away": 97}, "an event was lost or written twice"
            with psycopg.connect(db_url) as conn:
                confirms = conn.execute(
                    "SELECT count(*) FROM tasks WHERE task_type = 'NBA_GAME_CONFIRM'"
                ).fetchone()[0]
            assert confirms == 3

            # Through Dagster's GraphQL API.
            url = f"http://127.0.0.1:{port}"
            wait_for(lambda: server_up(url), "the webserver to answer")
            runs = graphql(url, RUNS)["runsOrError"]["results"]
            statuses = {r["runId"]: r["status"] for r in runs}
            assert statuses[killed[0]] == "FAILURE"  # the killed run, seen as failed by Dagster
            assert {statuses[r] for r in run_ids.values()} == {"SUCCESS"}
            assert set(statuses) == set(run_ids.values()) | {killed[0]}
            retry_tags = {
                t["key"]: t["value"]
                for r in runs
                if r["runId"] == run_ids[victim]
                for t in r["tags"]
            }
            assert retry_tags["dagster/parent_run_id"] == killed[0]
            assert retry_tags["otf/attempt"] == "1"
            mats = graphql(url, MATERIALIZATIONS)["assetOrError"]["assetMaterializations"]
            assert {m["partition"] for m in mats} == set(run_ids)
            for m in mats:
                meta = {e["label"]: e.get("text", e.get("intValue")) for e in m["metadataEntries"]}
                assert meta["state"] == "FINISHED" and meta["score"].endswith("124")
            sensors = graphql(url, SENSORS)["sensorsOrError"]["results"]
            assert {s["name"]: s["sensorState"]["status"] for s in sensors}[
                "task_manager"
            ] == "RUNNING"
    finally:
        for p in procs:
            stop(p)
        pg_server.drop_database(storage_name)
