"""The TaskRunner as an asset: ``task_runs``, one dynamic partition per task of every type (box
scores, scoreboard watches, users' types); a run's tags name the task, its type and attempt."""

import logging

import dagster as dg

from otf_dagster.core.manager import TAG_ATTEMPT, TAG_RETRY
from otf_dagster.core.runner import PollReport, TaskRunner
from otf_dagster.core.store import TaskStore
from otf_dagster.defs.deployment import deployment_of
from otf_dagster.defs.partitions import task_partitions
from otf_dagster.defs.reporting import TASK_ASSET, end_event, poll_observation
from otf_dagster.defs.resources import FeedResource, TaskStoreResource
from otf_dagster.exceptions import DatabaseUnavailable, OtfError, StaleTransition
from otf_dagster.handlers import HANDLERS

log = logging.getLogger(__name__)

TASK_RUNS = TASK_ASSET


@dg.asset(
    key=TASK_RUNS,
    partitions_def=task_partitions,
    # Lineage: the schedule's days become the tasks this asset runs (drawn as the flow in the
    # UI; every task partition may come from any day, hence all partitions).
    deps=[dg.AssetDep("game_schedule", partition_mapping=dg.AllPartitionMapping())],
    description=(
        "The TaskRunner: polls the task's URL with its type's handler until the handler says "
        "done, writing events, state and checkpoint to the task database each poll; one "
        "partition per task. A hand launch takes the task over as a new attempt; with the run "
        "tag otf/retry=true it first retries a FAILED or CANCELLED task."
    ),
    kinds={"postgres"},
    output_required=False,
)
def task_runs(
    context: dg.AssetExecutionContext, task_store: TaskStoreResource, feeds: FeedResource
):
    try:
        result = _run_task(context, task_store, feeds)
    except OtfError as exc:  # one clear line in the UI, and no Dagster retry of a refusal
        raise dg.Failure(
            description=str(exc), allow_retries=isinstance(exc, DatabaseUnavailable)
        ) from exc
    if result is not None:
        yield result


def _run_task(
    context: dg.AssetExecutionContext, task_store: TaskStoreResource, feeds: FeedResource
) -> dg.MaterializeResult | None:
    task_id = context.partition_key
    with task_store.open(f"otf-runner-{context.run_id[:8]}") as store, feeds.clients() as clients:
        attempt_tag = context.run.tags.get(TAG_ATTEMPT)
        if attempt_tag is None:
            attempt = _hand_launch(context, store, task_id)
            if attempt is None:
                return None
        else:
            attempt = int(attempt_tag)

        def on_poll(report: PollReport) -> None:
            context.log_event(poll_observation(task_id, report))
            if report.error:
                context.log.warning("poll %d: %s", report.poll, report.error)

        runner = TaskRunner(
            store,
            task_id,
            attempt,
            context.run_id,
            handlers=HANDLERS,
            clients=clients,
            feed_base_url=feeds.base_url or None,
            on_poll=on_poll,
        )
        try:
            outcome = runner.run()
        except (OtfError, dg.DagsterExecutionInterruptedError):
            raise
        except Exception as exc:  # a bug: record the real error as the task's reason first
            _record_crash(store, task_id, attempt, exc)
            raise
        end = end_event(store, task_id, outcome)

    if outcome.state is None:
        raise dg.Failure(
            f"runner for {task_id} attempt {attempt} was fenced out: {outcome.reason}",
            allow_retries=False,
        )
    assert end is not None
    if isinstance(end, dg.AssetObservation):  # FAILED: the reason on the partition, then fail
        context.log_event(end)
        raise dg.Failure(f"task {task_id} FAILED: {outcome.reason}", allow_retries=False)
    return dg.MaterializeResult(metadata=dict(end.metadata))


def _hand_launch(context: dg.AssetExecutionContext, store: TaskStore, task_id: str) -> int | None:
    """A run launched by hand (UI / CLI, no attempt tag) takes the task over with a new
    attempt, fencing any other runner out; with ``otf/retry=true`` a FAILED or CANCELLED task
    is retried first. A refusal (the task has ended) is logged and materializes nothing, so a
    finished game's partition is not marked failed."""
    if context.run.tags.get(TAG_RETRY, "").lower() == "true":
        store.retry(task_id, f"hand launch {context.run_id} with {TAG_RETRY}=true")
    try:
        deployment = deployment_of(context.instance).id
        attempt = store.adopt(task_id, context.run_id, deployment=deployment).attempt
    except StaleTransition as exc:
        context.log.error(
            "%s; nothing was run. To run it again on purpose, launch with the tag %s=true "
            "(or `otf tasks retry %s`)",
            exc,
            TAG_RETRY,
            task_id,
        )
        return None
    context.log.info("launched by hand: took task %s as attempt %d", task_id, attempt)
    return attempt


def _record_crash(store: TaskStore, task_id: str, attempt: int, exc: Exception) -> None:
    reason = f"runner crashed: {type(exc).__name__}: {exc}"
    try:
        store.fail_runner(task_id, attempt, reason[:500])
    except OtfError:
        log.exception("could not record the crash of the runner of %s", task_id)
