"""Runner pools against a real PostgreSQL and a scripted JSON server on 127.0.0.1: the Task
Manager assigns tasks to pools, pools host them to the end, refuse more than their capacity,
survive poisoned and hung tasks, drop tasks fenced away from them, and end when idle."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest

from otf_dagster.core import manager
from otf_dagster.core.pool import RunnerPool
from otf_dagster.core.store import TaskStore
from otf_dagster.handlers import HANDLERS, task_types
from otf_dagster.vocab.tasks import TaskState
from otf_dagster_tests.helpers import ScriptedFeed, wait_for

DEP = manager.Deployment("dep-test-a", "test A")
STEPS = 6


def ping_type(base: str, **extra) -> task_types.TaskType:
    return task_types.validate(
        {
            "name": "PING",
            "handler": "http.json",
            "base_url": base,
            "url_template": "/p/{key}.json",
            "poll_interval_seconds": 0.05,
            "max_consecutive_errors": 3,
            "stale_after_seconds": 30,
            "params": {"done_when": "done", "track": {"n": "n"}},
            **extra,
        }
    )


def script(feed: ScriptedFeed, key: str, steps: int = STEPS) -> None:
    feed.script(f"/p/{key}.json", [{"n": i, "done": i == steps - 1} for i in range(steps)])


def schedule(store: TaskStore, keys: list[str]) -> None:
    now = datetime.now(UTC)
    store.schedule_tasks("PING", [(k, now, {}) for k in keys])


def tick(store: TaskStore, capacity: int, **kw) -> manager.TickReport:
    settings = manager.Settings(default_mode="pool", pool_capacity=capacity, **kw)
    return manager.tick(store, lambda keys: {}, deployment=DEP, settings=settings)


class PoolThread:
    def __init__(self, db_url: str, pool_id: str, capacity: int, **kw) -> None:
        self.store = TaskStore.pooled(db_url, size=4, application_name=f"test-{pool_id}")
        self.ended: list[tuple[str, object]] = []
        self.pool = RunnerPool(
            self.store,
            pool_id,
            handlers=HANDLERS,
            deployment_id=DEP.id,
            run_id=f"run-{pool_id}",
            capacity=capacity,
            url=db_url,
            workers=kw.pop("workers", 4),
            idle_grace_seconds=kw.pop("idle_grace_seconds", 0.5),
            refresh_seconds=0.2,
            heartbeat_seconds=0.5,
            on_end=lambda task_id, outcome: self.ended.append((task_id, outcome)),
            **kw,
        )
        self.thread = threading.Thread(target=self.pool.run, daemon=True)

    def __enter__(self) -> PoolThread:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.pool.stop.set()
        self.thread.join(30)
        self.store.close()

    def wait(self, timeout: float = 60) -> None:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the pool did not end"


def stream(store: TaskStore, task_id: str) -> list[tuple]:
    return [(e["task_seq"], e["payload"]["new"]) for e in store.task_events(task_id)]


def test_pools_host_their_tasks_to_the_end_and_end_when_idle(db_url, store):
    with ScriptedFeed() as feed:
        task_types.apply(store, [ping_type(feed.base_url)])
        keys = [f"k{i:02d}" for i in range(40)]
        for key in keys:
            script(feed, key)
        schedule(store, keys)
        report = tick(store, capacity=25)
        assert report.launches == [] and report.claimed == 40
        assert [len(v) for v in report.assigned.values()] == [25, 15]
        assert [p.pool_id for p in report.pool_launches] == list(report.assigned)
        pools = [PoolThread(db_url, p.pool_id, p.capacity) for p in report.pool_launches]
        for p in pools:
            p.__enter__()
        try:
            for p in pools:
                p.wait()
        finally:
            for p in pools:
                p.__exit__()
    for key in keys:
        task_id = f"ping:{key}"
        assert store.get_task(task_id).state == TaskState.FINISHED
        assert stream(store, task_id) == [(i + 1, i) for i in range(STEPS)]  # each change once
    assert sorted(p.pool.summary.hosted for p in pools) == [15, 25]
    ended = {r["pool_id"]: r["state"] for r in store.list_pools(include_ended=True)}
    assert set(ended.values()) == {"ENDED"}
    # a task assigned after its pools ended goes to a new pool, never to an ended one
    script(feed, "late")
    schedule(store, ["late"])
    again = tick(store, capacity=25)
    assert len(again.pool_launches) == 1 and again.pool_launches[0].pool_id not in ended


def test_a_pool_gives_back_what_exceeds_its_capacity_and_nothing_is_lost(db_url, store):
    with ScriptedFeed() as feed:
        task_types.apply(store, [ping_type(feed.base_url)])
        keys = [f"c{i}" for i in range(12)]
        for key in keys:
            script(feed, key, steps=200)  # long enough to still be running when we look
        schedule(store, keys)
        report = tick(store, capacity=12)
        [pool_id] = report.assigned
        with PoolThread(db_url, pool_id, capacity=8) as small:  # runs with less than assigned
            wait_for(
                lambda: small.pool.summary.given_back >= 4,
                "the pool to give the extra tasks back",
                30,
                every=0.05,
            )
            given = [t for t in store.list_tasks(state="STARTED") if t.pool_id is None]
            assert len(given) == 4 and all(t.attempt == 1 for t in given)
            follow = tick(store, capacity=12)  # the Task Manager assigns them again
            assert sum(len(v) for v in follow.assigned.values()) == 4
            assert follow.relaunched == []  # same attempt: nothing was lost
            small.pool.stop.set()


def test_a_poisoned_task_fails_while_the_others_finish(db_url, store):
    with ScriptedFeed() as feed:
        task_types.apply(store, [ping_type(feed.base_url)])
        keys = ["good1", "bad", "good2"]
        script(feed, "good1")
        script(feed, "good2")
        feed.script("/p/bad.json", [b"<html>not json</html>"])
        schedule(store, keys)
        report = tick(store, capacity=10)
        [pool_id] = report.assigned
        with PoolThread(db_url, pool_id, 10) as pool:
            pool.wait()
    assert store.get_task("ping:good1").state == TaskState.FINISHED
    assert store.get_task("ping:good2").state == TaskState.FINISHED
    bad = store.get_task("ping:bad")
    assert bad.state == TaskState.FAILED and "3 consecutive poll errors" in bad.last_error
    assert "not JSON" in bad.last_error


def test_a_hung_feed_for_one_task_does_not_hold_the_others(db_url, store):
    release = threading.Event()
    with ScriptedFeed() as feed:
        task_types.apply(store, [ping_type(feed.base_url)])
        for key in ("a", "b", "c"):
            script(feed, key)
        feed.hold("/p/hung.json", release)  # answers only once released
        script(feed, "hung", steps=1)
        schedule(store, ["a", "b", "c", "hung"])
        report = tick(store, capacity=10)
        [pool_id] = report.assigned
        with PoolThread(db_url, pool_id, 10, workers=2, timeout=(1.0, 300.0)) as pool:
            # generous: a loaded machine is slow, not wrong
            wait_for(
                lambda: len(pool.ended) >= 3, "a, b and c beside the hung one", 120, every=0.05
            )
            assert sorted(t for t, _ in pool.ended) == ["ping:a", "ping:b", "ping:c"]
            assert store.get_task("ping:hung").state == TaskState.STARTED  # still in flight
            release.set()
            pool.wait()
    assert store.get_task("ping:hung").state == TaskState.FINISHED


def test_a_task_fenced_away_from_its_pool_is_dropped_and_the_pool_writes_nothing_more(
    db_url, store
):
    with ScriptedFeed() as feed:
        task_types.apply(store, [ping_type(feed.base_url)])
        script(feed, "f", steps=10_000)
        script(feed, "g", steps=10_000)  # its polls measure the pool's time, not a clock
        schedule(store, ["f", "g"])
        report = tick(store, capacity=10)
        [pool_id] = report.assigned
        with PoolThread(db_url, pool_id, 10, idle_grace_seconds=60) as pool:
            wait_for(lambda: len(store.task_events("ping:f")) >= 5, "f's polls", 30, every=0.02)
            store.relaunch("ping:f", 1, "test: taken over elsewhere")  # attempt 2, no pool
            count = len(store.task_events("ping:f"))
            wait_for(lambda: "ping:f" not in pool.pool._hosted, "f dropped", 30, every=0.02)
            asked = feed.paths().count("/p/f.json")
            polled = feed.paths().count("/p/g.json")
            wait_for(
                lambda: feed.paths().count("/p/g.json") >= polled + 20,
                "20 more polls of the pool's other task",
                60,
                every=0.02,
            )
            assert feed.paths().count("/p/f.json") <= asked + 1, "the pool kept polling f"
            assert len(store.task_events("ping:f")) == count, "the fenced-out pool kept writing"
            assert {e["task_runner_id"] for e in store.task_events("ping:f")} == {f"run-{pool_id}"}


@pytest.mark.parametrize("mode", ["run", "pool"])
def test_the_mode_is_chosen_per_type_with_a_deployment_default(db_url, store, mode):
    with ScriptedFeed() as feed:
        task_types.apply(
            store,
            [ping_type(feed.base_url), ping_type(feed.base_url, name="PONG", runner=mode)],
        )
        now = datetime.now(UTC)
        store.schedule_tasks("PING", [("x", now, {})])
        store.schedule_tasks("PONG", [("y", now, {})])
        other = "pool" if mode == "run" else "run"
        report = manager.tick(
            store,
            lambda keys: {},
            deployment=DEP,
            settings=manager.Settings(default_mode=other),
        )
    runs = {launch.task_id for launch in report.launches}
    pooled = {t for ids in report.assigned.values() for t in ids}
    assert (runs, pooled) == (
        ({"pong:y"}, {"ping:x"}) if mode == "run" else ({"ping:x"}, {"pong:y"})
    )
    assert set(report.partitions) == {"ping:x", "pong:y"}


def test_a_pool_that_loses_its_database_connections_loses_nothing(db_url, store):
    """The server drops every connection of the pool mid-slate (as a restart does): the polls'
    results wait in memory, the writes are retried, each task's stream is whole."""
    import psycopg

    with ScriptedFeed() as feed:
        task_types.apply(store, [ping_type(feed.base_url)])
        keys = [f"d{i}" for i in range(10)]
        for key in keys:
            script(feed, key, steps=40)
        schedule(store, keys)
        report = tick(store, capacity=10)
        [pool_id] = report.assigned
        with PoolThread(db_url, pool_id, 10) as pool:
            wait_for(
                lambda: sum(len(store.task_events(f"ping:{k}")) for k in keys) >= 50,
                "50 events",
                60,
                every=0.05,
            )
            with psycopg.connect(db_url, autocommit=True) as admin:
                dropped = admin.execute(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE application_name = %s",
                    (f"test-{pool_id}",),
                ).fetchone()[0]
            assert dropped >= 1
            pool.wait(120)
    for key in keys:
        task_id = f"ping:{key}"
        assert store.get_task(task_id).state == TaskState.FINISHED
        chain = [(e["payload"]["old"], e["payload"]["new"]) for e in store.task_events(task_id)]
        assert chain[0] == (None, 0) and chain[-1][1] == 39
        assert all(a[1] == b[0] for a, b in zip(chain, chain[1:], strict=False)), chain
        assert [e["task_seq"] for e in store.task_events(task_id)] == list(range(1, len(chain) + 1))
