"""Partitions: one per task (dynamic, keys are task ids), one per game day."""

from __future__ import annotations

import dagster as dg

TASKS_PARTITIONS_NAME = "tasks"

# Keys are task ids: [A-Za-z0-9_:.-] only, never "...", enforced by the tasks table.
task_partitions = dg.DynamicPartitionsDefinition(name=TASKS_PARTITIONS_NAME)

DEFAULT_TIMEZONE = "America/New_York"


def game_day_partitions(timezone: str = DEFAULT_TIMEZONE) -> dg.DailyPartitionsDefinition:
    # end_offset=1: today is a partition already (the schedule ingests the day it runs on).
    return dg.DailyPartitionsDefinition(start_date="2024-10-01", timezone=timezone, end_offset=1)
