"""The one entry point: schedule, Task Manager, runner, resources.

Settings are read when Dagster loads the code location (this function runs then, not at
import): OTF_DATABASE_URL through EnvVar (never shown in the UI), the feed, the leagues to
follow (OTF_LEAGUES: aliases such as nba,nfl,mlb, or a YAML file whose ``follow`` lists them;
OTF_LEAGUES_FILE: leagues added to the packaged ones) and the tuning knobs with their defaults.
"""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg

from otf_dagster import settings as S
from otf_dagster.core.manager import Settings
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
from otf_dagster.defs.task_runs import task_runs
from otf_dagster.defs.task_stats import task_stats
from otf_dagster.exceptions import ConfigError
from otf_dagster.feeds.leagues import DEFAULT_LEAGUE, LEAGUES_ENV, load_leagues
from otf_dagster.vocab.tasks import RUNNER_MODES


def _leagues_settings() -> tuple[list[str], str]:
    """(the leagues to follow, the leagues file) from OTF_LEAGUES and OTF_LEAGUES_FILE."""
    raw = S.LEAGUES.read() or ""
    leagues_file = S.LEAGUES_FILE.read() or ""
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
    runner_mode: str = S.RUNNER_MODE.default,
    pool_size: int = S.POOL_SIZE.default,
    lease_seconds: float = S.DEPLOYMENT_LEASE_SECONDS.default,
    pool_stale_seconds: float = S.POOL_STALE_SECONDS.default,
    backfill_max_started: int = S.BACKFILL_MAX_STARTED.default,
    history_days: int = S.HISTORY_DAYS.default,
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
        assets=[build_game_schedule(grid), task_runs, task_stats, delivery_endpoints_asset],
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
            or TaskStoreResource(database_url=dg.EnvVar(S.DATABASE_URL.env)),
            "feeds": feeds
            or FeedResource(provider=S.FEED_PROVIDER.read(), base_url=S.FEED_BASE_URL.read()),
        },
    )


@dg.definitions
def defs() -> dg.Definitions:
    """Every setting read here, once, when Dagster loads the code (``otf_dagster.settings``)."""
    leagues, leagues_file = _leagues_settings()
    S.BACKFILL_RPS.read()  # checked when the code loads (runners read it)
    feeds = FeedResource(
        provider=S.FEED_PROVIDER.read(),
        base_url=S.FEED_BASE_URL.read(),
        leagues_file=leagues_file,
    )
    return build_definitions(
        leagues=leagues,
        feeds=feeds,
        timezone=S.SCHEDULE_TIMEZONE.read(),
        cron=S.SCHEDULE_CRON.read(),
        sensor_interval_seconds=S.SENSOR_INTERVAL_SECONDS.read(),
        claim_limit=S.CLAIM_LIMIT.read(),
        grace_seconds=float(S.RUN_GRACE_SECONDS.read()),
        runner_mode=S.RUNNER_MODE.read(),
        pool_size=S.POOL_SIZE.read(),
        lease_seconds=float(S.DEPLOYMENT_LEASE_SECONDS.read()),
        pool_stale_seconds=float(S.POOL_STALE_SECONDS.read()),
        backfill_max_started=S.BACKFILL_MAX_STARTED.read(),
        history_days=S.HISTORY_DAYS.read(),
        events_retention_days=S.EVENTS_RETENTION_DAYS.read() or None,
        history_cron=S.HISTORY_CRON.read(),
    )
