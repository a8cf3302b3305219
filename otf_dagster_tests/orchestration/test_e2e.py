"""End to end: the real Dagster daemon and webserver on PostgreSQL storage, the simulator,
and a slate of 3 games going SCHEDULED -> STARTED -> FINISHED, checked in the task database
and through Dagster's GraphQL API."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from datetime import date
from pathlib import Path

import psycopg
import pytest
import requests

from otf_dagster import config
from otf_dagster.models import TaskState
from otf_dagster.simulator.server import Simulator
from otf_dagster_tests.orchestration.helpers import apply_test_types

pytestmark = pytest.mark.e2e
BIN = Path(sys.executable).parent
T = "NBA_GAME_BOXSCORE"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(cmd: list[str], env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        cmd,
        env=env,
        cwd=config.PROJECT_ROOT,
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


def graphql(url: str, query: str) -> dict:
    r = requests.post(f"{url}/graphql", json={"query": query}, timeout=30)
    r.raise_for_status()
    body = r.json()
    assert "errors" not in body, body
    return body["data"]


RUNS = """{ runsOrError(filter: {pipelineName: "task_runner"}) { __typename
  ... on Runs { results { runId status tags { key value } } } } }"""
MATERIALIZATIONS = """{ assetOrError(assetKey: {path: ["game_boxscore"]}) { __typename
  ... on Asset { assetMaterializations(limit: 20) { partition runId
    metadataEntries { label ... on TextMetadataEntry { text } ... on IntMetadataEntry { intValue } } } } } }"""
SENSORS = """{ sensorsOrError(repositorySelector: {repositoryLocationName: "otf_dagster", repositoryName: "__repository__"})
  { __typename ... on Sensors { results { name sensorState { status } } } } }"""


def test_a_slate_of_games_runs_end_to_end_under_the_daemon(pg_server, db_url, store, tmp_path):
    storage_name = f"otf_test_dagster_{os.getpid()}"
    storage_url = pg_server.create_database(storage_name, template=None)
    apply_test_types(store, poll=3.0)
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(config.PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
    procs: list[subprocess.Popen] = []
    try:
        with Simulator(speed=60, games=3, first_start=20, spacing=8) as sim:
            env = {
                **os.environ,
                "DAGSTER_HOME": str(home),
                "OTF_DATABASE_URL": db_url,
                "DAGSTER_PG_URL": config.dagster_storage_url(storage_url),
                "OTF_FEED_PROVIDER": "nba_cdn",
                "OTF_FEED_BASE_URL": sim.base_url,
                "OTF_SENSOR_INTERVAL_SECONDS": "3",
            }
            day: date = sim.today()
            # The schedule's asset, materialized by the Dagster CLI as a user would.
            subprocess.run(
                [
                    str(BIN / "dagster"),
                    "asset",
                    "materialize",
                    "-m",
                    "otf_dagster.definitions",
                    "-a",
                    "defs",
                    "--select",
                    "game_schedule",
                    "--partition",
                    day.isoformat(),
                ],
                env=env,
                cwd=config.PROJECT_ROOT,
                check=True,
                capture_output=True,
                timeout=120,
            )
            boxscores = store.list_tasks(task_type=T)
            assert sorted(t.external_key for t in boxscores) == sorted(g.nba_id for g in sim.games)
            assert {t.state for t in boxscores} == {TaskState.SCHEDULED}

            port = free_port()
            procs.append(
                start(
                    [str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"],
                    env,
                    tmp_path / "daemon.log",
                )
            )
            procs.append(
                start(
                    [
                        str(BIN / "dagster-webserver"),
                        "-w",
                        "workspace.yaml",
                        "-h",
                        "127.0.0.1",
                        "-p",
                        str(port),
                    ],
                    env,
                    tmp_path / "webserver.log",
                )
            )
            deadline = time.monotonic() + 240
            while time.monotonic() < deadline:
                states = Counter(t.state for t in store.list_tasks(task_type=T))
                if states[TaskState.FINISHED] == 3:
                    break
                assert all(p.poll() is None for p in procs), (tmp_path / "daemon.log").read_text()[
                    -3000:
                ]
                time.sleep(2)
            else:
                pytest.fail(
                    f"slate did not finish: {states}; daemon log:\n{(tmp_path / 'daemon.log').read_text()[-4000:]}"
                )

            # In the task database: each game's history, runner and events.
            for task in store.list_tasks(task_type=T):
                history = [(h["service"], h["state"]) for h in store.state_history(task.task_id)]
                assert history == [
                    ("task", "SCHEDULED"),
                    ("task", "STARTED"),
                    ("runner", "FINISHED"),
                    ("task", "FINISHED"),
                ]
                events = store.task_events(task.task_id)
                assert events[-1]["kind"] == "game_final" and events[0]["kind"] == "game_started"
                assert {e["task_runner_id"] for e in events} == {task.run_id}
                assert [e["task_seq"] for e in events] == list(range(1, len(events) + 1))
                final = events[-1]["payload"]
                assert (final["home_score"], final["away_score"]) == (124, 97)
            with psycopg.connect(db_url) as conn:
                confirms = conn.execute(
                    "SELECT count(*) FROM tasks WHERE task_type = 'NBA_GAME_CONFIRM'"
                ).fetchone()[0]
            assert confirms == 3

            # Through Dagster's GraphQL API.
            url = f"http://127.0.0.1:{port}"
            for _ in range(60):
                try:
                    requests.get(f"{url}/server_info", timeout=2).raise_for_status()
                    break
                except requests.RequestException:
                    time.sleep(1)
            runs = graphql(url, RUNS)["runsOrError"]["results"]
            by_task = {
                next(t["value"] for t in r["tags"] if t["key"] == "otf/task_id"): r for r in runs
            }
            run_ids = {t.task_id: t.run_id for t in store.list_tasks(task_type=T)}
            assert set(by_task) == set(run_ids)
            for task_id, run in by_task.items():
                assert run["status"] == "SUCCESS" and run["runId"] == run_ids[task_id]
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
