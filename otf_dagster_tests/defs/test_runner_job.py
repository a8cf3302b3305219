"""The TaskRunner as a Dagster job, executed in process on a real instance."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg
import pytest

from otf_dagster.core.manager import TAG_ATTEMPT, TAG_RETRY, launch_for
from otf_dagster.definitions import build_definitions
from otf_dagster.defs.resources import FeedResource, TaskStoreResource
from otf_dagster.simulator.server import Simulator
from otf_dagster.vocab.tasks import TaskState
from otf_dagster_tests.helpers import StepClock, apply_test_types

T = "NBA_GAME_BOXSCORE"


@pytest.fixture
def fast_game():
    # Each request moves the game 15 minutes of game time on (speed 60, 15 s a request), so
    # the recorded game ends after the same few polls however busy the machine is.
    with Simulator(speed=60, games=1, first_start=0, spacing=10, clock=StepClock(15.0)) as sim:
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
        messages = [r.user_message for r in instance.all_logs(result.run_id)]
        return result, observations, messages


def test_a_claimed_task_runs_to_final_and_reports_to_the_ui(db_url, store, fast_game):
    apply_test_types(store, poll=1.0)
    store.schedule_task(T, fast_game.games[0].nba_id, datetime.now(UTC))
    [claimed] = store.claim_ready()
    launch = launch_for(claimed.task.task_id, claimed.task_type, claimed.task.attempt, "claimed")
    result, observations, _ = run_job(db_url, fast_game, claimed.task.task_id, launch.tags)
    assert result.success
    [mat] = result.asset_materializations_for_node("task_runs")
    meta = {k: v.value for k, v in mat.metadata.items()}
    assert meta["state"] == "FINISHED" and meta["score"] == "ORL 97 - BOS 124"
    assert "| BOS " in meta["box_score"] and "124" in meta["box_score"]
    assert "tip-off: ORL @ BOS" in meta["timeline"] and "task FINISHED" in meta["timeline"]
    assert meta["score_chart"].startswith("![score over time](data:image/png;base64,")
    assert len(observations) == meta["polls"] >= 3
    first = observations[0].event_specific_data.asset_observation
    assert first.partition == claimed.task.task_id and "score" in first.metadata
    task = store.get_task(claimed.task.task_id)
    assert task.state == TaskState.FINISHED and task.run_id == result.run_id
    assert {e["task_runner_id"] for e in store.task_events(task.task_id)} == {result.run_id}


def test_a_hand_launched_runner_takes_a_scheduled_task_over(db_url, store, fast_game):
    apply_test_types(store, poll=1.0)
    task_id, _ = store.schedule_task(T, fast_game.games[0].nba_id, datetime(2100, 1, 1, tzinfo=UTC))
    result, _, _ = run_job(db_url, fast_game, task_id)  # no attempt tag: launched by hand
    assert result.success
    task = store.get_task(task_id)
    assert task.state == TaskState.FINISHED and task.attempt == 1
    assert store.state_history(task_id)[1]["detail"]["manual"] is True


def test_a_refused_hand_launch_leaves_the_partition_alone_and_a_retry_runs(
    db_url, store, fast_game
):
    """A hand launch on a FAILED task is refused with one clear line and materializes nothing
    (the partition is not marked failed); with otf/retry=true the task runs again, as the
    next attempt, keeping its checkpoint."""
    apply_test_types(store, poll=1.0)
    store.schedule_task(T, "0029999999", datetime.now(UTC))
    [claimed] = store.claim_ready()
    tid = claimed.task.task_id
    result, _, _ = run_job(db_url, fast_game, tid, {TAG_ATTEMPT: "1"})  # unknown game: FAILED
    assert not result.success
    failed = store.get_task(tid)
    assert failed.state == TaskState.FAILED and "unknown game" in failed.last_error

    again, _, messages = run_job(db_url, fast_game, tid)  # by hand, on a FAILED task: refused
    assert again.success and again.asset_materializations_for_node("task_runs") == []
    assert any("cannot be started by hand" in m and TAG_RETRY in m for m in messages)
    assert store.get_task(tid).state == TaskState.FAILED

    retried, _, _ = run_job(db_url, fast_game, tid, {TAG_RETRY: "true"})
    assert not retried.success  # the game is still unknown to the feed
    task = store.get_task(tid)
    assert task.attempt == 2 and task.state == TaskState.FAILED
    history = [(h["service"], h["state"], h["previous_state"]) for h in store.state_history(tid)]
    assert ("task", "SCHEDULED", "FAILED") in history
