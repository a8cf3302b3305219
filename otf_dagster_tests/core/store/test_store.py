from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from otf_dagster.core.store import TaskStore, task_id_for
from otf_dagster.core.store.polls import PollWrite
from otf_dagster.exceptions import (
    DatabaseUnavailable,
    StaleTransition,
    StoreError,
    UnknownTask,
    UnknownTaskType,
)
from otf_dagster.vocab.tasks import EventRecord, TaskState

NOW = datetime(2026, 11, 27, 19, 0, tzinfo=UTC)
T = "NBA_GAME_BOXSCORE"


@pytest.fixture
def types(default_types):
    return default_types


def test_scheduling_is_idempotent_and_moves_only_scheduled_tasks(store, types):
    tid, outcome = store.schedule_task(T, "0022000180", NOW)
    assert (tid, outcome) == ("nba_game_boxscore:0022000180", "created")
    assert store.schedule_task(T, "0022000180", NOW) == (tid, "unchanged")
    assert store.schedule_task(T, "0022000180", NOW + timedelta(hours=1)) == (tid, "moved")
    assert store.get_task(tid).scheduled_at == NOW + timedelta(hours=1)
    assert len(store.list_tasks()) == 1
    history = store.state_history(tid)
    assert [h["state"] for h in history] == ["SCHEDULED"]  # a move is not a new state

    [claimed] = store.claim_ready(now=NOW + timedelta(hours=2))
    assert claimed.task.task_id == tid and claimed.task.attempt == 1
    # Once started, re-scheduling leaves it alone.
    assert store.schedule_task(T, "0022000180", NOW + timedelta(hours=5)) == (tid, "unchanged")
    task = store.get_task(tid)
    assert task.state == TaskState.STARTED and task.scheduled_at == NOW + timedelta(hours=1)


def test_sql_looking_keys_are_stored_verbatim(store, types):
    key = "x'); DROP TABLE tasks; --"
    tid, outcome = store.schedule_task(T, key, NOW)
    assert outcome == "created"
    assert tid == task_id_for(T, key) and tid.startswith("nba_game_boxscore:h-")
    assert store.get_task(tid).external_key == key
    assert store.schedule_task(T, key, NOW) == (tid, "unchanged")
    assert len(store.list_tasks()) == 1


def test_unknown_and_soft_deleted_types_cannot_be_scheduled(store, types):
    with pytest.raises(UnknownTaskType, match="'NOPE'"):
        store.schedule_task("NOPE", "1", NOW)
    store.delete_task_type(T)
    with pytest.raises(UnknownTaskType, match="soft-deleted"):
        store.schedule_task(T, "1", NOW)
    assert store.list_tasks() == []


def test_bad_schedule_input_writes_nothing(store, types):
    with pytest.raises(StoreError, match="timezone-aware"):
        store.schedule_tasks(T, [("a", NOW, {}), ("b", datetime(2026, 1, 1), {})])
    with pytest.raises(StoreError, match="1 to 200"):
        store.schedule_tasks(T, [("a", NOW, {}), ("", NOW, {})])
    assert store.list_tasks() == []


def test_soft_deleted_types_are_never_claimed(store, types):
    store.schedule_task(T, "a", NOW)
    store.schedule_task("ESPN_GAME_BOXSCORE", "401585135", NOW)
    store.delete_task_type(T)
    claimed = store.claim_ready(now=NOW + timedelta(minutes=1))
    assert [c.task.task_type for c in claimed] == ["ESPN_GAME_BOXSCORE"]
    assert store.claim_ready(now=NOW + timedelta(days=1)) == []
    assert store.get_task(task_id_for(T, "a")).state == TaskState.SCHEDULED


def test_claim_takes_only_due_tasks_in_time_order(store, types):
    for i, minutes in enumerate([30, -10, -20, 5]):
        store.schedule_task(T, f"g{i}", NOW + timedelta(minutes=minutes))
    claimed = store.claim_ready(now=NOW)
    assert [c.task.external_key for c in claimed] == ["g2", "g1"]
    assert all(c.task.state == TaskState.STARTED and c.task.attempt == 1 for c in claimed)
    assert claimed[0].task_type.poll_interval_seconds == 10
    assert store.claim_ready(now=NOW) == []
    for c in claimed:
        h = store.state_history(c.task.task_id)
        assert [(r["state"], r["previous_state"], r["attempt"]) for r in h] == [
            ("SCHEDULED", None, 0),
            ("STARTED", "SCHEDULED", 1),
        ]


def test_stale_transitions_are_refused(store, types):
    store.schedule_task(T, "a", NOW)
    [c] = store.claim_ready(now=NOW)
    tid = c.task.task_id
    relaunched = store.relaunch(tid, 1, "runner lost")
    assert relaunched.attempt == 2
    # The attempt-1 runner is now stale: every write of it is refused, nothing changes.
    with pytest.raises(StaleTransition, match="attempt 1"):
        store.record_poll(
            PollWrite(tid, 1, "old-run", {"x": 1}, [EventRecord(1, "game_started", {})])
        )
    with pytest.raises(StaleTransition):
        store.heartbeat(tid, 1)
    with pytest.raises(StaleTransition):
        store.transition(tid, TaskState.STARTED, TaskState.FINISHED, 1)
    with pytest.raises(StaleTransition):
        store.relaunch(tid, 1, "again")
    assert store.task_events(tid) == []
    assert store.get_task(tid).checkpoint is None
    # The current attempt may write.
    store.record_poll(PollWrite(tid, 2, "new-run", {"x": 2}, [EventRecord(1, "game_started", {})]))
    assert store.get_task(tid).run_id == "new-run"
    # A finished task cannot be finished again, nor cancelled.
    assert (
        store.record_poll(PollWrite(tid, 2, "new-run", {"x": 3}, finish=TaskState.FINISHED))
        == TaskState.FINISHED
    )
    with pytest.raises(StaleTransition):
        store.transition(tid, TaskState.STARTED, TaskState.FAILED, 2)
    with pytest.raises(StaleTransition, match="FINISHED"):
        store.cancel_task(tid, "postponed")
    with pytest.raises(UnknownTask):
        store.transition("nope:1", TaskState.STARTED, TaskState.FAILED, 1)


def test_cancel_a_scheduled_task(store, types):
    tid, _ = store.schedule_task(T, "a", NOW)
    task = store.cancel_task(tid, "game postponed")
    assert task.state == TaskState.CANCELLED and task.last_error == "game postponed"
    assert store.claim_ready(now=NOW + timedelta(days=1)) == []
    assert store.state_history(tid)[-1]["detail"] == {"reason": "game postponed"}


def test_poll_writes_are_atomic(store, types, db_url):
    """An event that cannot be written takes the checkpoint down with it."""
    store.schedule_task(T, "a", NOW)
    [c] = store.claim_ready(now=NOW)
    tid = c.task.task_id
    store.record_poll(PollWrite(tid, 1, "r1", {"n": 1}, [EventRecord(1, "game_started", {"a": 1})]))
    with pytest.raises(StoreError):
        store.record_poll(
            PollWrite(
                tid,
                1,
                "r1",
                {"n": 2},
                [EventRecord(2, "score_changed", {}), EventRecord(3, "BAD KIND", {})],
            )
        )
    assert store.get_task(tid).checkpoint == {"n": 1}
    assert [e["task_seq"] for e in store.task_events(tid)] == [1]
    events = store.task_events(tid)
    assert events[0]["task_runner_id"] == "r1" and events[0]["task_type"] == T


def test_runner_failure_fails_the_task_with_reason(store, types):
    store.schedule_task(T, "a", NOW)
    [c] = store.claim_ready(now=NOW)
    assert store.fail_runner(c.task.task_id, 1, "10 feed errors in a row") == TaskState.FAILED
    task = store.get_task(c.task.task_id)
    assert task.state == TaskState.FAILED and "runner" in task.last_error
    assert store.running_tasks() == []


def test_lost_connection_becomes_database_unavailable_and_recovers(store, types, db_url):
    store.schedule_task(T, "a", NOW)
    pid = store.conn.info.backend_pid
    with psycopg.connect(db_url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    with pytest.raises(DatabaseUnavailable):
        store.list_tasks()
    assert len(store.list_tasks()) == 1  # reconnected


def test_unreachable_server_names_the_url_without_password():
    with pytest.raises(DatabaseUnavailable) as err:
        TaskStore("postgresql://u:s3cret@127.0.0.1:1/otf").list_tasks()
    assert "127.0.0.1:1" in str(err.value) and "s3cret" not in str(err.value)


def test_a_retried_poll_write_after_a_lost_acknowledgement_writes_nothing_twice(store, types):
    """The runner retries a write whose commit went through but whose answer was lost."""
    store.schedule_task(T, "a", NOW)
    [c] = store.claim_ready(now=NOW)
    tid = c.task.task_id
    cp = {"snapshot": None, "next_seq": 3, "polls": 1}
    events = [EventRecord(1, "game_started", {}), EventRecord(2, "period_started", {"period": 1})]
    store.record_poll(PollWrite(tid, 1, "r1", cp, events, expected_seq=1))
    store.record_poll(PollWrite(tid, 1, "r1", cp, events, expected_seq=1))  # the retry
    assert [e["task_seq"] for e in store.task_events(tid)] == [1, 2]
    # A write from a position the checkpoint has already left is refused.
    with pytest.raises(StaleTransition):
        store.record_poll(
            PollWrite(
                tid, 1, "r1", {**cp, "polls": 9}, [EventRecord(3, "game_final", {})], expected_seq=1
            )
        )
    assert len(store.task_events(tid)) == 2
