"""What a task's partition page shows, the same whichever mode hosted the task.

The runner job (one run per task) and the pool op (one run, many tasks) both report through
these functions: an observation per poll (a pool throttles how often, not what), a
materialization with the score, timeline and chart when the task finishes, and an observation
with the reason when it fails. Only the adapters decide *when* to log; this module decides
*what*, so the UI cannot differ by mode.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import dagster as dg

from otf_dagster.core.runner import PollReport, RunOutcome
from otf_dagster.core.stats import score_timeline
from otf_dagster.core.store import TaskStore
from otf_dagster.core.timeline import timeline
from otf_dagster.defs.ui import score_chart_metadata
from otf_dagster.handlers import Markdown
from otf_dagster.views.tables import score_timeline_markdown, timeline_markdown
from otf_dagster.vocab.tasks import TaskState

TASK_ASSET = dg.AssetKey("task_runs")
SCORE_BUCKET = timedelta(minutes=1)


def display_metadata(display: dict[str, Any]) -> dict[str, Any]:
    """A handler's display values as Dagster metadata (markdown where the handler says so)."""
    return {
        name: dg.MetadataValue.md(str(value)) if isinstance(value, Markdown) else value
        for name, value in display.items()
        if value is not None
    }


def poll_metadata(report: PollReport) -> dict[str, Any]:
    metadata: dict[str, Any] = {"poll": report.poll, **display_metadata(report.display)}
    if report.error:
        metadata["error"] = report.error
    else:
        metadata["new_events"] = len(report.events)
        metadata["event_kinds"] = ", ".join(sorted({e.kind for e in report.events}))
    return metadata


def poll_observation(task_id: str, report: PollReport) -> dg.AssetObservation:
    return dg.AssetObservation(
        asset_key=TASK_ASSET, partition=task_id, metadata=poll_metadata(report)
    )


def _end_metadata(task_id: str, outcome: RunOutcome, extra: dict[str, Any]) -> dict[str, Any]:
    return {
        "task_id": task_id,
        "attempt": outcome.attempt,
        "state": str(outcome.state),
        "polls": outcome.polls,
        "events_written": outcome.events,
        **extra,
        **display_metadata(outcome.display),
    }


def end_event(
    store: TaskStore, task_id: str, outcome: RunOutcome, **extra: Any
) -> dg.AssetMaterialization | dg.AssetObservation | None:
    """The task's last word on its partition: a materialization (score, timeline, chart) when
    it finished, an observation with the reason when it failed, nothing when fenced out (the
    attempt that fenced it reports instead)."""
    if outcome.state is None:
        return None
    metadata = _end_metadata(task_id, outcome, extra)
    if outcome.state == TaskState.FAILED:
        metadata["reason"] = outcome.reason or ""
        return dg.AssetObservation(asset_key=TASK_ASSET, partition=task_id, metadata=metadata)
    entries = timeline(store, task_id)
    metadata.update(
        {
            "timeline": dg.MetadataValue.md(timeline_markdown(entries)),
            "score_timeline": dg.MetadataValue.md(
                score_timeline_markdown(score_timeline(store, task_id, SCORE_BUCKET))
            ),
            "follow_ups": ", ".join(outcome.follow_ups),
            **score_chart_metadata(entries),
        }
    )
    return dg.AssetMaterialization(asset_key=TASK_ASSET, partition=task_id, metadata=metadata)
