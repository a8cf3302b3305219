"""The fence of the poll write, held end to end (issue 21): a runner, or a pool, whose task
was taken by another runner (re-launched: attempt + 1; or the same attempt started by
another run) writes nothing more for it (no checkpoint, events, follow-ups, poll row or
heartbeat) and stops polling it. Two runners of one task, each on its own loopback feed, so
the requests each makes are counted apart; the real PostgreSQL the suite starts.

Each test names, in its docstring, the mutation of the code it fails on.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

import pytest

from otf_dagster.core import manager
from otf_dagster.core.pool import RunnerPool
from otf_dagster.core.runner import TaskRunner
from otf_dagster.core.store import TaskStore, pollstats
from otf_dagster.exceptions import StaleTransition
from otf_dagster.handlers import HANDLERS, task_types
from otf_dagster.vocab.tasks import TaskState, TaskType
from otf_dagster_tests.helpers import ScriptedFeed, VirtualClock, wait_for

F = "/p/f.json"  # the task taken over
G = "/p/g.json"  # another task of the same pool, polled often: the pool's own clock
DEP = manager.Deployment("dep-fence-a", "fence A")
DEP_B = "dep-fence-b"  # the deployment that takes the task over


def ping_type(name: str = "PING", poll: float = 0.05, **extra: Any) -> TaskType:
    """An http.json type with no base URL: each runner polls the feed it is given."""
    return task_types.validate(
        {
            "name": name,
            "handler": "http.json",
            "url_template": "/p/{key}.json",
            "poll_interval_seconds": poll,
            "max_consecutive_errors": 3,
            "stale_after_seconds": 30,
            "params": {"done_when": "done", "track": {"n": "n"}},
            "spawn": {"items": "kids", "type": "CHILD", "key": "@"},
            **extra,
        }
    )


def apply_types(store: TaskStore, **ping: Any) -> None:
    task_types.apply(
        store,
        [
            ping_type(**ping),
            ping_type("PONG", spawn=None),
            ping_type("CHILD", spawn=None, poll=60.0),
        ],
    )


def doc(n: int, done: bool = False, kids: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"n": n, "done": done, "kids": list(kids)}


# The old runner's feed: its third answer would finish the task with an event and a follow-up,
# were its write let through. The new runner's feed: the same value first (a poll that writes
# no event, so the checkpoint's next_seq, the write's other fence, does not move), then the end.
OLD_DOCS = [doc(0), doc(1), doc(2, True, ("c1",))]
NEW_DOCS = [doc(1), doc(2, True, ("c1",))]


def written(store: TaskStore, task_id: str) -> dict[str, Any]:
    """Everything a runner's poll writes for ``task_id``."""
    t = store.get_task(task_id)
    polls = store.run("read polls", lambda c: pollstats.task_polls(c, task_id))
    return {
        "task": (t.state, t.attempt, t.run_id, t.checkpoint, t.heartbeat_at, t.updated_at),
        "events": [(e["task_seq"], e["task_runner_id"]) for e in store.task_events(task_id)],
        "polls": [(p["attempt"], p["task_runner_id"], p["events"], p["error"]) for p in polls],
        "follow_ups": [c.task_id for c in store.list_tasks(task_type="CHILD")],
        "services": [
            (s["service"], s["state"], s["attempt"]) for s in store.service_states(task_id)
        ],
        "history": len(store.state_history(task_id)),
    }


def stream(store: TaskStore, task_id: str) -> list[tuple[int, str, int]]:
    return [
        (e["task_seq"], e["task_runner_id"], e["payload"]["new"])
        for e in store.task_events(task_id)
    ]


def start(store: TaskStore, key: str, task_type: str = "PING") -> str:
    store.schedule_task(task_type, key, datetime.now(UTC))
    [claimed] = store.claim_ready(now=datetime.now(UTC))
    return claimed.task.task_id


# --- run mode ------------------------------------------------------------------------------


@pytest.mark.parametrize("takeover", ["relaunched", "relaunched_and_polled", "same_attempt"])
def test_a_runner_that_lost_its_task_writes_nothing_and_stops(store, takeover):
    """The old runner polls once more after the takeover: its write is refused whole and it
    stops. Kills: save_checkpoint without ``AND attempt = %(attempt)s`` ("relaunched": the
    new runner has not started, so the attempt alone fences); save_checkpoint without its
    runner check ``AND (run_id IS NULL OR run_id = %(run_id)s)`` ("same_attempt": a run
    retried, or ``otf tasks run --attempt``); both dropped ("relaunched_and_polled")."""
    apply_types(store)
    task_id = start(store, "f")
    clock = VirtualClock()
    taken: dict[str, Any] = {}
    with ScriptedFeed() as old_feed, ScriptedFeed() as new_feed:
        old_feed.script(F, OLD_DOCS)
        new_feed.script(F, NEW_DOCS)

        def on_poll(report) -> None:
            if report.poll != 2:
                return
            attempt = 1
            if takeover != "same_attempt":
                attempt = store.relaunch(task_id, 1, "test: another runner takes over").attempt
            new = TaskRunner(
                store, task_id, attempt, "run-2", handlers=HANDLERS, feed_base_url=new_feed.base_url
            )
            if takeover != "relaunched":
                new.start()
                step = new.poll()
                assert step.ended is None and step.report.events == []
            taken.update(new=new, asked=old_feed.paths().count(F), written=written(store, task_id))

        old = TaskRunner(
            store, task_id, 1, "run-1", handlers=HANDLERS, feed_base_url=old_feed.base_url, clock=clock,
            on_poll=on_poll,
        )  # fmt: skip
        outcome = old.run()

        assert outcome.state is None, f"the old runner did not stop: {outcome}"
        assert outcome.polls == 2
        assert ("run 'run-2'" if takeover == "same_attempt" else "attempt 1") in outcome.reason
        assert taken["asked"] == 2
        assert old_feed.paths().count(F) == 3, "one poll after the takeover, refused, no more"
        assert written(store, task_id) == taken["written"], "the old runner wrote"

        final = taken["new"].run()  # the task's runner goes on from the committed state
        assert final.state == TaskState.FINISHED
        assert old_feed.paths().count(F) == 3
    assert stream(store, task_id) == [(1, "run-1", 0), (2, "run-1", 1), (3, "run-2", 2)]
    [child] = store.list_tasks(task_type="CHILD")
    assert child.task_id == "child:c1" and child.parent_task_id == task_id
    runners = {p["task_runner_id"] for p in written_polls(store, task_id)[2:]}
    assert runners == {"run-2"}


def written_polls(store: TaskStore, task_id: str) -> list[dict[str, Any]]:
    return store.run("read polls", lambda c: pollstats.task_polls(c, task_id))


@pytest.mark.parametrize("takeover", ["relaunched", "same_attempt"])
def test_a_runner_that_lost_its_task_while_waiting_stops_at_its_heartbeat(store, takeover):
    """Taken over while it sleeps between polls: its heartbeat is refused and it stops there,
    without polling the feed again. Kills: the ``heartbeat`` query without
    ``AND attempt = %(attempt)s`` ("relaunched"), or without its runner check, or the runner
    heartbeating without its run id ("same_attempt")."""
    apply_types(store, poll=2.0, stale_after_seconds=3)  # a heartbeat every second of a wait
    task_id = start(store, "f")
    taken: dict[str, Any] = {}
    with ScriptedFeed() as old_feed:
        old_feed.script(F, OLD_DOCS)

        def on_poll(report) -> None:
            if report.poll != 2:
                return
            if takeover == "relaunched":
                store.relaunch(task_id, 1, "test: another runner takes over")
            else:
                TaskRunner(
                    store, task_id, 1, "run-2", handlers=HANDLERS
                ).start()  # records its run id
            taken["written"] = written(store, task_id)

        old = TaskRunner(
            store, task_id, 1, "run-1", handlers=HANDLERS, feed_base_url=old_feed.base_url, clock=VirtualClock(),
            on_poll=on_poll,
        )  # fmt: skip
        outcome = old.run()
        assert outcome.state is None and outcome.polls == 2
        assert "heartbeat" in outcome.reason, outcome.reason
        assert old_feed.paths().count(F) == 2, "it polled after its heartbeat was refused"
        assert written(store, task_id) == taken["written"]


def test_a_store_heartbeat_names_the_runner_that_owns_the_attempt(store):
    """The refusal says who owns the task now; without a run id the heartbeat stays fenced
    by the attempt alone (as for a manager's or an operator's call)."""
    apply_types(store)
    task_id = start(store, "f")
    store.set_run_id(task_id, 1, "run-2")
    with pytest.raises(StaleTransition, match="run 'run-2' started attempt 1 since"):
        store.heartbeat(task_id, 1, "run-1")
    store.heartbeat(task_id, 1, "run-2")
    store.heartbeat(task_id, 1)


# --- pool mode -----------------------------------------------------------------------------


class Pool:
    """A RunnerPool on a thread, polling ``feed``."""

    def __init__(
        self,
        db_url: str,
        pool_id: str,
        deployment: str,
        feed: ScriptedFeed,
        refresh_seconds: float,
        on_poll: Any = None,
    ) -> None:
        self.store = TaskStore.pooled(db_url, size=4, application_name=f"test-{pool_id}")
        self.pool = RunnerPool(
            self.store,
            pool_id,
            handlers=HANDLERS,
            deployment_id=deployment,
            run_id=f"run-{pool_id}",
            capacity=10,
            url=db_url,
            workers=2,
            idle_grace_seconds=0.3,
            refresh_seconds=refresh_seconds,
            heartbeat_seconds=0.2,
            feed_base_url=feed.base_url,
            on_poll=on_poll,
        )
        self.thread = threading.Thread(target=self.pool.run, daemon=True)

    def __enter__(self) -> Pool:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.pool.stop.set()
        self.thread.join(30)
        self.store.close()


@pytest.mark.parametrize(
    "learns_at,refresh_seconds,polls_after",
    [("its refused write", 3600.0, 1), ("its refresh", 0.05, 0)],
)
def test_a_pool_that_lost_a_task_writes_nothing_and_stops_polling_it(
    db_url, store, learns_at, refresh_seconds, polls_after
):
    """A pool's task is re-launched (attempt 2) and re-assigned to another pool, while the
    first pool keeps its other task. The first pool writes nothing more for it and drops it:
    at its refused write when it does not re-read its assignment in time (one request after
    the takeover, no more), before polling it again when it does (none). The second pool
    polls it to the end. Kills: "its refused write": save_checkpoint without
    ``AND attempt = %(attempt)s``; a pool that ignores the fence (``_finished`` keeping a task
    whose runner was fenced out: ``if step.ended is not None and step.ended.state is not
    None``). "its refresh": a pool whose refresh keeps a task whose assignment changed
    (``_refresh`` never dropping)."""
    with ScriptedFeed() as feed_a, ScriptedFeed() as feed_b:
        apply_types(store, poll=0.5)  # longer than the fast refresh: it sees the change first
        feed_a.script(F, OLD_DOCS)
        feed_a.script(G, [{"n": i} for i in range(100_000)])
        feed_b.script(F, NEW_DOCS)
        now = datetime.now(UTC)
        store.schedule_task("PING", "f", now)
        store.schedule_task("PONG", "g", now)
        settings = manager.Settings(default_mode="pool", pool_capacity=10)
        report = manager.tick(store, lambda keys: {}, deployment=DEP, settings=settings)
        [pool_a] = report.assigned
        taken: dict[str, Any] = {}
        took = threading.Event()

        def on_poll(task_id: str, report) -> None:  # a worker of pool A, after its commit
            if task_id == "ping:f" and report.poll == 2:
                with TaskStore(db_url, application_name="test-takeover") as own:
                    own.relaunch("ping:f", 1, "test: taken over", deployment=DEP_B)
                    taken.update(asked=feed_a.paths().count(F), written=written(own, "ping:f"))
                took.set()

        with Pool(db_url, pool_a, DEP.id, feed_a, refresh_seconds, on_poll) as a:
            wait_for(took.is_set, "pool A's second poll of f", 60, every=0.02)
            wait_for(lambda: "ping:f" not in a.pool._hosted, "pool A drops f", 30, every=0.01)
            polled = feed_a.paths().count(G)
            wait_for(
                lambda: feed_a.paths().count(G) >= polled + 20,
                "20 more polls of pool A's other task",
                60,
                every=0.02,
            )
            assert taken["asked"] == 2
            assert feed_a.paths().count(F) == 2 + polls_after, f"pool A polled f ({learns_at})"
            assert written(store, "ping:f") == taken["written"], "pool A wrote for f"
            assert a.pool.summary.finished == {}

            assigned, [pool_b] = store.assign_to_pools(
                DEP_B, [("ping:f", 2)], capacity=10, stale_seconds=60
            )
            assert assigned == {pool_b: ["ping:f"]}
            with Pool(db_url, pool_b, DEP_B, feed_b, 0.05):
                wait_for(
                    lambda: store.get_task("ping:f").state == TaskState.FINISHED,
                    "pool B finishes f",
                    60,
                    every=0.05,
                )
            assert feed_a.paths().count(F) == 2 + polls_after, "pool A polled f meanwhile"
            assert "ping:f" not in a.pool._hosted and a.thread.is_alive()
    assert stream(store, "ping:f") == [
        (1, f"run-{pool_a}", 0),
        (2, f"run-{pool_a}", 1),
        (3, f"run-{pool_b}", 2),
    ]
    assert [c.task_id for c in store.list_tasks(task_type="CHILD")] == ["child:c1"]


def test_a_pool_heartbeat_for_an_earlier_attempt_touches_nothing(store):
    """A task re-launched into the same pool: the pool's heartbeat for its old attempt leaves
    the new attempt's heartbeat alone. Kills: ``heartbeat_pool_tasks`` without
    ``tasks.attempt = a.attempt``."""
    apply_types(store)
    task_id = start(store, "f")
    _, [pool] = store.assign_to_pools(DEP.id, [(task_id, 1)], capacity=10, stale_seconds=60)
    assert store.register_pool(pool, DEP.id, 10, "run-pool")
    store.relaunch(task_id, 1, "test: re-launched", deployment=DEP.id)
    assigned, new_pools = store.assign_to_pools(
        DEP.id, [(task_id, 2)], capacity=10, stale_seconds=60
    )
    assert assigned == {pool: [task_id]} and new_pools == []
    before = store.get_task(task_id).heartbeat_at
    assert store.heartbeat_pool(pool, [(task_id, 1)])
    assert store.get_task(task_id).heartbeat_at == before, "the old attempt's heartbeat landed"
    assert store.heartbeat_pool(pool, [(task_id, 2)])
    assert store.get_task(task_id).heartbeat_at > before  # the current attempt's does


def test_a_manager_failing_an_earlier_attempt_writes_nothing(store):
    """A Task Manager giving up on attempt 1 after another re-launched it is refused. Kills:
    ``lock_started_task`` without ``AND attempt = %(attempt)s``."""
    apply_types(store)
    task_id = start(store, "f")
    store.relaunch(task_id, 1, "test: re-launched")
    before = written(store, task_id)
    with pytest.raises(StaleTransition, match="attempt 1"):
        store.fail_runner(task_id, 1, "gave up after 1 attempt(s)")
    assert written(store, task_id) == before
