"""Apply the numbered migrations in order, each once, recorded.

The migrations are the project's top-level ``sql/`` folder, packaged as ``otf_dagster.sql``
(package data of the wheel, read through ``importlib.resources``), so an installed package
migrates exactly as a checkout does.

Each file is idempotent on its own and records itself (so plain ``psql -f`` works too); this
runner adds an advisory lock so two processes migrating at once take turns, and applies each
missing file in its own transaction.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable

import psycopg

from otf_dagster.core.store.db import connect, translated_errors
from otf_dagster.exceptions import ConfigError

_FILE_RE = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
_LOCK_KEY = 0x07F0_0001  # advisory lock id for migrations


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


def migrate(url: str, sql_dir: Traversable | None = None) -> list[str]:
    """Apply what is missing; return the names applied (empty when up to date)."""
    migrations = discover(sql_dir)
    applied: list[str] = []
    with connect(url, application_name="otf-migrate") as conn, translated_errors("migrate"):
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            done = applied_versions(conn)
            for mig in migrations:
                if mig.version in done:
                    continue
                with conn.transaction():
                    conn.execute(mig.text())  # no parameters: simple protocol, many statements
                applied.append(mig.name)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
    return applied


def status(url: str) -> dict:
    """Applied migrations, pending ones, TimescaleDB presence, hypertables."""
    migrations = discover()
    with connect(url, application_name="otf-status") as conn, translated_errors("db status"):
        done = applied_versions(conn)
        rows = []
        if done:
            rows = conn.execute(
                "SELECT version, name, applied_at FROM otf_schema_migrations ORDER BY version"
            ).fetchall()
        ext = conn.execute(
            "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'"
        ).fetchone()
        available = conn.execute(
            "SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'"
        ).fetchone()
        hypertables: list[str] = []
        if ext:
            hypertables = [
                r["hypertable_name"]
                for r in conn.execute(
                    "SELECT hypertable_name FROM timescaledb_information.hypertables ORDER BY 1"
                )
            ]
        server = conn.execute("SHOW server_version").fetchone()["server_version"]
    return {
        "server_version": server,
        "applied": rows,
        "pending": [m.name for m in migrations if m.version not in done],
        "timescaledb": ext["extversion"] if ext else None,
        "timescaledb_available": bool(available),
        "hypertables": hypertables,
    }
