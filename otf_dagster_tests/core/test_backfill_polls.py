"""A backfill task's polls against the simulator: a game already final is polled once and
FINISHED with its final state and the events its feed still gives; a game the feed does not
know is FAILED with the reason after ``unknown_game_polls`` polls, never retried forever."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, timedelta

import pytest

from otf_dagster.core.ingest import backfill_days
from otf_dagster.core.runner import TaskRunner
from otf_dagster.feeds import make_provider
from otf_dagster.feeds.leagues import league
from otf_dagster.handlers import HANDLERS
from otf_dagster.simulator import Simulator
from otf_dagster.vocab.tasks import TaskState
from otf_dagster_tests.helpers import T0, FakeClock, VirtualClock

DAY = date(2023, 11, 14)  # T0's: the slate's day
TZ = "America/New_York"
FEEDS = [("nba_cdn", "NBA_GAME_BOXSCORE", "nba_id"), ("espn", "ESPN_GAME_BOXSCORE", "espn_id")]
LATER = datetime.now(UTC) + timedelta(days=3650)  # every task ever scheduled is due


@pytest.fixture
def final_sim():
    """The 14th's games, the clock moved past their end: the feed says final."""
    clock = FakeClock(T0)
    with Simulator(games=2, clock=clock) as sim:
        clock.advance(86400)
        assert {g["status"] for g in sim.state()["games"]} == {"final"}
        yield sim


def requests_for(sim: Simulator, game_id: str) -> int:
    return sum(game_id in target for target in sim.requests)


def run_claimed(store, sim: Simulator, claimed) -> object:
    task = claimed.task
    return TaskRunner(
        store,
        task.task_id,
        task.attempt,
        f"run-{task.external_key}",
        handlers=HANDLERS,
        feed_base_url=sim.base_url,
        clock=VirtualClock(),  # retries sleep on it: no real waiting
        backfill_rps=1000,
    ).run()


@pytest.mark.parametrize(("feed", "task_type", "attr"), FEEDS)
def test_a_game_already_final_is_polled_once_and_finished_with_its_events(
    store, default_types, final_sim, feed, task_type, attr
):
    sim = final_sim
    [day] = backfill_days(
        store, [DAY], [league("nba")], lambda lg: make_provider(feed, sim.base_url),
        lambda lg: task_type, handlers=HANDLERS, tz=TZ,
    )  # fmt: skip
    assert day.error is None and day.to_dict()["backfill"] == 2
    game = sim.games[0]
    key = getattr(game, attr)
    before = requests_for(sim, key)
    claimed = {c.task.external_key: c for c in store.claim_ready(10, backfill_max_started=10)}
    assert claimed[key].task.lane == "backfill"

    outcome = run_claimed(store, sim, claimed[key])

    assert outcome.state == TaskState.FINISHED and outcome.polls == 1
    assert requests_for(sim, key) - before == 1  # one feed request, no confirmation poll
    assert outcome.detail["final"] == "ORL 97 - BOS 124" and outcome.detail["status"] == "final"
    task = store.get_task(claimed[key].task.task_id)
    assert task.state == TaskState.FINISHED
    assert task.checkpoint["state"]["status"] == "final"  # the final snapshot is the state
    events = store.task_events(task.task_id)
    kinds = Counter(e["kind"] for e in events)
    assert kinds["game_started"] == 1 and kinds["game_final"] == 1 and kinds["period_ended"] == 4
    points = Counter()
    for e in events:
        if e["kind"] == "score_changed":
            points[e["payload"]["team"]] += e["payload"]["points"]
    assert points == {"BOS": 124, "ORL": 97}  # every score the feed still gives
    assert outcome.follow_ups == []
    # Nothing follows it: no confirmation task, and the finished task is never claimed again.
    assert store.claim_ready(10, now=LATER, backfill_max_started=10) == []
    assert len(store.list_tasks()) == 2  # the two games' tasks, no confirmation
    assert requests_for(sim, key) - before == 1


def test_an_unknown_backfill_game_fails_with_the_reason_after_its_polls(
    store, default_types, final_sim
):
    sim = final_sim
    unknown = "0029999999"
    store.schedule_task(
        "NBA_GAME_BOXSCORE", unknown, datetime.fromtimestamp(T0, UTC), lane="backfill"
    )
    [claimed] = store.claim_ready(10, backfill_max_started=10)
    assert claimed.task.lane == "backfill"
    limit = store.get_task_type("NBA_GAME_BOXSCORE").params.get("unknown_game_polls", 3)
    assert limit == 3

    outcome = run_claimed(store, sim, claimed)

    assert outcome.state == TaskState.FAILED and outcome.polls == limit
    assert outcome.reason.startswith("unknown game:") and unknown in outcome.reason
    assert f"({limit} poll(s) in a row)" in outcome.reason
    assert requests_for(sim, unknown) == limit
    task = store.get_task(claimed.task.task_id)
    assert task.state == TaskState.FAILED and unknown in task.last_error
    # Terminal: no later claim takes it up again.
    assert store.claim_ready(10, now=LATER, backfill_max_started=10) == []
    assert requests_for(sim, unknown) == limit
