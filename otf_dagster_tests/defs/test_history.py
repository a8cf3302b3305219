"""The history_prune job and its schedule on a real instance; a task run for real, pruned,
still read in full from the task database; a prune racing a retry and the Task Manager."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import dagster as dg
import psycopg
import pytest

from otf_dagster.core import retention
from otf_dagster.core.manager import launch_for
from otf_dagster.core.store import TaskStore
from otf_dagster.core.timeline import timeline
from otf_dagster.definitions import build_definitions, defs
from otf_dagster.defs.history import HISTORY_PRUNE_JOB, InstanceSide
from otf_dagster.defs.resources import FeedResource, TaskStoreResource
from otf_dagster.simulator.server import Simulator
from otf_dagster.vocab.tasks import TaskState
from otf_dagster_tests.core import history_seed as hs
from otf_dagster_tests.defs.test_sensor import tick
from otf_dagster_tests.helpers import StepClock, apply_test_types, wait_for


def _backdate(db_url: str, tid: str, days: int = 40) -> None:
    with psycopg.connect(db_url, autocommit=True) as c:
        c.execute(
            "UPDATE tasks SET finished_at = now() - make_interval(days => %s) WHERE task_id = %s",
            (days, tid),
        )


def test_the_job_prunes_and_records_what_it_removed_as_metadata(store, default_types, db_url):
    job_defs = build_definitions(task_store=TaskStoreResource(database_url=db_url))
    job = job_defs.resolve_job_def(HISTORY_PRUNE_JOB)
    runner = hs.runner_job(db_url)
    with dg.instance_for_test() as instance:
        old = [hs.seed_task(db_url, f"g{i}", polls=3) for i in range(2)]
        recent = hs.seed_task(db_url, "recent", days_ago=1, polls=2)
        hs.add_partitions(instance, [*old, recent])
        for t in [*old, recent]:
            hs.add_run(instance, runner, t)
        result = job.execute_in_process(
            instance=instance,
            run_config={"ops": {"prune_history": {"config": {"older_than_days": 30}}}},
        )
        assert result.success
        [output] = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_OUTPUT]
        meta = {k: v.value for k, v in output.event_specific_data.metadata.items()}
        assert (meta["tasks"], meta["partitions"], meta["runs"], meta["polls"]) == (2, 2, 2, 6)
        assert meta["dry_run"] is False and "removed 2 partition(s)" in meta["summary"]
        assert hs.partitions(instance) == {recent}
        assert instance.get_run_by_id(result.run_id) is not None  # its own run stays
        messages = [r.user_message for r in instance.all_logs(result.run_id)]
        assert any("task_polls: removed 6 row(s)" in m for m in messages)


def test_the_daily_schedule_carries_the_settings(monkeypatch):
    d = build_definitions(history_days=45, events_retention_days=400, history_cron="0 3 * * *")
    schedule = d.get_repository_def().get_schedule_def("daily_history_prune")
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    assert schedule.cron_schedule == "0 3 * * *" and schedule.job_name == HISTORY_PRUNE_JOB
    [request] = schedule.evaluate_tick(dg.build_schedule_context()).run_requests
    config = request.run_config["ops"]["prune_history"]["config"]
    assert config == {"older_than_days": 45, "events_older_than_days": 400}
    monkeypatch.setenv("OTF_HISTORY_DAYS", "0")
    with pytest.raises(Exception, match="OTF_HISTORY_DAYS='0' is not a whole number above 0"):
        defs()


@pytest.fixture
def fast_game():
    with Simulator(speed=60, games=1, first_start=0, spacing=10, clock=StepClock(15.0)) as sim:
        yield sim


def test_a_task_run_for_real_and_pruned_still_reads_in_full(db_url, store, fast_game):
    apply_test_types(store, poll=1.0)
    store.schedule_task("NBA_GAME_BOXSCORE", fast_game.games[0].nba_id, datetime.now(UTC))
    [claimed] = store.claim_ready()
    tid = claimed.task.task_id
    launch = launch_for(tid, claimed.task_type, claimed.task.attempt, "claimed")
    d = build_definitions(
        task_store=TaskStoreResource(database_url=db_url),
        feeds=FeedResource(provider="nba_cdn", base_url=fast_game.base_url),
    )
    with dg.instance_for_test() as instance:
        hs.add_partitions(instance, [tid])
        result = d.resolve_job_def("task_runner").execute_in_process(
            instance=instance, partition_key=tid, tags=launch.tags
        )
        assert result.success
        key = dg.AssetKey("task_runs")
        assert instance.fetch_materializations(key, limit=10).records
        _backdate(db_url, tid)
        before = (timeline(store, tid), store.get_task(tid), store.task_events(tid))
        assert len(before[2]) > 5

        report = retention.prune(
            store, InstanceSide(instance), retention.PruneSettings(), source="test"
        )
        assert (report.partitions, report.runs) == (1, 1)
        assert hs.partitions(instance) == set()
        assert instance.get_run_by_id(result.run_id) is None
        assert instance.fetch_materializations(key, limit=10).records == []
        # the task database is the system of record: the same task, states and events
        assert (timeline(store, tid), store.get_task(tid), store.task_events(tid)) == before


class RetryDuringPrune(InstanceSide):
    """Once the prune holds its batch, someone retries one of its tasks (`otf tasks retry`),
    and the state each removed task has in the database is read as it is removed."""

    def __init__(self, instance, db_url: str, task_id: str) -> None:
        super().__init__(instance)
        self.db_url, self.task_id = db_url, task_id
        self.seen: dict[str, str] = {}
        self.retry: threading.Thread | None = None
        self.errors: list[BaseException] = []

    def task_runs(self, task_ids):
        if self.task_id in task_ids and self.retry is None:
            self.retry = threading.Thread(target=self._retry)
            self.retry.start()
            wait_for(
                lambda: not self.retry.is_alive() or self._retry_waits(),
                "the retry to finish or to wait for the prune's lock",
                30,
                every=0.05,
            )
        return super().task_runs(task_ids)

    def _retry(self) -> None:
        try:
            with TaskStore(self.db_url, application_name="otf-test-retry") as s:
                s.retry(self.task_id, "again, during a prune")
        except BaseException as exc:  # surfaced by the test
            self.errors.append(exc)

    def _retry_waits(self) -> bool:
        with psycopg.connect(self.db_url) as c:
            return bool(
                c.execute(
                    "SELECT 1 FROM pg_stat_activity WHERE application_name = 'otf-test-retry'"
                    " AND wait_event_type = 'Lock'"
                ).fetchone()
            )

    def delete_partition(self, key: str) -> None:
        with psycopg.connect(self.db_url) as c:
            self.seen[key] = c.execute(
                "SELECT state::text FROM tasks WHERE task_id = %s", (key,)
            ).fetchone()[0]
        super().delete_partition(key)


def test_a_prune_racing_a_retry_and_the_task_manager_removes_only_ended_tasks(
    store, default_types, db_url
):
    runner = hs.runner_job(db_url)
    with dg.instance_for_test() as instance:
        old = [hs.seed_task(db_url, f"old{i}", state="FINISHED") for i in range(4)]
        retried = hs.seed_task(db_url, "retried", state="FAILED")
        live = hs.seed_task(db_url, "live", state="STARTED", days_ago=0)
        hs.add_partitions(instance, [*old, retried, live])
        for t in [*old, retried]:
            hs.add_run(instance, runner, t)
        side = RetryDuringPrune(instance, db_url, retried)
        retention.prune(store, side, retention.PruneSettings(batch_size=10), source="test")
        side.retry.join(30)
        assert not side.errors, side.errors
        assert side.seen and set(side.seen.values()) <= {"FINISHED", "FAILED", "CANCELLED"}, (
            f"a partition was removed from a task that is not ended: {side.seen}"
        )
        assert store.get_task(retried).state == TaskState.SCHEDULED

        # the Task Manager claims the retried task: its partition is added back, and a prune
        # now leaves it (it runs) whatever its old marker says
        result = tick(instance, db_url)
        assert retried in [r.partition_key for r in result.run_requests]
        for request in result.dynamic_partitions_requests:
            instance.add_dynamic_partitions(request.partitions_def_name, request.partition_keys)
        assert retried in hs.partitions(instance) and live in hs.partitions(instance)
        again = retention.prune(
            store, InstanceSide(instance), retention.PruneSettings(), source="test"
        )
        assert again.partitions == 0
        assert hs.partitions(instance) == {retried, live}
