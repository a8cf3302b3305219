"""Live work first: backfill tasks (games already final when ingested) never delay tasks due
now; they get what is left of a tick, capped, and a follow-up keeps its parent's lane."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg
import psycopg
import pytest

from otf_dagster.core import manager
from otf_dagster.core.store.polls import PollWrite
from otf_dagster.exceptions import StoreError
from otf_dagster.vocab.tasks import TaskState
from otf_dagster_tests.defs.test_sensor import tick as sensor_tick

T = "NBA_GAME_BOXSCORE"
N_BACKFILL = 5000
N_LIVE = 20


def seed_backfill(store, n: int, days_ago: float = 30) -> None:
    """``n`` backfill tasks scheduled at past games' starts, all older than any live task,
    through the same path an ingest takes."""
    base = datetime.now(UTC) - timedelta(days=days_ago)
    store.schedule_tasks(
        T,
        [(f"b{i:05d}", base + timedelta(minutes=i % 600), {}) for i in range(n)],
        source="test",
        lane="backfill",
    )


def seed_live(store, n: int) -> set[str]:
    due = datetime.now(UTC) - timedelta(seconds=30)
    out = store.schedule_tasks(T, [(f"live{i:02d}", due, {}) for i in range(n)], source="test")
    return {task_id for task_id, _ in out}


def test_every_live_game_is_claimed_in_its_first_tick_beside_5000_backfill_tasks(
    db_url, store, default_types
):
    seed_backfill(store, N_BACKFILL)
    live = seed_live(store, N_LIVE)
    with dg.instance_for_test() as instance:
        result = sensor_tick(instance, db_url)  # the real sensor, default settings
    launched = {r.partition_key for r in result.run_requests}
    assert live <= launched, f"live tasks not claimed in the first tick: {sorted(live - launched)}"
    backfill = launched - live
    assert len(backfill) == manager.Settings().backfill_max_started  # the rest, capped
    by_id = {r.partition_key: r for r in result.run_requests}
    assert all(by_id[t].tags.get(manager.TAG_LANE) == "backfill" for t in backfill)
    assert all(by_id[t].tags["dagster/priority"] == "-1" for t in backfill)
    assert not any(manager.TAG_LANE in by_id[t].tags for t in live)


def test_a_tick_whose_limit_live_work_fills_claims_no_backfill(db_url, store, default_types):
    seed_backfill(store, 200)
    live = seed_live(store, N_LIVE)
    claimed = store.claim_ready(N_LIVE, backfill_max_started=10)
    assert {c.task.task_id for c in claimed} == live
    # The next tick, with live work done, gives backfill the room (oldest first).
    more = store.claim_ready(N_LIVE, backfill_max_started=10)
    assert len(more) == 10 and all(c.task.lane == "backfill" for c in more)
    assert [c.task.external_key for c in more] == [f"b{i:05d}" for i in range(10)]


def test_backfill_tasks_started_at_once_stay_under_the_cap(db_url, store, default_types):
    seed_backfill(store, 50)
    settings = manager.Settings(backfill_max_started=3)
    first = manager.tick(store, lambda keys: {}, settings=settings)
    assert len(first.launches) == 3
    assert manager.tick(store, lambda keys: {}, settings=settings).launches == []  # still 3
    done = first.launches[0]
    store.transition(done.task_id, TaskState.STARTED, TaskState.FINISHED, done.attempt)
    third = manager.tick(store, lambda keys: {}, settings=settings)
    assert len(third.launches) == 1  # one ended: one more starts
    # 0 pauses the backfill; live work is unaffected
    live = seed_live(store, 2)
    paused = manager.tick(store, lambda keys: {}, settings=manager.Settings(backfill_max_started=0))
    assert {x.task_id for x in paused.launches} == live


def test_a_follow_up_inherits_its_parents_lane_and_a_lane_never_changes(
    db_url, store, default_types
):
    now = datetime.now(UTC)
    store.schedule_task(T, "old", now - timedelta(days=3), lane="backfill")
    store.schedule_task(T, "new", now - timedelta(minutes=1))
    [parent] = [c for c in store.claim_ready(10) if c.task.external_key == "old"]
    store.record_poll(
        PollWrite(
            parent.task.task_id,
            parent.task.attempt,
            "run-1",
            {"next_seq": 1},
            follow_ups=[("NBA_GAME_CONFIRM", "old", now, {})],
        )
    )
    assert store.get_task("nba_game_confirm:old").lane == "backfill"
    # an existing task keeps its lane whatever a later schedule says
    store.schedule_task(T, "later", now + timedelta(hours=1))
    store.schedule_task(T, "later", now + timedelta(hours=2), lane="backfill")
    later = store.get_task("nba_game_boxscore:later")
    assert later.lane == "live" and later.scheduled_at == now + timedelta(hours=2)
    with pytest.raises(StoreError, match="'fast' is not a lane"):
        store.schedule_task(T, "x", now, lane="fast")


def test_each_lanes_claim_reads_the_ready_index(db_url, store, default_types):
    """The ready index leads with the lane: the live claim is a range scan of it, not a walk
    past every overdue backfill task."""
    seed_backfill(store, 3000)
    seed_live(store, 5)
    with psycopg.connect(db_url) as conn:
        conn.execute("ANALYZE tasks")
        plan = "\n".join(
            r[0]
            for r in conn.execute(
                "EXPLAIN SELECT task_id FROM tasks WHERE state = 'SCHEDULED' AND lane = 'live' "
                "AND scheduled_at <= now() ORDER BY scheduled_at, task_id LIMIT 500"
            )
        )
    assert "tasks_ready_idx" in plan and "Index Cond: ((lane = 'live'::text)" in plan, plan
