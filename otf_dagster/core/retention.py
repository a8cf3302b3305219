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
from psycopg import sql
from psycopg.types.json import Jsonb

from otf_dagster.core.store import TaskStore, query, utcnow
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
        report.prune_id = store.run(
            "start a prune",
            lambda c: c.execute(
                query("history_prune_start"),
                {
                    "source": source[:200],
                    "deployment": report.deployment_id,
                    "older_than_days": settings.older_than_days,
                    "events_older_than_days": settings.events_older_than_days,
                    "forced": list(settings.force),
                },
            ).fetchone()["prune_id"],
        )
    try:
        if dagster is not None:
            _prune_tasks(store, dagster, settings, cutoff, report)
            _prune_pools(store, dagster, settings, cutoff, report)
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
        c.execute(
            query("history_prune_progress"),
            {
                "prune_id": report.prune_id,
                "removed": Jsonb(report.removed()),
                "held_back_by": report.held_back_by,
            },
        )


def _finish(store: TaskStore, report: PruneReport, *, error: str | None) -> None:
    store.run(
        "finish a prune",
        lambda c: c.execute(
            query("history_prune_finish"),
            {
                "prune_id": report.prune_id,
                # a failed prune: what its committed batches wrote, not what the failed one counted
                "removed": None if error else Jsonb(report.removed()),
                "held_back_by": report.held_back_by,
                "error": error,
            },
        ),
    )


def _check_forced(store: TaskStore, force: Sequence[str]) -> None:
    if not force:
        return
    known = [r["name"] for r in store.fetch_all("read the readers", "history_known_readers")]
    unknown = [name for name in force if name not in known]
    if unknown:
        listed = ", ".join(known[:10]) + (" ..." if len(known) > 10 else "") or "none"
        raise ConfigError(
            f"--force-consumer {shown(unknown[0])} names no consumer or delivery endpoint "
            f"(endpoints are written endpoint:ID); known: {listed}"
        )


# --- Dagster's storage -------------------------------------------------------------------------


def _prune_tasks(
    store: TaskStore, dagster: DagsterSide, settings: PruneSettings, cutoff: datetime, report
) -> None:
    after: tuple[datetime, str] = (_BEGINNING, "")

    def batch(c: psycopg.Connection) -> tuple[datetime, str] | None:
        rows = c.execute(
            query("history_task_batch"),
            {
                "cutoff": cutoff,
                "after_time": after[0],
                "after_id": after[1],
                "deployment": dagster.deployment_id,
                "limit": settings.batch_size,
            },
        ).fetchall()
        if not rows:
            return None
        ids = [r["task_id"] for r in rows]
        # Read under the rows' locks: every task here is ended now, and stays so until commit.
        existing = dagster.existing_partitions(ids)
        runs = dagster.task_runs(ids)
        done: list[tuple[str, int, int, int]] = []
        for r in rows:
            task_id = r["task_id"]
            its = runs.get(task_id, [])
            if any(not run.finished for run in its):
                report.still_running.append(task_id)
                continue
            has_partition = task_id in existing
            if not settings.dry_run:
                for run in its:
                    dagster.delete_run(run.run_id)
                if has_partition:
                    dagster.delete_partition(task_id)
            report.tasks += 1
            report.runs += len(its)
            report.partitions += int(has_partition)
            done.append((task_id, r["attempt"], int(has_partition), len(its)))
        if not settings.dry_run and done:
            _mark(c, dagster.deployment_id, "task", done)
            _progress(c, report)
        return rows[-1]["finished_at"], rows[-1]["task_id"]

    while (nxt := store.run("prune ended tasks from Dagster", batch)) is not None:
        after = nxt


def _prune_pools(
    store: TaskStore, dagster: DagsterSide, settings: PruneSettings, cutoff: datetime, report
) -> None:
    after: tuple[datetime, str] = (_BEGINNING, "")

    def batch(c: psycopg.Connection) -> tuple[datetime, str] | None:
        rows = c.execute(
            query("history_pool_batch"),
            {
                "cutoff": cutoff,
                "after_time": after[0],
                "after_id": after[1],
                "deployment": dagster.deployment_id,
                "limit": settings.batch_size,
            },
        ).fetchall()
        if not rows:
            return None
        runs = dagster.pool_runs([r["pool_id"] for r in rows])
        done: list[tuple[str, int, int, int]] = []
        for r in rows:
            its = runs.get(r["pool_id"], [])
            if any(not run.finished for run in its):
                report.still_running.append(f"pool {r['pool_id']}")
                continue
            if not settings.dry_run:
                for run in its:
                    dagster.delete_run(run.run_id)
            report.pools += 1
            report.pool_runs += len(its)
            done.append((r["pool_id"], 0, 0, len(its)))
        if not settings.dry_run and done:
            _mark(c, dagster.deployment_id, "pool", done)
            _progress(c, report)
        return rows[-1]["ended_at"], rows[-1]["pool_id"]

    while (nxt := store.run("prune ended runner pools from Dagster", batch)) is not None:
        after = nxt


def _mark(
    c: psycopg.Connection, deployment: str, kind: str, done: list[tuple[str, int, int, int]]
) -> None:
    keys, attempts, partitions, runs = (list(x) for x in zip(*done, strict=True))
    c.execute(
        query("history_mark_pruned"),
        {
            "deployment": deployment,
            "kind": kind,
            "keys": keys,
            "attempts": attempts,
            "partitions": partitions,
            "runs": runs,
        },
    )


# --- the task database -------------------------------------------------------------------------


def hypertables(store: TaskStore) -> set[str]:
    """This schema's hypertables (empty without TimescaleDB)."""

    def work(c: psycopg.Connection) -> set[str]:
        if not c.execute(query("history_timescaledb")).fetchone()["installed"]:
            return set()
        return {r["hypertable_name"] for r in c.execute(query("history_hypertables"))}

    return store.run("read the hypertables", work)


def _chunks_before(store: TaskStore, table: str, cutoff: datetime) -> list[dict[str, Any]]:
    return store.fetch_all(
        f"read the chunks of {table}", "history_chunks_before", {"table": table, "cutoff": cutoff}
    )


def _count(c: psycopg.Connection, relation: str) -> int:
    schema, _, name = relation.partition(".")
    return c.execute(
        sql.SQL("SELECT count(*) AS n FROM {}").format(sql.Identifier(schema, name))
    ).fetchone()["n"]


def _drop_chunk(c: psycopg.Connection, table: str, chunk: dict[str, Any]) -> None:
    c.execute(
        query("history_drop_chunk"),
        {"table": table, "range_start": chunk["range_start"], "range_end": chunk["range_end"]},
    )


def _prune_polls(store: TaskStore, settings: PruneSettings, cutoff: datetime, report) -> None:
    if "task_polls" in hypertables(store):
        if not settings.dry_run:
            _set_polls_policy(store, settings.older_than_days, report)
        for chunk in _chunks_before(store, "task_polls", cutoff):

            def drop(c: psycopg.Connection, chunk=chunk) -> None:
                n = _count(c, chunk["chunk"])
                if not settings.dry_run:
                    _drop_chunk(c, "task_polls", chunk)
                report.polls += n
                report.poll_chunks += 1
                if not settings.dry_run:
                    _progress(c, report)

            store.run("drop an old chunk of task_polls", drop)
        return
    if settings.dry_run:
        report.polls = store.fetch_all(
            "count old polls", "history_polls_count", {"cutoff": cutoff}
        )[0]["rows"]
        return

    def batch(c: psycopg.Connection) -> int:
        n = c.execute(
            query("history_polls_delete_batch"), {"cutoff": cutoff, "limit": settings.batch_size}
        ).rowcount
        report.polls += n
        if n:
            _progress(c, report)
        return n

    while store.run("delete old polls", batch):
        pass


def _set_polls_policy(store: TaskStore, days: int, report: PruneReport) -> None:
    """TimescaleDB drops task_polls chunks older than the prune's age between prunes too."""
    wanted = f"{days} days" if days != 1 else "1 day"

    def work(c: psycopg.Connection) -> str | None:
        row = c.execute(query("history_polls_policy")).fetchone()
        if row is None:
            c.execute(query("history_polls_policy_add"), {"days": days})
            return f"task_polls: retention policy added ({wanted})"
        if row["drop_after"] != wanted:
            c.execute(query("history_polls_policy_set"), {"job_id": row["job_id"], "days": wanted})
            return f"task_polls: retention policy {row['drop_after']} -> {wanted}"
        return None

    note = store.run("set the task_polls retention policy", work)
    if note:
        report.notes.append(note)


def event_holders(store: TaskStore, force: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Every reader's position over task_events, lowest first (forced ones left out)."""
    return store.fetch_all(
        "read the readers' positions", "history_event_holders", {"forced": list(force)}
    )


def _prune_events(store: TaskStore, settings: PruneSettings, cutoff: datetime, report) -> None:
    forced = list(settings.force)
    holders = event_holders(store, forced)
    if holders:
        report.held_at, report.held_back_by = holders[0]["held_at"], holders[0]["holder"]
    counts = store.fetch_all(
        "count old events", "history_events_counts", {"cutoff": cutoff, "forced": forced}
    )[0]
    report.events_held = counts["held"]
    if "task_events" in hypertables(store):
        for chunk in _chunks_before(store, "task_events", cutoff):

            def drop(c: psycopg.Connection, chunk=chunk) -> bool:
                guard = c.execute(query("history_events_guard_now"), {"forced": forced}).fetchone()
                schema, _, name = chunk["chunk"].partition(".")
                top = c.execute(
                    sql.SQL("SELECT max(seq) AS top, count(*) AS n FROM {}").format(
                        sql.Identifier(schema, name)
                    )
                ).fetchone()
                held = guard["held_at"]
                if top["top"] is not None and held is not None and top["top"] > held:
                    return False  # a reader has not passed this chunk: batches below
                if not settings.dry_run:
                    _drop_chunk(c, "task_events", chunk)
                report.events += top["n"]
                report.event_chunks += 1
                _progress(c, report)
                return True

            if not store.run("drop an old chunk of task_events", drop):
                break
    if settings.dry_run:
        report.events = counts["removable"]
        return

    def batch(c: psycopg.Connection) -> int:
        n = c.execute(
            query("history_events_delete_batch"),
            {"cutoff": cutoff, "forced": forced, "limit": settings.batch_size},
        ).rowcount
        report.events += n
        if n:
            _progress(c, report)
        return n

    while store.run("delete old events", batch):
        pass
    report.events_held = store.fetch_all(
        "count old events", "history_events_counts", {"cutoff": cutoff, "forced": forced}
    )[0]["held"]


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
        out = []
        for table, column in STATUS_TABLES.items():
            ident = sql.Identifier(table)
            if column is None:
                row = c.execute(
                    sql.SQL("SELECT count(*) AS rows, NULL::timestamptz AS oldest FROM {}").format(
                        ident
                    )
                ).fetchone()
            else:
                row = c.execute(
                    sql.SQL("SELECT count(*) AS rows, min({}) AS oldest FROM {}").format(
                        sql.Identifier(column), ident
                    )
                ).fetchone()
            name = "history_table_size_hyper" if table in hyper else "history_table_size_plain"
            size = c.execute(query(name), {"table": table}).fetchone()
            out.append({"table": table, "hypertable": table in hyper, **row, **size})
        return out

    next_prune = prune(store, None, settings, source="status", now=now)
    due = store.fetch_all(
        "count ended tasks",
        "history_tasks_due",
        {"cutoff": now - timedelta(days=older_than_days), "deployment": deployment_id},
    )[0]["tasks"]
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
        "last_prunes": store.fetch_all("read the last prunes", "history_last_prunes", {"limit": 3}),
    }
