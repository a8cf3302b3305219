"""The Task Manager sensor on a real Dagster instance, and its reconciliation rules."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import dagster as dg
import psycopg
import pytest

from otf_dagster.core import manager
from otf_dagster.core.manager import RunInfo
from otf_dagster.core.store import TaskStore
from otf_dagster.definitions import build_definitions
from otf_dagster.defs.resources import TaskStoreResource
from otf_dagster.vocab.tasks import TaskState
from otf_dagster_tests.core.store.test_claim_race import seed_ready_tasks

T = "NBA_GAME_BOXSCORE"
PAST = datetime(2026, 1, 1, tzinfo=UTC)


def tick(instance: dg.DagsterInstance, db_url: str, **kw) -> dg.SensorResult:
    resource = TaskStoreResource(database_url=db_url)
    defs = build_definitions(task_store=resource, **kw)
    context = dg.build_sensor_context(
        instance=instance,
        resources={"task_store": resource},
        repository_def=defs.get_repository_def(),
        instance_ref=instance.get_ref() if instance.is_persistent else None,
    )
    return defs.get_sensor_def("task_manager").evaluate_tick(context)


def test_a_tick_claims_ready_tasks_and_requests_runs(db_url, store, default_types):
    for key in ("0022000180", "0029900001"):
        store.schedule_task(T, key, PAST)
    store.schedule_task(T, "later", datetime.now(UTC) + timedelta(hours=1))
    with dg.instance_for_test() as instance:
        result = tick(instance, db_url)
        assert result.skip_message is None
        requests = sorted(result.run_requests, key=lambda r: r.partition_key)
        assert [r.partition_key for r in requests] == [
            "nba_game_boxscore:0022000180",
            "nba_game_boxscore:0029900001",
        ]
        r = requests[0]
        assert r.run_key == "nba_game_boxscore:0022000180:1"
        assert r.tags[manager.TAG_TASK_ID] == "nba_game_boxscore:0022000180"
        assert r.tags[manager.TAG_TASK_TYPE] == T and r.tags[manager.TAG_ATTEMPT] == "1"
        assert r.tags["dagster/max_runtime"] == str(21600 + manager.MAX_RUNTIME_MARGIN_SECONDS)
        [add] = result.dynamic_partitions_requests
        assert add.partitions_def_name == "tasks" and sorted(add.partition_keys) == [
            r.partition_key for r in requests
        ]
        assert {t.state for t in store.list_tasks() if t.external_key != "later"} == {
            TaskState.STARTED
        }
        # Nothing more is ready: the next tick says why it skipped.
        again = tick(instance, db_url)
        assert again.run_requests == [] and "no ready tasks" in again.skip_message


def test_the_sensor_respects_its_claim_limit(db_url, store, default_types):
    seed_ready_tasks(db_url, 30)
    with dg.instance_for_test() as instance:
        assert len(tick(instance, db_url, claim_limit=12).run_requests) == 12
        assert len(tick(instance, db_url, claim_limit=12).run_requests) == 12
        assert len(tick(instance, db_url, claim_limit=12).run_requests) == 6


def test_two_deployments_never_start_a_task_twice(db_url, store, default_types):
    """Two Dagster instances (two deployments) tick at once over one task database."""
    seed_ready_tasks(db_url, 600)
    results: dict[int, list[str]] = {0: [], 1: []}
    barrier = threading.Barrier(2)

    def deployment(i: int) -> None:
        with dg.instance_for_test() as instance:
            barrier.wait()
            for _ in range(10):
                res = tick(instance, db_url, claim_limit=40)
                results[i].extend(r.partition_key for r in res.run_requests)

    threads = [threading.Thread(target=deployment, args=(i,)) for i in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    both = results[0] + results[1]
    assert len(both) == len(set(both)) == 600
    assert results[0] and results[1]


def running(store: TaskStore, key: str) -> str:
    store.schedule_task(T, key, PAST)
    [c] = [c for c in store.claim_ready(now=datetime.now(UTC)) if c.task.external_key == key]
    return c.task.task_id


def age_heartbeat(db_url: str, task_id: str, seconds: int) -> None:
    with psycopg.connect(db_url) as conn:
        conn.execute(
            "UPDATE tasks SET heartbeat_at = now() - make_interval(secs => %s) WHERE task_id = %s",
            (seconds, task_id),
        )


@pytest.mark.parametrize(
    ("run", "age", "relaunched"),
    [
        (None, 30, False),  # claimed moments ago, run not there yet: wait
        (None, 90, True),  # run never appeared
        (RunInfo("r1", "QUEUED"), 900, False),  # waiting in Dagster's queue
        (RunInfo("r1", "STARTED"), 30, False),  # healthy
        (RunInfo("r1", "STARTED"), 900, True),  # heartbeat stale (killed run worker)
        (RunInfo("r1", "FAILURE"), 90, True),  # failed for good
        (RunInfo("r1", "FAILURE", will_retry=True), 90, False),  # Dagster will retry it
        (RunInfo("r1", "CANCELED"), 90, True),
        (RunInfo("r1", "SUCCESS"), 90, True),  # ended without ending the task
    ],
)
def test_reconcile_rules(db_url, store, default_types, run, age, relaunched):
    task_id = running(store, "g1")
    age_heartbeat(db_url, task_id, age)
    report = manager.reconcile(
        store, lambda keys: {k: run for k in keys} if run else {}, grace_seconds=60
    )
    task = store.get_task(task_id)
    if relaunched:
        [launch] = report.launches
        assert (launch.task_id, launch.attempt, launch.run_key) == (task_id, 2, f"{task_id}:2")
        assert task.attempt == 2 and task.state == TaskState.STARTED
        assert store.state_history(task_id)[-1]["detail"]["relaunch"] is True
    else:
        assert report.launches == [] and task.attempt == 1
    assert (report.left_to_dagster == [task_id]) == bool(run and run.will_retry)


def test_reconcile_fails_the_task_once_attempts_are_spent(db_url, store, default_types):
    task_id = running(store, "g1")
    for attempt in (1, 2):
        age_heartbeat(db_url, task_id, 900)
        report = manager.reconcile(
            store, lambda keys: {(t, a): RunInfo(f"r{a}", "FAILURE") for t, a in keys}
        )
        assert report.launches[0].attempt == attempt + 1
    age_heartbeat(db_url, task_id, 900)
    report = manager.reconcile(store, lambda keys: {k: RunInfo("r3", "FAILURE") for k in keys})
    assert report.launches == [] and report.failed[0][0] == task_id
    task = store.get_task(task_id)
    assert task.state == TaskState.FAILED and "gave up after 3 attempt(s)" in task.last_error


def test_the_sensor_relaunches_a_claimed_task_whose_run_never_appeared(
    db_url, store, default_types
):
    task_id = running(store, "g1")
    age_heartbeat(db_url, task_id, 120)
    with dg.instance_for_test() as instance:
        result = tick(instance, db_url, grace_seconds=60)
        [req] = result.run_requests
        assert req.run_key == f"{task_id}:2" and req.tags[manager.TAG_ATTEMPT] == "2"


def test_failure_sensor_relaunches_then_fails(db_url, store, default_types):
    task_id = running(store, "g1")
    with dg.instance_for_test() as instance:
        resources = {"task_store": TaskStoreResource(database_url=db_url)}
        for attempt, expect in ((1, "relaunch"), (2, "relaunch"), (3, "fail")):
            run = dg.DagsterRun(
                job_name="task_runner",
                run_id=f"run-{attempt}",
                status=dg.DagsterRunStatus.FAILURE,
                tags={manager.TAG_TASK_ID: task_id, manager.TAG_ATTEMPT: str(attempt)},
            )
            context = dg.build_run_status_sensor_context(
                sensor_name="runner_failure_sensor",
                dagster_instance=instance,
                dagster_run=run,
                dagster_event=dg.DagsterEvent(
                    event_type_value="PIPELINE_FAILURE", job_name="task_runner", message="boom"
                ),
                resources=resources,
                repository_def=build_definitions(
                    task_store=resources["task_store"]
                ).get_repository_def(),
            ).for_run_failure()
            sensor = build_definitions(task_store=resources["task_store"]).get_sensor_def(
                "runner_failure_sensor"
            )
            result = sensor(context)
            if expect == "relaunch":
                [req] = result.run_requests
                assert req.tags[manager.TAG_ATTEMPT] == str(attempt + 1)
            else:
                assert store.get_task(task_id).state == TaskState.FAILED
        # A failure report for a stale attempt changes nothing.
        assert "run-1" not in (store.get_task(task_id).last_error or "")


def test_the_batched_run_lookup_finds_the_newest_run_of_each_attempt(db_url, store, default_types):
    from otf_dagster.defs.sensors import run_lookup

    with dg.instance_for_test() as instance:
        for i, (task_id, attempt, status) in enumerate(
            [
                ("a:1", 1, "FAILURE"),
                ("a:1", 2, "STARTED"),
                ("b:1", 1, "NOT_STARTED"),
                ("b:1", 1, "FAILURE"),
            ]
        ):
            instance.add_run(
                dg.DagsterRun(
                    job_name="task_runner",
                    run_id=f"run-{i}",
                    status=dg.DagsterRunStatus(status),
                    tags={manager.TAG_TASK_ID: task_id, manager.TAG_ATTEMPT: str(attempt)},
                )
            )
        found = run_lookup(instance)([("a:1", 1), ("a:1", 2), ("b:1", 1), ("c:1", 1)])
        assert {k: (v.run_id, v.status) for k, v in found.items()} == {
            ("a:1", 1): ("run-0", "FAILURE"),
            ("a:1", 2): ("run-1", "STARTED"),
            ("b:1", 1): ("run-3", "FAILURE"),  # the newest of the attempt's runs
        }


def test_a_run_whose_worker_died_is_canceled_when_its_task_is_relaunched(
    db_url, store, default_types
):
    task_id = running(store, "g1")
    age_heartbeat(db_url, task_id, 900)  # the worker was SIGKILLed long ago: no heartbeat
    with dg.instance_for_test() as instance:
        instance.add_run(
            dg.DagsterRun(
                job_name="task_runner",
                run_id="dead-worker",
                status=dg.DagsterRunStatus.STARTED,
                tags={manager.TAG_TASK_ID: task_id, manager.TAG_ATTEMPT: "1"},
            )
        )
        [req] = tick(instance, db_url).run_requests
        assert req.tags[manager.TAG_ATTEMPT] == "2"
        run = instance.get_run_by_id("dead-worker")
        assert run.status == dg.DagsterRunStatus.CANCELED
        [canceled] = instance.get_records_for_run(
            "dead-worker", of_type=dg.DagsterEventType.RUN_CANCELED
        ).records
        assert "heartbeat stale" in canceled.event_log_entry.dagster_event.message
        assert "re-launched as attempt 2" in canceled.event_log_entry.dagster_event.message


def test_a_failure_report_for_a_stale_attempt_changes_nothing(db_url, store, default_types):
    """The task was re-launched as attempt 2 (a newer run owns it); then attempt 1's run is
    reported failed. The failure sensor must leave the task alone: no re-launch, no failure,
    no history row."""
    task_id = running(store, "g1")
    age_heartbeat(db_url, task_id, 900)
    manager.reconcile(store, lambda keys: {k: RunInfo("run-1", "FAILURE") for k in keys})
    before = store.get_task(task_id)
    history = store.state_history(task_id)
    assert (before.state, before.attempt) == (TaskState.STARTED, 2)
    stale = dg.DagsterRun(
        job_name="task_runner",
        run_id="run-1",
        status=dg.DagsterRunStatus.FAILURE,
        tags={manager.TAG_TASK_ID: task_id, manager.TAG_ATTEMPT: "1"},
    )
    resources = {"task_store": TaskStoreResource(database_url=db_url)}
    with dg.instance_for_test() as instance:
        context = dg.build_run_status_sensor_context(
            sensor_name="runner_failure_sensor",
            dagster_instance=instance,
            dagster_run=stale,
            dagster_event=dg.DagsterEvent(
                event_type_value="PIPELINE_FAILURE", job_name="task_runner", message="boom"
            ),
            resources=resources,
            repository_def=build_definitions(
                task_store=resources["task_store"]
            ).get_repository_def(),
        ).for_run_failure()
        sensor = build_definitions(task_store=resources["task_store"]).get_sensor_def(
            "runner_failure_sensor"
        )
        result = sensor(context)
    assert not getattr(result, "run_requests", None)
    after = store.get_task(task_id)
    assert (after.state, after.attempt, after.last_error) == (
        before.state,
        before.attempt,
        before.last_error,
    )
    assert store.state_history(task_id) == history
