"""Live game feeds: typed models, two providers (NBA CDN, ESPN), HTTP client, event derivation.

No Dagster and no database here: the runners call ``make_provider(...).boxscore(id)`` and
``derive_events(previous, new)``.
"""

from __future__ import annotations

from otf_dagster.feeds.derive import apply_events, derive_events, empty_like
from otf_dagster.feeds.http import FeedClient
from otf_dagster.feeds.models import (
    BoxScore,
    GameEvent,
    GameStatus,
    PlayerLine,
    ScheduleEntry,
    TeamLine,
)
from otf_dagster.feeds.providers import PROVIDERS, Provider, make_provider

__all__ = [
    "PROVIDERS",
    "BoxScore",
    "FeedClient",
    "GameEvent",
    "GameStatus",
    "PlayerLine",
    "Provider",
    "ScheduleEntry",
    "TeamLine",
    "apply_events",
    "derive_events",
    "empty_like",
    "make_provider",
]
