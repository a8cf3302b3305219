"""Group commit: a pool's poll writes, several tasks' in one transaction, each still fenced.

A runner pool's workers each end a poll in one fenced write (``TaskStore.record_poll``); one
transaction per poll made PostgreSQL's commit, and the statements' round trips around it, the
pool's cost per poll (bench/README.md). A :class:`GroupCommitter` owns one connection and one
thread: workers hand it their writes and wait on their own result (a Future); the thread takes
every write queued (up to ``max_batch``) and commits them together through
:meth:`TaskStore.record_polls` (task-id order, a refused write refused alone, any other error
rolls back and retries each write alone). A lone write goes at once: batches form only from
the writes that queued while the previous batch committed (and, with ``linger_seconds``, from
those arriving a moment after a batch of two or more was taken).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass

from otf_dagster.core.store.polls import PollWrite
from otf_dagster.core.store.store import TaskStore
from otf_dagster.exceptions import StoreError
from otf_dagster.vocab.tasks import TaskState

MAX_BATCH = 64


@dataclass
class GroupStats:
    """What the committer did: ``batches`` transactions for ``writes`` writes, ``grouped`` of
    them holding more than one write, the ``largest``, and ``fallbacks`` (batches rolled back
    and written one by one)."""

    batches: int = 0
    writes: int = 0
    grouped: int = 0
    largest: int = 0
    fallbacks: int = 0


class GroupCommitter:
    def __init__(
        self,
        url: str,
        *,
        max_batch: int = MAX_BATCH,
        linger_seconds: float = 0.0,
        application_name: str = "otf-group-commit",
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch {max_batch!r} must be 1 or more")
        self.store = TaskStore(url, application_name=application_name)
        self.max_batch = max_batch
        self.linger = linger_seconds
        self.stats = GroupStats()
        self._queue: deque[tuple[PollWrite, Future]] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name=application_name, daemon=True)
        self._thread.start()

    def record_poll(self, write: PollWrite) -> TaskState | None:
        """As :meth:`TaskStore.record_poll` (same result, same exceptions), committed with
        whichever other writes are queued beside it."""
        future: Future = Future()
        with self._cond:
            if self._closed:
                raise StoreError(f"record poll of {write.task_id!r}: the group committer is closed")
            self._queue.append((write, future))
            self._cond.notify()
        return future.result()

    def queued(self) -> int:
        """Writes waiting for the next batch."""
        with self._cond:
            return len(self._queue)

    def close(self) -> None:
        """Commit what is queued, stop the thread, close the connection."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join()
        self.store.close()

    def __enter__(self) -> GroupCommitter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _take(self) -> list[tuple[PollWrite, Future]]:
        with self._cond:
            while not self._queue and not self._closed:
                self._cond.wait()
            batch = [self._queue.popleft() for _ in range(min(self.max_batch, len(self._queue)))]
            if 1 < len(batch) < self.max_batch and self.linger > 0:
                deadline = time.monotonic() + self.linger
                while len(batch) < self.max_batch:
                    if self._queue:
                        batch.append(self._queue.popleft())
                        continue
                    left = deadline - time.monotonic()
                    if left <= 0 or self._closed:
                        break
                    self._cond.wait(left)
            return batch

    def _loop(self) -> None:
        while True:
            batch = self._take()
            if not batch:
                return  # closed, and nothing left
            try:
                results = self.store.record_polls([w for w, _ in batch])
            except BaseException as exc:  # a bug here must not leave a worker waiting forever
                for _, future in batch:
                    future.set_exception(exc)
                continue
            s = self.stats
            s.batches += 1
            s.writes += len(batch)
            s.grouped += len(batch) > 1
            s.largest = max(s.largest, len(batch))
            s.fallbacks = self.store.batch_fallbacks
            for (_, future), result in zip(batch, results, strict=True):
                if isinstance(result, BaseException):
                    future.set_exception(result)
                else:
                    future.set_result(result)
