"""Handlers: what a TaskRunner polls and how a response becomes events.

One registry (``HANDLERS``), read by task type validation, the Dagster asset and the CLI, and
handed to the runner, the pool and ingest (``core`` never imports this package). A new kind of
task is one handler module plus one line here (or a YAML type on ``http.json``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from otf_dagster.exceptions import InvalidTaskType
from otf_dagster.handlers import spawn
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
from otf_dagster.vocab.tasks import TaskType


class Handlers:
    """A registry of handlers by name (``vocab.poll.HandlerRegistry``): the one the runner,
    the pool and ingest are handed."""

    def __init__(self, handlers: Iterable[Handler]) -> None:
        self.by_name: dict[str, Handler] = {h.name: h for h in handlers}

    def names(self) -> list[str]:
        return list(self.by_name)

    def get(self, name: str) -> Handler:
        try:
            return self.by_name[name]
        except (KeyError, TypeError):
            raise InvalidTaskType(
                f"unknown handler {name!r}; known handlers: {', '.join(self.by_name)}"
            ) from None

    def follow_ups(
        self, spec: Mapping[str, Any] | None, document: Any, now: datetime
    ) -> list[FollowUp]:
        return spawn.follow_ups(spec, document, now) if spec else []

    def label(self, handler: str, params: Mapping[str, Any]) -> str | None:
        label_of = getattr(self.by_name.get(handler), "label", None)  # optional for a handler
        if label_of is None or not isinstance(params, Mapping):
            return None
        label = label_of(params)
        return label[:200] if isinstance(label, str) and label else None

    def validate(self, spec: Mapping[str, Any]) -> TaskType:
        from otf_dagster.handlers import task_types

        return task_types.validate(spec)


HANDLERS = Handlers(
    (
        BoxScoreHandler("nba_cdn", "boxscore"),
        BoxScoreHandler("nba_cdn", "confirm"),
        BoxScoreHandler("espn", "boxscore"),
        BoxScoreHandler("espn", "confirm"),
        HttpJsonHandler(),
    )
)
REGISTRY = HANDLERS.by_name
get = HANDLERS.get
names = HANDLERS.names


__all__ = [
    "HANDLERS",
    "REGISTRY",
    "Event",
    "FollowUp",
    "Handler",
    "Handlers",
    "Markdown",
    "Outcome",
    "PollContext",
    "PollResult",
    "get",
    "names",
]
