"""What the Task Manager's decisions leave behind: the run requests' tags, the history rows'
sources and details, the refusals' messages (each written to kill a mutant that survived)."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from otf_dagster.core import manager
from otf_dagster.core.manager import RunInfo
from otf_dagster.core.store.polls import PollWrite
from otf_dagster.exceptions import StaleTransition
from otf_dagster.vocab.tasks import TaskState
from otf_dagster_tests.helpers import MEDIA, NOW, start_task


@pytest.fixture
def media_types_due(store, media_types):
    store.schedule_task(MEDIA, "g1", datetime(2026, 1, 1, tzinfo=UTC))


def test_a_launch_carries_every_tag_the_deployment_relies_on(store, media_types_due):
    [launch] = manager.claim(store, 10, source="task_manager")
    ttype = store.get_task_type(MEDIA)
    assert launch.reason == "claimed"
    assert launch.tags == {
        manager.TAG_TASK_ID: launch.task_id,
        manager.TAG_TASK_TYPE: MEDIA,
        manager.TAG_ATTEMPT: "1",
        "dagster/max_runtime": str(ttype.deadline_seconds + manager.MAX_RUNTIME_MARGIN_SECONDS),
        "dagster/retry_on_asset_or_op_failure": "false",
    }


def test_a_claim_records_who_claimed(store, media_types_due):
    [launch] = manager.claim(store, 10, source="manager-7")
    last = store.state_history(launch.task_id)[-1]
    assert (last["state"], last["previous_state"], last["source"]) == (
        TaskState.STARTED,
        TaskState.SCHEDULED,
        "manager-7",
    )


def age_heartbeat(db_url: str, task_id: str, seconds: int) -> None:
    with psycopg.connect(db_url) as conn:
        conn.execute(
            "UPDATE tasks SET heartbeat_at = now() - make_interval(secs => %s) WHERE task_id = %s",
            (seconds, task_id),
        )


def test_a_failed_run_is_recorded_as_the_failure_sensors_doing(store, media_task):
    task_id = media_task.task.task_id
    report = manager.handle_failed_run(store, task_id, 1, RunInfo("run-1", "FAILURE"))
    assert [launch.attempt for launch in report.launches] == [2]
    last = store.state_history(task_id)[-1]
    assert last["source"] == "run_failure_sensor"
    assert last["detail"] == {
        "relaunch": True,
        "reason": "run run-1 ended FAILURE",
        "previous_attempt": 1,
    }
    manager.handle_failed_run(store, task_id, 2, RunInfo("run-2", "FAILURE"), source="other")
    assert store.state_history(task_id)[-1]["source"] == "other"


def test_a_failed_run_of_a_deleted_type_is_still_handled(store, media_task):
    """The type was soft-deleted while its runner ran: the run's failure still re-launches
    (the new runner then ends it, seeing the type deleted), never raises."""
    task_id = media_task.task.task_id
    store.delete_task_type(MEDIA)
    report = manager.handle_failed_run(store, task_id, 1, RunInfo("run-1", "FAILURE"))
    assert [launch.attempt for launch in report.launches] == [2]


def test_a_lost_race_is_logged_and_changes_nothing(db_url, store, media_task, caplog):
    """Another manager re-launched the task between this one's read and its write."""
    task_id = media_task.task.task_id
    age_heartbeat(db_url, task_id, 900)

    def find_runs(keys):
        store.relaunch(task_id, 1, "the other manager got there first", source="other")
        return {k: RunInfo("run-1", "FAILURE") for k in keys}

    with caplog.at_level(logging.INFO, logger="otf_dagster.core.manager"):
        report = manager.reconcile(store, find_runs)
    assert report.launches == [] and report.failed == []
    assert store.get_task(task_id).attempt == 2
    [line] = [r.getMessage() for r in caplog.records if r.name == "otf_dagster.core.manager"]
    assert line.startswith(f"reconcile {task_id}: refused re-launch of task '{task_id}'")
    assert "expected STARTED at attempt 1, but it is STARTED at attempt 2" in line


def test_a_transition_records_where_it_came_from(store, media_types):
    task_id, _ = store.schedule_task(MEDIA, "g1", NOW)
    store.cancel_task(task_id, "postponed", source="ingest")
    last = store.state_history(task_id)[-1]
    assert (last["state"], last["previous_state"], last["source"], last["detail"]) == (
        TaskState.CANCELLED,
        TaskState.SCHEDULED,
        "ingest",
        {"reason": "postponed"},
    )


def test_refusals_name_the_change_and_what_was_expected(store, media_types):
    task_id, _ = store.schedule_task(MEDIA, "g1", NOW)
    with pytest.raises(StaleTransition) as info:
        store.transition(task_id, TaskState.STARTED, TaskState.FINISHED, 1)
    assert str(info.value) == (
        f"refused STARTED -> FINISHED of task '{task_id}': expected STARTED at attempt 1, "
        "but it is SCHEDULED at attempt 0 (a newer writer owns it)"
    )
    start_task(store, key="g2")
    started = "nba_game_media:g2"
    for call, what in (
        (lambda: store.relaunch(started, 7, "why"), "re-launch"),
        (lambda: store.heartbeat(started, 7), "heartbeat"),
        (lambda: store.set_run_id(started, 7, "r"), "set run id"),
    ):
        with pytest.raises(StaleTransition) as info:
            call()
        assert str(info.value) == (
            f"refused {what} of task '{started}': expected STARTED at attempt 7, "
            "but it is STARTED at attempt 1 (a newer writer owns it)"
        )


def test_a_run_that_never_appeared_is_relaunched_at_the_default_grace_exactly(store, media_task):
    """Defaults: 60 s of grace from the claim, recorded as the Task Manager's doing."""
    task = store.get_task(media_task.task.task_id)
    too_soon = manager.reconcile(
        store, lambda keys: {}, now=task.heartbeat_at + timedelta(seconds=59)
    )
    assert too_soon.launches == []
    report = manager.reconcile(
        store, lambda keys: {}, now=task.heartbeat_at + timedelta(seconds=60)
    )
    assert [launch.reason for launch in report.launches] == [
        "re-launch: its run never appeared (60s after it was claimed)"
    ]
    assert store.state_history(task.task_id)[-1]["source"] == "task_manager"


def test_a_missing_run_waits_for_the_grace_even_past_the_stale_limit(store, media_types):
    """A type whose heartbeat goes stale sooner than the grace: a task claimed 40 s ago with no
    run yet is looked at (40 >= 30) but still waits for its run (40 < 60)."""
    store.apply_task_type(replace(store.get_task_type(MEDIA), stale_after_seconds=30))
    task = store.get_task(start_task(store).task.task_id)
    report = manager.reconcile(
        store, lambda keys: {}, grace_seconds=60, now=task.heartbeat_at + timedelta(seconds=40)
    )
    assert report.launches == [] and store.get_task(task.task_id).attempt == 1


def test_a_stale_run_of_a_task_out_of_attempts_is_cancelled_saying_the_task_failed(
    db_url, store, media_types
):
    store.apply_task_type(replace(store.get_task_type(MEDIA), max_attempts=1))
    task_id = start_task(store).task.task_id
    age_heartbeat(db_url, task_id, 900)
    report = manager.reconcile(store, lambda keys: {k: RunInfo("run-1", "STARTED") for k in keys})
    assert report.failed == [
        (
            task_id,
            "gave up after 1 attempt(s): heartbeat stale (900s old) while run run-1 is STARTED",
        )
    ]
    assert report.stale_runs == [
        ("run-1", "otf: heartbeat stale (900s old) while run run-1 is STARTED; task FAILED")
    ]


def test_every_suspect_is_looked_at_after_a_healthy_one(db_url, store, media_types):
    """The first suspect's run is only queued (left alone); the second's never appeared."""
    queued = start_task(store, key="g1").task.task_id
    lost = start_task(store, key="g2").task.task_id
    for task_id in (queued, lost):
        age_heartbeat(db_url, task_id, 900)
    runs = {(queued, 1): RunInfo("run-q", "QUEUED")}
    report = manager.reconcile(store, lambda keys: {k: runs[k] for k in keys if k in runs})
    assert [(launch.task_id, launch.attempt) for launch in report.launches] == [(lost, 2)]


def test_a_lost_runner_of_a_deleted_type_is_still_reconciled(db_url, store, media_task):
    task_id = media_task.task.task_id
    store.delete_task_type(MEDIA)
    age_heartbeat(db_url, task_id, 900)
    report = manager.reconcile(store, lambda keys: {k: RunInfo("run-1", "FAILURE") for k in keys})
    assert [(launch.task_id, launch.attempt) for launch in report.launches] == [(task_id, 2)]


def test_an_ending_transition_stamps_the_end(store, media_types):
    task_id, _ = store.schedule_task(MEDIA, "g1", NOW)
    assert store.get_task(task_id).finished_at is None
    ended = store.cancel_task(task_id, "postponed")
    assert ended.finished_at is not None and ended.finished_at >= ended.created_at


def test_a_task_that_ended_meanwhile_is_not_relaunched(store, media_task):
    """It ended (here by a transition, no runner row) between the reconcile's read and its
    write, at the same attempt: the re-launch is refused and the end stands."""
    task_id = media_task.task.task_id
    store.transition(task_id, TaskState.STARTED, TaskState.FAILED, 1, reason="gave up")
    with pytest.raises(StaleTransition, match="but it is FAILED at attempt 1"):
        store.relaunch(task_id, 1, "lost")
    task = store.get_task(task_id)
    assert (task.state, task.attempt, task.last_error) == (TaskState.FAILED, 1, "gave up")


def test_a_task_whose_runner_reported_its_end_is_not_relaunched(store, media_task):
    """The runner FINISHED and the task waits for its photo and caption services: no new
    runner may start the game over."""
    task_id = media_task.task.task_id
    store.record_poll(PollWrite(task_id, 1, "r1", {"next_seq": 1}, finish=TaskState.FINISHED))
    with pytest.raises(StaleTransition):
        store.relaunch(task_id, 1, "lost")
    task = store.get_task(task_id)
    assert (task.state, task.attempt) == (TaskState.STARTED, 1)


def test_a_relaunch_forgets_the_lost_run(store, media_task):
    task_id = media_task.task.task_id
    store.set_run_id(task_id, 1, "run-1")
    task = store.relaunch(task_id, 1, "run run-1 ended FAILURE")
    assert (task.attempt, task.run_id, task.last_error) == (2, None, "run run-1 ended FAILURE")
    assert store.get_task(task_id).run_id is None


def test_an_ended_task_takes_no_run_id(store, media_task):
    task_id = media_task.task.task_id
    store.transition(task_id, TaskState.STARTED, TaskState.FAILED, 1, reason="gave up")
    with pytest.raises(StaleTransition, match="but it is FAILED at attempt 1"):
        store.set_run_id(task_id, 1, "late-run")
    assert store.get_task(task_id).run_id is None
