"""The deployment compose.yaml describes, run here from the installed wheel: a code server
(`dagster code-server start` on TCP), a daemon and a webserver, separate processes in folders
of their own outside the checkout, sharing only PostgreSQL; the webserver and the daemon know
neither the task database nor the feed. A slate goes to FINISHED through it, and the code
server is restarted mid-game the way a container restart does it (SIGTERM, then SIGKILL of
what is left, run workers included)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
from collections import Counter
from pathlib import Path

import pytest
import requests
import yaml

from otf_dagster import config
from otf_dagster.local import dagster_home
from otf_dagster.simulator import Simulator
from otf_dagster.vocab.tasks import TaskState
from otf_dagster_tests.helpers import apply_test_types
from otf_dagster_tests.helpers import wait_for as shared_wait_for
from otf_dagster_tests.local.dev_session import free_port
from otf_dagster_tests.wheel import CHECKOUT, installed_wheel  # noqa: F401 - a fixture

pytestmark = pytest.mark.e2e
T = "NBA_GAME_BOXSCORE"


class Container:
    """One process of the deployment, as its container would run it."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], root: Path) -> None:
        self.name, self.argv, self.env = name, argv, env
        self.workdir = root / name
        self.workdir.mkdir(exist_ok=True)
        self.log = self.workdir / "output.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            self.argv,
            env=self.env,
            cwd=self.workdir,
            stdin=subprocess.DEVNULL,
            stdout=self.log.open("a"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def stop(self, grace: float = 10) -> None:
        """`docker stop`: SIGTERM to the main process, SIGKILL to all that is left."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(grace)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def tail(self) -> str:
        return self.log.read_text()[-3000:] if self.log.exists() else ""


def graphql(url: str, query: str) -> dict:
    r = requests.post(f"{url}/graphql", json={"query": query}, timeout=30)
    r.raise_for_status()
    body = r.json()
    assert "errors" not in body, body
    return body["data"]


ASSET_NODES = "{ assetNodes { assetKey { path } dependencyKeys { path } } }"
LOCATION = """{ workspaceOrError { ... on Workspace { locationEntries { name
  locationOrLoadError { __typename ... on RepositoryLocation { name } } } } } }"""
RUNS = """{ runsOrError(filter: {pipelineName: "task_runner"}) { ... on Runs { results {
  runId status tags { key value } } } } }"""


def test_a_slate_finishes_through_the_split_deployment_across_a_code_server_restart(
    installed_wheel,  # noqa: F811
    pg_server,
    db_url,
    store,
    tmp_path,
):
    w = installed_wheel
    apply_test_types(store, poll=3.0, stale_after_seconds=20)
    storage = f"otf_test_split_{os.getpid()}"
    storage_url = config.dagster_storage_url(pg_server.create_database(storage, template=None))
    home = tmp_path / "dagster_home"
    assert w.run(w.bin("otf"), "dagster-home", str(home)).returncode == 0
    workspace = yaml.safe_load((home / "workspace.yaml").read_text())
    assert workspace == yaml.safe_load((CHECKOUT / "deploy" / "workspace.yaml").read_text())
    code_port, web_port = free_port(), free_port()
    dagster_env = w.env(
        DAGSTER_HOME=str(home),
        DAGSTER_PG_URL=storage_url,
        OTF_CODE_SERVER_HOST="127.0.0.1",
        OTF_CODE_SERVER_PORT=str(code_port),
    )
    ws = str(home / "workspace.yaml")
    # As compose's migrate service does: Dagster's schema first, or the daemon and the
    # webserver both create its tables on the fresh database and one of them dies.
    migrated = w.run(
        w.bin("dagster"), "instance", "migrate", DAGSTER_HOME=str(home), DAGSTER_PG_URL=storage_url
    )
    assert migrated.returncode == 0, migrated.stderr
    web = Container(
        "webserver", [w.bin("dagster-webserver"), "-h", "127.0.0.1", "-p", str(web_port), "-w", ws],
        dagster_env, tmp_path,
    )  # fmt: skip
    daemon = Container("daemon", [w.bin("dagster-daemon"), "run", "-w", ws], dagster_env, tmp_path)
    containers = [web, daemon]
    try:
        with Simulator(speed=60, games=2, first_start=40, spacing=10) as sim:
            code_env = dagster_env | {
                "OTF_DATABASE_URL": db_url,
                "OTF_FEED_PROVIDER": "nba_cdn",
                "OTF_FEED_BASE_URL": sim.base_url,
                "OTF_SENSOR_INTERVAL_SECONDS": "3",
            }
            argv = [w.bin("dagster"), *dagster_home.code_server_command(code_port)]
            code = Container("code", argv, code_env, tmp_path)
            containers.insert(0, code)
            for c in containers:
                c.start()
            url = f"http://127.0.0.1:{web_port}"
            wait_for(lambda: located(url), 180, "the code location", containers)

            # Ingest the day through the deployment: a run the daemon hands to the code server.
            launched = w.run(
                w.bin("dagster"), "job", "launch", "-w", ws, "-j", "game_schedule_job",
                "--tags", json.dumps({
                    "dagster/partition": f"{sim.today().isoformat()}|nba",
                    "dagster/partition/day": sim.today().isoformat(),
                    "dagster/partition/league": "nba",
                }),
                **{k: v for k, v in dagster_env.items() if k.startswith(("DAGSTER", "OTF_CODE"))},
            )  # fmt: skip
            assert launched.returncode == 0, launched.stderr
            wait_for(lambda: len(store.list_tasks(task_type=T)) == 2, 180, "ingestion", containers)

            victim = min(store.list_tasks(task_type=T), key=lambda t: t.scheduled_at).task_id
            wait_for(lambda: len(store.task_events(victim)) >= 4, 240, "a live game", containers)
            before = store.get_task(victim)
            code.stop()  # the code server container restarts mid-game, its run workers with it
            code.start()

            def finished() -> bool:
                states = Counter(t.state for t in store.list_tasks(task_type=T))
                assert not states[TaskState.FAILED], states
                return states[TaskState.FINISHED] == 2

            wait_for(finished, 360, "every game FINISHED", containers)

        for task in store.list_tasks(task_type=T):
            events = store.task_events(task.task_id)
            assert [e["task_seq"] for e in events] == list(range(1, len(events) + 1))
            scored = Counter()
            for e in events:
                if e["kind"] == "score_changed":
                    scored[e["payload"]["side"]] += e["payload"]["points"]
            assert scored == {"home": 124, "away": 97}, f"{task.task_id}: lost or doubled events"
        after = store.get_task(victim)
        assert after.attempt > before.attempt  # the runner the restart killed was re-launched
        assert len({e["task_runner_id"] for e in store.task_events(victim)}) == 2

        nodes = graphql(url, ASSET_NODES)["assetNodes"]
        deps = {
            tuple(n["assetKey"]["path"]): [d["path"] for d in n["dependencyKeys"]] for n in nodes
        }
        assert deps[("task_runs",)] == [["game_schedule"]]  # lineage drawn in the UI
        finals = {t.run_id for t in store.list_tasks(task_type=T)}

        def final_runs_succeeded() -> bool:  # a run ends a moment after its task does
            runs = graphql(url, RUNS)["runsOrError"]["results"]
            return {r["status"] for r in runs if r["runId"] in finals} == {"SUCCESS"}

        wait_for(final_runs_succeeded, 60, "the final runs to end SUCCESS", containers)
        runs = graphql(url, RUNS)["runsOrError"]["results"]
        for r in runs:  # runs name their task and its matchup
            tags = {t["key"]: t["value"] for t in r["tags"]}
            assert tags["otf/task_type"] == T and tags["otf/task_id"] == tags["dagster/partition"]
            assert " @ " in tags["otf/matchup"]
    finally:
        for c in reversed(containers):
            c.stop(grace=5)
        pg_server.drop_database(storage)


def located(url: str) -> bool:
    try:
        entries = graphql(url, LOCATION)["workspaceOrError"]["locationEntries"]
    except (requests.RequestException, AssertionError):
        return False
    return any(
        e["locationOrLoadError"] and e["locationOrLoadError"]["__typename"] == "RepositoryLocation"
        for e in entries
    )


def wait_for(condition, timeout: float, what: str, containers: list[Container]) -> None:
    """``helpers.wait_for`` watching the containers, their logs on failure."""

    def alive() -> None:
        for c in containers:
            assert c.running(), f"{c.name} died:\n{c.tail()}"

    def logs() -> str:
        return "\n".join(f"--- {c.name}\n{c.tail()}" for c in containers)

    shared_wait_for(condition, what, timeout, alive=alive, diagnostics=logs, every=1.0)


def test_the_containers_run_the_commands_this_test_runs():
    """compose.yaml and the Dockerfile start the parts with the commands tested above."""
    compose = yaml.safe_load((CHECKOUT / "compose.yaml").read_text())["services"]
    dockerfile = (CHECKOUT / "Dockerfile").read_text().replace("\\\n", " ")
    cmd = next(line for line in dockerfile.splitlines() if line.startswith("CMD "))
    assert json.loads(cmd.removeprefix("CMD ")) == [
        "dagster",
        *dagster_home.code_server_command(4000, host="0.0.0.0"),
    ]
    ws = "/opt/dagster/dagster_home/workspace.yaml"
    assert compose["daemon"]["command"] == ["dagster-daemon", "run", "-w", ws]
    assert compose["webserver"]["command"] == [
        "dagster-webserver", "-h", "0.0.0.0", "-p", "3000", "-w", ws,
    ]  # fmt: skip
    assert (
        "RUN otf dagster-home" in dockerfile
        and "ENV DAGSTER_HOME=/opt/dagster/dagster_home" in dockerfile
    )
    for name in ("daemon", "webserver", "code"):
        env = compose[name]["environment"]
        assert (
            env[dagster_home.CODE_SERVER_HOST_ENV] == "code"
            and env["OTF_CODE_SERVER_PORT"] == "4000"
        )
        assert env["DAGSTER_PG_URL"].startswith("postgresql+psycopg2://")
    # The webserver and the daemon know neither the task database nor the feed.
    assert not {"OTF_DATABASE_URL", "OTF_FEED_BASE_URL"} & set(compose["daemon"]["environment"])
    assert not {"OTF_DATABASE_URL", "OTF_FEED_BASE_URL"} & set(compose["webserver"]["environment"])
