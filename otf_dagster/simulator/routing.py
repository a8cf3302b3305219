"""What the simulator's feeds (``simulator/feeds/``) share with its server: a request as a feed
sees it, a response, and a route built from a feed's own path template.

A feed module owns its routes and its rendering; it exposes ``ROUTES``, ``match(path)`` (the
handler that serves ``path``, or None when the path is not the feed's) and ``not_found()``
(its own 404, for the ``not_found`` fault). The server loops over the feeds.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from otf_dagster.simulator.server import Simulator


@dataclass
class Response:
    status: int
    body: bytes
    content_type: str = "application/json; charset=utf-8"
    headers: dict[str, str] | None = None


def json_response(status: int, doc: Any) -> Response:
    return Response(status, json.dumps(doc, separators=(",", ":")).encode())


def no_such_path(path: str) -> Response:
    """The simulator's own 404, for a path no feed serves."""
    return json_response(404, {"code": 404, "message": f"no such path {path!r} in the simulator"})


@dataclass(frozen=True)
class Request:
    """One GET as a feed's handler sees it."""

    sim: Simulator
    path: str
    target: str  # path and query, as asked
    query: dict[str, list[str]]
    headers: dict[str, str]  # names lower-cased
    now: float


Handler = Callable[[Request], Response]


@dataclass(frozen=True)
class Route:
    """A feed's path template (``otf_dagster.feeds``) served by ``serve(request, **fields)``:
    each ``{name}`` of the template matches the regular expression ``fields[name]``."""

    template: str
    serve: Callable[..., Response]
    fields: dict[str, str] = field(default_factory=dict)
    pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        pattern = re.escape(self.template)
        for name, group in self.fields.items():
            pattern = pattern.replace(re.escape("{" + name + "}"), f"(?P<{name}>{group})")
        object.__setattr__(self, "pattern", re.compile(f"^{pattern}$"))

    def match(self, path: str) -> Handler | None:
        m = self.pattern.match(path)
        return partial(self.serve, **m.groupdict()) if m else None


def first_match(routes: tuple[Route, ...], path: str) -> Handler | None:
    for route in routes:
        handler = route.match(path)
        if handler is not None:
            return handler
    return None
