"""Retention as a Dagster job on a daily schedule: a thin adapter over ``core/retention.py``.

``InstanceSide`` is what a prune needs of one Dagster storage (this instance's): the task
partitions (``defs/partitions.py``) and the runs of tasks and runner pools, looked up a batch
at a time by their tags. ``otf history prune`` uses the same adapter over ``DAGSTER_HOME``'s
instance.
"""

# No `from __future__ import annotations`: Dagster reads the op's config annotation as a type.
from collections.abc import Sequence

import dagster as dg
from pydantic import Field

from otf_dagster import settings
from otf_dagster.core import manager, retention
from otf_dagster.defs.deployment import deployment_of
from otf_dagster.defs.jobs import TASK_RUNNER_JOB
from otf_dagster.defs.partitions import TASKS_PARTITIONS_NAME
from otf_dagster.defs.resources import TaskStoreResource

HISTORY_PRUNE_JOB = "history_prune"
DEFAULT_CRON = settings.HISTORY_CRON.default
_PARTITION_TAG = "dagster/partition"


class InstanceSide:
    """One Dagster instance's storage, as :class:`retention.DagsterSide`."""

    def __init__(self, instance: dg.DagsterInstance) -> None:
        self.instance = instance
        self.deployment_id = deployment_of(instance).id

    def existing_partitions(self, keys: Sequence[str]) -> set[str]:
        return set(self.instance.get_existing_dynamic_partitions(TASKS_PARTITIONS_NAME, keys))

    def delete_partition(self, key: str) -> None:
        self.instance.delete_dynamic_partition(TASKS_PARTITIONS_NAME, key)

    def task_runs(self, task_ids: Sequence[str]) -> dict[str, list[retention.RunRef]]:
        """Each task's runs: the Task Manager's (tagged with the task id) and hand launches of
        the runner job (only the partition tag)."""
        ids = list(task_ids)
        found: dict[str, dict[str, retention.RunRef]] = {}
        for filters, tag in (
            (dg.RunsFilter(tags={manager.TAG_TASK_ID: ids}), manager.TAG_TASK_ID),
            (dg.RunsFilter(job_name=TASK_RUNNER_JOB, tags={_PARTITION_TAG: ids}), _PARTITION_TAG),
        ):
            for run in self.instance.get_runs(filters=filters):
                key = run.tags.get(tag)
                found.setdefault(key, {})[run.run_id] = retention.RunRef(
                    run.run_id, run.is_finished
                )
        return {key: list(runs.values()) for key, runs in found.items()}

    def pool_runs(self, pool_ids: Sequence[str]) -> dict[str, list[retention.RunRef]]:
        found: dict[str, list[retention.RunRef]] = {}
        runs = self.instance.get_runs(
            filters=dg.RunsFilter(tags={manager.TAG_POOL_ID: list(pool_ids)})
        )
        for run in runs:
            found.setdefault(run.tags[manager.TAG_POOL_ID], []).append(
                retention.RunRef(run.run_id, run.is_finished)
            )
        return found

    def delete_run(self, run_id: str) -> None:
        self.instance.delete_run(run_id)  # its event log too


class HistoryPruneConfig(dg.Config):
    older_than_days: int = Field(
        default=retention.DEFAULT_OLDER_THAN_DAYS,
        description="Tasks ended, and poll rows written, more than this many days ago go.",
    )
    events_older_than_days: int | None = Field(
        default=None,
        description="Events older than this go, up to the lowest reader's position; "
        "unset: events are kept.",
    )
    force_consumers: list[str] = Field(
        default_factory=list,
        description="Readers (consumer names, endpoint:ID) left out of the events guard.",
    )
    dry_run: bool = False
    batch_size: int = retention.DEFAULT_BATCH_SIZE


def _metadata(report: retention.PruneReport) -> dict[str, dg.MetadataValue]:
    meta: dict[str, dg.MetadataValue] = {
        name: dg.MetadataValue.int(n) for name, n in report.removed().items()
    }
    meta["dry_run"] = dg.MetadataValue.bool(report.dry_run)
    meta["events_held"] = dg.MetadataValue.int(report.events_held)
    meta["still_running"] = dg.MetadataValue.int(len(report.still_running))
    if report.held_back_by:
        meta["held_back_by"] = dg.MetadataValue.text(report.held_back_by)
    if report.prune_id is not None:
        meta["prune_id"] = dg.MetadataValue.int(report.prune_id)
    meta["summary"] = dg.MetadataValue.md("\n".join(f"- {line}" for line in report.lines()))
    return meta


@dg.op(
    name="prune_history",
    description="Remove ended tasks' partitions and runs from Dagster's storage, old poll "
    "rows, and (when asked) events every reader has passed; counts as metadata.",
)
def prune_history(
    context: dg.OpExecutionContext, config: HistoryPruneConfig, task_store: TaskStoreResource
) -> dg.Output[dict]:
    settings = retention.PruneSettings(
        older_than_days=config.older_than_days,
        events_older_than_days=config.events_older_than_days,
        force=tuple(config.force_consumers),
        dry_run=config.dry_run,
        batch_size=config.batch_size,
    )
    with task_store.open("otf-history-prune") as store:
        report = retention.prune(
            store, InstanceSide(context.instance), settings, source=f"job {context.run_id}"
        )
    for line in report.lines():
        context.log.info(line)
    return dg.Output(report.to_dict(), metadata=_metadata(report))


@dg.job(
    name=HISTORY_PRUNE_JOB,
    tags={"otf/role": "history"},
    executor_def=dg.in_process_executor,
    description="Retention: what ended long ago leaves Dagster's storage; the task database "
    "keeps every task's states and (unless asked) events.",
)
def history_prune_job() -> None:
    prune_history()


def build_history_schedule(
    timezone: str,
    cron: str = DEFAULT_CRON,
    *,
    older_than_days: int = retention.DEFAULT_OLDER_THAN_DAYS,
    events_older_than_days: int | None = None,
) -> dg.ScheduleDefinition:
    retention.PruneSettings(
        older_than_days=older_than_days, events_older_than_days=events_older_than_days
    )  # refused here, when the code loads, rather than at 4:30
    return dg.ScheduleDefinition(
        name="daily_history_prune",
        job=history_prune_job,
        cron_schedule=cron,
        execution_timezone=timezone,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        run_config={
            "ops": {
                "prune_history": {
                    "config": {
                        "older_than_days": older_than_days,
                        "events_older_than_days": events_older_than_days,
                    }
                }
            }
        },
        description="Prune the history once a day (OTF_HISTORY_DAYS, OTF_EVENTS_RETENTION_DAYS).",
    )
