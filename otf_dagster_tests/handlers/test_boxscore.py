"""The box-score handler through the runner: polls that slow down and speed up within the
type's bounds, feed 404s told apart by whether the game was ever served, params checked when
the type is applied, and a deadline that ends the runner in the middle of a sleep."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from otf_dagster.core.runner import TaskRunner
from otf_dagster.exceptions import InvalidTaskType
from otf_dagster.feeds import BoxScore, GameStatus, TeamLine
from otf_dagster.handlers import HANDLERS, task_types
from otf_dagster.handlers.boxscore import BoxScoreHandler
from otf_dagster.simulator.server import Simulator
from otf_dagster.vocab.tasks import TaskState
from otf_dagster_tests.helpers import VirtualClock, apply_test_types

T = "NBA_GAME_BOXSCORE"


@pytest.fixture
def sim_clock():
    # speed 60: the recorded game (about an hour of game time) lasts a virtual minute
    clock = VirtualClock()
    with Simulator(speed=60, games=1, first_start=10, spacing=30, clock=clock.time) as sim:
        yield sim, clock


def start(store, key: str, at: datetime) -> str:
    task_id, _ = store.schedule_task(T, key, at)
    [claimed] = [
        c for c in store.claim_ready(now=at + timedelta(days=1)) if c.task.task_id == task_id
    ]
    return task_id


def run(store, sim, task_id: str, clock, **kw):
    return TaskRunner(
        store, task_id, 1, "run-1", handlers=HANDLERS, feed_base_url=sim.base_url, clock=clock, **kw
    ).run()


def test_polls_slow_down_before_tip_off_and_in_breaks_within_the_bounds(store, sim_clock):
    sim, clock = sim_clock
    apply_test_types(store, poll=1.0, min_poll_interval_seconds=0.25, max_poll_interval_seconds=3.0)
    task_id = start(store, sim.games[0].nba_id, clock.now())  # 10 s before tip-off
    seen: list[tuple[float, str, float]] = []

    def on_poll(report):
        seen.append((clock.time(), report.display["status"], report.display["clock_seconds"]))

    outcome = run(store, sim, task_id, clock, on_poll=on_poll)
    assert outcome.state == TaskState.FINISHED
    gaps = [(round(b[0] - a[0], 3), a[1], a[2]) for a, b in zip(seen, seen[1:], strict=False)]
    assert {g for g, status, _ in gaps if status == "scheduled"} == {3.0}  # 3 x 1, the max
    assert {g for g, status, left in gaps if status == "live" and left == 0.0} == {2.0}  # breaks
    assert {g for g, status, left in gaps if status == "live" and left != 0.0} == {1.0}
    # the runner's clamp: without bounds the wish is ignored (see test_runner: all gaps 20)


def test_a_close_finish_is_polled_faster():
    handler = BoxScoreHandler("nba_cdn", "boxscore")
    tt = task_types.validate(
        {
            "name": "CLOSE_GAME",
            "handler": "nba_cdn.boxscore",
            "url_template": "/b_{key}.json",
            "poll_interval_seconds": 10,
            "min_poll_interval_seconds": 2,
        }
    )

    def box(period: int, clock: float, home: int, away: int) -> BoxScore:
        return BoxScore(
            "g",
            "nba_cdn",
            GameStatus.LIVE,
            period,
            clock,
            TeamLine("BOS", home),
            TeamLine("ORL", away),
        )

    assert handler._next_delay(tt, box(4, 90.0, 101, 99)) == 5.0  # last minutes, two points
    assert handler._next_delay(tt, box(5, 30.0, 110, 110)) == 5.0  # overtime, tied
    assert handler._next_delay(tt, box(4, 90.0, 110, 99)) == 10.0  # not close
    assert handler._next_delay(tt, box(3, 60.0, 80, 80)) == 10.0  # not the end yet


def test_a_404_for_a_game_already_served_is_a_passing_error(store, sim_clock):
    sim, clock = sim_clock
    apply_test_types(store, poll=1.0)
    task_id = start(store, sim.games[0].nba_id, clock.now())
    errors: list[str] = []

    def on_poll(report):
        if report.poll == 20:  # mid-game
            sim.inject("boxscore_", "not_found", count=2)
        if report.error:
            errors.append(report.error)

    outcome = run(store, sim, task_id, clock, on_poll=on_poll)
    assert outcome.state == TaskState.FINISHED
    assert len(errors) == 2 and all("served this game before" in e for e in errors)
    events = store.task_events(task_id)
    assert events[-1]["kind"] == "game_final" and events[-1]["payload"]["home_score"] == 124


@pytest.mark.parametrize(("limit", "polls"), [(None, 3), (1, 1), (5, 5)])
def test_a_game_never_served_is_unknown_after_a_bounded_number_of_polls(
    store, sim_clock, limit, polls
):
    sim, clock = sim_clock
    params = {"follow_up_type": "NBA_GAME_CONFIRM"}
    if limit is not None:
        params["unknown_game_polls"] = limit
    apply_test_types(store, poll=20.0, params=params)
    task_id = start(store, "0029999999", clock.now())
    outcome = run(store, sim, task_id, clock)
    assert outcome.state == TaskState.FAILED and outcome.polls == polls
    assert "unknown game" in outcome.reason and "0029999999" in outcome.reason


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({"follow_up_type": "NBA_GAME_CONFIRM", "follow_up_delay_seconds": "soon"}, "'soon'"),
        ({"follow_up_type": "NBA_GAME_CONFIRM", "follow_up_delay_seconds": -1}, "-1"),
        ({"follow_up_type": "no such"}, "'no such'"),
        ({"unknown_game_polls": 0}, "unknown_game_polls"),
        ({"follow_up_typo": "X"}, "follow_up_typo"),
    ],
)
def test_box_score_params_are_checked_when_the_type_is_applied(params, needle):
    spec = {
        "name": "NBA_TEST",
        "handler": "nba_cdn.boxscore",
        "url_template": "/b_{key}.json",
        "poll_interval_seconds": 10,
        "params": params,
    }
    with pytest.raises(InvalidTaskType, match="params") as err:
        task_types.validate(spec)
    assert needle in str(err.value)


def test_a_follow_up_type_that_does_not_exist_is_refused(store):
    spec = {
        "name": "NBA_TEST",
        "handler": "nba_cdn.boxscore",
        "url_template": "/b_{key}.json",
        "poll_interval_seconds": 10,
        "params": {"follow_up_type": "NO_SUCH_TYPE"},
    }
    with pytest.raises(InvalidTaskType, match="'NO_SUCH_TYPE', which does not exist"):
        task_types.apply(store, [task_types.validate(spec)])
    assert store.list_task_types() == []


def test_the_deadline_ends_the_runner_in_the_middle_of_a_sleep(store):
    clock = VirtualClock()
    apply_test_types(store, poll=3000.0, deadline_seconds=3500, stale_after_seconds=600)
    t0 = clock.time()
    with Simulator(speed=60, games=1, first_start=9000, clock=clock.time) as sim:
        task_id = start(store, sim.games[0].nba_id, clock.now())  # long before tip-off
        outcome = run(store, sim, task_id, clock)
    assert outcome.state == TaskState.FAILED and outcome.reason.startswith("deadline")
    assert outcome.polls == 2  # at 0 and 3000 s; the next would have been at 6000 s
    assert clock.time() - t0 == pytest.approx(3500, abs=1)
