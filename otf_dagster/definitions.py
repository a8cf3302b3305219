"""The one entry point: schedule, Task Manager, runner, resources.

Settings are read when Dagster loads the code location (this function runs then, not at
import): OTF_DATABASE_URL through EnvVar (never shown in the UI), the feed, the leagues to
follow (OTF_LEAGUES: aliases such as nba,nfl,mlb, or a YAML file whose ``follow`` lists them;
OTF_LEAGUES_FILE: leagues added to the packaged ones) and the tuning knobs with their defaults.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import dagster as dg

from otf_dagster.core.manager import Settings
from otf_dagster.core.models import RUNNER_MODES
from otf_dagster.core.pace import configured_rps
from otf_dagster.defs.game_boxscore import game_boxscore
from otf_dagster.defs.game_schedule import build_game_schedule
from otf_dagster.defs.history import DEFAULT_CRON as HISTORY_CRON
from otf_dagster.defs.history import build_history_schedule, history_prune_job
from otf_dagster.defs.jobs import build_game_schedule_job, task_runner_job
from otf_dagster.defs.partitions import DEFAULT_TIMEZONE, game_schedule_partitions
from otf_dagster.defs.pools import runner_pool_job
from otf_dagster.defs.relay import delivery_endpoints_asset, relay_job
from otf_dagster.defs.resources import FeedResource, TaskStoreResource
from otf_dagster.defs.schedules import DEFAULT_CRON, build_daily_schedule
from otf_dagster.defs.sensors import (
    DEFAULT_CLAIM_LIMIT,
    DEFAULT_GRACE_SECONDS,
    DEFAULT_INTERVAL_SECONDS,
    build_failure_sensor,
    build_task_manager,
)
from otf_dagster.defs.task_stats import task_stats
from otf_dagster.exceptions import ConfigError
from otf_dagster.feeds.leagues import DEFAULT_LEAGUE, LEAGUES_ENV, LEAGUES_FILE_ENV, load_leagues
from otf_dagster.feeds.providers import DEFAULT_NBA_PROVIDER


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


def _count(name: str, default: int) -> int:
    """A whole number of 0 or more (0: none) from the environment, or one line naming it."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit():
        raise ConfigError(f"{name}={raw!r} is not a whole number of 0 or more (0: none)")
    return int(raw)


def _leagues_settings() -> tuple[list[str], str]:
    """(the leagues to follow, the leagues file) from OTF_LEAGUES and OTF_LEAGUES_FILE."""
    raw = os.environ.get(LEAGUES_ENV, "").strip()
    leagues_file = os.environ.get(LEAGUES_FILE_ENV, "").strip()
    if raw.endswith((".yaml", ".yml")):
        leagues_file, raw = raw, ""
    registry = load_leagues(leagues_file or None)
    try:
        follow = registry.parse_list(raw) if raw else None
    except ConfigError as exc:
        raise ConfigError(f"{LEAGUES_ENV}={raw!r}: {exc}") from None
    aliases = [lg.alias for lg in follow] if follow else list(registry.follow or (DEFAULT_LEAGUE,))
    return aliases, leagues_file


def build_definitions(
    *,
    leagues: Sequence[str] = (DEFAULT_LEAGUE,),
    timezone: str = DEFAULT_TIMEZONE,
    cron: str = DEFAULT_CRON,
    sensor_interval_seconds: int = DEFAULT_INTERVAL_SECONDS,
    claim_limit: int = DEFAULT_CLAIM_LIMIT,
    grace_seconds: float = DEFAULT_GRACE_SECONDS,
    runner_mode: str = "run",
    pool_size: int = 500,
    lease_seconds: float = 120.0,
    pool_stale_seconds: float = 60.0,
    backfill_max_started: int = 10,
    history_days: int = 30,
    events_retention_days: int | None = None,
    history_cron: str = HISTORY_CRON,
    task_store: TaskStoreResource | None = None,
    feeds: FeedResource | None = None,
) -> dg.Definitions:
    if runner_mode not in RUNNER_MODES:
        raise ConfigError(
            f"OTF_RUNNER_MODE={runner_mode!r} is not a runner mode; use one of "
            f"{', '.join(RUNNER_MODES)}"
        )
    settings = Settings(
        claim_limit=claim_limit,
        grace_seconds=grace_seconds,
        default_mode=runner_mode,
        pool_capacity=pool_size,
        lease_seconds=lease_seconds,
        pool_stale_seconds=pool_stale_seconds,
        backfill_max_started=backfill_max_started,
    )
    grid = game_schedule_partitions(leagues, timezone)
    schedule_job = build_game_schedule_job(grid)
    return dg.Definitions(
        assets=[build_game_schedule(grid), game_boxscore, task_stats, delivery_endpoints_asset],
        jobs=[task_runner_job, runner_pool_job, schedule_job, relay_job, history_prune_job],
        schedules=[
            build_daily_schedule(schedule_job, timezone, leagues, cron),
            build_history_schedule(
                timezone,
                history_cron,
                older_than_days=history_days,
                events_older_than_days=events_retention_days,
            ),
        ],
        sensors=[
            build_task_manager(sensor_interval_seconds, settings),
            build_failure_sensor(settings),
        ],
        resources={
            "task_store": task_store
            or TaskStoreResource(database_url=dg.EnvVar("OTF_DATABASE_URL")),
            "feeds": feeds
            or FeedResource(
                provider=os.environ.get("OTF_FEED_PROVIDER", DEFAULT_NBA_PROVIDER),
                base_url=os.environ.get("OTF_FEED_BASE_URL", ""),
            ),
        },
    )


@dg.definitions
def defs() -> dg.Definitions:
    leagues, leagues_file = _leagues_settings()
    configured_rps()  # OTF_BACKFILL_RPS, checked when the code loads (runners read it)
    feeds = FeedResource(
        provider=os.environ.get("OTF_FEED_PROVIDER", DEFAULT_NBA_PROVIDER),
        base_url=os.environ.get("OTF_FEED_BASE_URL", ""),
        leagues_file=leagues_file,
    )
    return build_definitions(
        leagues=leagues,
        feeds=feeds,
        timezone=os.environ.get("OTF_SCHEDULE_TIMEZONE", DEFAULT_TIMEZONE),
        cron=os.environ.get("OTF_SCHEDULE_CRON", DEFAULT_CRON),
        sensor_interval_seconds=_int("OTF_SENSOR_INTERVAL_SECONDS", DEFAULT_INTERVAL_SECONDS),
        claim_limit=_int("OTF_CLAIM_LIMIT", DEFAULT_CLAIM_LIMIT),
        grace_seconds=float(_int("OTF_RUN_GRACE_SECONDS", int(DEFAULT_GRACE_SECONDS))),
        runner_mode=os.environ.get("OTF_RUNNER_MODE", "run"),
        pool_size=_int("OTF_POOL_SIZE", 500),
        lease_seconds=float(_int("OTF_DEPLOYMENT_LEASE_SECONDS", 120)),
        pool_stale_seconds=float(_int("OTF_POOL_STALE_SECONDS", 60)),
        backfill_max_started=_count("OTF_BACKFILL_MAX_STARTED", 10),
        history_days=_int("OTF_HISTORY_DAYS", 30),
        events_retention_days=_int("OTF_EVENTS_RETENTION_DAYS", 0) or None,
        history_cron=os.environ.get("OTF_HISTORY_CRON", HISTORY_CRON),
    )
