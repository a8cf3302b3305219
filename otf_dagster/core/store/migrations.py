"""Apply the numbered migrations in order, each once, recorded.

The migrations are the project's top-level ``sql/`` folder, packaged as ``otf_dagster.sql``
(package data of the wheel, read through ``importlib.resources``), so an installed package
migrates exactly as a checkout does.

Each file is idempotent on its own and records itself (so plain ``psql -f`` works too); this
runner adds an advisory lock so two processes migrating at once take turns, and applies each
missing file in its own transaction.

After the files it always runs one re-runnable step, ``otf_timescaledb_enable()`` (sql/0008):
a database migrated while TimescaleDB was absent is converted the first time ``otf db migrate``
runs on a server that has it. What the step did (or why it did nothing) comes back as notes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable

import psycopg
from psycopg import sql

from otf_dagster.core.store.db import connect, translated_errors
from otf_dagster.core.store.queries import query
from otf_dagster.exceptions import ConfigError

_FILE_RE = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
_LOCK_KEY = 0x07F0_0001  # advisory lock id for migrations
ENABLE_STEP = "otf_timescaledb_enable"  # sql/0008: the TimescaleDB set-up, re-runnable


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Traversable

    def text(self) -> str:
        return self.path.read_text(encoding="utf-8")


def sql_folder() -> Traversable:
    """The packaged migrations (``sql/`` in a checkout)."""
    return resources.files("otf_dagster.sql")


def discover(sql_dir: Traversable | None = None) -> list[Migration]:
    sql_dir = sql_dir or sql_folder()
    if not sql_dir.is_dir():
        raise ConfigError(
            f"migrations folder {sql_dir} does not exist; reinstall the otf-dagster package"
        )
    found = []
    for path in sorted(sql_dir.iterdir(), key=lambda p: p.name):
        m = _FILE_RE.match(path.name)
        if m:
            found.append(Migration(int(m.group(1)), path.name.removesuffix(".sql"), path))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise ConfigError(f"two migrations in {sql_dir} share a number: {versions}")
    return found


def applied_versions(conn: psycopg.Connection) -> set[int]:
    exists = conn.execute("SELECT to_regclass('otf_schema_migrations') IS NOT NULL AS e").fetchone()
    if not exists["e"]:
        return set()
    return {r["version"] for r in conn.execute("SELECT version FROM otf_schema_migrations")}


def migrate(
    url: str, sql_dir: Traversable | None = None, *, on_note: Callable[[str], None] | None = None
) -> list[str]:
    """Apply what is missing, then the TimescaleDB step; return the names applied (empty when
    up to date). ``on_note`` gets each line the TimescaleDB step reported, once."""
    migrations = discover(sql_dir)
    applied: list[str] = []
    notes: list[str] = []
    with connect(url, application_name="otf-migrate") as conn, translated_errors("migrate"):
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            done = applied_versions(conn)
            for mig in migrations:
                if mig.version in done:
                    continue
                with conn.transaction():
                    # No parameters: simple protocol, many statements, one result each.
                    notes += _step_notes(conn.execute(mig.text()))
                applied.append(mig.name)
            if _has_enable_step(conn):
                with conn.transaction():
                    step = sql.SQL("SELECT * FROM {}()").format(sql.Identifier(ENABLE_STEP))
                    notes += _step_notes(conn.execute(step))
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
    if on_note is not None:
        for note in dict.fromkeys(notes):
            on_note(note)
    return applied


def _has_enable_step(conn: psycopg.Connection) -> bool:
    return conn.execute("SELECT to_regproc(%s) IS NOT NULL AS e", (ENABLE_STEP,)).fetchone()["e"]


def _step_notes(cur: psycopg.Cursor) -> list[str]:
    """The lines of every result set that the TimescaleDB step returned."""
    notes: list[str] = []
    while True:
        if cur.description and cur.description[0].name == ENABLE_STEP:
            notes += [r[ENABLE_STEP] for r in cur.fetchall()]
        if not cur.nextset():
            return notes


def status(url: str) -> dict:
    """Applied and pending migrations; TimescaleDB: available, preloaded, installed; the
    hypertables (chunks, compression), continuous aggregates and policy jobs; and notes that
    say what to do when TimescaleDB could be used but is not."""
    migrations = discover()
    with connect(url, application_name="otf-status") as conn, translated_errors("db status"):
        done = applied_versions(conn)
        rows = []
        if done:
            rows = conn.execute(query("status_migrations")).fetchall()
        info = conn.execute(query("status_timescaledb")).fetchone()
        hypertables: list[dict] = []
        aggregates: list[str] = []
        jobs: list[dict] = []
        if info["installed"] and info["preloaded"]:
            hypertables = conn.execute(query("status_hypertables")).fetchall()
            aggregates = [r["view_name"] for r in conn.execute(query("status_aggregates"))]
            jobs = conn.execute(query("status_jobs")).fetchall()
    plain = sorted(set(TIME_SERIES) - {h["hypertable_name"] for h in hypertables})
    notes = []
    if info["available"] and not info["preloaded"]:
        notes.append(
            "timescaledb is installed on this server but not preloaded, so the time series are "
            "plain tables; run ALTER SYSTEM SET shared_preload_libraries = 'timescaledb' (or add "
            "it to postgresql.conf), restart the server, then `otf db migrate`"
        )
    elif info["available"] and plain and done:
        notes.append(
            f"timescaledb is available but {', '.join(plain)} are plain tables; "
            "run `otf db migrate` to convert them (their rows are kept)"
        )
    return {
        "server_version": info["server_version"],
        "applied": rows,
        "pending": [m.name for m in migrations if m.version not in done],
        "timescaledb": info["installed"],
        "timescaledb_available": info["available"],
        "timescaledb_preloaded": info["preloaded"],
        "hypertables": hypertables,
        "continuous_aggregates": aggregates,
        "jobs": jobs,
        "notes": notes,
    }


TIME_SERIES = ("task_events", "task_polls", "task_states")
