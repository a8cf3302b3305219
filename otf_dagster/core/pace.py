"""The backfill's pace: at most ``OTF_BACKFILL_RPS`` requests per second to each feed host,
across every process and deployment sharing the task database.

Each backfill request reserves the host's next slot in one statement (``backfill_pace``,
sql/0015: the slot is the later of the host's next free time and now, and the next free time
moves one gap on) and waits for it. The database is the one place every runner, pool and
ingest already share, so the bound holds however many run processes a backfill starts. A
runner does not sleep for its slot inside a poll: it gives the wait back as the delay before
the poll (``TaskRunner.poll``), so a pool's worker threads keep serving live tasks meanwhile.
An ingest (a past day's schedule, one request per day and league) sleeps for its slot.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from otf_dagster import settings
from otf_dagster.core.store import TaskStore
from otf_dagster.feeds.clients import Wrapped

RPS_ENV = settings.BACKFILL_RPS.env
DEFAULT_RPS = settings.BACKFILL_RPS.default
MAX_RPS = settings.MAX_BACKFILL_RPS
# A slot this close counts as now (a reservation's own round trip is longer).
NOW_SECONDS = 0.005


def configured_rps(environ: Mapping[str, str] | None = None) -> float:
    """OTF_BACKFILL_RPS (requests per second per host for backfill work), checked."""
    return settings.BACKFILL_RPS.read(environ)


def host_of(url: str) -> str:
    return urlsplit(url).netloc or url[:255]


class Pace:
    """Reservations of one rate (requests per second per host) in the task database.

    ``clock`` (None: the database's clock) gives the time a reservation counts from, so a
    test can check the spacing on a fake clock; every process sharing a pace must share
    its clock, which in production is the database's."""

    def __init__(
        self, store: TaskStore, rps: float, clock: Callable[[], datetime] | None = None
    ) -> None:
        self.store = store
        self.rps = rps
        self.gap = 1.0 / rps
        self.clock = clock

    def reserve(self, url: str) -> float:
        """Reserve the next slot of ``url``'s host: seconds to wait for it (0: go now)."""
        now = self.clock() if self.clock is not None else None
        wait = self.store.reserve_pace_slot(host_of(url), self.gap, now)
        return 0.0 if wait <= NOW_SECONDS else wait


class PacedClient(Wrapped):
    """A feed client whose every request first waits for its host's next backfill slot (for
    code that may block: an ingest's run or the ``otf backfill`` command)."""

    def __init__(
        self, client: Any, pace: Pace, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        super().__init__(client)
        self.pace = pace
        self.sleep = sleep
        self.waited = 0.0  # seconds spent waiting for slots, for the caller to report

    def get_json(
        self,
        url_or_path: str,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        wait = self.pace.reserve(self.client.url_for(url_or_path, params))
        if wait:
            self.waited += wait
            self.sleep(wait)
        return self.client.get_json(url_or_path, params, headers=headers)
