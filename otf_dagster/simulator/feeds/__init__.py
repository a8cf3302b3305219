"""The simulator's feeds, one module each: what it serves of one real feed (its routes, built
from the feed's own path templates in ``otf_dagster.feeds``, its documents, its errors).

Each exposes ``ROUTES``, ``match(path) -> handler | None`` and ``not_found(path)``; the server
(``simulator/server.py``) asks them in turn. No two feeds serve the same path
(``test_simulator_feeds``).
"""

from __future__ import annotations

from types import ModuleType

from otf_dagster.simulator.feeds import demo, espn, nba_cdn
from otf_dagster.simulator.routing import Handler

FEEDS: tuple[ModuleType, ...] = (nba_cdn, espn, demo)


def route(path: str) -> tuple[ModuleType, Handler] | None:
    """The feed that serves ``path`` and its handler (None: no feed's path)."""
    for feed in FEEDS:
        handler = feed.match(path)
        if handler is not None:
            return feed, handler
    return None
