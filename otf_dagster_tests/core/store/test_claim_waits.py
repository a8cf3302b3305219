"""A claimer never waits on a row another claimer holds (SKIP LOCKED), and applying several
task types is one transaction: two properties the race tests do not show."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from otf_dagster.core.store import TaskStore, transitions
from otf_dagster.exceptions import StoreError, UnknownTaskType
from otf_dagster.handlers import task_types
from otf_dagster.vocab.tasks import TaskState
from otf_dagster_tests.core.store.test_claim_race import seed_ready_tasks


def later() -> datetime:
    """A claim time after every seeded task is due (read when the test runs, not at import)."""
    return datetime.now(UTC) + timedelta(hours=1)


def test_a_claimer_skips_a_row_another_holds_instead_of_waiting(db_url, store, default_types):
    """One connection holds a ready task's row lock; a claim in another with a lock_timeout of
    1 ms must return every other ready task: had it waited on the held row for even that long,
    the server would have cancelled it (LockNotAvailable). No clock is involved: SKIP LOCKED
    never waits at all."""
    seed_ready_tasks(db_url, 5)
    with psycopg.connect(db_url) as holder:  # a transaction stays open until the block ends
        holder.execute("SELECT 1 FROM tasks WHERE task_id = 'race:3' FOR UPDATE")
        store.conn.execute("SET lock_timeout = '1ms'")
        claimed = store.claim_ready(limit=10, now=later())
        assert sorted(c.task.task_id for c in claimed) == [
            "race:1",
            "race:2",
            "race:4",
            "race:5",
        ]
        assert store.get_task("race:3").state == TaskState.SCHEDULED
    [last] = store.claim_ready(limit=10, now=later())  # released: the next claim takes it
    assert last.task.task_id == "race:3" and last.task.attempt == 1


def test_a_claimer_skips_a_row_another_claim_holds(db_url, default_types):
    """The same with two real claims: the first claim's transaction is still open.

    On TimescaleDB the first row of a new chunk is written under a lock that other inserts
    into the same time range wait on until it commits: a chunk's creation, not a row lock. A
    claim committed first makes today's chunk of task_states, so what is tested is the rows."""
    seed_ready_tasks(db_url, 7)
    with TaskStore(db_url) as first, TaskStore(db_url) as second:
        assert len(first.claim_ready(limit=1, now=later())) == 1
        with first.conn.transaction():
            rows = transitions.claim_ready(first.conn, later(), 3, "first")
            second.conn.execute("SET lock_timeout = '1ms'")
            others = second.claim_ready(limit=10, now=later())
        assert {r[0] for r in rows}.isdisjoint(c.task.task_id for c in others)
        assert len(rows) == 3 and len(others) == 3


def test_a_failing_second_type_leaves_the_first_unapplied(store):
    """All or nothing, in the database's own transaction: the second type passes Python's
    checks (built directly) but the database's CHECK refuses it, after the first was written."""
    first = task_types.validate(
        {
            "name": "ATOMIC_FIRST",
            "handler": "nba_cdn.boxscore",
            "url_template": "/b/{key}.json",
            "poll_interval_seconds": 10,
        }
    )
    second = replace(first, name="ATOMIC_SECOND", max_attempts=0)  # CHECK: 1..100
    with pytest.raises(StoreError, match="task_types_max_attempts_range"):
        store.apply_task_types([first, second])
    for name in ("ATOMIC_FIRST", "ATOMIC_SECOND"):
        with pytest.raises(UnknownTaskType):
            store.get_task_type(name)
    assert store.apply_task_types([first]) == [("ATOMIC_FIRST", True)]  # the store still works


def test_a_claim_starts_clean(db_url, store, default_types):
    """A SCHEDULED task may carry a run id and an error from an earlier life (a retried task):
    the claim clears both, so no stale run is taken for the new attempt's."""
    seed_ready_tasks(db_url, 1)
    with psycopg.connect(db_url) as conn:
        conn.execute(
            "UPDATE tasks SET run_id = 'old-run', last_error = 'old' WHERE task_id = 'race:1'"
        )
    [claimed] = store.claim_ready(limit=10, now=later())
    task = store.get_task(claimed.task.task_id)
    assert (task.state, task.attempt, task.run_id, task.last_error) == (
        TaskState.STARTED,
        1,
        None,
        None,
    )
