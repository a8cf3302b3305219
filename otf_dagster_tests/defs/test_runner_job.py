"""The TaskRunner as a Dagster job, executed in process on a real instance."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import dagster as dg
import pytest

from otf_dagster.core.manager import TAG_ATTEMPT, launch_for
from otf_dagster.core.models import TaskState
from otf_dagster.definitions import build_definitions
from otf_dagster.defs.resources import FeedResource, TaskStoreResource
from otf_dagster.simulator.server import Simulator
from otf_dagster_tests.helpers import apply_test_types

T = "NBA_GAME_BOXSCORE"


class RequestClock:
    """Time that moves one second per read. The simulator reads it once per request, so at
    speed 900 the recorded game is final at the runner's fourth poll however busy the machine
    (on the wall clock, a slow start could leave the runner two polls)."""

    def __init__(self) -> None:
        self.t = time.time()

    def __call__(self) -> float:
        self.t += 1.0
        return self.t


@pytest.fixture
def fast_game():
    with Simulator(speed=900, games=1, first_start=0, spacing=10, clock=RequestClock()) as sim:
        yield sim


def run_job(db_url: str, sim: Simulator, task_id: str, tags: dict[str, str] | None = None):
    defs = build_definitions(
        task_store=TaskStoreResource(database_url=db_url),
        feeds=FeedResource(provider="nba_cdn", base_url=sim.base_url),
    )
    job = defs.resolve_job_def("task_runner")
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("tasks", [task_id])
        result = job.execute_in_process(
            instance=instance, partition_key=task_id, tags=tags or {}, raise_on_error=False
        )
        observations = [
            e for e in result.all_events if e.event_type == dg.DagsterEventType.ASSET_OBSERVATION
        ]
        return result, observations


def test_a_claimed_task_runs_to_final_and_reports_to_the_ui(db_url, store, fast_game):
    apply_test_types(store, poll=1.0)
    store.schedule_task(T, fast_game.games[0].nba_id, datetime.now(UTC))
    [claimed] = store.claim_ready()
    launch = launch_for(claimed.task.task_id, claimed.task_type, claimed.task.attempt, "claimed")
    result, observations = run_job(db_url, fast_game, claimed.task.task_id, launch.tags)
    assert result.success
    [mat] = result.asset_materializations_for_node("game_boxscore")
    meta = {k: v.value for k, v in mat.metadata.items()}
    assert meta["state"] == "FINISHED" and meta["score"] == "ORL 97 - BOS 124"
    assert "| BOS " in meta["box_score"] and "124" in meta["box_score"]
    assert "event #1 game_started" in meta["timeline"] and "task FINISHED" in meta["timeline"]
    assert len(observations) == meta["polls"] >= 3
    first = observations[0].event_specific_data.asset_observation
    assert first.partition == claimed.task.task_id and "score" in first.metadata
    task = store.get_task(claimed.task.task_id)
    assert task.state == TaskState.FINISHED and task.run_id == result.run_id
    assert {e["task_runner_id"] for e in store.task_events(task.task_id)} == {result.run_id}


def test_a_hand_launched_runner_takes_a_scheduled_task_over(db_url, store, fast_game):
    apply_test_types(store, poll=1.0)
    task_id, _ = store.schedule_task(T, fast_game.games[0].nba_id, datetime(2100, 1, 1, tzinfo=UTC))
    result, _ = run_job(db_url, fast_game, task_id)  # no attempt tag: launched by hand
    assert result.success
    task = store.get_task(task_id)
    assert task.state == TaskState.FINISHED and task.attempt == 1
    assert store.state_history(task_id)[1]["detail"]["manual"] is True


def test_a_runner_for_a_finished_task_fails_clearly(db_url, store, fast_game):
    apply_test_types(store, poll=1.0)
    store.schedule_task(T, "0029999999", datetime.now(UTC))
    [claimed] = store.claim_ready()
    tags = {TAG_ATTEMPT: "1"}
    result, _ = run_job(db_url, fast_game, claimed.task.task_id, tags)  # unknown game: FAILED
    assert not result.success
    assert store.get_task(claimed.task.task_id).state == TaskState.FAILED
    again, _ = run_job(db_url, fast_game, claimed.task.task_id)  # by hand, on a FAILED task
    assert not again.success
    failure = [e for e in again.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE][0]
    assert "cannot be started by hand" in failure.event_specific_data.user_failure_data.description
