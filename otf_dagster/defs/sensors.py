"""The Task Manager (a sensor) and the failure sensor: thin adapters over ``core/manager.py``."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import dagster as dg

from otf_dagster import settings
from otf_dagster.core import manager
from otf_dagster.defs.deployment import deployment_of
from otf_dagster.defs.jobs import task_runner_job
from otf_dagster.defs.partitions import task_partitions
from otf_dagster.defs.pools import RUNNER_POOL_JOB, pool_run_config, runner_pool_job
from otf_dagster.defs.relay import relay_job, relay_requests
from otf_dagster.defs.resources import TaskStoreResource
from otf_dagster.handlers import HANDLERS

DEFAULT_INTERVAL_SECONDS = settings.SENSOR_INTERVAL_SECONDS.default
DEFAULT_CLAIM_LIMIT = settings.CLAIM_LIMIT.default
DEFAULT_GRACE_SECONDS = float(settings.RUN_GRACE_SECONDS.default)

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
    report: manager.TickReport,
    context: dg.SensorEvaluationContext,
    what: str,
    extra: Sequence[dg.RunRequest] = (),
) -> dg.SensorResult:
    for task_id, reason in report.failed:
        context.log.warning("task %s FAILED: %s", task_id, reason)
    for task_id, attempt, why in report.relaunched:
        context.log.info("task %s attempt %d: re-launched: %s", task_id, attempt, why)
    for pool_id, why in report.failed_pools:
        context.log.warning("pool %s FAILED: %s", pool_id, why)
    for pool_id, task_ids in report.assigned.items():
        context.log.info("pool %s takes %d task(s)", pool_id, len(task_ids))
    claimed = [
        f"{x.task_id} (attempt {x.attempt})" for x in report.launches if x.reason == "claimed"
    ]
    if claimed:
        more = f" and {len(claimed) - 20} more" if len(claimed) > 20 else ""
        context.log.info("claimed %d task(s): %s%s", len(claimed), ", ".join(claimed[:20]), more)
    pooled = sum(len(v) for v in report.assigned.values())
    if report.claimed_backfill:
        context.log.info(
            "of the %d claimed, %d are backfill (games already final), after live work",
            report.claimed,
            report.claimed_backfill,
        )
    if report.claimed > len(claimed):
        context.log.info("claimed %d task(s) for runner pools", report.claimed - len(claimed))
    if report.launches:
        context.log.info("launching %d run(s) of task_runner", len(report.launches))
    if report.pool_launches:
        context.log.info(
            "launching %d pool run(s) for %d task(s)", len(report.pool_launches), pooled
        )
    requests = [
        dg.RunRequest(
            run_key=launch.run_key,
            job_name=task_runner_job.name,
            partition_key=launch.task_id,
            tags=launch.tags,
        )
        for launch in report.launches
    ] + [
        dg.RunRequest(
            run_key=pool.run_key,
            job_name=RUNNER_POOL_JOB,
            run_config=pool_run_config(
                pool.pool_id, pool.capacity, heartbeat_seconds=pool.heartbeat_seconds
            ),
            tags=pool.tags,
        )
        for pool in report.pool_launches
    ]
    if extra:
        context.log.info("launching the delivery relay run")
        requests.extend(extra)
    if not requests and not report.partitions:
        why = f"{what}: no ready tasks" + (
            f"; {len(report.failed)} failed" if report.failed else ""
        )
        return dg.SensorResult(skip_reason=dg.SkipReason(why))
    return dg.SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=[task_partitions.build_add_request(report.partitions)]
        if report.partitions
        else [],
    )


def build_task_manager(
    interval_seconds: int = DEFAULT_INTERVAL_SECONDS,
    settings: manager.Settings | None = None,
) -> dg.SensorDefinition:
    settings = settings or manager.Settings()

    @dg.sensor(
        name="task_manager",
        jobs=[task_runner_job, runner_pool_job, relay_job],
        minimum_interval_seconds=interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            "The Task Manager: claims ready tasks (SCHEDULED -> STARTED, SKIP LOCKED) and "
            "launches one runner per task, or assigns them to runner pools; re-launches or "
            "fails tasks whose runner was lost; renews this deployment's lease."
        ),
    )
    def task_manager(
        context: dg.SensorEvaluationContext, task_store: TaskStoreResource
    ) -> dg.SensorResult:
        deployment = deployment_of(context.instance)
        with task_store.open("otf-task-manager") as store:
            report = manager.tick(
                store,
                run_lookup(context.instance),
                deployment=deployment,
                settings=settings,
            )
            manager.label_launches(store, report.launches, HANDLERS)
            cancel_stale_runs(context.instance, report.stale_runs)
            relay_launch, silent_relays = relay_requests(context.instance, store)
            cancel_stale_runs(context.instance, silent_relays)
        return _result(report, context, "task_manager", relay_launch)

    return task_manager


def build_failure_sensor(settings: manager.Settings | None = None) -> dg.SensorDefinition:
    settings = settings or manager.Settings()

    @dg.run_failure_sensor(
        name="runner_failure_sensor",
        monitored_jobs=[task_runner_job, runner_pool_job],
        request_jobs=[task_runner_job, runner_pool_job],
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            "A runner or pool run failed and Dagster will not retry it: re-launch its task "
            "(next attempt) or record it FAILED once the type's attempts are spent; a failed "
            "pool's tasks are re-launched on the next tick."
        ),
    )
    def runner_failure_sensor(context: dg.RunFailureSensorContext, task_store: TaskStoreResource):
        run = context.dagster_run
        info = _info(run)
        pool_id = run.tags.get(manager.TAG_POOL_ID)
        task_id = run.tags.get(manager.TAG_TASK_ID)
        attempt = run.tags.get(manager.TAG_ATTEMPT)
        if info.will_retry:
            return dg.SkipReason(f"run {run.run_id}: Dagster will retry it")
        deployment = deployment_of(context.instance)
        with task_store.open("otf-failure-sensor") as store:
            if pool_id is not None:
                report = manager.handle_failed_pool(store, pool_id, info, deployment=deployment)
            elif task_id is None or attempt is None:
                return dg.SkipReason(
                    f"run {run.run_id} was launched by hand; the Task Manager reconciles it"
                )
            else:
                report = manager.handle_failed_run(
                    store, task_id, int(attempt), info, deployment=deployment, settings=settings
                )
            manager.label_launches(store, report.launches, HANDLERS)
        return _result(report, context, "runner_failure_sensor")

    return runner_failure_sensor
