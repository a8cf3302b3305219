"""The daily schedule: ingest today's games of every followed league (a few times a day, so
moved games move), one run per league, so one failing feed does not hold the others back."""

from collections.abc import Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

import dagster as dg

from otf_dagster import settings
from otf_dagster.defs.partitions import schedule_partition_key

DEFAULT_CRON = settings.SCHEDULE_CRON.default


def build_daily_schedule(
    job, timezone: str, leagues: Sequence[str], cron: str = DEFAULT_CRON
) -> dg.ScheduleDefinition:
    @dg.schedule(
        name="daily_game_schedule",
        job=job,
        cron_schedule=cron,
        execution_timezone=timezone,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Materialize today's game_schedule partition of each followed league.",
    )
    def daily_game_schedule(context: dg.ScheduleEvaluationContext) -> list[dg.RunRequest]:
        when = context.scheduled_execution_time or datetime.now(ZoneInfo(timezone))
        day = when.astimezone(ZoneInfo(timezone)).date().isoformat()
        return [
            dg.RunRequest(
                run_key=f"{day}|{league}@{when.isoformat()}",
                partition_key=schedule_partition_key(day, league),
                tags={"otf/league": league},
            )
            for league in leagues
        ]

    return daily_game_schedule
