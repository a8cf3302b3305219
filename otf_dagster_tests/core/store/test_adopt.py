"""A hand-launched runner takes its task (``TaskStore.adopt``): which tasks it may take, what it
writes, and that the runner it replaces is fenced out."""

from __future__ import annotations

import pytest

from otf_dagster.core.store.polls import PollWrite
from otf_dagster.exceptions import StaleTransition, UnknownTask
from otf_dagster.vocab.tasks import TaskState
from otf_dagster_tests.helpers import MEDIA, NOW, start_task


def test_a_scheduled_task_is_started_by_the_hand_launched_run(store, media_types):
    task_id, _ = store.schedule_task(MEDIA, "g1", NOW)
    task = store.adopt(task_id, "hand-run")
    assert (task.state, task.attempt, task.run_id) == (TaskState.STARTED, 1, "hand-run")
    assert task.heartbeat_at is not None and task.started_at is not None
    last = store.state_history(task_id)[-1]
    assert (last["service"], last["state"], last["previous_state"], last["attempt"]) == (
        "task",
        TaskState.STARTED,
        TaskState.SCHEDULED,
        1,
    )
    assert last["detail"] == {"run_id": "hand-run", "manual": True}


def test_a_started_task_moves_to_the_next_attempt_and_fences_the_old_runner(store, media_task):
    task_id = media_task.task.task_id
    task = store.adopt(task_id, "hand-run")
    assert (task.state, task.attempt, task.run_id) == (TaskState.STARTED, 2, "hand-run")
    last = store.state_history(task_id)[-1]
    assert (last["previous_state"], last["attempt"]) == (TaskState.STARTED, 2)
    with pytest.raises(StaleTransition):
        store.heartbeat(task_id, 1)
    with pytest.raises(StaleTransition):
        store.set_run_id(task_id, 1, "old-run")
    store.heartbeat(task_id, 2)
    assert store.get_task(task_id).run_id == "hand-run"


def test_a_task_whose_runner_reported_its_end_is_not_taken(store, media_task):
    """The runner FINISHED; the task waits for its other services: a hand launch must not
    start the game over."""
    task_id = media_task.task.task_id
    store.record_poll(PollWrite(task_id, 1, "r1", {"next_seq": 1}, finish=TaskState.FINISHED))
    with pytest.raises(StaleTransition, match="is STARTED \\(attempt 1\\) and cannot be started"):
        store.adopt(task_id, "hand-run")
    task = store.get_task(task_id)
    assert (task.state, task.attempt) == (TaskState.STARTED, 1)


@pytest.mark.parametrize("state", [TaskState.FINISHED, TaskState.FAILED, TaskState.CANCELLED])
def test_an_ended_task_is_not_taken(store, media_types, state):
    task_id, _ = store.schedule_task(MEDIA, "g1", NOW)
    store.transition(task_id, TaskState.SCHEDULED, state, 0, reason="done")
    with pytest.raises(StaleTransition, match=f"is {state} \\(attempt 0\\)"):
        store.adopt(task_id, "hand-run")
    assert store.get_task(task_id).state == state


def test_a_task_of_a_deleted_type_is_not_taken(store, media_types):
    task_id, _ = store.schedule_task(MEDIA, "g1", NOW)
    store.delete_task_type(MEDIA)
    with pytest.raises(StaleTransition, match="check its type is not deleted"):
        store.adopt(task_id, "hand-run")
    assert store.get_task(task_id).state == TaskState.SCHEDULED


def test_an_unknown_task_is_named(store, media_types):
    with pytest.raises(UnknownTask, match="'nope:1'"):
        store.adopt("nope:1", "hand-run")


def test_a_second_hand_launch_takes_it_again(store, media_types):
    start_task(store)
    task_id = "nba_game_media:g1"
    assert store.adopt(task_id, "a").attempt == 2
    assert store.adopt(task_id, "b").attempt == 3
