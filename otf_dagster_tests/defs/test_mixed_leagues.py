"""A mixed slate, make dev-style: the schedule ingests one game of each sport's league from
the simulator (a real Dagster instance), the Task Manager sensor claims them, and each task's
runner carries its game to FINISHED with the recorded final score."""

from __future__ import annotations

import time

import dagster as dg

from otf_dagster.core.runner import TaskRunner
from otf_dagster.definitions import build_definitions
from otf_dagster.defs.partitions import schedule_partition_key
from otf_dagster.defs.resources import FeedResource, TaskStoreResource
from otf_dagster.feeds.espn import parse_espn_summary
from otf_dagster.feeds.leagues import league
from otf_dagster.handlers import HANDLERS
from otf_dagster.simulator import Simulator
from otf_dagster.vocab.tasks import TaskState
from otf_dagster_tests.helpers import VirtualClock, load

MIXED = ("nba", "nfl", "mlb", "nhl")
RECORDED = {  # the games the simulator replays, as their recorded summaries end
    "nfl": ("401547417", "espn-multisport/nfl/summary/summary_2023-09-17_post_GB-at-ATL_401547417.json"),
    "mlb": ("401472463", "espn-multisport/mlb/summary/summary_2023-07-19_post_CLE-at-PIT_401472463.json"),
    "nhl": ("401672881", "espn-multisport/nhl/summary/summary_2024-06-01_post_NYR-at-FLA_401672881.json"),
}  # fmt: skip


def test_one_game_per_sport_goes_from_the_schedule_to_finished(db_url, store, default_types):
    clock = VirtualClock(time.time() - 60)  # the games start a minute ago: claimable now
    resource = TaskStoreResource(database_url=db_url)
    with Simulator(
        speed=60, games=1, first_start=5, spacing=2, leagues=MIXED, clock=clock.time
    ) as sim:
        defs = build_definitions(
            leagues=list(MIXED),
            task_store=resource,
            feeds=FeedResource(provider="nba_cdn", base_url=sim.base_url),
        )
        job = defs.resolve_job_def("game_schedule_job")
        with dg.instance_for_test() as instance:
            for alias in MIXED:
                key = str(schedule_partition_key(sim.today(), alias))
                assert job.execute_in_process(instance=instance, partition_key=key).success
            context = dg.build_sensor_context(
                instance=instance,
                resources={"task_store": resource},
                repository_def=defs.get_repository_def(),
                instance_ref=instance.get_ref(),
            )
            requests = defs.get_sensor_def("task_manager").evaluate_tick(context).run_requests
        assert sorted(r.tags["otf/task_type"] for r in requests) == [
            "MLB_GAME_BOXSCORE",
            "NBA_GAME_BOXSCORE",
            "NFL_GAME_BOXSCORE",
            "NHL_GAME_BOXSCORE",
        ]
        assert all(" @ " in r.tags["otf/matchup"] for r in requests)
        outcomes = {}
        for request in requests:
            task_id = request.tags["otf/task_id"]
            outcomes[task_id] = TaskRunner(
                store,
                task_id,
                int(request.tags["otf/attempt"]),
                f"run-{task_id}",
                handlers=HANDLERS,
                feed_base_url=sim.base_url,
                clock=clock,
            ).run()
    for task_id, outcome in outcomes.items():
        assert outcome.state == TaskState.FINISHED, (task_id, outcome.reason)
        events = store.task_events(task_id)
        assert [e["task_seq"] for e in events] == list(range(1, len(events) + 1))
        final = events[-1]
        assert final["kind"] == "game_final"
        alias = store.get_task(task_id).params["league"]
        assert {e["payload"]["league"] for e in events} == {alias}
        if alias in RECORDED:
            event_id, relative = RECORDED[alias]
            expected = parse_espn_summary(load(relative), event_id, league(alias))
            assert (final["payload"]["home_score"], final["payload"]["away_score"]) == (
                expected.home.score,
                expected.away.score,
            )
        else:
            assert (final["payload"]["home_score"], final["payload"]["away_score"]) == (124, 97)
