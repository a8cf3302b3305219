"""The test suite's PostgreSQL: the embedded server in its own folder, a migrated template
database, and a fresh database cloned from it for each test that wants one.

``OTF_TEST_TIMESCALEDB`` (set by ``make test-timescale``) names a TimescaleDB build: the
embedded test server then runs in a folder of its own (``.otf/test-pgdata-timescale``) with the
build installed and preloaded, and the same suite runs on hypertables.

The template is closed to connections once migrated (``ALLOW_CONNECTIONS false``), and its
TimescaleDB scheduler is stopped first: TimescaleDB starts a scheduler connected to every
database that has the extension, and ``CREATE DATABASE ... TEMPLATE`` refuses a source that
anyone is connected to. TimescaleDB's launcher starts no scheduler for a database that allows
no connections, so the clone can never race one. This works on any server, including one named
by ``OTF_TEST_ADMIN_URL``. The template's policy jobs are unscheduled (each clone inherits
that): tests run a policy when they mean to (``CALL run_job``), never by the clock.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from otf_dagster import config
from otf_dagster.core.store import migrations
from otf_dagster.local import embedded

TEMPLATE = "otf_test_template"
TIMESCALEDB_ENV = "OTF_TEST_TIMESCALEDB"
_counter = itertools.count(1)


@dataclass
class TestServer:
    admin_url: str
    owned: embedded.EmbeddedServer | None

    def url(self, database: str) -> str:
        return embedded.database_url(self.admin_url, database)

    def create_database(self, name: str, template: str | None = TEMPLATE) -> str:
        return embedded.create_database(self.admin_url, name, template)

    def drop_database(self, name: str) -> None:
        embedded.drop_database(self.admin_url, name)

    def fresh_database(self) -> tuple[str, str]:
        name = f"otf_test_{os.getpid()}_{next(_counter)}"
        return name, self.create_database(name)


def timescaledb_build() -> Path | None:
    value = os.environ.get(TIMESCALEDB_ENV)
    return Path(value).resolve() if value else None


def pgdata_folder() -> Path:
    """The embedded test server's data folder: one for plain PostgreSQL, one for TimescaleDB."""
    name = "test-pgdata-timescale" if timescaledb_build() else "test-pgdata"
    return Path(config.state_dir()) / name


def start_server() -> TestServer:
    """The server alone (no template): OTF_TEST_ADMIN_URL names an existing server's admin
    database; otherwise the embedded server starts in .otf/test-pgdata[-timescale] (separate
    from `make dev`'s)."""
    admin = os.environ.get("OTF_TEST_ADMIN_URL")
    owned = None
    if not admin:
        owned = embedded.start(pgdata_folder(), timescaledb=timescaledb_build())
        admin = owned.admin_url
    return TestServer(admin_url=admin, owned=owned)


def start_test_server() -> TestServer:
    """The server (``start_server``) with the migrated template the tests clone."""
    server = start_server()
    admin = server.admin_url
    _drop_template(admin)
    url = server.create_database(TEMPLATE, template=None)
    migrations.migrate(url)
    _seal_template(admin, url)
    return server


def _drop_template(admin_url: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (TEMPLATE,)).fetchone():
            conn.execute(
                sql.SQL("ALTER DATABASE {} WITH IS_TEMPLATE false").format(sql.Identifier(TEMPLATE))
            )
    embedded.drop_database(admin_url, TEMPLATE)


def _seal_template(admin_url: str, url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'").fetchone():
            # Ids from 1000 are the database's own policies and jobs (below: TimescaleDB's).
            conn.execute(
                "SELECT alter_job(job_id, scheduled => false) FROM timescaledb_information.jobs"
                " WHERE job_id >= 1000"
            )
            conn.execute("SELECT _timescaledb_functions.stop_background_workers()")
    ident = sql.Identifier(TEMPLATE)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("ALTER DATABASE {} WITH IS_TEMPLATE true ALLOW_CONNECTIONS false").format(ident)
        )
        # A scheduler the launcher started in between cannot reconnect once it is gone.
        conn.execute(
            "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE datname = %s",
            (TEMPLATE,),
        )
        left = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (TEMPLATE,)
        ).fetchone()[0]
    if left:
        raise RuntimeError(
            f"{left} session(s) still connected to {TEMPLATE}; stop them (they would make "
            "every CREATE DATABASE ... TEMPLATE fail) and run the tests again"
        )
