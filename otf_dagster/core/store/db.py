"""Connections to the task database, and database errors translated in one place."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import psycopg
from psycopg import errors as pg_errors
from psycopg.rows import dict_row

from otf_dagster.config import redact
from otf_dagster.exceptions import DatabaseUnavailable, StoreError

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
            f"cannot connect to the task database at {redact(url)}: {_first_line(exc)}; "
            "check that the server runs and OTF_DATABASE_URL is right"
        ) from exc


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
