"""A backfill of the ``game_schedule`` asset over past days on a real Dagster instance: a day
the feed does not know fails its own partition with the reason, the other days succeed."""

from __future__ import annotations

import dagster as dg
import pytest

from otf_dagster.definitions import build_definitions
from otf_dagster.defs.resources import FeedResource, TaskStoreResource
from otf_dagster.simulator import Simulator
from otf_dagster_tests.helpers import T0, FakeClock

DAYS = ("2023-11-13", "2023-11-14", "2023-11-15")  # the slate plays on the 14th (T0)
UNKNOWN = "2023-11-13"


@pytest.fixture
def sim(monkeypatch):
    monkeypatch.setenv("OTF_SCHEDULE_START_DATE", DAYS[0])  # the days are partitions
    monkeypatch.setenv("OTF_BACKFILL_RPS", "1000")
    clock = FakeClock(T0)
    with Simulator(games=2, clock=clock) as simulator:
        clock.advance(86400)  # the games are over: they become backfill tasks
        yield simulator


def test_a_day_the_feed_does_not_know_fails_its_partition_and_the_others_succeed(
    db_url, store, default_types, sim
):
    sim.inject("dates=20231113", "404", count=None)  # ESPN: no such day
    definitions = build_definitions(
        leagues=["nba"],
        task_store=TaskStoreResource(database_url=db_url),
        feeds=FeedResource(provider="espn", base_url=sim.base_url),
    )
    job = definitions.resolve_job_def("game_schedule_job")
    with dg.instance_for_test() as instance:
        results = {
            day: job.execute_in_process(
                instance=instance, partition_key=f"{day}|nba", raise_on_error=False
            )
            for day in DAYS
        }
        assert {day: r.success for day, r in results.items()} == {
            "2023-11-13": False,
            "2023-11-14": True,
            "2023-11-15": True,
        }
        [failure] = [e for e in results[UNKNOWN].all_events if e.event_type_value == "STEP_FAILURE"]
        data = failure.event_specific_data
        assert data.user_failure_data.description.startswith(
            "nba 2023-11-13: espn could not list the day's games:"
        )
        assert "404" in data.user_failure_data.description
        assert data.user_failure_data.metadata["day"].value == UNKNOWN
        done = instance.get_materialized_partitions(dg.AssetKey("game_schedule"))
        assert done == {"2023-11-14|nba", "2023-11-15|nba"}
        [mat] = results["2023-11-14"].asset_materializations_for_node("game_schedule")
        assert (mat.metadata["created"].value, mat.metadata["backfill"].value) == (2, 2)

    tasks = store.list_tasks()
    assert sorted(t.external_key for t in tasks) == sorted(g.espn_id for g in sim.games)
    assert {t.lane for t in tasks} == {"backfill"}
