"""Group commit (issue 19): several tasks' poll writes in one transaction, each still fenced.
``TaskStore.record_polls`` against the real PostgreSQL the suite starts: a fenced-out write is
refused alone while its neighbours commit; a write that hits a database error costs only
itself (the batch is rolled back and each write tried alone); and a runner pool on a loopback
feed really commits its polls in batches.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from otf_dagster.core.store import EVENTS_LOCK_KEY, TaskStore, pollstats
from otf_dagster.core.store.polls import PollWrite
from otf_dagster.exceptions import StaleTransition, StoreError
from otf_dagster.handlers import task_types
from otf_dagster.vocab.tasks import EventRecord, TaskState
from otf_dagster_tests.core.test_pool import PoolThread, schedule, script, stream, tick
from otf_dagster_tests.core.test_pool import ping_type as pool_ping_type
from otf_dagster_tests.helpers import ScriptedFeed, wait_for

RUN = "run-1"


def started(store: TaskStore, keys: list[str]) -> list[str]:
    task_types.apply(store, [pool_ping_type("http://127.0.0.1:9")])
    now = datetime.now(UTC)
    store.schedule_tasks("PING", [(k, now, {}) for k in keys])
    claimed = store.claim_ready(now=now)
    ids = sorted(c.task.task_id for c in claimed)
    for task_id in ids:
        store.set_run_id(task_id, 1, RUN)
    return ids


def write(task_id: str, n: int = 0, *, payload: Any = None) -> PollWrite:
    """The first poll of ``task_id`` (from next_seq 1): one event, the poll row."""
    return PollWrite(
        task_id,
        1,
        RUN,
        {"next_seq": 2, "polls": 1, "n": n},
        [EventRecord(1, "changed", {"new": n} if payload is None else payload)],
        expected_seq=1,
        poll_record=(0.01, None),
    )


def written(store: TaskStore, task_id: str) -> tuple[Any, list, list]:
    polls = store.run("read polls", lambda c: pollstats.task_polls(c, task_id))
    return (
        store.get_task(task_id).checkpoint,
        [(e["task_seq"], e["payload"]) for e in store.task_events(task_id)],
        [(p["attempt"], p["task_runner_id"]) for p in polls],
    )


def xmins(store: TaskStore, task_ids: list[str]) -> set[str]:
    """The transactions that last wrote these task rows."""
    rows = store.run(
        "read xmin",
        lambda c: c.execute(
            "SELECT xmin::text AS x FROM tasks WHERE task_id = ANY(%s)", (task_ids,)
        ).fetchall(),
    )
    return {r["x"] for r in rows}


@pytest.mark.parametrize("takeover", ["relaunched", "another_run"])
def test_a_fenced_out_write_is_refused_alone_and_its_neighbours_commit(store, takeover):
    """Planted: the batch appending a write's events before its fence matched (the refused
    task got its event), and a refusal failing the whole batch (the neighbours then written
    one by one, not in one transaction); both failed here."""
    a, b, c = started(store, ["a", "b", "c"])
    before = written(store, b)
    if takeover == "relaunched":
        store.relaunch(b, 1, "lost")  # attempt 2 now: the write at attempt 1 is stale
    else:
        store.set_run_id(b, 1, "run-2")  # the same attempt, started by another run since
    results = store.record_polls([write(c, 3), write(b, 2), write(a, 1)])
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], StaleTransition)
    assert "refused poll write" in str(results[1])
    for task_id, n in ((a, 1), (c, 3)):
        assert written(store, task_id) == (
            {"next_seq": 2, "polls": 1, "n": n},
            [(1, {"new": n})],
            [(1, RUN)],
        )
    assert written(store, b) == (before[0], [], [])
    assert len(xmins(store, [a, c])) == 1  # the neighbours' writes: one transaction
    assert store.batch_fallbacks == 0


@pytest.mark.parametrize("where", ["checkpoint", "events"])
def test_a_write_that_hits_a_database_error_costs_only_itself(store, where):
    """A NUL in a JSON string is refused by PostgreSQL's jsonb: in the checkpoint (the write's
    first statement) or in an event (the batch's one COPY, at its end). The batch is rolled
    back, each write tried alone: the others commit, the bad one gets its error.

    Planted: no fallback (every write of the batch given the batch's error): the neighbours
    were not written and this failed."""
    a, b, c = started(store, ["a", "b", "c"])
    before = written(store, b)
    if where == "checkpoint":
        bad = PollWrite(b, 1, RUN, {"next_seq": 2, "n": "\x00"}, expected_seq=1)
    else:
        bad = write(b, payload={"new": "\x00"})
    results = store.record_polls([write(a, 1), bad, write(c, 3)])
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], StoreError) and not isinstance(results[1], StaleTransition)
    assert "unicode" in str(results[1]).lower()
    assert written(store, a)[1:] == ([(1, {"new": 1})], [(1, RUN)])
    assert written(store, c)[1:] == ([(1, {"new": 3})], [(1, RUN)])
    assert written(store, b) == before
    assert store.batch_fallbacks == 1
    # and a retry of the whole batch writes nothing twice (expected_seq)
    again = store.record_polls([write(a, 1), write(c, 3)])
    assert again == [None, None]
    assert written(store, a)[1:] == ([(1, {"new": 1})], [(1, RUN)])


def test_a_pool_commits_its_polls_in_batches(db_url, store):
    """The pool's runners write through its group committer. The test holds the events lock
    (as a commit in another process would): the committer's first batch waits on it, the
    writes behind it queue up, and once it is released they go in one transaction.

    Planted: the pool not handing its runners the committer (each poll committed alone): no
    write ever queued and this failed."""
    keys = [f"g{i:02d}" for i in range(12)]
    with ScriptedFeed() as feed:
        task_types.apply(store, [pool_ping_type(feed.base_url)])
        for key in keys:
            script(feed, key)
        schedule(store, keys)
        report = tick(store, capacity=len(keys))
        [launch] = report.pool_launches
        with psycopg.connect(db_url, autocommit=True) as holder:
            holder.execute("SELECT pg_advisory_lock(%s)", (EVENTS_LOCK_KEY,))
            pool = PoolThread(db_url, launch.pool_id, launch.capacity, workers=6)
            with pool:
                try:
                    wait_for(
                        lambda: (
                            pool.pool.committer is not None and pool.pool.committer.queued() >= 2
                        ),
                        "poll writes queued behind the held events lock",
                    )
                finally:
                    holder.execute("SELECT pg_advisory_unlock(%s)", (EVENTS_LOCK_KEY,))
                pool.wait()
            stats = pool.pool.committer.stats
    assert stats.largest >= 2 and stats.grouped >= 1 and stats.fallbacks == 0
    assert stats.writes > stats.batches
    for key in keys:
        task_id = f"ping:{key}"
        assert store.get_task(task_id).state == TaskState.FINISHED
        assert stream(store, task_id) == [(i + 1, i) for i in range(6)]
        seqs = [e["seq"] for e in store.task_events(task_id)]  # in task_seq order
        assert seqs == sorted(seqs)  # a task's stream in commit order, batched or not
