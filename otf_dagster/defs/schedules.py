"""The daily schedule: ingest the day's games (a few times a day, so moved games move)."""

from datetime import datetime
from zoneinfo import ZoneInfo

import dagster as dg

DEFAULT_CRON = "0 6,12,17 * * *"


def build_daily_schedule(job, timezone: str, cron: str = DEFAULT_CRON) -> dg.ScheduleDefinition:
    @dg.schedule(
        name="daily_game_schedule",
        job=job,
        cron_schedule=cron,
        execution_timezone=timezone,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Materialize today's game_schedule partition: today's games become tasks.",
    )
    def daily_game_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        when = context.scheduled_execution_time or datetime.now(ZoneInfo(timezone))
        day = when.astimezone(ZoneInfo(timezone)).date().isoformat()
        return dg.RunRequest(run_key=f"{day}@{when.isoformat()}", partition_key=day)

    return daily_game_schedule
