from __future__ import annotations

import dagster as dg

from otf_dagster.definitions import build_definitions, defs
from otf_dagster.defs.jobs import TASK_RUNNER_JOB


def test_definitions_load_with_every_part():
    d = defs()
    assert isinstance(d, dg.Definitions)
    repo = d.get_repository_def()
    assert {j.name for j in repo.get_all_jobs()} >= {
        TASK_RUNNER_JOB,
        "game_schedule_job",
        "history_prune",
    }
    sensors = {s.name: s for s in repo.sensor_defs}
    assert set(sensors) == {"task_manager", "runner_failure_sensor"}
    assert all(s.default_status == dg.DefaultSensorStatus.RUNNING for s in sensors.values())
    schedules = {s.name: s for s in repo.schedule_defs}
    assert set(schedules) == {"daily_game_schedule", "daily_history_prune"}
    for schedule in schedules.values():
        assert schedule.execution_timezone == "America/New_York"
        assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    runner = repo.get_job(TASK_RUNNER_JOB)
    assert runner.executor_def.name == "in_process"  # a killed run leaves no step process polling
    assert runner.partitions_def.name == "tasks"


def test_settings_from_the_environment(monkeypatch):
    monkeypatch.setenv("OTF_SCHEDULE_TIMEZONE", "Europe/Paris")
    monkeypatch.setenv("OTF_SENSOR_INTERVAL_SECONDS", "7")
    repo = defs().get_repository_def()
    assert {s.execution_timezone for s in repo.schedule_defs} == {"Europe/Paris"}
    assert {s.name: s.minimum_interval_seconds for s in repo.sensor_defs}["task_manager"] == 7


def test_a_bad_setting_is_refused_by_name(monkeypatch):
    monkeypatch.setenv("OTF_SENSOR_INTERVAL_SECONDS", "soon")
    try:
        defs()
    except Exception as exc:  # noqa: BLE001 - the message is what matters
        assert "OTF_SENSOR_INTERVAL_SECONDS" in str(exc) and "soon" in str(exc)
    else:
        raise AssertionError("a malformed interval was accepted")


def test_database_url_is_an_env_var_not_a_literal():
    d = build_definitions()
    store = d.resources["task_store"]
    assert "OTF_DATABASE_URL" in repr(store.database_url)
