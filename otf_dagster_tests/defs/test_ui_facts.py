"""Small facts of what the UI shows: the schedule's days start near today, the ingestion log
has plain numbers, the Task Manager says what it claimed and launched."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from otf_dagster.defs.partitions import game_day_partitions
from otf_dagster.exceptions import ConfigError
from otf_dagster_tests.defs.test_sensor import tick
from otf_dagster_tests.helpers import NOW, apply_test_types


def test_game_days_start_a_few_days_back_unless_configured(monkeypatch):
    monkeypatch.delenv("OTF_SCHEDULE_START_DATE", raising=False)
    days = game_day_partitions("America/New_York")
    today = datetime.now(ZoneInfo("America/New_York")).date()
    keys = days.get_partition_keys()
    assert (
        keys[0] == (today - timedelta(days=3)).isoformat()
        and keys[-1] == (today + timedelta(days=1)).isoformat()
    )
    monkeypatch.setenv("OTF_SCHEDULE_START_DATE", "2026-10-21")
    assert game_day_partitions().get_partition_keys()[0] == "2026-10-21"
    monkeypatch.setenv("OTF_SCHEDULE_START_DATE", "last tuesday")
    with pytest.raises(ConfigError, match="OTF_SCHEDULE_START_DATE='last tuesday'.*YYYY-MM-DD"):
        game_day_partitions()


def test_the_task_manager_logs_what_it_claimed_and_launched(store, db_url, capfd):
    apply_test_types(store)
    store.schedule_task("NBA_GAME_BOXSCORE", "0022000180", NOW - timedelta(minutes=5))
    with dg.instance_for_test() as instance:
        result = tick(instance, db_url)
    assert len(result.run_requests) == 1
    text = capfd.readouterr().err  # Dagster's log manager writes to stderr
    assert "claimed 1 task(s): nba_game_boxscore:0022000180 (attempt 1)" in text
    assert "launching 1 run(s) of task_runner" in text


def test_the_ingestion_log_prints_plain_numbers(store, db_url, capfd):
    from otf_dagster.definitions import build_definitions
    from otf_dagster.defs.resources import FeedResource, TaskStoreResource
    from otf_dagster.simulator import Simulator

    apply_test_types(store)
    with Simulator(games=2) as sim, dg.instance_for_test() as instance:
        defs = build_definitions(
            task_store=TaskStoreResource(database_url=db_url),
            feeds=FeedResource(provider="nba_cdn", base_url=sim.base_url),
        )
        job = defs.resolve_job_def("game_schedule_job")
        day: date = sim.today()
        key = f"{day.isoformat()}|nba"
        assert job.execute_in_process(instance=instance, partition_key=key).success
    line = next(
        x
        for x in capfd.readouterr().err.splitlines()
        if "2 games (0 already final: backfill);" in x
    )
    assert line.endswith("{'created': 2}") and "np." not in line
