"""Partitions: one per task (dynamic, keys are task ids), and the schedule's day x league grid."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import dagster as dg

TASKS_PARTITIONS_NAME = "tasks"

# Keys are task ids: [A-Za-z0-9_:.-] only, never "...", enforced by the tasks table.
task_partitions = dg.DynamicPartitionsDefinition(name=TASKS_PARTITIONS_NAME)

DEFAULT_TIMEZONE = "America/New_York"
# The first game day the schedule has a partition for: set here and nowhere else.
DAY_PARTITIONS_START = "2024-10-01"
DAY_DIMENSION = "day"
LEAGUE_DIMENSION = "league"


def game_day_partitions(timezone: str = DEFAULT_TIMEZONE) -> dg.DailyPartitionsDefinition:
    # end_offset=1: today is a partition already (the schedule ingests the day it runs on).
    return dg.DailyPartitionsDefinition(
        start_date=DAY_PARTITIONS_START, timezone=timezone, end_offset=1
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
