"""Partitions: one per task (dynamic, keys are task ids), one per game day."""

from __future__ import annotations

import os
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import dagster as dg

from otf_dagster.exceptions import ConfigError

TASKS_PARTITIONS_NAME = "tasks"

# Keys are task ids: [A-Za-z0-9_:.-] only, never "...", enforced by the tasks table.
task_partitions = dg.DynamicPartitionsDefinition(name=TASKS_PARTITIONS_NAME)

DEFAULT_TIMEZONE = "America/New_York"


START_DATE_ENV = "OTF_SCHEDULE_START_DATE"
DEFAULT_DAYS_BACK = 3


def schedule_start_date(timezone: str = DEFAULT_TIMEZONE) -> str:
    """The first game day shown: OTF_SCHEDULE_START_DATE (YYYY-MM-DD), else a few days before
    today, so the catalog shows the days that matter rather than a season of "missing"."""
    raw = os.environ.get(START_DATE_ENV)
    if raw:
        try:
            return date.fromisoformat(raw).isoformat()
        except ValueError:
            raise ConfigError(
                f"{START_DATE_ENV}={raw!r} is not a date; write it as YYYY-MM-DD, e.g. 2026-10-21"
            ) from None
    today = datetime.now(ZoneInfo(timezone)).date()
    return (today - timedelta(days=DEFAULT_DAYS_BACK)).isoformat()


def game_day_partitions(timezone: str = DEFAULT_TIMEZONE) -> dg.DailyPartitionsDefinition:
    # end_offset=1: today is a partition already (the schedule ingests the day it runs on).
    return dg.DailyPartitionsDefinition(
        start_date=schedule_start_date(timezone), timezone=timezone, end_offset=1
    )
