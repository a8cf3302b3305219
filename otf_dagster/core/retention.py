"""Retention: old history goes, what a reader still needs never does (no Dagster here).

One prune, three parts, each in batches that commit on their own (a prune killed at any
point is run again and carries on; nothing removed is removed or counted twice):

* Dagster's storage, through a :class:`DagsterSide` the caller hands in (``defs/history.py``
  wraps a ``DagsterInstance``): the dynamic partitions and runs (event logs included) of tasks
  that ended more than ``older_than_days`` ago, and the runs of runner pools that ended then.
  A batch holds its tasks' row locks while it removes (a retry waits; the state is read under
  the lock, so no task that runs again loses its partition) and records in the same
  transaction what this deployment's storage no longer holds (``history_dagster_pruned``).
  A task with a run still in progress is left for the next prune.
* ``task_polls``: rows older than ``older_than_days``. On TimescaleDB whole chunks are
  dropped and the table's retention policy is set to the same age; elsewhere, batched deletes.
* ``task_events``, only when ``events_older_than_days`` is given: events older than that up
  to the lowest position any reader holds (``otf_event_holders``: consumer cursors, delivery
  endpoints not removed, events in ``delivery_pending``). Whole chunks on TimescaleDB where a
  chunk is wholly old and wholly passed, batched deletes for the rest. ``force`` leaves named
  readers out of the guard.

The task database stays the system of record: ``tasks``, ``task_states`` and (by default)
``task_events`` are kept, so ``otf tasks show`` reads a pruned task in full.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import psycopg

from otf_dagster.core.store import TaskStore, utcnow
from otf_dagster.core.store import retention as statements
from otf_dagster.exceptions import ConfigError, shown

DEFAULT_OLDER_THAN_DAYS = 30
DEFAULT_BATCH_SIZE = 500
MAX_DAYS = 36_500
_BEGINNING = datetime(1970, 1, 1, tzinfo=UTC)


def check_days(value: Any, option: str) -> int:
    """A whole number of days, at least 1, or one line naming the option and the value."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{option} {shown(value)} is not a whole number of days; e.g. 30")
    if value <= 0:
        raise ConfigError(
            f"{option} {value} must be at least 1 day (0 or less would remove what is "
            "happening now); e.g. 30"
        )
    if value > MAX_DAYS:
        raise ConfigError(f"{option} {value} is more than {MAX_DAYS} days; e.g. 30")
    return value


@dataclass(frozen=True)
class PruneSettings:
    older_than_days: int = DEFAULT_OLDER_THAN_DAYS
    events_older_than_days: int | None = None  # None: events are kept
    force: tuple[str, ...] = ()  # readers left out of the events guard (consumer, endpoint:ID)
    dry_run: bool = False
    batch_size: int = DEFAULT_BATCH_SIZE

    def __post_init__(self) -> None:
        check_days(self.older_than_days, "--older-than")
        if self.events_older_than_days is not None:
            check_days(self.events_older_than_days, "--events-older-than")
        if not 1 <= self.batch_size <= 10_000:
            raise ConfigError(f"batch size {self.batch_size} must be between 1 and 10000")
        object.__setattr__(self, "force", tuple(dict.fromkeys(self.force)))


@dataclass(frozen=True)
class RunRef:
    run_id: str
    finished: bool


class DagsterSide(Protocol):
    """What a prune needs of one Dagster storage (``defs/history.InstanceSide``)."""

    deployment_id: str

    def existing_partitions(self, keys: Sequence[str]) -> set[str]: ...
    def delete_partition(self, key: str) -> None: ...
    def task_runs(self, task_ids: Sequence[str]) -> dict[str, list[RunRef]]: ...
    def pool_runs(self, pool_ids: Sequence[str]) -> dict[str, list[RunRef]]: ...
    def delete_run(self, run_id: str) -> None: ...


@dataclass
class PruneReport:
    dry_run: bool
    older_than_days: int
    events_older_than_days: int | None
    dagster: bool = False  # whether a Dagster storage was pruned
    deployment_id: str | None = None
    tasks: int = 0  # tasks whose partition and runs this storage no longer holds
    partitions: int = 0
    runs: int = 0
    pools: int = 0
    pool_runs: int = 0
    still_running: list[str] = field(default_factory=list)  # kept: a run not finished
    polls: int = 0
    poll_chunks: int = 0
    events: int = 0
    event_chunks: int = 0
    events_held: int = 0  # events old enough that a reader still holds
    held_at: int | None = None  # the guard: events with seq <= it are passed by every reader
    held_back_by: str | None = None
    notes: list[str] = field(default_factory=list)
    prune_id: int | None = None

    def removed(self) -> dict[str, int]:
        return {
            "tasks": self.tasks,
            "partitions": self.partitions,
            "runs": self.runs,
            "pools": self.pools,
            "pool_runs": self.pool_runs,
            "polls": self.polls,
            "poll_chunks": self.poll_chunks,
            "events": self.events,
            "event_chunks": self.event_chunks,
        }

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def lines(self) -> list[str]:
        """What the prune did (or would do), one line each, for the CLI and the run's log."""
        verb = "would remove" if self.dry_run else "removed"
        out = []
        if self.dagster:
            out.append(
                f"dagster ({self.deployment_id}): {verb} {self.partitions} partition(s) and "
                f"{self.runs} run(s) of {self.tasks} task(s) ended more than "
                f"{self.older_than_days} days ago, {self.pool_runs} run(s) of "
                f"{self.pools} ended runner pool(s)"
            )
            if self.still_running:
                out.append(
                    f"dagster: kept {len(self.still_running)} task(s) or pool(s) with a run "
                    f"still in progress (next prune): {', '.join(self.still_running[:5])}"
                )
        else:
            out.append("dagster: not pruned (no Dagster instance)")
        out.append(
            f"task_polls: {verb} {self.polls} row(s) older than {self.older_than_days} days"
            + (f" ({self.poll_chunks} chunk(s))" if self.poll_chunks else "")
        )
        if self.events_older_than_days is None:
            out.append("task_events: kept (no --events-older-than)")
        else:
            line = (
                f"task_events: {verb} {self.events} event(s) older than "
                f"{self.events_older_than_days} days"
                + (f" ({self.event_chunks} chunk(s))" if self.event_chunks else "")
            )
            if self.held_back_by and self.events_held:
                line += (
                    f"; kept {self.events_held} after seq {self.held_at}, held back by "
                    f"{self.held_back_by} (--force-consumer {_force_name(self.held_back_by)} "
                    "to drop them)"
                )
            out.append(line)
        return out + self.notes


def _force_name(holder: str) -> str:
    """The --force-consumer argument that releases a holder ('consumer NAME', 'endpoint:ID ...')."""
    first = holder.split(" ")[0]
    return holder.split(" ")[1] if first == "consumer" else first


# --- the prune ---------------------------------------------------------------------------------


def prune(
    store: TaskStore,
    dagster: DagsterSide | None,
    settings: PruneSettings,
    *,
    source: str,
    now: datetime | None = None,
) -> PruneReport:
    """Prune once (see the module's doc); a dry run removes and writes nothing."""
    now = now or utcnow()
    report = PruneReport(
        dry_run=settings.dry_run,
        older_than_days=settings.older_than_days,
        events_older_than_days=settings.events_older_than_days,
        dagster=dagster is not None,
        deployment_id=dagster.deployment_id if dagster is not None else None,
    )
    _check_forced(store, settings.force)
    cutoff = now - timedelta(days=settings.older_than_days)
    if not settings.dry_run:
        params = {
            "source": source[:200],
            "deployment": report.deployment_id,
            "older_than_days": settings.older_than_days,
            "events_older_than_days": settings.events_older_than_days,
            "forced": list(settings.force),
        }
        report.prune_id = store.run("start a prune", lambda c: statements.start(c, params))
    try:
        if dagster is not None:
            _prune_dagster(store, dagster, "task", settings, cutoff, report)
            _prune_dagster(store, dagster, "pool", settings, cutoff, report)
        _prune_polls(store, settings, cutoff, report)
        if settings.events_older_than_days is not None:
            events_cutoff = now - timedelta(days=settings.events_older_than_days)
            _prune_events(store, settings, events_cutoff, report)
    except BaseException as exc:
        if report.prune_id is not None:
            _finish(store, report, error=f"{type(exc).__name__}: {exc}"[:500])
        raise
    if report.prune_id is not None:
        _finish(store, report, error=None)
    return report


def _progress(c: psycopg.Connection, report: PruneReport) -> None:
    """The counts so far, in the transaction of the batch that made them."""
    if report.prune_id is not None:
        statements.progress(c, report.prune_id, report.removed(), report.held_back_by)


def _finish(store: TaskStore, report: PruneReport, *, error: str | None) -> None:
    assert report.prune_id is not None
    prune_id = report.prune_id
    # a failed prune: what its committed batches wrote, not what the failed one counted
    removed = None if error else report.removed()
    store.run(
        "finish a prune",
        lambda c: statements.progress(
            c, prune_id, removed, report.held_back_by, error=error, final=True
        ),
    )


def _check_forced(store: TaskStore, force: Sequence[str]) -> None:
    if not force:
        return
    known = store.run("read the readers", statements.known_readers)
    unknown = [name for name in force if name not in known]
    if unknown:
        listed = ", ".join(known[:10]) + (" ..." if len(known) > 10 else "") or "none"
        raise ConfigError(
            f"--force-consumer {shown(unknown[0])} names no consumer or delivery endpoint "
            f"(endpoints are written endpoint:ID); known: {listed}"
        )


# --- Dagster's storage -------------------------------------------------------------------------


def _prune_dagster(
    store: TaskStore,
    dagster: DagsterSide,
    kind: str,
    settings: PruneSettings,
    cutoff: datetime,
    report: PruneReport,
) -> None:
    """One walk over the ended tasks (``kind`` "task": their runs and partitions) or runner
    pools ("pool": their runs), in batches that each commit what they removed."""
    after: tuple[datetime, str] = (_BEGINNING, "")

    def batch(c: psycopg.Connection) -> tuple[datetime, str] | None:
        rows = statements.ended_batch(
            c,
            kind,
            cutoff=cutoff,
            after=after,
            deployment=dagster.deployment_id,
            limit=settings.batch_size,
        )
        if not rows:
            return None
        keys = [r["key"] for r in rows]
        # Read under the rows' locks: every one here is ended now, and stays so until commit.
        if kind == "task":
            existing, runs = dagster.existing_partitions(keys), dagster.task_runs(keys)
        else:
            existing, runs = set(), dagster.pool_runs(keys)
        done: list[tuple[str, int, int, int]] = []
        for r in rows:
            key = r["key"]
            its = runs.get(key, [])
            if any(not run.finished for run in its):
                report.still_running.append(key if kind == "task" else f"pool {key}")
                continue
            has_partition = key in existing
            if not settings.dry_run:
                for run in its:
                    dagster.delete_run(run.run_id)
                if has_partition:
                    dagster.delete_partition(key)
            if kind == "task":
                report.tasks += 1
                report.runs += len(its)
                report.partitions += int(has_partition)
            else:
                report.pools += 1
                report.pool_runs += len(its)
            done.append((key, r["attempt"] or 0, int(has_partition), len(its)))
        if not settings.dry_run and done:
            statements.mark_pruned(c, dagster.deployment_id, kind, done)
            _progress(c, report)
        return rows[-1]["time"], rows[-1]["key"]

    what = "ended tasks" if kind == "task" else "ended runner pools"
    while (nxt := store.run(f"prune {what} from Dagster", batch)) is not None:
        after = nxt


# --- the task database -------------------------------------------------------------------------


def hypertables(store: TaskStore) -> set[str]:
    """This schema's hypertables (empty without TimescaleDB)."""
    return store.run("read the hypertables", statements.hypertables)


def _chunks_before(store: TaskStore, table: str, cutoff: datetime) -> list[dict[str, Any]]:
    return store.run(
        f"read the chunks of {table}", lambda c: statements.chunks_before(c, table, cutoff)
    )


def _prune_polls(
    store: TaskStore, settings: PruneSettings, cutoff: datetime, report: PruneReport
) -> None:
    if "task_polls" in hypertables(store):
        if not settings.dry_run:
            days = settings.older_than_days
            note = store.run(
                "set the task_polls retention policy",
                lambda c: statements.set_polls_policy(c, days),
            )
            if note:
                report.notes.append(note)
        for chunk in _chunks_before(store, "task_polls", cutoff):

            def drop(c: psycopg.Connection, chunk=chunk) -> None:
                n = statements.chunk_rows(c, chunk)["n"]
                if not settings.dry_run:
                    statements.drop_chunk(c, "task_polls", chunk)
                report.polls += n
                report.poll_chunks += 1
                if not settings.dry_run:
                    _progress(c, report)

            store.run("drop an old chunk of task_polls", drop)
        return
    if settings.dry_run:
        report.polls = store.run("count old polls", lambda c: statements.count_old_polls(c, cutoff))
        return

    def batch(c: psycopg.Connection) -> int:
        n = statements.delete_old_polls(c, cutoff, settings.batch_size)
        report.polls += n
        if n:
            _progress(c, report)
        return n

    while store.run("delete old polls", batch):
        pass


def event_holders(store: TaskStore, force: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Every reader's position over task_events, lowest first (forced ones left out)."""
    return store.run("read the readers' positions", lambda c: statements.event_holders(c, force))


def _prune_events(
    store: TaskStore, settings: PruneSettings, cutoff: datetime, report: PruneReport
) -> None:
    forced = list(settings.force)
    holders = event_holders(store, forced)
    if holders:
        report.held_at, report.held_back_by = holders[0]["held_at"], holders[0]["holder"]

    def counts() -> dict[str, Any]:
        return store.run(
            "count old events", lambda c: statements.old_event_counts(c, cutoff, forced)
        )

    before = counts()
    report.events_held = before["held"]
    if "task_events" in hypertables(store):
        for chunk in _chunks_before(store, "task_events", cutoff):

            def drop(c: psycopg.Connection, chunk=chunk) -> bool:
                held = statements.held_now(c, forced)
                top = statements.chunk_rows(c, chunk, seq=True)
                if top["top"] is not None and held is not None and top["top"] > held:
                    return False  # a reader has not passed this chunk: batches below
                if not settings.dry_run:
                    statements.drop_chunk(c, "task_events", chunk)
                report.events += top["n"]
                report.event_chunks += 1
                _progress(c, report)
                return True

            if not store.run("drop an old chunk of task_events", drop):
                break
    if settings.dry_run:
        report.events = before["removable"]
        return

    def batch(c: psycopg.Connection) -> int:
        n = statements.delete_old_events(c, cutoff, forced, settings.batch_size)
        report.events += n
        if n:
            _progress(c, report)
        return n

    while store.run("delete old events", batch):
        pass
    report.events_held = counts()["held"]


# --- what is there -----------------------------------------------------------------------------

# Each table of the history, and the column its oldest row is found by.
STATUS_TABLES = {
    "tasks": "created_at",
    "task_states": "time",
    "task_events": "time",
    "task_polls": "time",
    "delivery_pending": None,
    "history_dagster_pruned": "pruned_at",
}


def status(
    store: TaskStore,
    *,
    older_than_days: int = DEFAULT_OLDER_THAN_DAYS,
    events_older_than_days: int | None = None,
    force: Sequence[str] = (),
    deployment_id: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Sizes per table (rows, oldest row, bytes, chunks and compressed chunks on TimescaleDB),
    the readers holding events, the last prunes, and what a prune with these settings would
    remove now (a dry run of the task database's part; the number of ended tasks the Dagster
    part would visit, for ``deployment_id``, or not yet pruned from any storage)."""
    now = now or utcnow()
    settings = PruneSettings(
        older_than_days=older_than_days,
        events_older_than_days=events_older_than_days,
        force=tuple(force),
        dry_run=True,
    )
    hyper = hypertables(store)

    def tables(c: psycopg.Connection) -> list[dict[str, Any]]:
        return [
            statements.table_status(c, table, column, table in hyper)
            for table, column in STATUS_TABLES.items()
        ]

    next_prune = prune(store, None, settings, source="status", now=now)
    cutoff = now - timedelta(days=older_than_days)
    due = store.run("count ended tasks", lambda c: statements.tasks_due(c, cutoff, deployment_id))
    return {
        "tables": store.run("measure the history tables", tables),
        "holders": event_holders(store),
        "next_prune": {
            "older_than_days": older_than_days,
            "events_older_than_days": events_older_than_days,
            "deployment_id": deployment_id,
            "tasks_for_dagster": due,
            "polls": next_prune.polls,
            "poll_chunks": next_prune.poll_chunks,
            "events": next_prune.events if events_older_than_days else None,
            "events_held": next_prune.events_held if events_older_than_days else None,
            "held_back_by": next_prune.held_back_by if events_older_than_days else None,
        },
        "last_prunes": store.run("read the last prunes", statements.last_prunes),
    }
