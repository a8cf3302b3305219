"""Partitions: one per task (dynamic, keys are task ids), and the schedule's day x league grid."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import dagster as dg

from otf_dagster import settings

TASKS_PARTITIONS_NAME = "tasks"

# Keys are task ids: [A-Za-z0-9_:.-] only, never "...", enforced by the tasks table.
task_partitions = dg.DynamicPartitionsDefinition(name=TASKS_PARTITIONS_NAME)

DEFAULT_TIMEZONE = settings.SCHEDULE_TIMEZONE.default
DAY_DIMENSION = "day"
LEAGUE_DIMENSION = "league"


DEFAULT_DAYS_BACK = 3


def schedule_start_date(timezone: str = DEFAULT_TIMEZONE) -> str:
    """The first game day shown: OTF_SCHEDULE_START_DATE (YYYY-MM-DD), else a few days before
    today, so the catalog shows the days that matter rather than a season of "missing"."""
    start = settings.SCHEDULE_START_DATE.read()
    if start:
        return start
    today = datetime.now(ZoneInfo(timezone)).date()
    return (today - timedelta(days=DEFAULT_DAYS_BACK)).isoformat()


def game_day_partitions(timezone: str = DEFAULT_TIMEZONE) -> dg.DailyPartitionsDefinition:
    # end_offset=2: today and tomorrow are partitions already. The schedule ingests the day it
    # runs on; both feeds publish tomorrow's slate a day ahead, so it can be ingested early, and
    # a game whose tip-off falls just after midnight (Eastern) is listed under tomorrow.
    return dg.DailyPartitionsDefinition(
        start_date=schedule_start_date(timezone), timezone=timezone, end_offset=2
    )


def game_schedule_partitions(
    leagues: Sequence[str], timezone: str = DEFAULT_TIMEZONE
) -> dg.MultiPartitionsDefinition:
    """Each followed league's day on its own: keys such as ``2024-12-15|nfl``."""
    return dg.MultiPartitionsDefinition(
        {
            DAY_DIMENSION: game_day_partitions(timezone),
            LEAGUE_DIMENSION: dg.StaticPartitionsDefinition(list(leagues)),
        }
    )


def schedule_partition_key(day: date | str, league: str) -> dg.MultiPartitionKey:
    """The partition of one league's day; ``str()`` of it is what the Dagster CLI takes."""
    day_key = day.isoformat() if isinstance(day, date) else str(day)
    return dg.MultiPartitionKey({DAY_DIMENSION: day_key, LEAGUE_DIMENSION: league})
