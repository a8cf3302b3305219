"""The one entry point: schedule, Task Manager, runner, resources.

Settings are read when Dagster loads the code location (this function runs then, not at
import): OTF_DATABASE_URL through EnvVar (never shown in the UI), the feed and the tuning knobs
with their defaults.
"""

from __future__ import annotations

import os

import dagster as dg

from otf_dagster.defs.game_boxscore import game_boxscore
from otf_dagster.defs.game_schedule import build_game_schedule
from otf_dagster.defs.jobs import build_game_schedule_job, task_runner_job
from otf_dagster.defs.partitions import DEFAULT_TIMEZONE, game_day_partitions
from otf_dagster.defs.resources import FeedResource, TaskStoreResource
from otf_dagster.defs.schedules import DEFAULT_CRON, build_daily_schedule
from otf_dagster.defs.sensors import (
    DEFAULT_CLAIM_LIMIT,
    DEFAULT_GRACE_SECONDS,
    DEFAULT_INTERVAL_SECONDS,
    build_task_manager,
    runner_failure_sensor,
)
from otf_dagster.defs.task_stats import task_stats
from otf_dagster.exceptions import ConfigError


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a whole number") from None
    if value <= 0:
        raise ConfigError(f"{name}={raw!r} must be positive")
    return value


def build_definitions(
    *,
    timezone: str = DEFAULT_TIMEZONE,
    cron: str = DEFAULT_CRON,
    sensor_interval_seconds: int = DEFAULT_INTERVAL_SECONDS,
    claim_limit: int = DEFAULT_CLAIM_LIMIT,
    grace_seconds: float = DEFAULT_GRACE_SECONDS,
    task_store: TaskStoreResource | None = None,
    feeds: FeedResource | None = None,
) -> dg.Definitions:
    days = game_day_partitions(timezone)
    schedule_job = build_game_schedule_job(days)
    return dg.Definitions(
        assets=[build_game_schedule(days), game_boxscore, task_stats],
        jobs=[task_runner_job, schedule_job],
        schedules=[build_daily_schedule(schedule_job, timezone, cron)],
        sensors=[
            build_task_manager(sensor_interval_seconds, claim_limit, grace_seconds),
            runner_failure_sensor,
        ],
        resources={
            "task_store": task_store
            or TaskStoreResource(database_url=dg.EnvVar("OTF_DATABASE_URL")),
            "feeds": feeds
            or FeedResource(
                provider=os.environ.get("OTF_FEED_PROVIDER", "nba_cdn"),
                base_url=os.environ.get("OTF_FEED_BASE_URL", ""),
            ),
        },
    )


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions(
        timezone=os.environ.get("OTF_SCHEDULE_TIMEZONE", DEFAULT_TIMEZONE),
        cron=os.environ.get("OTF_SCHEDULE_CRON", DEFAULT_CRON),
        sensor_interval_seconds=_int("OTF_SENSOR_INTERVAL_SECONDS", DEFAULT_INTERVAL_SECONDS),
        claim_limit=_int("OTF_CLAIM_LIMIT", DEFAULT_CLAIM_LIMIT),
        grace_seconds=float(_int("OTF_RUN_GRACE_SECONDS", int(DEFAULT_GRACE_SECONDS))),
    )
