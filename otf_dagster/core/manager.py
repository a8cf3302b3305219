"""The Task Manager's decisions, free of Dagster: what to launch, what to re-launch or fail,
which pool hosts what.

One tick (``tick``): renew this deployment's lease; reconcile the STARTED tasks it watches
(its own, hand-run ones, and those of deployments whose lease expired); claim ready tasks;
route each launch by its type's mode: one Dagster run per task (``run``), or a place in one
of this deployment's runner pools (``pool``), launching new pools when capacity is short.
The Dagster sensor is a thin adapter: it hands in a way to look up runs and turns the
report into ``RunRequest``s.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from otf_dagster.core.store import TaskStore
from otf_dagster.exceptions import StaleTransition
from otf_dagster.settings import (
    BACKFILL_MAX_STARTED,
    CLAIM_LIMIT,
    DEPLOYMENT_LEASE_SECONDS,
    POOL_SIZE,
    POOL_STALE_SECONDS,
    RUN_GRACE_SECONDS,
    RUNNER_MODE,
)
from otf_dagster.vocab.poll import HandlerRegistry
from otf_dagster.vocab.tasks import BACKFILL, LIVE, PoolState, TaskType

log = logging.getLogger(__name__)

TAG_TASK_ID = "otf/task_id"
TAG_TASK_TYPE = "otf/task_type"
TAG_ATTEMPT = "otf/attempt"
TAG_RETRY = "otf/retry"  # on a hand launch: retry a FAILED or CANCELLED task first
TAG_MATCHUP = "otf/matchup"
TAG_POOL_ID = "otf/pool_id"
TAG_DEPLOYMENT = "otf/deployment"
TAG_LANE = "otf/lane"
# Dagster's run queue takes higher priorities first: a backfill run queued beside live ones
# waits for them (the claim already puts live work first; this keeps the queue's order).
BACKFILL_RUN_PRIORITY = "-1"
MAX_RUNTIME_MARGIN_SECONDS = 600
QUIET_MARGIN_SECONDS = 5.0

# Dagster run statuses, as strings so this module needs no Dagster import.
RUNNING = {"STARTING", "STARTED", "CANCELING"}
FAILED = {"FAILURE", "CANCELED"}


@dataclass(frozen=True)
class Deployment:
    """The deployment (Dagster instance) a manager acts for; ``id`` None: not bound to one
    (every STARTED task is its own, as with a single deployment)."""

    id: str | None = None
    name: str = ""


@dataclass(frozen=True)
class Settings:
    """The Task Manager's knobs; the defaults are those of :mod:`otf_dagster.settings`."""

    claim_limit: int = CLAIM_LIMIT.default
    grace_seconds: float = float(RUN_GRACE_SECONDS.default)  # a claimed run not seen: lost
    default_mode: str = RUNNER_MODE.default  # for types that do not say
    pool_capacity: int = POOL_SIZE.default  # tasks per pool
    pool_stale_seconds: float = float(POOL_STALE_SECONDS.default)  # older heartbeat: lost
    pool_launch_grace_seconds: float = 300.0  # a pool that has not started after this is lost
    lease_seconds: float = float(DEPLOYMENT_LEASE_SECONDS.default)  # older lease: gone
    # Backfill tasks (games already final when ingested) get what live tasks leave of each
    # tick's claim limit, and never more than keeps this many STARTED at once
    # (OTF_BACKFILL_MAX_STARTED): a season's backfill is a trickle beside tonight's games.
    backfill_max_started: int = BACKFILL_MAX_STARTED.default


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


@dataclass(frozen=True)
class PoolLaunch:
    pool_id: str
    capacity: int
    run_key: str
    tags: dict[str, str]
    heartbeat_seconds: float = 10.0


@dataclass
class TickReport:
    launches: list[Launch] = field(default_factory=list)  # one Dagster run each
    pool_launches: list[PoolLaunch] = field(default_factory=list)
    assigned: dict[str, list[str]] = field(default_factory=dict)  # pool id -> task ids
    partitions: list[str] = field(default_factory=list)  # task ids to show in the UI
    failed: list[tuple[str, str]] = field(default_factory=list)  # (task id, reason)
    relaunched: list[tuple[str, int, str]] = field(default_factory=list)  # (task, attempt, why)
    left_to_dagster: list[str] = field(default_factory=list)
    # Runs Dagster still shows running whose runner was given up on (a killed run worker):
    # the sensor cancels them so the UI tells the truth.
    stale_runs: list[tuple[str, str]] = field(default_factory=list)  # (run id, why)
    failed_pools: list[tuple[str, str]] = field(default_factory=list)  # (pool id, why)
    claimed: int = 0
    claimed_backfill: int = 0  # of which backfill tasks


def launch_for(
    task_id: str,
    task_type: TaskType,
    attempt: int,
    reason: str,
    lane: str = LIVE,
    label: str | None = None,
) -> Launch:
    """The run request of one attempt: run key ``task_id:attempt`` (a re-launch gets a new one);
    a backfill task's run says its lane and queues behind live runs."""
    tags = {
        TAG_TASK_ID: task_id,
        TAG_TASK_TYPE: task_type.name,
        TAG_ATTEMPT: str(attempt),
        # The backstop: run monitoring fails a run that outlives the type's deadline.
        "dagster/max_runtime": str(task_type.deadline_seconds + MAX_RUNTIME_MARGIN_SECONDS),
        # Dagster retries a run whose process died (it resumes from the checkpoint), not a
        # runner that ended the task FAILED on purpose.
        "dagster/retry_on_asset_or_op_failure": "false",
    }
    if label:
        tags[TAG_MATCHUP] = label[:200]
    if lane == BACKFILL:
        tags[TAG_LANE] = BACKFILL
        tags["dagster/priority"] = BACKFILL_RUN_PRIORITY
    return Launch(task_id, task_type.name, attempt, f"{task_id}:{attempt}", tags, reason)


def pool_launch_for(
    pool_id: str, capacity: int, deployment: Deployment, stale_seconds: float = 60.0
) -> PoolLaunch:
    tags = {TAG_POOL_ID: pool_id, "dagster/retry_on_asset_or_op_failure": "false"}
    if deployment.id:
        tags[TAG_DEPLOYMENT] = deployment.id
    # The pool heartbeats four times within the time after which the manager counts it lost.
    beat = max(1.0, min(10.0, stale_seconds / 4))
    return PoolLaunch(pool_id, capacity, f"pool:{pool_id}", tags, beat)


# --- one tick -------------------------------------------------------------------------------


def tick(
    store: TaskStore,
    find_runs: Callable[[list[tuple[str, int]]], dict[tuple[str, int], RunInfo]],
    *,
    deployment: Deployment = Deployment(),
    settings: Settings = Settings(),
    now: datetime | None = None,
    source: str = "task_manager",
) -> TickReport:
    """Renew the lease, reconcile, claim, and route every launch (see the module's doc)."""
    if deployment.id:
        store.renew_lease(deployment.id, deployment.name, settings.lease_seconds)
    report, to_route = _reconcile(store, find_runs, deployment, settings, now, source)
    claimed = store.claim_ready(
        settings.claim_limit,
        source=source,
        deployment=deployment.id,
        backfill_max_started=settings.backfill_max_started,
    )
    report.claimed = len(claimed)
    report.claimed_backfill = sum(c.task.backfill for c in claimed)
    for c in claimed:
        to_route.append((c.task.task_id, c.task.attempt, c.task_type, "claimed", c.task.lane))
    _route(store, report, to_route, deployment, settings)
    return report


def reconcile(
    store: TaskStore,
    find_runs: Callable[[list[tuple[str, int]]], dict[tuple[str, int], RunInfo]],
    *,
    grace_seconds: float = 60.0,
    now: datetime | None = None,
    source: str = "task_manager",
    deployment: Deployment = Deployment(),
    settings: Settings | None = None,
) -> TickReport:
    """Reconcile alone (no claim): re-launch or fail lost runners, route what was re-launched."""
    settings = settings or Settings(grace_seconds=grace_seconds)
    report, to_route = _reconcile(store, find_runs, deployment, settings, now, source)
    _route(store, report, to_route, deployment, settings)
    return report


def claim(store: TaskStore, limit: int, *, source: str) -> list[Launch]:
    """Claim and launch one run each (run mode), without reconciling: for tools and tests."""
    return [
        launch_for(c.task.task_id, c.task_type, c.task.attempt, "claimed", c.task.lane)
        for c in store.claim_ready(limit, source=source)
    ]


def label_launches(store: TaskStore, launches: list[Launch], handlers: HandlerRegistry) -> None:
    """Tag each run with its task's label (``otf/matchup``), named by the task's handler from
    its params ("ORL @ BOS" for a game): sports knowledge stays with the handlers, and the
    claim reads no params. One read for a report's run launches; pooled tasks need none.
    The sensors call it on every report they turn into runs."""
    if not launches:
        return
    found = store.launch_params([x.task_id for x in launches])
    for launch in launches:
        handler, params = found.get(launch.task_id, ("", {}))
        label = handlers.label(handler, params)
        if label:
            launch.tags[TAG_MATCHUP] = label[:200]


# (task id, attempt, type, why, lane)
Route = tuple[str, int, TaskType, str, str]


def _route(
    store: TaskStore,
    report: TickReport,
    items: list[Route],
    deployment: Deployment,
    settings: Settings,
) -> None:
    """Run-mode launches become runs; pool-mode ones go to pools (new pools when short)."""
    pooled: list[tuple[str, int]] = []
    for task_id, attempt, ttype, why, lane in items:
        report.partitions.append(task_id)
        if ttype.mode(settings.default_mode) == "pool" and deployment.id:
            pooled.append((task_id, attempt))
        else:
            report.launches.append(launch_for(task_id, ttype, attempt, why, lane))
    if pooled:
        assigned, new_pools = store.assign_to_pools(
            deployment.id,
            pooled,
            capacity=settings.pool_capacity,
            stale_seconds=settings.pool_stale_seconds,
        )
        report.assigned = assigned
        report.pool_launches = [
            pool_launch_for(p, settings.pool_capacity, deployment, settings.pool_stale_seconds)
            for p in new_pools
        ]
    report.partitions = list(dict.fromkeys(report.partitions))


# --- reconciliation --------------------------------------------------------------------------


def _reconcile(
    store: TaskStore,
    find_runs: Callable[[list[tuple[str, int]]], dict[tuple[str, int], RunInfo]],
    deployment: Deployment,
    settings: Settings,
    now: datetime | None,
    source: str,
) -> tuple[TickReport, list[Route]]:
    """Lost runners: re-launched (attempt + 1, up to the type's limit) or failed. A run-mode
    task is lost when its run never appeared after a grace period, failed for good, succeeded
    without ending the task, or runs with a stale heartbeat; a pool-mode task when its pool
    ended, failed, never started or went quiet, or its own heartbeat is stale; another
    deployment's task (lease expired) or a hand-run one when its heartbeat is stale.

    ``find_runs`` gets every (task id, attempt) worth a look at once and answers with the
    newest run of each it knows: one lookup per tick, however many runs wait in the queue.
    """
    now = now or datetime.now(UTC)
    report = TickReport()
    to_route: list[Route] = []
    lost: list[tuple[dict[str, Any], str, RunInfo | None]] = []
    suspects: list[tuple[dict[str, Any], float, bool]] = []
    failed_pools: dict[str, str] = {}
    unassigned: list[dict[str, Any]] = []

    for row in store.running_tasks(deployment=deployment.id):
        age = _age(now, row["heartbeat_at"])
        stale = age >= row["stale_after_seconds"]
        handless = bool(deployment.id) and row["deployment_id"] is None  # hand-run, or older
        if deployment.id and row["deployment_id"] not in (deployment.id, None):
            if stale:  # another deployment's, whose lease has expired
                lost.append((row, _foreign_reason(row, age), None))
            continue
        if row["pool_id"] is not None or (
            deployment.id and not handless and (row["runner"] or settings.default_mode) == "pool"
        ):
            why = _pool_reason(row, age, now, settings)
            if why is None and row["pool_id"] is None:
                unassigned.append(row)  # given back by a full pool: assign it again
            elif why is not None:
                if row["pool_id"] and row["pool_state"] and PoolState(row["pool_state"]).live:
                    failed_pools.setdefault(row["pool_id"], why)
                lost.append((row, why, None))
            continue
        # A healthy runner heartbeats at least every poll: one quiet for two polls is worth a
        # look at its run (found finished: re-launched now, not after the grace period).
        quiet = min(
            settings.grace_seconds,
            row["stale_after_seconds"],
            2 * row["poll_interval_seconds"] + QUIET_MARGIN_SECONDS,
        )
        if age >= quiet:
            suspects.append((row, age, handless))  # a fresh heartbeat needs no lookup

    if suspects:
        runs = find_runs([(row["task_id"], row["attempt"]) for row, _, _ in suspects])
        for row, age, handless in suspects:
            run = runs.get((row["task_id"], row["attempt"]))
            if handless and run is None:  # its run, if any, is in another storage
                stale = age >= row["stale_after_seconds"]
                why = _foreign_reason(row, age) if stale else None
            else:
                why = _lost_reason(run, age, settings.grace_seconds, row["stale_after_seconds"])
            if why is None:
                if run is not None and run.will_retry:
                    report.left_to_dagster.append(row["task_id"])
                continue
            lost.append((row, why, run))

    for pool_id, why in failed_pools.items():
        if store.fail_pool(pool_id, why):
            report.failed_pools.append((pool_id, why))
    if not lost and not unassigned:
        return report, to_route
    types = {t.name: t for t in store.list_task_types(include_deleted=True)}
    for row in unassigned:
        to_route.append(
            (
                row["task_id"],
                row["attempt"],
                types[row["task_type"]],
                "given back by its pool",
                row.get("lane") or LIVE,
            )
        )
    for row, why, run in lost:
        _relaunch_or_fail(
            store, row, types[row["task_type"]], why, report, source, deployment, to_route, run
        )
    return report, to_route


def _age(now: datetime, at: datetime | None) -> float:
    return (now - at).total_seconds() if at else float("inf")


def _foreign_reason(row: dict[str, Any], age: float) -> str:
    if row["deployment_id"] is None:
        return f"its runner, launched by no deployment, went quiet (heartbeat {age:.0f}s old)"
    name = row["deployment_name"] or row["deployment_id"]
    if row["lease_expires_at"] is None:
        return f"deployment {name} is unknown here (heartbeat {age:.0f}s old)"
    return (
        f"deployment {name} is gone (lease expired {row['lease_expires_at'].isoformat()}; "
        f"heartbeat {age:.0f}s old)"
    )


def _pool_reason(row: dict[str, Any], age: float, now: datetime, settings: Settings) -> str | None:
    pool, state = row["pool_id"], row["pool_state"]
    if pool is None:
        return None
    if state is None:
        return f"pool {pool} does not exist"
    state = PoolState(state)
    if not state.live:
        return f"pool {pool} has {state.lower()}"
    if state == PoolState.LAUNCHING:
        waited = _age(now, row["pool_created_at"])
        if waited >= settings.pool_launch_grace_seconds:
            return f"pool {pool} did not start within {waited:.0f}s"
        return None
    pool_age = _age(now, row["pool_heartbeat_at"])
    if pool_age >= settings.pool_stale_seconds:
        return f"pool {pool} went quiet (heartbeat {pool_age:.0f}s old)"
    if age >= row["stale_after_seconds"]:
        return f"heartbeat stale ({age:.0f}s old) in pool {pool}"
    return None


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
    deployment: Deployment,
    to_route: list[Route],
    run: RunInfo | None = None,
) -> None:
    task_id, attempt = row["task_id"], row["attempt"]
    try:
        if attempt < ttype.max_attempts:
            task = store.relaunch(task_id, attempt, why, source=source, deployment=deployment.id)
            to_route.append(
                (
                    task_id,
                    task.attempt,
                    ttype,
                    f"re-launch: {why}",
                    row.get("lane") or LIVE,
                )
            )
            report.relaunched.append((task_id, task.attempt, why))
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
    deployment: Deployment = Deployment(),
    settings: Settings = Settings(),
) -> TickReport:
    """A runner run failed and Dagster will not retry it: re-launch or fail its task now."""
    report = TickReport()
    if run.will_retry:
        report.left_to_dagster.append(task_id)
        return report
    rows = [
        r
        for r in store.running_tasks(deployment=deployment.id)
        if r["task_id"] == task_id and r["attempt"] == attempt
    ]
    if not rows:
        return report  # already ended or re-launched: the failed run was stale
    ttype = store.get_task_type(rows[0]["task_type"], include_deleted=True)
    to_route: list[Route] = []
    why = f"run {run.run_id} ended {run.status}"
    _relaunch_or_fail(store, rows[0], ttype, why, report, source, deployment, to_route)
    _route(store, report, to_route, deployment, settings)
    return report


def handle_failed_pool(
    store: TaskStore, pool_id: str, run: RunInfo, *, deployment: Deployment = Deployment()
) -> TickReport:
    """A pool run failed and Dagster will not retry it: the pool is FAILED now, so the next
    tick re-launches its tasks without waiting for its heartbeat to go stale."""
    report = TickReport()
    if run.will_retry:
        return report
    why = f"its run {run.run_id} ended {run.status}"
    if store.fail_pool(pool_id, why):
        report.failed_pools.append((pool_id, why))
    return report
