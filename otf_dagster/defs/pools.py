"""The runner pool as a Dagster job: one run hosting many tasks (``core/pool.py``).

Each hosted task keeps its partition, reported by ``defs/reporting.py`` exactly as the runner
job reports it: an observation when a poll found something (at most one per task every
``observe_every_seconds``), the same materialization when the task finishes and the same
failure observation, so a task's partition page does not depend on the mode. The pool run's own
page logs its tasks as they come and go, and ends with a table of them.
"""

import threading
import time
from collections import deque
from typing import Any

import dagster as dg

from otf_dagster import settings
from otf_dagster.core.manager import TAG_POOL_ID
from otf_dagster.core.pool import RunnerPool
from otf_dagster.core.runner import PollReport, RunOutcome
from otf_dagster.core.store import TaskStore
from otf_dagster.defs.deployment import deployment_of
from otf_dagster.defs.reporting import end_event, poll_observation
from otf_dagster.defs.resources import FeedResource, TaskStoreResource
from otf_dagster.handlers import HANDLERS
from otf_dagster.vocab.tasks import TaskState

RUNNER_POOL_JOB = "runner_pool"


class PoolConfig(dg.Config):
    pool_id: str
    capacity: int = settings.POOL_SIZE.default
    workers: int = 16
    per_host: int | None = None  # None: OTF_FEED_MAX_PER_HOST (and OTF_FEED_HOST_LIMITS)
    db_connections: int = 8
    idle_grace_seconds: float = 60.0
    heartbeat_seconds: float = 10.0  # well inside the Task Manager's pool staleness
    observe_every_seconds: float = 30.0


class _Reporter:
    """Collects what worker threads saw; the op's own thread logs it to Dagster (``drain``)."""

    def __init__(
        self, context: dg.OpExecutionContext, store: TaskStore, every: float, pool_id: str
    ) -> None:
        self.context = context
        self.store = store
        self.every = every
        self.pool_id = pool_id
        self.polls: deque[tuple[str, PollReport]] = deque()
        self.ends: deque[tuple[str, RunOutcome]] = deque()
        self.last_seen: dict[str, float] = {}
        self.ended: dict[str, str] = {}
        self.last_status = 0.0
        self.lock = threading.Lock()

    def on_poll(self, task_id: str, report: PollReport) -> None:
        self.polls.append((task_id, report))

    def on_end(self, task_id: str, outcome: RunOutcome) -> None:
        self.ends.append((task_id, outcome))

    def drain(self) -> None:
        with self.lock:  # the pool's loop and its final clean-up may both call it
            now = time.monotonic()
            while self.polls:
                task_id, report = self.polls.popleft()
                if not (report.events or report.error):
                    continue
                if now - self.last_seen.get(task_id, float("-inf")) < self.every:
                    continue
                self.last_seen[task_id] = now
                self.context.log_event(poll_observation(task_id, report))
            while self.ends:
                task_id, outcome = self.ends.popleft()
                self._end(task_id, outcome)
            if now - self.last_status >= 60.0:
                self.last_status = now
                self.context.log.info(
                    "pool %s: %d task(s) ended so far (%s)",
                    self.pool_id,
                    len(self.ended),
                    ", ".join(f"{v} {k}" for k, v in sorted(_count(self.ended).items())) or "none",
                )

    def _end(self, task_id: str, outcome: RunOutcome) -> None:
        event = end_event(self.store, task_id, outcome, pool=self.pool_id)
        if event is None:
            self.context.log.info("task %s left the pool: %s", task_id, outcome.reason)
            return
        self.ended[task_id] = str(outcome.state)
        if outcome.state == TaskState.FAILED:
            self.context.log.warning("task %s FAILED: %s", task_id, outcome.reason)
        self.context.log_event(event)


def _count(states: dict[str, str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for state in states.values():
        out[state] = out.get(state, 0) + 1
    return out


@dg.op(
    description=(
        "Host the tasks the Task Manager assigns to this pool: each polled on its own schedule "
        "by a bounded set of worker threads; ends when it has had no task for a while."
    ),
)
def host_tasks(
    context: dg.OpExecutionContext,
    config: PoolConfig,
    task_store: TaskStoreResource,
    feeds: FeedResource,
) -> dg.Output:
    deployment = deployment_of(context.instance)
    store = TaskStore.pooled(
        task_store.url(), size=config.db_connections, application_name=f"otf-{config.pool_id}"
    )
    reporter = _Reporter(context, store, config.observe_every_seconds, config.pool_id)
    pool = RunnerPool(
        store,
        config.pool_id,
        handlers=HANDLERS,
        deployment_id=context.run.tags.get("otf/deployment", deployment.id),
        run_id=context.run_id,
        capacity=config.capacity,
        url=task_store.url(),
        workers=config.workers,
        per_host=config.per_host,
        idle_grace_seconds=config.idle_grace_seconds,
        heartbeat_seconds=config.heartbeat_seconds,
        feed_base_url=feeds.base_url or None,
        on_poll=reporter.on_poll,
        on_end=reporter.on_end,
        drain=reporter.drain,
        timeout=(feeds.connect_timeout, feeds.read_timeout),
    )
    context.log.info(
        "pool %s: up to %d tasks, %d workers, %d requests per feed host%s",
        config.pool_id,
        config.capacity,
        config.workers,
        pool.clients.per_host or 0,
        "".join(f", {h}: {n}" for h, n in sorted(pool.clients.host_limits.items())),
    )
    try:
        summary = pool.run()
    finally:
        store.close()
    rows = "\n".join(f"| {t} | {s} |" for t, s in sorted(reporter.ended.items()))
    table = "| task | state |\n|---|---|\n" + rows if rows else "_no task ended here_"
    context.log.info("pool %s ended: %s", config.pool_id, summary.ended)
    return dg.Output(
        {"pool_id": summary.pool_id, "hosted": summary.hosted, "ended": summary.ended},
        metadata={
            "pool_id": summary.pool_id,
            "tasks_hosted": summary.hosted,
            "tasks_ended": len(reporter.ended),
            "polls": summary.polls,
            "poll_errors": summary.errors,
            "given_back": summary.given_back,
            "ended": summary.ended,
            "tasks": dg.MetadataValue.md(table),
        },
    )


@dg.job(
    name=RUNNER_POOL_JOB,
    executor_def=dg.in_process_executor,
    tags={"otf/role": "pool"},
    description="A runner pool: one run hosting many tasks (OTF_RUNNER_MODE=pool, or runner: pool).",
)
def runner_pool_job() -> None:
    host_tasks()


def pool_run_config(pool_id: str, capacity: int, **extra: Any) -> dict[str, Any]:
    return {"ops": {"host_tasks": {"config": {"pool_id": pool_id, "capacity": capacity, **extra}}}}


__all__ = ["RUNNER_POOL_JOB", "TAG_POOL_ID", "pool_run_config", "runner_pool_job"]
