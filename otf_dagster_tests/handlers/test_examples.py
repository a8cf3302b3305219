"""The shipped example types (otf_dagster/defaults/examples.yaml) against the simulator: the
scoreboard watcher spawns one period-score task per game, and a period-score task tracks the
recorded game's period scores to the end."""

from __future__ import annotations

from datetime import timedelta

from otf_dagster.core.runner import TaskRunner
from otf_dagster.handlers import HANDLERS, task_types
from otf_dagster.simulator.server import Simulator
from otf_dagster.vocab.tasks import TaskState
from otf_dagster_tests.helpers import VirtualClock


def test_the_scoreboard_watcher_spawns_period_score_tasks_that_track_the_game(store):
    clock = VirtualClock()
    task_types.apply(store, task_types.load_file(task_types.DEFAULTS_FILE))
    task_types.apply(store, task_types.load_file(task_types.EXAMPLES_FILE))
    with Simulator(speed=60, games=3, first_start=30, spacing=30, clock=clock.time) as sim:
        day = sim.today().strftime("%Y%m%d")
        watch_id, _ = store.schedule_task("SCOREBOARD_WATCH", day, clock.now())
        [claimed] = store.claim_ready(now=clock.now() + timedelta(seconds=1))
        watch = TaskRunner(
            store,
            watch_id,
            claimed.task.attempt,
            "run-w",
            handlers=HANDLERS,
            feed_base_url=sim.base_url,
            clock=clock,
        ).run()
        assert watch.state == TaskState.FINISHED
        kids = store.list_tasks(task_type="GAME_PERIOD_SCORE_TASK")
        assert sorted(k.external_key for k in kids) == sorted(g.espn_id for g in sim.games)
        assert all(k.parent_task_id == watch_id for k in kids)
        first = next(k for k in kids if k.external_key == sim.games[0].espn_id)
        assert first.params == {"matchup": "ORL @ BOS"}
        assert first.scheduled_at == sim.games[0].start_time.replace(second=0)
        tracked = [e["payload"] for e in store.task_events(watch_id)]
        assert {"name": "games", "old": None, "new": 3} in tracked
        assert tracked[-1] == {"name": "live", "old": 1, "new": 0}

        # replay the recorded game again for a period-score task of its own
        with Simulator(speed=60, games=1, first_start=5, clock=clock.time) as replay:
            key = replay.games[0].espn_id
            tid, _ = store.schedule_task("GAME_PERIOD_SCORE_TASK", key, clock.now())
            [claimed] = [c for c in store.claim_ready(now=clock.now()) if c.task.task_id == tid]
            outcome = TaskRunner(
                store,
                tid,
                claimed.task.attempt,
                "run-p",
                handlers=HANDLERS,
                feed_base_url=replay.base_url,
                clock=clock,
            ).run()
    assert outcome.state == TaskState.FINISHED
    last = {}
    for e in store.task_events(tid):
        last[e["payload"]["name"]] = e["payload"]["new"]
    # ORL at BOS, 97-124: the recorded game's quarters
    assert sum(int(p) for p in last["home_periods"]) == 124
    assert sum(int(p) for p in last["away_periods"]) == 97
    assert last["period"] == 4 and len(last["home_periods"]) == 4
