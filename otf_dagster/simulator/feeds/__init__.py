"""The simulator's feeds, one module each: what it serves of one real feed (its routes, built
from the feed's own path templates in ``otf_dagster.feeds``, its documents, its errors).

Each exposes ``ROUTES``, ``match(path) -> handler | None`` and ``not_found(path)``; the server
(``simulator/server.py``) asks them in turn. No two feeds serve the same path
(``test_simulator_feeds``).
"""

from __future__ import annotations

from otf_dagster.simulator.feeds import demo, nba_cdn

FEEDS = (nba_cdn, demo)
