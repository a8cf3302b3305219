"""The game schedule: one partition per followed league's day (day x league), each
materialization ingests that league's day from its feed as scheduled box-score tasks.

A Dagster backfill of it over past days is how a season is caught up: one run per day and
league (one scoreboard request, at the backfill's pace); the games already final become
backfill tasks, claimed after live work. A day the feed cannot list fails its own partition
with the reason; the backfill's other runs go on."""

from datetime import date

import dagster as dg

from otf_dagster.core.ingest import DayUnavailable, ensure_task_types, ingest_day, is_past
from otf_dagster.core.pace import Pace, configured_rps
from otf_dagster.defs.partitions import DAY_DIMENSION, LEAGUE_DIMENSION
from otf_dagster.defs.resources import FeedResource, TaskStoreResource
from otf_dagster.handlers import HANDLERS


def build_game_schedule(partitions_def: dg.MultiPartitionsDefinition) -> dg.AssetsDefinition:
    timezone = next(
        d.partitions_def.timezone for d in partitions_def.partitions_defs if d.name == DAY_DIMENSION
    )

    @dg.asset(
        name="game_schedule",
        partitions_def=partitions_def,
        description=(
            "A league's games of the day from its feed, each scheduled as a box-score task; "
            "one partition per day and followed league."
        ),
        kinds={"postgres"},
    )
    def game_schedule(
        context: dg.AssetExecutionContext, task_store: TaskStoreResource, feeds: FeedResource
    ) -> dg.MaterializeResult:
        keys = context.partition_key.keys_by_dimension
        day = date.fromisoformat(keys[DAY_DIMENSION])
        league = feeds.league_registry().get(keys[LEAGUE_DIMENSION])
        backfill = is_past(day, timezone)
        task_type = feeds.schedule_task_type(league)
        with task_store.open("otf-game-schedule") as store:
            # A past day (a backfill's) asks the feed at the backfill's pace.
            pace = Pace(store, configured_rps()) if backfill else None
            provider = feeds.provider_for_league(league, pace)
            if provider.name == "espn":
                created = ensure_task_types(store, league.task_type_specs(), HANDLERS)
                if created:
                    context.log.info(
                        "created task types %s for %s", ", ".join(created), league.name
                    )
            try:
                report = ingest_day(store, provider, day, task_type=task_type, tz=timezone)
            except DayUnavailable as exc:
                # This partition fails with the reason; a backfill goes on with the others.
                raise dg.Failure(
                    description=str(exc),
                    metadata={"league": league.alias, "day": day.isoformat()},
                    allow_retries=False,
                ) from None
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
            "%s %s: %d games (%d already final: backfill); %s",
            league.name,
            day,
            len(frame),
            len(report.backfill),
            {k: int(v) for k, v in frame["task"].value_counts().items()},
        )
        warnings = list(getattr(provider, "warnings", []))
        for warning in warnings:
            context.log.warning(warning)
        return dg.MaterializeResult(
            metadata={
                "warnings": dg.MetadataValue.md(
                    "\n".join(f"- {w}" for w in warnings) if warnings else "_none_"
                ),
                "games": dg.MetadataValue.md(
                    frame.to_markdown(index=False) if len(frame) else "_no games this day_"
                ),
                "game_count": len(frame),
                "created": report.count("created"),
                "moved": report.count("moved"),
                "cancelled": report.count("cancelled"),
                "backfill": len(report.backfill),
                "task_type": task_type,
                "provider": provider.name,
                "league": league.alias,
            }
        )

    return game_schedule
