"""The day's game schedule: one partition per day, each materialization ingests that day's
games from the configured feed as scheduled box-score tasks."""

from datetime import date

import dagster as dg

from otf_dagster.core.ingest import ingest_day
from otf_dagster.defs.resources import FeedResource, TaskStoreResource


def build_game_schedule(partitions_def: dg.DailyPartitionsDefinition) -> dg.AssetsDefinition:
    timezone = partitions_def.timezone

    @dg.asset(
        name="game_schedule",
        partitions_def=partitions_def,
        description="The day's games from the configured feed, each scheduled as a box-score task.",
        kinds={"postgres"},
    )
    def game_schedule(
        context: dg.AssetExecutionContext, task_store: TaskStoreResource, feeds: FeedResource
    ) -> dg.MaterializeResult:
        day = date.fromisoformat(context.partition_key)
        task_type = feeds.schedule_task_type()
        with task_store.open("otf-game-schedule") as store:
            report = ingest_day(store, feeds.provider_for(), day, task_type=task_type, tz=timezone)
        import pandas as pd  # here, not at import: runner processes never need it (~45 MB)

        frame = pd.DataFrame(
            [
                {
                    "game_id": e.game_id,
                    "start (UTC)": e.start_time.strftime("%Y-%m-%d %H:%M"),
                    "away": e.away,
                    "home": e.home,
                    "status": str(e.status),
                    "task": report.outcomes.get(e.game_id, ""),
                }
                for e in report.entries
            ],
            columns=["game_id", "start (UTC)", "away", "home", "status", "task"],
        )
        context.log.info(
            "%s: %d games; %s",
            day,
            len(frame),
            {k: int(v) for k, v in frame["task"].value_counts().items()},
        )
        return dg.MaterializeResult(
            metadata={
                "games": dg.MetadataValue.md(
                    frame.to_markdown(index=False) if len(frame) else "_no games this day_"
                ),
                "game_count": len(frame),
                "created": report.count("created"),
                "moved": report.count("moved"),
                "cancelled": report.count("cancelled"),
                "task_type": task_type,
                "provider": feeds.provider,
            }
        )

    return game_schedule
