"""What each task type handler polls: handler name -> (provider, mode). No Dagster.

``<provider>.boxscore`` polls until the game is final; ``<provider>.confirm`` makes one poll of a
final game some minutes later and reports what the feed corrected. The task type's
``url_template`` names the feed path the provider polls for the key (shown in the UI and in
messages); the provider adapter owns the request details (e.g. NBA's pre-game 403 fallback to
the scoreboard), so one handler serves any base URL, the real feed's or the simulator's.
"""

from __future__ import annotations

from dataclasses import dataclass

from otf_dagster.core.task_types import HANDLERS
from otf_dagster.exceptions import ConfigError


@dataclass(frozen=True)
class Handler:
    name: str
    provider: str
    mode: str  # "boxscore" | "confirm"


def handler_for(name: str) -> Handler:
    if name not in HANDLERS:
        raise ConfigError(f"unknown handler {name!r}; known handlers: {', '.join(HANDLERS)}")
    provider, _, mode = name.partition(".")
    return Handler(name=name, provider=provider, mode=mode)
