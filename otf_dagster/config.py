"""Where the databases are: read from the environment when asked, never at import time.

- ``OTF_DATABASE_URL``: the task database (any PostgreSQL or TimescaleDB server).
- ``DAGSTER_PG_URL``: Dagster's own storage, a separate database (Dagster's tables would clash).
- ``OTF_STATE_DIR``: where the embedded server and Dagster home live (default ``./.otf``, in
  the folder the command runs from, as ``make dev`` does from the checkout; an installed
  package has no checkout to point at).

Plain ``postgresql://`` URLs are accepted everywhere; :func:`dagster_storage_url` adds the
psycopg2 driver Dagster needs (with psycopg 3 installed, SQLAlchemy would otherwise pick it).
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

from otf_dagster.exceptions import ConfigError

TASK_DB_ENV = "OTF_DATABASE_URL"
DAGSTER_DB_ENV = "DAGSTER_PG_URL"
STATE_DIR_ENV = "OTF_STATE_DIR"

TASK_DB_NAME = "otf"
DAGSTER_DB_NAME = "otf_dagster_storage"


def state_dir() -> Path:
    return Path(os.environ.get(STATE_DIR_ENV) or Path.cwd() / ".otf").resolve()


def check_url(url: str, setting: str) -> str:
    """Refuse a URL that is plainly not PostgreSQL, naming the setting (never the password)."""
    scheme = urlsplit(url).scheme
    if not scheme.startswith("postgres"):
        raise ConfigError(
            f"{setting} must be a postgresql:// URL, got scheme {scheme or '(none)'!r}; "
            "set it to e.g. postgresql://user@127.0.0.1:5432/otf"
        )
    return url


def libpq_url(url: str) -> str:
    """The URL as psycopg 3 / libpq want it: no SQLAlchemy driver suffix."""
    scheme, sep, rest = url.partition("://")
    return "postgresql://" + rest if sep and scheme.startswith("postgres") else url


def dagster_storage_url(url: str) -> str:
    """The URL as dagster-postgres wants it: the psycopg2 driver spelled out."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    return "postgresql+psycopg2://" + rest


def task_database_url(required: bool = True) -> str | None:
    url = os.environ.get(TASK_DB_ENV)
    if not url:
        if required:
            raise ConfigError(
                f"{TASK_DB_ENV} is not set; run `eval $(otf env)` to use the embedded server "
                "or export it with your server's URL"
            )
        return None
    return libpq_url(check_url(url, TASK_DB_ENV))


def redact(url: str) -> str:
    """The URL with its password replaced, for messages and logs."""
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return parts._replace(netloc=netloc).geturl()
    return url
