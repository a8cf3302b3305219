"""Connections to the task database, and database errors translated in one place.

A connection error names the URL with its password masked (``config.redact``) and keeps
psycopg's own exception out of the chain (``from None``): libpq may quote the connection
string's parts, and Dagster stores an error's whole cause chain (sensor ticks, run failures).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import psycopg
import psycopg.sql
from psycopg import errors as pg_errors
from psycopg.rows import dict_row

from otf_dagster.config import redact
from otf_dagster.exceptions import ConfigError, DatabaseUnavailable, StoreError

CONNECT_TIMEOUT_SECONDS = 5


def connect(url: str, *, application_name: str = "otf") -> psycopg.Connection:
    """An autocommit connection with dict rows; transactions are explicit (``conn.transaction()``)."""
    try:
        return psycopg.connect(
            url,
            autocommit=True,
            row_factory=dict_row,
            connect_timeout=CONNECT_TIMEOUT_SECONDS,
            application_name=application_name,
        )
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailable(
            redact(
                f"cannot connect to the task database at {url}: {_first_line(exc)}; "
                "check that the server runs and OTF_DATABASE_URL is right",
                url,
            )
        ) from None
    except psycopg.Error as exc:  # libpq refused the connection string itself
        raise ConfigError(
            redact(
                f"the database URL {url} is malformed: {_first_line(exc)}; "
                "fix it (OTF_DATABASE_URL)",
                url,
            )
        ) from None


def listen(conn: psycopg.Connection, channel: str) -> None:
    """LISTEN on ``channel`` (a project channel name: the identifier is quoted)."""
    conn.execute(psycopg.sql.SQL("LISTEN {}").format(psycopg.sql.Identifier(channel)))


@contextlib.contextmanager
def translated_errors(what: str) -> Iterator[None]:
    """Turn psycopg's errors into the project's: unavailable (retriable) vs refused."""
    try:
        yield
    except (psycopg.OperationalError, pg_errors.AdminShutdown, psycopg.InterfaceError) as exc:
        raise DatabaseUnavailable(
            f"{what}: the task database is unavailable ({_first_line(exc)})"
        ) from exc
    except pg_errors.UndefinedTable as exc:
        raise StoreError(
            f"{what}: the schema is missing ({_first_line(exc)}); run `otf db migrate`"
        ) from exc
    except psycopg.Error as exc:
        raise StoreError(f"{what}: {_first_line(exc)}") from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
