"""A runner pool: one process hosting many tasks, each polled on its own schedule, free of
Dagster (the ``runner_pool`` job is a thin adapter).

The seed's TaskRunners are "always running", "subscribe to a queue" and run a coroutine per
task they are given. Here: one scheduler thread keeps a timer heap of the tasks' next polls
and hands due polls to a bounded pool of worker threads; each task is the same
:class:`~otf_dagster.core.runner.TaskRunner` a one-task run drives (its polls fenced by its
attempt, its events, checkpoint and heartbeat committed together), sharing one HTTP client per
feed with a per-host limit and a bounded database connection pool. Threads rather than
asyncio, because handlers and feed clients are plain blocking code (requests, psycopg):
a worker pool runs them unchanged, and a hung request holds one worker, never the others.

The pool learns of its tasks from the task database (``tasks.pool_id``): NOTIFY on
``otf_pools`` wakes it, and it re-reads its assignment every few seconds anyway. It refuses
more tasks than its capacity (gives them back: they stay STARTED and the Task Manager assigns
them elsewhere), heartbeats itself and its healthy tasks in one statement, and ends itself
when it has had no task for a grace period.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import psycopg

from otf_dagster import settings
from otf_dagster.core import hosting
from otf_dagster.core.runner import PollReport, RunOutcome, Step, TaskRunner
from otf_dagster.core.store import TaskStore
from otf_dagster.core.store.db import connect, listen
from otf_dagster.core.store.group_commit import GroupCommitter
from otf_dagster.exceptions import DatabaseUnavailable, OtfError
from otf_dagster.feeds.clients import Clients
from otf_dagster.vocab.poll import HandlerRegistry
from otf_dagster.vocab.tasks import PoolState, TaskType

log = logging.getLogger(__name__)

CHANNEL = "otf_pools"


class TypeCache:
    """Task types read at most every ``ttl`` seconds: thousands of tasks of a few types do
    not read their type on every poll (a changed type still applies within ``ttl``)."""

    def __init__(self, store: TaskStore, ttl: float = 5.0) -> None:
        self.store = store
        self.ttl = ttl
        self._types: dict[str, tuple[float, TaskType]] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> TaskType:
        now = time.monotonic()
        with self._lock:
            cached = self._types.get(name)
            if cached and now - cached[0] < self.ttl:
                return cached[1]
        ttype = self.store.get_task_type(name)  # UnknownTaskType: deleted, the runner ends
        with self._lock:
            self._types[name] = (now, ttype)
        return ttype


@dataclass
class Hosted:
    """A task the pool holds: the one hosting policy (``hosting.HostedTask``) and the pool's
    bookkeeping around it."""

    task: hosting.HostedTask
    in_flight_since: float | None = None
    dropped: bool = False
    released_for: str | None = None  # the host whose free turn this poll was let out for

    @property
    def task_id(self) -> str:
        return self.task.task_id

    @property
    def attempt(self) -> int:
        return self.task.attempt

    @property
    def runner(self) -> TaskRunner:
        return self.task.runner  # type: ignore[return-value]


@dataclass
class PoolSummary:
    pool_id: str
    hosted: int = 0  # tasks it took on
    finished: dict[str, str] = field(default_factory=dict)  # task id -> final state
    polls: int = 0
    errors: int = 0
    given_back: int = 0
    held_back: int = 0  # polls held back for a feed host with no free turn (HostBusy)
    ended: str = ""


class RunnerPool:
    def __init__(
        self,
        store: TaskStore,
        pool_id: str,
        *,
        handlers: HandlerRegistry,
        deployment_id: str,
        run_id: str,
        capacity: int,
        url: str,
        workers: int = 16,
        per_host: int | None = None,
        host_limits: Mapping[str, int] | None = None,
        idle_grace_seconds: float = 60.0,
        refresh_seconds: float = 5.0,
        heartbeat_seconds: float = 10.0,
        feed_base_url: str | None = None,
        on_poll: Callable[[str, PollReport], None] | None = None,
        on_end: Callable[[str, RunOutcome], None] | None = None,
        drain: Callable[[], None] | None = None,
        stop: threading.Event | None = None,
        clock: Any = None,
        timeout: tuple[float, float] = (3.05, 10.0),
        group_commit: bool = True,
    ) -> None:
        self.store = store  # a pooled TaskStore (TaskStore.pooled): workers share it
        self.pool_id = pool_id
        self.handlers = handlers
        self.deployment_id = deployment_id
        self.run_id = run_id
        self.capacity = capacity
        self.url = url
        self.workers = workers
        self.idle_grace = idle_grace_seconds
        self.refresh_seconds = refresh_seconds
        self.heartbeat_seconds = heartbeat_seconds
        self.feed_base_url = feed_base_url
        self.on_poll = on_poll or (lambda task_id, report: None)
        self.on_end = on_end or (lambda task_id, outcome: None)
        self.drain = drain or (lambda: None)
        self.stop = stop or threading.Event()
        self.clock = clock
        # requests at a time per feed host: OTF_FEED_MAX_PER_HOST, OTF_FEED_HOST_LIMITS
        self.clients = Clients(
            timeout=timeout,
            per_host=per_host if per_host is not None else settings.FEED_MAX_PER_HOST.read(),
            host_limits=host_limits
            if host_limits is not None
            else settings.FEED_HOST_LIMITS.read(),
            # a worker never waits on a full host: its poll comes back HostBusy, and the task
            # waits in ``_held`` (no thread) until the host gives a turn back
            when_busy="raise",
        )
        self.types = TypeCache(store)
        # the runners' poll writes, several tasks' per transaction (core/store/group_commit.py)
        self.committer: GroupCommitter | None = None
        self.group_commit = group_commit
        self.summary = PoolSummary(pool_id)
        self._hosted: dict[str, Hosted] = {}
        self._heap: list[tuple[float, int, str, int]] = []
        self._seq = itertools.count()
        self._done: deque[tuple[Hosted, Step | None, BaseException | None]] = deque()
        self._kick = threading.Event()
        self._wake = threading.Event()
        # tasks held back per feed host (its turns all taken), and how many let out per host
        # whose polls have not come back yet (they are about to take the free turns)
        self._held: dict[str, deque[tuple[str, int]]] = {}
        self._released: dict[str, int] = {}

    # --- the loop --------------------------------------------------------------------------

    def run(self) -> PoolSummary:
        if not self.store.register_pool(
            self.pool_id, self.deployment_id, self.capacity, self.run_id
        ):
            self.summary.ended = "the pool had already ended or failed: nothing to host"
            return self.summary
        if self.group_commit:
            self.committer = GroupCommitter(self.url, application_name=f"{self.pool_id}-commit")
        listener = threading.Thread(target=self._listen, name=f"{self.pool_id}-listen", daemon=True)
        listener.start()
        executor = ThreadPoolExecutor(self.workers, thread_name_prefix=self.pool_id)
        # The heartbeat (one statement over every healthy task) runs beside the loop: waiting
        # on it here held back every poll falling due meanwhile (p99 lateness grew with N).
        beater = ThreadPoolExecutor(1, thread_name_prefix=f"{self.pool_id}-beat")
        beat: Future | None = None
        in_flight = 0
        last_refresh = last_beat = float("-inf")
        idle_since: float | None = None
        try:
            while not self.stop.is_set():
                now = time.monotonic()
                if self._wake.is_set() or now - last_refresh >= self.refresh_seconds:
                    self._wake.clear()
                    self._refresh()
                    last_refresh = now
                while self._done:
                    hosted, step, error = self._done.popleft()
                    in_flight -= 1
                    self._finished(hosted, step, error)
                if self._held:
                    self._release_held(now)
                while self._heap and self._heap[0][0] <= now and in_flight < self.workers * 2:
                    _, _, task_id, attempt = heapq.heappop(self._heap)
                    hosted = self._hosted.get(task_id)
                    if hosted is None or hosted.attempt != attempt or hosted.in_flight_since:
                        continue
                    hosted.in_flight_since = now
                    in_flight += 1
                    future = executor.submit(self._poll, hosted)
                    future.add_done_callback(lambda f, h=hosted: self._collect(h, f))
                if beat is not None and beat.done():
                    alive, beat = beat.result(), None
                    if not alive:
                        self.summary.ended = "the pool was failed by a Task Manager (stale)"
                        return self.summary
                if beat is None and now - last_beat >= self.heartbeat_seconds:
                    last_beat = now
                    beat = beater.submit(self._heartbeat, self._healthy())
                self.drain()
                if not self._hosted and in_flight == 0:
                    idle_since = idle_since or now
                    if now - idle_since >= self.idle_grace:
                        detail = f"idle for {self.idle_grace:g}s"
                        if self.store.end_pool_if_idle(self.pool_id, detail):
                            self.summary.ended = detail
                            return self.summary
                        self._wake.set()  # a task arrived as it was ending: take it
                else:
                    idle_since = None
                if self._heap and in_flight < self.workers * 2:
                    wait = max(0.0, self._heap[0][0] - time.monotonic())
                else:  # nothing due, or every worker busy: a finished poll kicks the loop
                    wait = self.refresh_seconds
                self._kick.wait(min(wait, self.refresh_seconds, 0.5))
                self._kick.clear()
            self.summary.ended = "stopped"
            return self.summary
        finally:
            if not self.summary.ended or self.summary.ended == "stopped":
                # Stopped or interrupted (its run terminated): FAILED at once, so the next tick
                # re-launches its tasks elsewhere without waiting for its heartbeat to go stale.
                self.summary.ended = self.summary.ended or "interrupted"
                try:
                    self.store.end_pool(
                        self.pool_id, PoolState.FAILED, f"its run was {self.summary.ended}"
                    )
                except OtfError as exc:
                    log.warning("pool %s: could not record its end: %s", self.pool_id, exc)
            self.stop.set()
            beater.shutdown(wait=True, cancel_futures=True)
            executor.shutdown(wait=True, cancel_futures=True)
            if self.committer is not None:
                self.committer.close()
            while self._done:
                hosted, step, error = self._done.popleft()
                self._finished(hosted, step, error)
            self.drain()
            self.clients.close()
            listener.join(timeout=5)

    # --- assignment ------------------------------------------------------------------------

    def _refresh(self) -> None:
        try:
            assigned = self.store.pool_tasks(self.pool_id)
        except DatabaseUnavailable as exc:
            log.warning("pool %s: cannot read its tasks: %s", self.pool_id, exc)
            return
        wanted = dict(assigned)
        for task_id, hosted in list(self._hosted.items()):
            if wanted.get(task_id) != hosted.attempt:  # re-launched elsewhere, or ended
                hosted.dropped = True
                del self._hosted[task_id]
                if hosted.released_for is not None and hosted.in_flight_since is None:
                    self._released[hosted.released_for] -= 1  # let out, never to be polled
                    hosted.released_for = None
        extra: list[str] = []
        for task_id, attempt in assigned:
            if task_id in self._hosted:
                continue
            if len(self._hosted) >= self.capacity:
                extra.append(task_id)
                continue
            runner = TaskRunner(
                self.store,
                task_id,
                attempt,
                self.run_id,
                handlers=self.handlers,
                clients=self.clients,
                feed_base_url=self.feed_base_url,
                clock=self.clock,
                on_poll=lambda report, t=task_id: self.on_poll(t, report),
                read_type=self.types.get,
                # A worker waits this long (in memory) for a database that went away, then
                # the task is polled again later from its committed checkpoint.
                db_retry_seconds=2.0,
                db_retry_limit=15,
                record_poll=self.committer.record_poll if self.committer else None,
            )
            self._hosted[task_id] = Hosted(
                hosting.HostedTask(runner, fallback_interval=self.refresh_seconds)
            )
            self.summary.hosted += 1
            self._schedule(task_id, attempt, 0.0)
        if extra:
            given = self.store.release_pool_tasks(self.pool_id, extra)
            self.summary.given_back += len(given)
            log.warning(
                "pool %s is full (%d tasks): gave back %d", self.pool_id, self.capacity, len(given)
            )

    def _schedule(self, task_id: str, attempt: int, delay: float) -> None:
        heapq.heappush(self._heap, (time.monotonic() + delay, next(self._seq), task_id, attempt))

    def _release_held(self, now: float) -> None:
        """Let out as many held-back tasks of each host as it has free turns (less those let
        out already and not back), oldest first, to poll now."""
        for host, queue in list(self._held.items()):
            room = self.clients.free(host) - self._released.get(host, 0)
            while room > 0 and queue:
                task_id, attempt = queue.popleft()
                hosted = self._hosted.get(task_id)
                if hosted is None or hosted.attempt != attempt:
                    continue  # ended or re-launched elsewhere meanwhile
                hosted.released_for = host
                self._released[host] = self._released.get(host, 0) + 1
                heapq.heappush(self._heap, (now, next(self._seq), task_id, attempt))
                room -= 1
            if not queue:
                del self._held[host]

    # --- one poll (a worker thread) --------------------------------------------------------

    def _poll(self, hosted: Hosted) -> Step | None:
        return hosted.task.poll()

    def _collect(self, hosted: Hosted, future: Future) -> None:
        if future.cancelled():  # the pool is stopping: the poll never ran
            self._done.append((hosted, None, None))
        else:
            error = future.exception()
            self._done.append((hosted, None if error else future.result(), error))
        self._kick.set()

    def _finished(self, hosted: Hosted, step: Step | None, error: BaseException | None) -> None:
        hosted.in_flight_since = None
        if hosted.released_for is not None:
            self._released[hosted.released_for] -= 1
            hosted.released_for = None
        if hosted.dropped or self._hosted.get(hosted.task_id) is not hosted:
            return
        if error is not None:  # the database stayed away, or a bug: try again later
            self.summary.errors += 1
            self._schedule(hosted.task_id, hosted.attempt, hosted.task.retry_in(error))
            return
        if step is None:
            return
        if step.busy is not None:  # not polled: held back until its host has a free turn
            self.summary.held_back += 1
            self._held.setdefault(step.busy, deque()).append((hosted.task_id, hosted.attempt))
            return
        self.summary.polls += step.report is not None
        if step.report is not None and step.report.error:
            self.summary.errors += 1
        if step.ended is not None:
            del self._hosted[hosted.task_id]
            if step.ended.state is not None:
                self.summary.finished[hosted.task_id] = str(step.ended.state)
            self.on_end(hosted.task_id, step.ended)
            return
        self._schedule(hosted.task_id, hosted.attempt, hosted.task.next_poll_in(step))

    # --- heartbeats and NOTIFY -------------------------------------------------------------

    def _healthy(self) -> list[tuple[str, int]]:
        """The tasks to heartbeat (read by the loop's thread, which owns ``_hosted``): a task
        whose poll has been in flight for longer than half its staleness is left to go stale
        (the Task Manager re-launches a hung task; a healthy pool does not hide it)."""
        now = time.monotonic()
        healthy = []
        for hosted in self._hosted.values():
            ttype = hosted.runner.task_type
            limit = (ttype.stale_after_seconds if ttype else 300) / 2
            if hosted.in_flight_since is None or now - hosted.in_flight_since < limit:
                healthy.append((hosted.task_id, hosted.attempt))
        return healthy

    def _heartbeat(self, healthy: list[tuple[str, int]]) -> bool:
        """The pool's and its healthy tasks' heartbeats, in one statement (a worker thread)."""
        try:
            return self.store.heartbeat_pool(self.pool_id, healthy)
        except DatabaseUnavailable as exc:
            log.warning("pool %s: heartbeat failed: %s", self.pool_id, exc)
            return True

    def _listen(self) -> None:
        """LISTEN for assignments to this pool; a lost connection is re-made (the periodic
        re-read covers the gap)."""
        while not self.stop.is_set():
            try:
                with connect(self.url, application_name=f"{self.pool_id}-listen") as conn:
                    listen(conn, CHANNEL)
                    while not self.stop.is_set():
                        for note in conn.notifies(timeout=1.0):
                            if note.payload == self.pool_id:
                                self._wake.set()
                                self._kick.set()
            except (DatabaseUnavailable, psycopg.Error) as exc:
                log.info("pool %s: listener reconnecting: %s", self.pool_id, exc)
                self.stop.wait(1.0)
