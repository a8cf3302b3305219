"""The TaskRunner as an asset: each task's box score, one dynamic partition per task."""

from datetime import timedelta

import dagster as dg

from otf_dagster.core.manager import TAG_ATTEMPT
from otf_dagster.core.models import TaskState
from otf_dagster.core.runner import PollReport, TaskRunner
from otf_dagster.core.stats import score_timeline
from otf_dagster.core.timeline import timeline
from otf_dagster.defs.partitions import task_partitions
from otf_dagster.defs.resources import FeedResource, TaskStoreResource
from otf_dagster.exceptions import DatabaseUnavailable, OtfError
from otf_dagster.views.tables import score_table, score_timeline_markdown, timeline_markdown

GAME_BOXSCORE = dg.AssetKey("game_boxscore")
SCORE_BUCKET = timedelta(minutes=1)


def _poll_metadata(report: PollReport) -> dict:
    if report.snapshot is None:
        return {"poll": report.poll, "error": report.error or ""}
    box = report.snapshot
    return {
        "poll": report.poll,
        "status": str(box.status),
        "period": box.period or 0,
        "clock_seconds": box.clock_seconds if box.clock_seconds is not None else -1.0,
        "score": box.score_line(),
        "box_score": dg.MetadataValue.md(score_table(box)),
        "new_events": len(report.events),
        "event_kinds": ", ".join(sorted({e.kind for e in report.events})),
    }


@dg.asset(
    key=GAME_BOXSCORE,
    partitions_def=task_partitions,
    description=(
        "The TaskRunner: polls the task's game until it is final, writing events, state and "
        "checkpoint to the task database each poll; one partition per task."
    ),
    kinds={"postgres"},
)
def game_boxscore(
    context: dg.AssetExecutionContext, task_store: TaskStoreResource, feeds: FeedResource
) -> dg.MaterializeResult:
    try:
        return _run_task(context, task_store, feeds)
    except OtfError as exc:  # one clear line in the UI, and no Dagster retry of a refusal
        raise dg.Failure(
            description=str(exc), allow_retries=isinstance(exc, DatabaseUnavailable)
        ) from exc


def _run_task(
    context: dg.AssetExecutionContext, task_store: TaskStoreResource, feeds: FeedResource
) -> dg.MaterializeResult:
    task_id = context.partition_key
    providers = feeds.providers()
    with task_store.open(f"otf-runner-{context.run_id[:8]}") as store:
        attempt_tag = context.run.tags.get(TAG_ATTEMPT)
        if attempt_tag is None:
            # Launched by hand (UI / CLI): take the task over with a new attempt.
            attempt = store.adopt(task_id, context.run_id).attempt
            context.log.info("launched by hand: took task %s as attempt %d", task_id, attempt)
        else:
            attempt = int(attempt_tag)

        def on_poll(report: PollReport) -> None:
            context.log_event(
                dg.AssetObservation(
                    asset_key=GAME_BOXSCORE, partition=task_id, metadata=_poll_metadata(report)
                )
            )
            if report.error:
                context.log.warning("poll %d: %s", report.poll, report.error)

        runner = TaskRunner(
            store, providers.__getitem__, task_id, attempt, context.run_id, on_poll=on_poll
        )
        outcome = runner.run()
        entries = timeline(store, task_id)
        scores = score_timeline(store, task_id, SCORE_BUCKET)

    if outcome.state is None:
        raise dg.Failure(
            f"runner for {task_id} attempt {attempt} was fenced out: {outcome.reason}",
            allow_retries=False,
        )
    if outcome.state == TaskState.FAILED:
        raise dg.Failure(f"task {task_id} FAILED: {outcome.reason}", allow_retries=False)
    metadata = {
        "task_id": task_id,
        "attempt": attempt,
        "state": str(outcome.state),
        "polls": outcome.polls,
        "events_written": outcome.events,
        "timeline": dg.MetadataValue.md(timeline_markdown(entries)),
        "score_timeline": dg.MetadataValue.md(score_timeline_markdown(scores)),
        "follow_ups": ", ".join(outcome.follow_ups),
    }
    if outcome.final is not None:
        metadata["score"] = outcome.final.score_line()
        metadata["box_score"] = dg.MetadataValue.md(score_table(outcome.final))
    return dg.MaterializeResult(metadata=metadata)
