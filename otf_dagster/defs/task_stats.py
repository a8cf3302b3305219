"""The per-minute stats as an asset: polls, errors, events and poll lateness per task type, for
the last hour, as a table in the UI (TimescaleDB continuous aggregates, or plain views)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg

from otf_dagster.core.stats import minute_stats
from otf_dagster.defs.resources import TaskStoreResource
from otf_dagster.views.tables import minute_stats_markdown

TASK_STATS = dg.AssetKey("task_stats")
WINDOW = timedelta(hours=1)


@dg.asset(
    key=TASK_STATS,
    description=(
        "Polls, failed polls, events and poll lateness per task type per minute over the last "
        "hour, from the task database's per-minute stats."
    ),
    kinds={"postgres"},
)
def task_stats(task_store: TaskStoreResource) -> dg.MaterializeResult:
    since = datetime.now(UTC) - WINDOW
    with task_store.open("otf-task-stats") as store:
        rows = minute_stats(store, since=since)
    return dg.MaterializeResult(
        metadata={
            "since": since.isoformat(timespec="seconds"),
            "minutes": len({r["bucket"] for r in rows}),
            "polls": sum(r["polls"] for r in rows),
            "failed_polls": sum(r["errors"] for r in rows),
            "events": sum(r["events"] for r in rows),
            "per_minute": dg.MetadataValue.md(minute_stats_markdown(rows)),
        }
    )
