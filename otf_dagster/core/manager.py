"""The Task Manager's decisions, free of Dagster: what to launch, what to re-launch or fail.

The Dagster sensor is a thin adapter: it hands in a way to look up a task's run and turns the
``Launch`` records into ``RunRequest``s.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from otf_dagster.core.models import Task, TaskType
from otf_dagster.core.store import TaskStore
from otf_dagster.exceptions import StaleTransition

log = logging.getLogger(__name__)

TAG_TASK_ID = "otf/task_id"
TAG_TASK_TYPE = "otf/task_type"
TAG_ATTEMPT = "otf/attempt"
TAG_RETRY = "otf/retry"  # on a hand launch: retry a FAILED or CANCELLED task first
MAX_RUNTIME_MARGIN_SECONDS = 600

# Dagster run statuses, as strings so this module needs no Dagster import.
WAITING = {"QUEUED", "NOT_STARTED", "MANAGED"}
RUNNING = {"STARTING", "STARTED", "CANCELING"}
FAILED = {"FAILURE", "CANCELED"}


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    status: str
    will_retry: bool = False


@dataclass(frozen=True)
class Launch:
    task_id: str
    task_type: str
    attempt: int
    run_key: str
    tags: dict[str, str]
    reason: str  # "claimed" or why it was re-launched


@dataclass
class TickReport:
    launches: list[Launch] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (task id, reason)
    left_to_dagster: list[str] = field(default_factory=list)
    # Runs Dagster still shows running whose runner was given up on (a killed run worker):
    # the sensor cancels them so the UI tells the truth.
    stale_runs: list[tuple[str, str]] = field(default_factory=list)  # (run id, why)

    @property
    def empty(self) -> bool:
        return not (self.launches or self.failed)


def launch_for(task_id: str, task_type: TaskType, attempt: int, reason: str) -> Launch:
    """The run request of one attempt: run key ``task_id:attempt`` (a re-launch gets a new one)."""
    return Launch(
        task_id=task_id,
        task_type=task_type.name,
        attempt=attempt,
        run_key=f"{task_id}:{attempt}",
        tags={
            TAG_TASK_ID: task_id,
            TAG_TASK_TYPE: task_type.name,
            TAG_ATTEMPT: str(attempt),
            # The backstop: run monitoring fails a run that outlives the type's deadline.
            "dagster/max_runtime": str(task_type.deadline_seconds + MAX_RUNTIME_MARGIN_SECONDS),
            # Dagster retries a run whose process died (it resumes from the checkpoint), not a
            # runner that ended the task FAILED on purpose.
            "dagster/retry_on_asset_or_op_failure": "false",
        },
        reason=reason,
    )


def claim(store: TaskStore, limit: int, *, source: str) -> list[Launch]:
    return [
        launch_for(c.task.task_id, c.task_type, c.task.attempt, "claimed")
        for c in store.claim_ready(limit, source=source)
    ]


def reconcile(
    store: TaskStore,
    find_runs: Callable[[list[tuple[str, int]]], dict[tuple[str, int], RunInfo]],
    *,
    grace_seconds: float = 60.0,
    now: datetime | None = None,
    source: str = "task_manager",
) -> TickReport:
    """Re-launch (attempt + 1, up to the type's limit) or fail STARTED tasks whose runner is
    lost: its run never appeared, failed for good, or its heartbeat went stale.

    ``find_runs`` gets every (task id, attempt) worth a look at once and answers with the
    newest run of each it knows: one lookup per tick, however many runs wait in the queue.
    """
    now = now or datetime.now(UTC)
    report = TickReport()
    suspects = []
    for row in store.running_tasks():
        age = (now - row["heartbeat_at"]).total_seconds() if row["heartbeat_at"] else float("inf")
        if age >= min(grace_seconds, row["stale_after_seconds"]):
            suspects.append((row, age))  # a fresh heartbeat needs no lookup
    if not suspects:
        return report
    runs = find_runs([(row["task_id"], row["attempt"]) for row, _ in suspects])
    types: dict[str, TaskType] | None = None
    for row, age in suspects:
        run = runs.get((row["task_id"], row["attempt"]))
        why = _lost_reason(run, age, grace_seconds, row["stale_after_seconds"])
        if why is None:
            if run is not None and run.will_retry:
                report.left_to_dagster.append(row["task_id"])
            continue
        if types is None:
            types = {t.name: t for t in store.list_task_types(include_deleted=True)}
        _relaunch_or_fail(store, row, types[row["task_type"]], why, report, source, run)
    return report


def _lost_reason(run: RunInfo | None, age: float, grace: float, stale_after: float) -> str | None:
    if run is None:
        return f"its run never appeared ({age:.0f}s after it was claimed)" if age >= grace else None
    if run.status in FAILED:
        return None if run.will_retry else f"run {run.run_id} ended {run.status}"
    if run.status == "SUCCESS":
        return f"run {run.run_id} succeeded without ending the task"
    if run.status in RUNNING and age >= stale_after:
        return f"heartbeat stale ({age:.0f}s old) while run {run.run_id} is {run.status}"
    return None  # queued, or running and healthy


def _relaunch_or_fail(
    store: TaskStore,
    row: dict[str, Any],
    ttype: TaskType,
    why: str,
    report: TickReport,
    source: str,
    run: RunInfo | None = None,
) -> None:
    task_id, attempt = row["task_id"], row["attempt"]
    try:
        if attempt < ttype.max_attempts:
            task: Task = store.relaunch(task_id, attempt, why, source=source)
            report.launches.append(launch_for(task_id, ttype, task.attempt, f"re-launch: {why}"))
            outcome = f"task re-launched as attempt {task.attempt}"
        else:
            reason = f"gave up after {attempt} attempt(s): {why}"
            store.fail_runner(task_id, attempt, reason)
            report.failed.append((task_id, reason))
            outcome = "task FAILED"
    except StaleTransition as exc:  # another manager (or the runner itself) got there first
        log.info("reconcile %s: %s", task_id, exc)
        return
    if run is not None and run.status in RUNNING:
        report.stale_runs.append((run.run_id, f"otf: {why}; {outcome}"))


def handle_failed_run(
    store: TaskStore,
    task_id: str,
    attempt: int,
    run: RunInfo,
    *,
    source: str = "run_failure_sensor",
) -> TickReport:
    """A runner run failed and Dagster will not retry it: re-launch or fail its task now."""
    report = TickReport()
    if run.will_retry:
        report.left_to_dagster.append(task_id)
        return report
    rows = [r for r in store.running_tasks() if r["task_id"] == task_id and r["attempt"] == attempt]
    if not rows:
        return report  # already ended or re-launched: the failed run was stale
    ttype = store.get_task_type(rows[0]["task_type"], include_deleted=True)
    _relaunch_or_fail(store, rows[0], ttype, f"run {run.run_id} ended {run.status}", report, source)
    return report
