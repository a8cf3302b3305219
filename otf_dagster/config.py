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
import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

from otf_dagster import settings
from otf_dagster.exceptions import ConfigError

TASK_DB_ENV = settings.DATABASE_URL.env
DAGSTER_DB_ENV = settings.DAGSTER_PG_URL.env
STATE_DIR_ENV = settings.STATE_DIR.env

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


REDACTED = "***"

# ``password=VALUE`` wherever a connection string can carry it: a URL's query
# (``...&password=pw``), a libpq key=value DSN (``password=pw`` or ``password='p w'``), libpq's
# environment form (``PGPASSWORD=pw``), and percent-encoded (``password%3Dpw``) when a URL sits
# inside another. An unquoted value ends at whitespace, ``&`` or ``#``: cutting too much is safe.
_KEYWORD = re.compile(
    r"(?i)((?:(?<![a-z])|(?<=%[0-9a-f]{2}))(?:pg)?password\s*(?:=|%3D)\s*)('(?:\\.|[^'\\])*'?|[^\s&#]*)"
)
# ``scheme://user:pw@host``, plain or percent-encoded, up to the token's last ``@``.
_USERINFO = re.compile(r"(?i)([a-z][a-z0-9+.-]*://[^\s/?#@:]*:)(\S+)(@)")
_USERINFO_ENCODED = re.compile(r"(?i)(%3A%2F%2F(?:[^\s/?#@%]|%(?!3A)[0-9A-F]{2})*%3A)(\S+)(%40)")


def redact(text: str, *sources: str) -> str:
    """``text`` with every password it shows replaced by ``***``, for messages and logs.

    Masks each form a connection string takes (URL userinfo, ``password=`` in a query or a
    key=value DSN, percent-encoded forms), and also, anywhere in ``text``, the passwords that
    the connection strings in ``text`` and ``sources`` carry, raw or decoded: libpq's own
    errors may quote one without any keyword (``invalid percent-encoded token: "..."``).
    """
    secrets = {s for source in (text, *sources) for s in _secrets(source)}
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    text = _KEYWORD.sub(lambda m: m.group(1) + REDACTED, text)
    text = _USERINFO.sub(lambda m: m.group(1) + REDACTED + m.group(3), text)
    return _USERINFO_ENCODED.sub(lambda m: m.group(1) + REDACTED + m.group(3), text)


def _secrets(source: str) -> set[str]:
    """The passwords a URL or DSN carries, as written and as libpq decodes them."""
    found = [m.group(2) for m in _KEYWORD.finditer(source)]
    found += [m.group(2) for m in _USERINFO.finditer(source)]
    found += [m.group(2) for m in _USERINFO_ENCODED.finditer(source)]
    out: set[str] = set()
    for raw in found:
        if raw.startswith("'"):
            raw = re.sub(r"\\(.)", r"\1", raw.strip("'"))
        for form in (raw, unquote(raw), unquote(unquote(raw))):
            if form and form != REDACTED:
                out.add(form)
    return out
