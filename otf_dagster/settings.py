"""Every setting the project reads from the environment: its variable, its default (written here
once), how a value is checked, and what it means. The README's configuration table is checked
against :data:`SETTINGS` (``otf_dagster_tests/test_settings.py``), both ways.

A setting is read when it is needed (``CLAIM_LIMIT.read()``), never at import time: Dagster
reads them when it loads the code location (:mod:`otf_dagster.definitions`), each ``otf``
command when it runs. An empty value counts as unset. A bad value is refused in one line that
names the variable, the value and what to write instead. This module is on the bottom floor
(it imports nothing of the project's but :mod:`otf_dagster.exceptions`), so every layer may
read its settings here. Secrets (``OTF_RECEIVER_SECRET``...) are read as names here and never
shown: :func:`Setting.read` does not echo a secret's value in its refusal.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, Generic, TypeVar

from otf_dagster.exceptions import ConfigError

T = TypeVar("T")


@dataclass(frozen=True)
class Setting(Generic[T]):
    env: str
    default: T
    meaning: str
    parse: Callable[[str, str], T]  # (value, variable) -> the value, or ConfigError
    shown: str = ""  # the README's default cell when it is not the default itself, in backticks
    secret: bool = False

    def read(self, environ: Mapping[str, str] | None = None) -> T:
        raw = (os.environ if environ is None else environ).get(self.env, "").strip()
        if not raw:
            return self.default
        if self.secret:
            return raw  # type: ignore[return-value]
        return self.parse(raw, self.env)

    @property
    def default_text(self) -> str:
        if self.shown:
            return self.shown
        return f"`{self.default:g}`" if isinstance(self.default, float) else f"`{self.default}`"


# --- how values are checked ---------------------------------------------------------------------


def text(raw: str, env: str) -> str:
    return raw


def positive_int(raw: str, env: str) -> int:
    if not raw.isdigit() or int(raw) <= 0:
        raise ConfigError(f"{env}={raw!r} is not a whole number above 0; e.g. {env}=10")
    return int(raw)


def count(raw: str, env: str) -> int:
    if not raw.isdigit():
        raise ConfigError(f"{env}={raw!r} is not a whole number of 0 or more (0: none)")
    return int(raw)


def seconds(raw: str, env: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not value > 0:  # NaN fails too
        raise ConfigError(f"{env}={raw!r}: give a number of seconds above 0, e.g. {env}=30")
    return value


def choice(*allowed: str) -> Callable[[str, str], str]:
    def parse(raw: str, env: str) -> str:
        if raw not in allowed:
            raise ConfigError(f"{env}={raw!r} is not one of {', '.join(allowed)}")
        return raw

    return parse


def iso_date(raw: str, env: str) -> str:
    try:
        return date.fromisoformat(raw).isoformat()
    except ValueError:
        raise ConfigError(
            f"{env}={raw!r} is not a date; write it as YYYY-MM-DD, e.g. 2026-10-21"
        ) from None


def host_limits(raw: str, env: str) -> dict[str, int]:
    """``host=N,host=N``: a host name (any port) or ``host:port``, and a whole number above 0."""
    limits: dict[str, int] = {}
    for part in raw.split(","):
        host, sep, n = part.strip().rpartition("=")
        host, n = host.strip(), n.strip()
        if not sep or not host or not n.isdigit() or int(n) <= 0:
            raise ConfigError(
                f"{env}={raw!r}: {part.strip()!r} is not host=N; give comma-separated host=N "
                f"(N requests at a time, above 0), e.g. {env}=127.0.0.1=64,cdn.nba.com=4"
            )
        limits[host.lower()] = int(n)
    return limits


MAX_BACKFILL_RPS = 1000.0


def request_rate(raw: str, env: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not 0 < value <= MAX_BACKFILL_RPS:  # NaN fails too
        raise ConfigError(
            f"{env}={raw!r} is not a request rate; give requests per second per feed host "
            f"as a number above 0 and at most {MAX_BACKFILL_RPS:g}, e.g. 2 or 0.5"
        )
    return value


def delays(raw: str, env: str) -> tuple[float, ...]:
    try:
        values = tuple(float(part) for part in raw.split(","))
    except ValueError:
        values = ()
    if not values or any(not (d >= 0) for d in values):
        raise ConfigError(
            f"{env}={raw!r}: give comma-separated seconds >= 0, e.g. 0,5,300,1800 "
            "(the delay before each attempt, the first usually 0)"
        )
    return values


# --- the settings -------------------------------------------------------------------------------

# Where the data is.
DATABASE_URL: Setting[str | None] = Setting(
    "OTF_DATABASE_URL",
    None,
    "task database, any PostgreSQL/TimescaleDB (`postgresql://...`)",
    text,
    shown="embedded server, database `otf`",
)
DAGSTER_PG_URL: Setting[str | None] = Setting(
    "DAGSTER_PG_URL",
    None,
    "Dagster's storage, a *separate* database",
    text,
    shown="embedded server, database `otf_dagster_storage`",
)
STATE_DIR: Setting[str | None] = Setting(
    "OTF_STATE_DIR",
    None,
    "where the embedded server, Dagster home and `otf dev` logs live",
    text,
    shown="`.otf/` in the current folder",
)
TIMESCALEDB: Setting[str | None] = Setting(
    "OTF_TIMESCALEDB",
    None,
    "a TimescaleDB build folder (with `install.sh`) the embedded server installs and preloads",
    text,
    shown="none: plain PostgreSQL (`make test-timescale`: `../shared/timescaledb`)",
)

# The feeds and the leagues.
FEED_PROVIDER = Setting(
    "OTF_FEED_PROVIDER",
    "espn",
    "`espn` or `nba_cdn`: the NBA's feed (other leagues are ESPN's; `make dev` uses `nba_cdn` "
    "against the simulator)",
    choice("espn", "nba_cdn"),
)
LEAGUES: Setting[str | None] = Setting(
    "OTF_LEAGUES",
    None,
    "leagues the schedule follows: aliases (`nba,nfl,mlb`) or a YAML file with `follow:`",
    text,
    shown="`nba`",  # feeds.leagues.DEFAULT_LEAGUE, or the leagues file's `follow:`
)
LEAGUES_FILE: Setting[str | None] = Setting(
    "OTF_LEAGUES_FILE",
    None,
    "a YAML file adding leagues to `otf_dagster/defaults/leagues.yaml`",
    text,
    shown="none",
)
FEED_BASE_URL = Setting(
    "OTF_FEED_BASE_URL",
    "",
    "base URL for the feeds (the simulator serves both)",
    text,
    shown="real feeds; `make dev`: the simulator",
)
FEED_MAX_PER_HOST = Setting(
    "OTF_FEED_MAX_PER_HOST",
    8,
    "requests in flight at once to one feed host from one runner pool (polite to public feeds)",
    positive_int,
)
FEED_HOST_LIMITS: Setting[dict[str, int]] = Setting(
    "OTF_FEED_HOST_LIMITS",
    {},
    "per-host overrides of `OTF_FEED_MAX_PER_HOST`: `host=N,...` (a host, or `host:port`), "
    "e.g. `127.0.0.1=64,cdn.nba.com=4`",
    host_limits,
    shown="none",
)
FEED_MAX_BYTES = Setting(
    "OTF_FEED_MAX_BYTES",
    16 * 2**20,
    "the largest feed response a poll reads, in bytes; a larger one is refused as it streams in, "
    "never held whole in memory (the largest real feed document seen is about 1.2 MB)",
    positive_int,
    shown="`16777216` (16 MiB)",
)

# The schedule and the Task Manager.
SCHEDULE_TIMEZONE = Setting(
    "OTF_SCHEDULE_TIMEZONE",
    "America/New_York",
    "time zone of game days and of the daily schedule",
    text,
)
SCHEDULE_CRON = Setting(
    "OTF_SCHEDULE_CRON", "0 6,12,17 * * *", "when the daily schedule ingests the day", text
)
SCHEDULE_START_DATE: Setting[str | None] = Setting(
    "OTF_SCHEDULE_START_DATE",
    None,
    "first `game_schedule` partition (YYYY-MM-DD)",
    iso_date,
    shown="3 days before today",
)
SENSOR_INTERVAL_SECONDS = Setting(
    "OTF_SENSOR_INTERVAL_SECONDS", 15, "Task Manager tick interval", positive_int
)
CLAIM_LIMIT = Setting("OTF_CLAIM_LIMIT", 500, "most tasks claimed per tick", positive_int)
RUN_GRACE_SECONDS = Setting(
    "OTF_RUN_GRACE_SECONDS",
    60,
    "a claimed task whose run has not appeared after this is re-launched",
    positive_int,
)
RUNNER_MODE = Setting(
    "OTF_RUNNER_MODE",
    "run",
    "`run` (a Dagster run per task) or `pool` (runner pools) for types that do not say",
    choice("run", "pool"),
)
POOL_SIZE = Setting("OTF_POOL_SIZE", 500, "tasks one runner pool hosts at most", positive_int)
POOL_STALE_SECONDS = Setting(
    "OTF_POOL_STALE_SECONDS",
    60,
    "a pool whose heartbeat is older is lost (its tasks go to other pools)",
    positive_int,
)
DEPLOYMENT_NAME: Setting[str | None] = Setting(
    "OTF_DEPLOYMENT_NAME",
    None,
    "this deployment's name in the task database (`otf deployments`)",
    text,
    shown="the host name",
)
DEPLOYMENT_LEASE_SECONDS = Setting(
    "OTF_DEPLOYMENT_LEASE_SECONDS",
    120,
    "a deployment that has not ticked for this long may have its tasks taken over",
    positive_int,
)

# Backfills and history.
BACKFILL_RPS = Setting(
    "OTF_BACKFILL_RPS",
    2.0,
    "requests per second per feed host for backfill tasks (past games)",
    request_rate,
)
BACKFILL_MAX_STARTED = Setting(
    "OTF_BACKFILL_MAX_STARTED",
    10,
    "backfill tasks started at once at most, beside live work (0 pauses backfills)",
    count,
)
HISTORY_DAYS = Setting(
    "OTF_HISTORY_DAYS",
    30,
    "tasks ended this many days ago leave Dagster's storage (partitions, runs); poll rows are "
    "kept as long",
    positive_int,
)
EVENTS_RETENTION_DAYS = Setting(
    "OTF_EVENTS_RETENTION_DAYS",
    0,
    "events and states older than this are pruned, never past a reader's position (0: kept)",
    count,
)
HISTORY_CRON = Setting("OTF_HISTORY_CRON", "30 4 * * *", "when the history prune runs", text)

# Delivery to services.
DELIVERY_RETRY_SCHEDULE = Setting(
    "OTF_DELIVERY_RETRY_SCHEDULE",
    (0.0, 5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0),
    "seconds before each delivery attempt (Svix's schedule)",
    delays,
    shown="`0,5,300,1800,7200,18000,36000,36000`",
)
DELIVERY_TIMEOUT = Setting(
    "OTF_DELIVERY_TIMEOUT", 15.0, "seconds a webhook's answer may take", seconds
)
DELIVERY_RETRY_AFTER_CAP = Setting(
    "OTF_DELIVERY_RETRY_AFTER_CAP", 3600.0, "the longest `Retry-After` honoured (seconds)", seconds
)
DELIVERY_DISABLE_AFTER = Setting(
    "OTF_DELIVERY_DISABLE_AFTER",
    432000.0,
    "an endpoint failing this long is disabled (seconds: 5 days)",
    seconds,
)
DELIVERY_WARN_AFTER = Setting(
    "OTF_DELIVERY_WARN_AFTER",
    86400.0,
    "an endpoint failing this long shows as `warning` (seconds: 1 day)",
    seconds,
)
DELIVERY_LEASE_SECONDS = Setting(
    "OTF_DELIVERY_LEASE_SECONDS",
    30.0,
    "a relay's lease on an endpoint; another relay takes over after it",
    seconds,
)
NATS_URL: Setting[str | None] = Setting(
    "OTF_NATS_URL",
    None,
    "the NATS server of JetStream endpoints without a URL of their own",
    text,
    shown="`otf dev`: its embedded nats-server; else none",
)
API_URL: Setting[str | None] = Setting(
    "OTF_API_URL",
    None,
    "where `otf api` listens, for `otf receiver` without `--api-url`",
    text,
    shown="`otf dev`: its `otf api`; else none",
)
RECEIVER_SECRET: Setting[str | None] = Setting(
    "OTF_RECEIVER_SECRET",
    None,
    "`otf receiver`'s webhook signing secret (`whsec_...`)",
    text,
    shown="none",
    secret=True,
)
RECEIVER_TOKEN: Setting[str | None] = Setting(
    "OTF_RECEIVER_TOKEN",
    None,
    "`otf receiver`'s token for `otf api` (`otf services token create`)",
    text,
    shown="none",
    secret=True,
)

# The code server: deploy/workspace.yaml reads them (Dagster, not this package; `otf dev` and
# compose.yaml set them).
CODE_SERVER_HOST: Setting[str | None] = Setting(
    "OTF_CODE_SERVER_HOST",
    None,
    "where the webserver and the daemon find the code server",
    text,
    shown="required by `deploy/workspace.yaml`; `otf dev`: `127.0.0.1`",
)
CODE_SERVER_PORT: Setting[int | None] = Setting(
    "OTF_CODE_SERVER_PORT",
    None,
    "the code server's port",
    positive_int,
    shown="required by `deploy/workspace.yaml`; `otf dev`: a free port",
)

SETTINGS: dict[str, Setting[Any]] = {
    s.env: s for s in list(globals().values()) if isinstance(s, Setting)
}

# Variables the project sets for its own processes, not settings for users: the embedded
# server's marker and `otf dev`'s per-session webhook secret.
INTERNAL = {"OTF_EMBEDDED", "OTF_DEV_WEBHOOK_SECRET"}
