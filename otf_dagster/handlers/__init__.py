"""Handlers: what a TaskRunner polls and how a response becomes events.

One registry, read by task type validation, the runner, the Dagster asset and the CLI. A new
kind of task is one handler module plus one line here (or a YAML type on ``http.json``).
"""

from __future__ import annotations

from otf_dagster.exceptions import InvalidTaskType
from otf_dagster.handlers.base import (
    Event,
    FollowUp,
    Handler,
    Markdown,
    Outcome,
    PollContext,
    PollResult,
)
from otf_dagster.handlers.boxscore import BoxScoreHandler
from otf_dagster.handlers.http_json import HttpJsonHandler

REGISTRY: dict[str, Handler] = {
    h.name: h
    for h in (
        BoxScoreHandler("nba_cdn", "boxscore"),
        BoxScoreHandler("nba_cdn", "confirm"),
        BoxScoreHandler("espn", "boxscore"),
        BoxScoreHandler("espn", "confirm"),
        HttpJsonHandler(),
    )
}


def names() -> list[str]:
    return list(REGISTRY)


def get(name: str) -> Handler:
    """The handler called ``name``; InvalidTaskType listing the known ones otherwise."""
    try:
        return REGISTRY[name]
    except (KeyError, TypeError):
        raise InvalidTaskType(
            f"unknown handler {name!r}; known handlers: {', '.join(REGISTRY)}"
        ) from None


__all__ = [
    "REGISTRY",
    "Event",
    "FollowUp",
    "Handler",
    "Markdown",
    "Outcome",
    "PollContext",
    "PollResult",
    "get",
    "names",
]
