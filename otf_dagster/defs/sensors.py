"""The Task Manager (a sensor) and the runner failure sensor: thin adapters over manager.py."""

import contextlib

import dagster as dg

from otf_dagster.core import manager
from otf_dagster.defs.jobs import task_runner_job
from otf_dagster.defs.partitions import task_partitions
from otf_dagster.defs.resources import TaskStoreResource

DEFAULT_INTERVAL_SECONDS = 15
DEFAULT_CLAIM_LIMIT = 500
DEFAULT_GRACE_SECONDS = 60.0


LOOKUP_CHUNK = 500


def run_lookup(instance: dg.DagsterInstance):
    """find_runs(keys) over Dagster's run storage: the newest run of each (task id, attempt),
    fetched a chunk of task ids per query rather than a query per task."""

    def find_runs(keys: list[tuple[str, int]]) -> dict[tuple[str, int], manager.RunInfo]:
        wanted = set(keys)
        ids = sorted({task_id for task_id, _ in keys})
        found: dict[tuple[str, int], manager.RunInfo] = {}
        for i in range(0, len(ids), LOOKUP_CHUNK):
            chunk = ids[i : i + LOOKUP_CHUNK]
            runs = instance.get_runs(filters=dg.RunsFilter(tags={manager.TAG_TASK_ID: chunk}))
            for run in runs:  # newest first: keep the first seen of each key
                key = (
                    run.tags.get(manager.TAG_TASK_ID),
                    int(run.tags.get(manager.TAG_ATTEMPT, -1)),
                )
                if key in wanted and key not in found:
                    found[key] = _info(run)
        return found

    return find_runs


def _info(run: dg.DagsterRun) -> manager.RunInfo:
    return manager.RunInfo(
        run_id=run.run_id,
        status=run.status.value,
        will_retry=run.tags.get("dagster/will_retry") == "true",
    )


def cancel_stale_runs(instance: dg.DagsterInstance, stale_runs: list[tuple[str, str]]) -> None:
    """Runs whose worker died stay STARTED in Dagster (the default run launcher cannot see the
    death): ask for termination, and mark them canceled, so the UI matches the task."""
    for run_id, why in stale_runs:
        run = instance.get_run_by_id(run_id)
        if run is None or run.is_finished:
            continue
        with contextlib.suppress(Exception):  # a dead worker cannot answer; cancel it regardless
            instance.run_launcher.terminate(run_id)
        run = instance.get_run_by_id(run_id)
        if run is not None and not run.is_finished:
            instance.report_run_canceled(run, message=why)


def _result(
    report: manager.TickReport, context: dg.SensorEvaluationContext, what: str
) -> dg.SensorResult:
    for task_id, reason in report.failed:
        context.log.warning("task %s FAILED: %s", task_id, reason)
    claimed = [
        f"{x.task_id} (attempt {x.attempt})" for x in report.launches if x.reason == "claimed"
    ]
    if claimed:
        more = f" and {len(claimed) - 20} more" if len(claimed) > 20 else ""
        context.log.info("claimed %d task(s): %s%s", len(claimed), ", ".join(claimed[:20]), more)
    for launch in report.launches:
        if launch.reason != "claimed":
            context.log.info(
                "task %s attempt %d: %s", launch.task_id, launch.attempt, launch.reason
            )
    if report.launches:
        context.log.info("launching %d run(s) of task_runner", len(report.launches))
    if not report.launches:
        why = f"{what}: no ready tasks" + (
            f"; {len(report.failed)} failed" if report.failed else ""
        )
        return dg.SensorResult(skip_reason=dg.SkipReason(why))
    keys = list(dict.fromkeys(launch.task_id for launch in report.launches))
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(run_key=launch.run_key, partition_key=launch.task_id, tags=launch.tags)
            for launch in report.launches
        ],
        dynamic_partitions_requests=[task_partitions.build_add_request(keys)],
    )


def build_task_manager(
    interval_seconds: int = DEFAULT_INTERVAL_SECONDS,
    claim_limit: int = DEFAULT_CLAIM_LIMIT,
    grace_seconds: float = DEFAULT_GRACE_SECONDS,
) -> dg.SensorDefinition:
    @dg.sensor(
        name="task_manager",
        job=task_runner_job,
        minimum_interval_seconds=interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            "The Task Manager: claims ready tasks (SCHEDULED -> STARTED, SKIP LOCKED) and launches "
            "one runner per task; re-launches or fails tasks whose runner was lost."
        ),
    )
    def task_manager(
        context: dg.SensorEvaluationContext, task_store: TaskStoreResource
    ) -> dg.SensorResult:
        with task_store.open("otf-task-manager") as store:
            report = manager.reconcile(
                store, run_lookup(context.instance), grace_seconds=grace_seconds
            )
            cancel_stale_runs(context.instance, report.stale_runs)
            report.launches.extend(manager.claim(store, claim_limit, source="task_manager"))
        return _result(report, context, "task_manager")

    return task_manager


@dg.run_failure_sensor(
    name="runner_failure_sensor",
    monitored_jobs=[task_runner_job],
    request_job=task_runner_job,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "A runner run failed and Dagster will not retry it: re-launch its task (next attempt) "
        "or record it FAILED once the type's attempts are spent."
    ),
)
def runner_failure_sensor(context: dg.RunFailureSensorContext, task_store: TaskStoreResource):
    run = context.dagster_run
    task_id = run.tags.get(manager.TAG_TASK_ID)
    attempt = run.tags.get(manager.TAG_ATTEMPT)
    if task_id is None or attempt is None:
        return dg.SkipReason(
            f"run {run.run_id} was launched by hand; the Task Manager reconciles it"
        )
    info = _info(run)
    if info.will_retry:
        return dg.SkipReason(f"run {run.run_id} of {task_id}: Dagster will retry it")
    with task_store.open("otf-failure-sensor") as store:
        report = manager.handle_failed_run(store, task_id, int(attempt), info)
    return _result(report, context, "runner_failure_sensor")
