"""Jobs: the TaskRunner (one run per task partition) and the schedule's ingestion."""

from __future__ import annotations

import dagster as dg

from otf_dagster.defs.partitions import task_partitions
from otf_dagster.defs.task_runs import TASK_RUNS

TASK_RUNNER_JOB = "task_runner"
GAME_SCHEDULE_JOB = "game_schedule_job"

# In-process: a killed run leaves no step process behind still polling the feed.
task_runner_job = dg.define_asset_job(
    TASK_RUNNER_JOB,
    selection=dg.AssetSelection.assets(TASK_RUNS),
    partitions_def=task_partitions,
    executor_def=dg.in_process_executor,
    description="The TaskRunner: polls one task's game until it is final.",
    tags={"otf/role": "runner"},
)


def build_game_schedule_job(partitions_def: dg.PartitionsDefinition):
    return dg.define_asset_job(
        GAME_SCHEDULE_JOB,
        selection=dg.AssetSelection.assets("game_schedule"),
        partitions_def=partitions_def,
        executor_def=dg.in_process_executor,
        description="Ingest one day's games as scheduled tasks.",
        tags={"otf/role": "schedule"},
    )
