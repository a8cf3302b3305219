"""Two ``otf dev`` sessions on one database, as two ``make dev`` would be: the first is
stopped with Ctrl-C while a game is live, the second carries on. Nothing the restart causes is
red: no FAILED task, no FAILURE run; the interrupted game's stream has every event once.

The feed is a simulator the test keeps running across both sessions (a real feed does not stop
with `otf dev`); `otf dev --slates-file` gives its own simulator the same property."""

from __future__ import annotations

import time
from collections import Counter

import dagster as dg
import pytest

from otf_dagster import config
from otf_dagster.simulator import Simulator
from otf_dagster.vocab.tasks import TaskState
from otf_dagster_tests.local.dev_session import DevSession
from otf_dagster_tests.local.test_dev import dev_env  # noqa: F401 - a fixture

pytestmark = pytest.mark.e2e
T = "NBA_GAME_BOXSCORE"


def wait(condition, timeout: float, what: str, session: DevSession) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert session.proc.poll() is None, f"otf dev ended:\n{session.output}"
        assert time.monotonic() < deadline, f"{what} not within {timeout}s:\n{session.output}"
        time.sleep(1)


def test_a_second_session_carries_on_without_red_runs(dev_env, store, tmp_path, monkeypatch):  # noqa: F811
    # speed 30: a game lasts about two minutes, long enough to be live when Ctrl-C lands
    with Simulator(speed=30, games=2, first_start=10, spacing=15) as sim:
        env = dev_env | {
            "OTF_FEED_BASE_URL": sim.base_url,
            "OTF_SENSOR_INTERVAL_SECONDS": "3",
            "OTF_RUN_GRACE_SECONDS": "5",
        }
        first = DevSession(env, cwd=tmp_path)
        try:
            first.wait_for("Dagster UI on")
            victim = f"nba_game_boxscore:{sim.games[0].nba_id}"
            wait(lambda: len(store.task_events(victim)) >= 3, 180, "a live game", first)
            assert first.interrupt() == 0
            assert "cancelled" in first.output and "running run(s)" in first.output
            assert "stopped: no process left behind" in first.output
            # The daemon stops before the runs are cancelled, so no Task Manager tick takes a
            # cancelled run for a failed one and re-launches its task mid-shutdown.
            out = first.output
            assert out.index("stopped daemon") < out.index("cancelled"), out
            relaunched = [t.task_id for t in store.list_tasks(limit=10_000) if t.attempt > 1]
            assert not relaunched, relaunched
            interrupted = store.get_task(victim)
            assert interrupted.state == TaskState.STARTED
        finally:
            first.kill()

        second = DevSession(env, cwd=tmp_path)
        try:
            second.wait_for("Dagster UI on")

            def all_final() -> bool:
                states = Counter(t.state for t in store.list_tasks(task_type=T))
                assert not states[TaskState.FAILED] and not states[TaskState.CANCELLED], states
                return states[TaskState.FINISHED] == len(sim.games)

            wait(all_final, 420, "every game FINISHED", second)
            assert second.interrupt() == 0
        finally:
            second.kill()

    games = store.list_tasks(task_type=T) + store.list_tasks(task_type="NBA_GAME_CONFIRM")
    assert {t.state for t in games} <= {TaskState.FINISHED, TaskState.SCHEDULED}
    failed = [
        (t.task_id, t.last_error)
        for t in store.list_tasks(limit=10_000)
        if t.state == TaskState.FAILED
    ]
    assert not failed, failed
    resumed = store.get_task(victim)
    assert resumed.attempt == interrupted.attempt + 1  # re-launched, from its checkpoint
    events = store.task_events(victim)
    assert [e["task_seq"] for e in events] == list(range(1, len(events) + 1))
    scored = Counter()
    for e in events:
        if e["kind"] == "score_changed":
            scored[e["payload"]["side"]] += e["payload"]["points"]
    assert scored == {"home": 124, "away": 97}, "an event was lost or written twice"

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / ".otf" / "dagster_home"))
    monkeypatch.setenv(config.DAGSTER_DB_ENV, config.dagster_storage_url(dev_env["DAGSTER_PG_URL"]))
    with dg.DagsterInstance.get() as instance:
        runs = instance.get_runs(filters=dg.RunsFilter(job_name="task_runner"))
    statuses = Counter(r.status.value for r in runs)
    assert statuses["FAILURE"] == 0, statuses
    assert statuses["CANCELED"] >= 1 and statuses["SUCCESS"] == len(sim.games), statuses
    writers = {e["task_runner_id"] for e in events}
    assert len(writers) == 2  # the cancelled run, then its re-launch
