"""Dagster resources: the task store and the feeds. Secrets come only through ``EnvVar``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
from pydantic import Field

from otf_dagster.config import libpq_url
from otf_dagster.core.pace import Pace, PacedClient
from otf_dagster.core.store import TaskStore
from otf_dagster.exceptions import ConfigError
from otf_dagster.feeds import PROVIDERS, Provider, make_provider
from otf_dagster.feeds.clients import Clients
from otf_dagster.feeds.http import FeedClient
from otf_dagster.feeds.leagues import DEFAULT_LEAGUE, League, Leagues, default_leagues, load_leagues
from otf_dagster.feeds.providers import DEFAULT_BASE_URLS, DEFAULT_NBA_PROVIDER, schedule_feed


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
    """Which feeds the daily schedule reads, and where the feeds are served.

    ``provider`` is the NBA's feed (nba_cdn or espn); every other league is ESPN's.
    ``base_url`` points every provider at one server (the simulator serves all feeds' paths);
    empty means the real feeds. ``leagues_file`` adds leagues to the packaged ones.
    """

    provider: str = Field(
        default=DEFAULT_NBA_PROVIDER,
        description="The NBA's feed: espn (default) or nba_cdn (other leagues: espn).",
    )
    base_url: str = Field(
        default="", description="Base URL for all providers; empty: the real feeds."
    )
    leagues_file: str = Field(
        default="",
        description="A YAML file adding leagues to the packaged ones (OTF_LEAGUES_FILE).",
    )
    connect_timeout: float = 3.05
    read_timeout: float = 10.0

    def league_registry(self) -> Leagues:
        return load_leagues(self.leagues_file or None)

    def provider_for(
        self, name: str | None = None, league: League | str | None = None, pace: Pace | None = None
    ) -> Provider:
        """A provider of ``name`` for ``league``; with ``pace``, every request waits for its
        slot of the backfill's pace (a past day's ingest)."""
        name = name or self.provider
        if name not in PROVIDERS:
            raise ConfigError(
                f"unknown feed provider {name!r} (OTF_FEED_PROVIDER); use one of {', '.join(PROVIDERS)}"
            )
        the_league = self.league_registry().get(league) if league is not None else None
        timeout = (self.connect_timeout, self.read_timeout)
        if pace is None:
            return make_provider(name, self.base_url or None, league=the_league, timeout=timeout)
        client = FeedClient(self.base_url or DEFAULT_BASE_URLS[name], timeout=timeout)
        return make_provider(name, client=PacedClient(client, pace), league=the_league)

    def clients(self) -> Clients:
        """HTTP clients for a runner: one session per base URL, with these timeouts."""
        return Clients(timeout=(self.connect_timeout, self.read_timeout))

    def _provider_name(self, league: League) -> str:
        return schedule_feed(self.provider, league)[0]

    def provider_for_league(self, league: League, pace: Pace | None = None) -> Provider:
        """The league's schedule feed: ``provider`` for the NBA, ESPN for the others."""
        return self.provider_for(self._provider_name(league), league, pace)

    def schedule_task_type(self, league: League | None = None) -> str:
        """The box-score task type a league's games become (the NBA's by default)."""
        return schedule_feed(self.provider, league or default_leagues().get(DEFAULT_LEAGUE))[1]
