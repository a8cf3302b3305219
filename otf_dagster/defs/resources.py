"""Dagster resources: the task store and the feeds. Secrets come only through ``EnvVar``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
from pydantic import Field

from otf_dagster.config import libpq_url
from otf_dagster.core.store import TaskStore
from otf_dagster.exceptions import ConfigError
from otf_dagster.feeds import PROVIDERS, Provider, make_provider
from otf_dagster.handlers.clients import Clients


class TaskStoreResource(dg.ConfigurableResource):
    """The task database (not Dagster's storage: a separate database)."""

    database_url: str = Field(
        description="postgresql:// URL of the task database (OTF_DATABASE_URL)."
    )

    def url(self) -> str:
        """The task database's libpq URL."""
        if not self.database_url:
            raise ConfigError("OTF_DATABASE_URL is empty; set it to the task database's URL")
        return libpq_url(self.database_url)

    @contextmanager
    def open(self, application_name: str = "otf-dagster") -> Iterator[TaskStore]:
        store = TaskStore(self.url(), application_name=application_name)
        try:
            yield store
        finally:
            store.close()


class FeedResource(dg.ConfigurableResource):
    """Which feed the daily schedule reads, and where the feeds are served.

    ``base_url`` points every provider at one server (the simulator serves both feeds' paths);
    empty means the real feeds.
    """

    provider: str = Field(default="nba_cdn", description="Schedule provider: nba_cdn or espn.")
    base_url: str = Field(
        default="", description="Base URL for all providers; empty: the real feeds."
    )
    connect_timeout: float = 3.05
    read_timeout: float = 10.0

    def provider_for(self, name: str | None = None) -> Provider:
        name = name or self.provider
        if name not in PROVIDERS:
            raise ConfigError(
                f"unknown feed provider {name!r} (OTF_FEED_PROVIDER); use one of {', '.join(PROVIDERS)}"
            )
        return make_provider(
            name, self.base_url or None, timeout=(self.connect_timeout, self.read_timeout)
        )

    def clients(self) -> Clients:
        """HTTP clients for a runner: one session per base URL, with these timeouts."""
        return Clients(timeout=(self.connect_timeout, self.read_timeout))

    def schedule_task_type(self) -> str:
        return {"nba_cdn": "NBA_GAME_BOXSCORE", "espn": "ESPN_GAME_BOXSCORE"}[self.provider]
