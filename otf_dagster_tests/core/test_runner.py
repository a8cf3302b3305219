"""The TaskRunner's poll loop against the simulator, on a virtual clock."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import pytest

from otf_dagster.core.runner import Checkpoint, TaskRunner
from otf_dagster.core.store import TaskStore
from otf_dagster.handlers import HANDLERS
from otf_dagster.simulator.server import Simulator
from otf_dagster.vocab.tasks import TaskState
from otf_dagster_tests.helpers import VirtualClock, apply_test_types

T = "NBA_GAME_BOXSCORE"


@pytest.fixture
def sim_clock():
    clock = VirtualClock()
    with Simulator(speed=60, games=2, first_start=10, spacing=30, clock=clock.time) as sim:
        yield sim, clock


def runner(store: TaskStore, sim: Simulator, *args, **kw) -> TaskRunner:
    """A runner polling the simulator."""
    return TaskRunner(store, *args, handlers=HANDLERS, feed_base_url=sim.base_url, **kw)


def start_task(store: TaskStore, key: str, clock: VirtualClock, task_type: str = T):
    store.schedule_task(task_type, key, clock.now())
    [claimed] = store.claim_ready(now=datetime.now(UTC))
    return claimed.task


@pytest.mark.parametrize("task_type,game_key", [(T, "nba_id"), ("ESPN_GAME_BOXSCORE", "espn_id")])
def test_runner_polls_a_replayed_game_to_final(store, sim_clock, task_type, game_key):
    sim, clock = sim_clock
    apply_test_types(store)
    game = sim.games[0]
    task = start_task(store, getattr(game, game_key), clock, task_type)
    polls = []
    outcome = runner(
        store,
        sim,
        task.task_id,
        task.attempt,
        "run-1",
        clock=clock,
        on_poll=polls.append,
    ).run()

    assert outcome.state == TaskState.FINISHED and outcome.reason is None
    assert outcome.display["score"] == "ORL 97 - BOS 124"
    assert outcome.detail["final"] == "ORL 97 - BOS 124" and outcome.detail["status"] == "final"
    final = store.get_task(task.task_id)
    assert final.state == TaskState.FINISHED and final.run_id == "run-1"

    events = store.task_events(task.task_id)
    assert [e["task_seq"] for e in events] == list(range(1, len(events) + 1)), "gap or duplicate"
    assert {e["task_runner_id"] for e in events} == {"run-1"}
    kinds = Counter(e["kind"] for e in events)
    assert kinds["game_started"] == 1 and kinds["game_final"] == 1
    assert kinds["period_ended"] == 4 and kinds["period_started"] == 4
    assert events[-1]["kind"] == "game_final"
    points = Counter()
    for e in events:
        if e["kind"] == "score_changed":
            points[e["payload"]["team"]] += e["payload"]["points"]
    assert points == {"BOS": 124, "ORL": 97}
    assert events[-1]["payload"]["home_score"] == 124 and events[-1]["payload"]["away_score"] == 97

    # At final it scheduled the confirmation task, some minutes later, as its child.
    follow_type = "NBA_GAME_CONFIRM" if task_type == T else "ESPN_GAME_CONFIRM"
    [follow] = store.list_tasks(task_type=follow_type)
    assert follow.parent_task_id == task.task_id and follow.state == TaskState.SCHEDULED
    assert (follow.scheduled_at - clock.now()).total_seconds() == pytest.approx(600, abs=5)
    assert outcome.follow_ups == [follow.task_id]
    assert len(polls) == outcome.polls


def test_confirmation_task_makes_one_poll_against_the_parents_snapshot(store, sim_clock):
    sim, clock = sim_clock
    apply_test_types(store)
    game = sim.games[0]
    task = start_task(store, game.nba_id, clock)
    runner(store, sim, task.task_id, 1, "run-1", clock=clock).run()
    clock.sleep(700)
    [claimed] = store.claim_ready(now=datetime.now(UTC).replace(year=2100))
    assert claimed.task.task_type == "NBA_GAME_CONFIRM"
    outcome = runner(store, sim, claimed.task.task_id, 1, "run-2", clock=clock).run()
    assert outcome.state == TaskState.FINISHED and outcome.polls == 1
    assert store.task_events(claimed.task.task_id) == []  # nothing corrected in the replay
    assert store.list_tasks(task_type="NBA_GAME_CONFIRM")[0].state == TaskState.FINISHED


def test_unknown_game_fails_with_the_reason(store, sim_clock):
    sim, clock = sim_clock
    apply_test_types(store)
    task = start_task(store, "0029999999", clock)
    outcome = runner(store, sim, task.task_id, 1, "run-1", clock=clock).run()
    assert outcome.state == TaskState.FAILED and "unknown game" in outcome.reason
    assert "0029999999" in store.get_task(task.task_id).last_error


def test_repeated_feed_errors_fail_the_task(store, sim_clock):
    sim, clock = sim_clock
    apply_test_types(store, max_consecutive_errors=3)
    task = start_task(store, sim.games[0].nba_id, clock)
    sim.inject("boxscore_", "error", count=None, status=503)
    outcome = runner(store, sim, task.task_id, 1, "run-1", clock=clock).run()
    assert outcome.state == TaskState.FAILED
    assert outcome.reason.startswith("3 consecutive poll errors; last: retriable error:")
    assert store.get_task(task.task_id).checkpoint["consecutive_errors"] == 3


def test_deadline_ends_the_runner(store, sim_clock):
    sim, clock = sim_clock
    apply_test_types(store, deadline_seconds=60)
    task = start_task(store, sim.games[1].nba_id, clock)
    outcome = runner(store, sim, task.task_id, 1, "run-1", clock=clock).run()
    assert outcome.state == TaskState.FAILED and outcome.reason.startswith("deadline")


def test_poll_interval_and_soft_delete_are_reread_while_running(store, sim_clock):
    sim, clock = sim_clock
    apply_test_types(store)
    task = start_task(store, sim.games[1].nba_id, clock)  # starts at +40 s: still live at +80 s
    seen: list[float] = []

    def on_poll(report):
        seen.append(clock.time())
        if report.poll == 2:  # slow the polling down mid-run
            apply_test_types(store, poll=30.0)
        if report.poll == 4:
            store.delete_task_type(T)

    outcome = runner(store, sim, task.task_id, 1, "run-1", clock=clock, on_poll=on_poll).run()
    gaps = [round(b - a) for a, b in zip(seen, seen[1:], strict=False)]
    assert gaps == [20, 30, 30]
    assert outcome.state == TaskState.FAILED and "deleted" in outcome.reason
    assert outcome.polls == 4


def test_a_stale_runner_stops_without_writing(store, sim_clock):
    sim, clock = sim_clock
    apply_test_types(store)
    task = start_task(store, sim.games[0].nba_id, clock)

    def on_poll(report):
        if report.poll == 2:
            store.relaunch(task.task_id, 1, "test: another runner takes over")

    outcome = runner(store, sim, task.task_id, 1, "run-1", clock=clock, on_poll=on_poll).run()
    assert outcome.state is None and "attempt 1" in outcome.reason
    t = store.get_task(task.task_id)
    assert t.state == TaskState.STARTED and t.attempt == 2 and t.checkpoint["polls"] == 2


def test_a_runner_survives_losing_its_database_connection(store, db_url, sim_clock, pg_server):
    """The server drops the runner's connection mid-game (as a restart does): the poll's
    results wait in memory, the write is retried, and the stream is complete."""
    import psycopg

    sim, clock = sim_clock
    apply_test_types(store)
    task = start_task(store, sim.games[0].nba_id, clock)
    runner_store = TaskStore(db_url, application_name="runner-under-test")
    dropped = []

    def on_poll(report):
        if report.poll in (2, 4):
            with psycopg.connect(db_url, autocommit=True) as admin:
                n = admin.execute(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE application_name = 'runner-under-test'"
                ).fetchone()[0]
            dropped.append(n)

    outcome = runner(
        runner_store,
        sim,
        task.task_id,
        1,
        "run-1",
        clock=clock,
        on_poll=on_poll,
        db_retry_seconds=0.01,
    ).run()
    runner_store.close()
    assert dropped == [1, 1]
    assert outcome.state == TaskState.FINISHED
    events = store.task_events(task.task_id)
    assert [e["task_seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[-1]["payload"]["home_score"] == 124


@pytest.mark.parametrize("fault", ["malformed", "error", "rate_limit", "drop"])
def test_passing_feed_faults_lose_nothing(store, sim_clock, fault):
    """A few bad answers mid-game: the runner rides them out and the stream is whole."""
    sim, clock = sim_clock
    apply_test_types(store)
    task = start_task(store, sim.games[0].nba_id, clock)
    errors = []

    def on_poll(report):
        if report.poll == 3:
            sim.inject("boxscore_", fault, count=4 if fault != "rate_limit" else 1, retry_after=0.1)
        if report.error:
            errors.append(report.error)

    outcome = runner(store, sim, task.task_id, 1, "run-1", clock=clock, on_poll=on_poll).run()
    assert outcome.state == TaskState.FINISHED
    if fault == "malformed":  # seen, named, and ridden out
        assert (
            len(errors) == 4 and "body that is not JSON" in errors[0] and "boxscore_" in errors[0]
        )
    events = store.task_events(task.task_id)
    points = Counter()
    for e in events:
        if e["kind"] == "score_changed":
            points[e["payload"]["team"]] += e["payload"]["points"]
    assert points == {"BOS": 124, "ORL": 97}
    assert [e["task_seq"] for e in events] == list(range(1, len(events) + 1))


def test_every_poll_leaves_a_poll_record_in_its_transaction(store, sim_clock):
    """task_polls (otf stats): one row per poll, its events counted and its error kept."""
    from otf_dagster.core.store import pollstats

    sim, clock = sim_clock
    apply_test_types(store)
    task = start_task(store, sim.games[0].nba_id, clock)
    errors = []

    def on_poll(report):
        if report.poll == 2:
            sim.inject("boxscore_", "error", count=4, status=503)
        if report.error:
            errors.append(report.error)

    outcome = runner(store, sim, task.task_id, 1, "run-1", clock=clock, on_poll=on_poll).run()
    records = store.run("read polls", lambda c: pollstats.task_polls(c, task.task_id))
    assert len(records) == outcome.polls
    assert sum(r["events"] for r in records) == len(store.task_events(task.task_id))
    assert [r["error"] for r in records if r["error"]] == errors and errors
    assert {r["task_runner_id"] for r in records} == {"run-1"}


def test_a_checkpoint_is_read_by_its_version():
    """Version 1 kept the handler's state under "snapshot"; version 2 under "state" (a
    version 2 checkpoint's stray "snapshot" key is not its state)."""
    v1 = Checkpoint.load({"snapshot": {"p": 1}, "next_seq": 4, "polls": 3})
    assert (v1.state, v1.next_seq, v1.polls) == ({"p": 1}, 4, 3)
    v2 = Checkpoint.load({"version": 2, "snapshot": {"old": 1}, "next_seq": 2})
    assert v2.state is None and v2.next_seq == 2
    assert Checkpoint.load(Checkpoint(state=[1], next_seq=9).dump()).state == [1]
