"""Retention on a real task database and a real Dagster instance: what goes, what stays, the
readers' guard over events, dry runs, and a prune killed mid-batch carried on."""

from __future__ import annotations

import dagster as dg
import psycopg
import pytest

from otf_dagster.core import retention
from otf_dagster.core.retention import PruneSettings
from otf_dagster.defs.history import InstanceSide
from otf_dagster.exceptions import ConfigError
from otf_dagster_tests.core import history_seed as hs
from otf_dagster_tests.timescale import tsdb


def prune(store, side=None, **kw):
    return retention.prune(store, side, PruneSettings(**kw), source="test")


# --- settings ------------------------------------------------------------------------------------


@pytest.mark.parametrize("days", [0, -1, -30])
def test_zero_or_negative_days_are_refused_in_one_line(days):
    for field in ("older_than_days", "events_older_than_days"):
        with pytest.raises(ConfigError) as err:
            PruneSettings(**{field: days})
        assert "\n" not in str(err.value) and str(days) in str(err.value)
        assert "at least 1 day" in str(err.value)


def test_an_unknown_forced_reader_is_refused_by_name(store, default_types, db_url):
    hs.set_cursor(db_url, "captions", 0)
    with pytest.raises(ConfigError, match=r"'captoins' names no consumer.*known: captions"):
        prune(store, events_older_than_days=30, force=("captoins",))


# --- task_polls ----------------------------------------------------------------------------------


def test_poll_rows_older_than_n_days_go_in_batches_and_newer_stay(store, default_types, db_url):
    hs.seed_task(db_url, "old", days_ago=40, polls=7)
    hs.seed_task(db_url, "new", days_ago=5, polls=3)
    report = prune(store, batch_size=3)
    assert report.polls == 7
    with psycopg.connect(db_url) as c:
        left = c.execute("SELECT task_id, count(*) FROM task_polls GROUP BY 1").fetchall()
        assert left == [(hs.task_id("new"), 3)]
        [(removed, finished)] = c.execute(
            "SELECT removed, finished_at IS NOT NULL FROM history_prunes"
        ).fetchall()
    assert removed["polls"] == 7 and finished
    if tsdb.has_timescaledb(db_url):
        assert report.poll_chunks >= 1
        # and TimescaleDB keeps the same age between prunes
        prune(store, older_than_days=10)
        with psycopg.connect(db_url) as c:
            [(after,)] = c.execute(
                "SELECT config ->> 'drop_after' FROM timescaledb_information.jobs"
                " WHERE hypertable_name = 'task_polls' AND proc_name = 'policy_retention'"
            ).fetchall()
        assert after == "10 days"
    # task_events and task_states are never dropped by a time-based policy
    with psycopg.connect(db_url) as c:
        if tsdb.has_timescaledb(db_url):
            policies = c.execute(
                "SELECT hypertable_name FROM timescaledb_information.jobs"
                " WHERE proc_name = 'policy_retention' ORDER BY 1"
            ).fetchall()
            assert policies == [("task_polls",)]


# --- task_events: the readers' guard -------------------------------------------------------------


def test_events_are_kept_unless_asked(store, default_types, db_url):
    hs.seed_task(db_url, "old", days_ago=400, events=20)
    report = prune(store)
    assert report.events == 0 and hs.count(db_url, "task_events") == 20


def test_a_consumer_at_seq_100_keeps_event_101_and_later(store, default_types, db_url):
    hs.seed_task(db_url, "a", days_ago=60, events=80)
    hs.seed_task(db_url, "b", days_ago=50, events=70)
    hs.seed_task(db_url, "recent", days_ago=2, events=5)
    seqs = hs.event_seqs(db_url)
    hundredth = seqs[99]
    hs.set_cursor(db_url, "captions", hundredth)
    hs.set_cursor(db_url, "photos", seqs[-1])  # caught up: holds nothing back

    report = prune(store, events_older_than_days=30, batch_size=7)
    left = hs.event_seqs(db_url)
    assert left == seqs[100:], "exactly the events after the cursor are kept"
    assert report.events == 100
    assert report.held_back_by == "consumer captions" and report.held_at == hundredth
    assert report.events_held == 50
    assert "held back by consumer captions" in " ".join(report.lines())
    assert "--force-consumer captions" in " ".join(report.lines())

    # forced by name: the old events it has not read go too; the recent ones stay
    forced = prune(store, events_older_than_days=30, force=("captions",))
    assert forced.events == 50 and hs.event_seqs(db_url) == seqs[150:]


def test_an_endpoint_and_its_pending_events_hold_events_back(store, default_types, db_url):
    tid = hs.seed_task(db_url, "a", days_ago=60, events=100)
    seqs = hs.event_seqs(db_url)
    ep = hs.add_endpoint(db_url, "hooks", position=seqs[79])
    hs.add_endpoint(db_url, "gone", position=0, state="removed")  # removed: holds nothing
    report = prune(store, events_older_than_days=30, dry_run=True)
    assert report.events == 80 and report.held_back_by.startswith(f"endpoint:{ep} (owner hooks")

    hs.add_pending(db_url, ep, seqs[29], tid, dead=True)  # a dead letter can still be replayed
    report = prune(store, events_older_than_days=30)
    assert report.events == 29 and hs.event_seqs(db_url) == seqs[29:]
    assert f"pending event {seqs[29]}" in report.held_back_by

    report = prune(store, events_older_than_days=30, force=(f"endpoint:{ep}",))
    assert report.events == 71 and hs.event_seqs(db_url) == []


def test_old_events_go_by_whole_chunks_where_timescaledb_can(store, default_types, db_url):
    for day in (90, 80, 70, 60):
        hs.seed_task(db_url, f"d{day}", days_ago=day, events=10)
    hs.seed_task(db_url, "d1", days_ago=1, events=10)
    seqs = hs.event_seqs(db_url)
    compressed = tsdb.compress(db_url, "task_events")
    hs.set_cursor(db_url, "captions", seqs[24])  # inside the third day's events
    report = prune(store, events_older_than_days=30)
    assert hs.event_seqs(db_url) == seqs[25:]
    assert report.events == 25
    if tsdb.has_timescaledb(db_url):
        assert compressed >= 5
        assert report.event_chunks == 2  # two whole days; the third is cut by batches


# --- dry run -------------------------------------------------------------------------------------


def test_a_dry_run_removes_and_writes_nothing_and_tells_what_a_prune_removes(
    store, default_types, db_url
):
    job = hs.runner_job(db_url)
    with dg.instance_for_test() as instance:
        tids = [hs.seed_task(db_url, f"g{i}", days_ago=40, events=5, polls=4) for i in range(3)]
        hs.add_partitions(instance, tids)
        for t in tids:
            hs.add_run(instance, job, t)
        side = InstanceSide(instance)
        before = (hs.partitions(instance), hs.run_ids(instance))
        counts = {t: hs.count(db_url, t) for t in ("task_events", "task_polls", "history_prunes")}

        dry = prune(store, side, events_older_than_days=30, dry_run=True)
        assert (hs.partitions(instance), hs.run_ids(instance)) == before
        assert {t: hs.count(db_url, t) for t in counts} == counts
        assert hs.count(db_url, "history_dagster_pruned") == 0
        assert "would remove" in dry.lines()[0]

        real = prune(store, side, events_older_than_days=30)
        assert real.removed() == dry.removed() != {k: 0 for k in real.removed()}
        assert hs.partitions(instance) == set() and hs.run_ids(instance) == set()


# --- Dagster's storage ---------------------------------------------------------------------------


def test_old_ended_tasks_lose_their_partitions_and_runs_and_nothing_else_does(
    store, default_types, db_url
):
    job = hs.runner_job(db_url)
    with dg.instance_for_test() as instance:
        gone = [
            hs.seed_task(db_url, "fin", state="FINISHED"),
            hs.seed_task(db_url, "failed", state="FAILED", attempt=3),
            hs.seed_task(db_url, "cancelled", state="CANCELLED"),
        ]
        kept = [
            hs.seed_task(db_url, "recent", state="FINISHED", days_ago=5),
            hs.seed_task(db_url, "live", state="STARTED"),
            hs.seed_task(db_url, "due", state="SCHEDULED"),
            # a non-terminal row that carries an old finished_at: still not ended
            hs.seed_task(db_url, "odd", state="STARTED", finished_at=True),
            hs.seed_task(db_url, "busy", state="FINISHED"),  # Dagster still runs its run
        ]
        hs.add_partitions(instance, gone + kept)
        gone_runs = [hs.add_run(instance, job, t) for t in gone]
        gone_runs.append(hs.add_run(instance, job, gone[1], attempt=2))
        gone_runs.append(hs.add_run(instance, job, gone[0], by_hand=True))
        kept_runs = [hs.add_run(instance, job, t) for t in kept[:-1]]
        kept_runs.append(hs.add_run(instance, job, kept[-1], status=dg.DagsterRunStatus.STARTED))

        report = prune(store, InstanceSide(instance), batch_size=2)
        assert hs.partitions(instance) == set(kept)
        assert hs.run_ids(instance) == set(kept_runs)
        for run_id in gone_runs:
            assert list(instance.all_logs(run_id)) == []  # the event log went with the run
        assert (report.tasks, report.partitions, report.runs) == (3, 3, 5)
        assert report.still_running == [kept[-1]]

        # the task database still has every task, state and event
        assert hs.count(db_url, "tasks") == 8
        again = prune(store, InstanceSide(instance))
        assert (again.tasks, again.partitions, again.runs) == (0, 0, 0)
        assert again.still_running == [kept[-1]]


def test_a_retried_task_is_pruned_again_once_it_has_ended_again(store, default_types, db_url):
    job = hs.runner_job(db_url)
    with dg.instance_for_test() as instance:
        tid = hs.seed_task(db_url, "g", state="FAILED")
        hs.add_partitions(instance, [tid])
        hs.add_run(instance, job, tid)
        assert prune(store, InstanceSide(instance)).partitions == 1
        # retried, run again at attempt 2, ended long ago again
        with psycopg.connect(db_url, autocommit=True) as c:
            c.execute(
                "UPDATE tasks SET attempt = 2, state = 'FINISHED',"
                " finished_at = now() - interval '35 days' WHERE task_id = %s",
                (tid,),
            )
        hs.add_partitions(instance, [tid])
        hs.add_run(instance, job, tid, attempt=2)
        report = prune(store, InstanceSide(instance))
        assert (report.partitions, report.runs) == (1, 1) and hs.partitions(instance) == set()


def test_an_ended_pool_loses_its_run_unless_one_of_its_tasks_still_runs(
    store, default_types, db_url
):
    job = hs.runner_job(db_url)
    with dg.instance_for_test() as instance:
        side = InstanceSide(instance)
        live = hs.seed_task(db_url, "live", state="STARTED")
        with psycopg.connect(db_url, autocommit=True) as c:
            for pool in ("p-old", "p-busy", "p-recent"):
                c.execute(
                    "INSERT INTO runner_pools (pool_id, deployment_id, capacity, state, ended_at)"
                    " VALUES (%s, %s, 10, 'ENDED', now() - %s::interval)",
                    (pool, side.deployment_id, "2 days" if pool == "p-recent" else "40 days"),
                )
            c.execute("UPDATE tasks SET pool_id = 'p-busy' WHERE task_id = %s", (live,))
        old = hs.add_pool_run(instance, job, "p-old")
        kept = {
            hs.add_pool_run(instance, job, "p-busy"),
            hs.add_pool_run(instance, job, "p-recent"),
        }
        report = prune(store, side)
        assert (report.pools, report.pool_runs) == (1, 1)
        assert old not in hs.run_ids(instance) and hs.run_ids(instance) == kept


class Killed(BaseException):
    """A prune process killed mid-batch (not an error anything catches)."""


class Recording(InstanceSide):
    """The instance's storage, recording each removal; ``kill_after`` removals, the process
    dies."""

    def __init__(self, instance, kill_after: int | None = None) -> None:
        super().__init__(instance)
        self.removed: list[str] = []
        self.kill_after = kill_after

    def _removal(self, what: str) -> None:
        if self.kill_after is not None and len(self.removed) >= self.kill_after:
            raise Killed(what)
        self.removed.append(what)

    def delete_partition(self, key: str) -> None:
        self._removal(f"partition {key}")
        super().delete_partition(key)

    def delete_run(self, run_id: str) -> None:
        self._removal(f"run {run_id}")
        super().delete_run(run_id)


def test_a_prune_killed_mid_batch_carries_on_removing_nothing_twice_and_nothing_extra(
    store, default_types, db_url
):
    job = hs.runner_job(db_url)
    with dg.instance_for_test() as instance:
        old = [hs.seed_task(db_url, f"g{i:02d}", days_ago=40 + i) for i in range(10)]
        recent = [hs.seed_task(db_url, f"r{i}", days_ago=3) for i in range(3)]
        hs.add_partitions(instance, old + recent)
        runs = {t: hs.add_run(instance, job, t) for t in old + recent}
        expected = {f"partition {t}" for t in old} | {f"run {runs[t]}" for t in old}

        # 8 removals a batch (4 runs, 4 partitions): killed in the middle of the second
        first = Recording(instance, kill_after=11)
        with pytest.raises(Killed):
            prune(store, first, batch_size=4)
        with psycopg.connect(db_url) as c:
            [removed] = c.execute("SELECT removed FROM history_prunes").fetchone()
        assert removed["partitions"] == 4 and len(first.removed) == 11  # one batch committed

        second = Recording(instance)
        report = prune(store, second, batch_size=4)
        assert not set(first.removed) & set(second.removed), "something was removed twice"
        assert set(first.removed) | set(second.removed) == expected, "too much or too little"
        # the second prune counts what it removed, the committed batch what it did; what the
        # killed batch removed before it died is the one thing not counted (Dagster's storage
        # and the task database share no transaction)
        uncounted = first.removed[8:]
        parts = sum(x.startswith("partition") for x in uncounted)
        assert report.partitions + removed["partitions"] + parts == 10
        assert report.runs + removed["runs"] + len(uncounted) - parts == 10
        assert hs.partitions(instance) == set(recent)
        assert hs.run_ids(instance) == {runs[t] for t in recent}
