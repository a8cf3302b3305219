"""``http.json``: any JSON endpoint, declared in YAML rather than coded.

A type on this handler polls its URL and reads the response with JMESPath expressions in its
params:

- ``done_when`` (required): the task is done when it holds (JMESPath truth);
- ``fail_when`` (optional): the task fails when it holds (checked first);
- ``track`` (optional, name -> expression): each change of a tracked value between polls is
  one event of kind ``changed`` with ``name``, ``old`` and ``new`` (the first poll records the
  initial values with ``old: null``); the events of one poll come in name order;
- ``headers`` (optional, name -> value): request headers; ``${VAR}`` in a value is read from
  the runner's environment at each poll, so secrets stay in the environment, never stored
  or logged. A header that looks like a credential must use ``${VAR}``.

Every expression is compiled when the type is applied, and refused with the field, the
expression and the parser's message.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from otf_dagster.exceptions import InvalidTaskType
from otf_dagster.handlers.base import Event, Outcome, PollContext, PollResult
from otf_dagster.handlers.expressions import compile_checked, search, storable, truthy
from otf_dagster.handlers.headers import check_header, expand_headers
from otf_dagster.vocab.tasks import TaskType

PARAMS = ("done_when", "fail_when", "track", "headers")
CHANGED = "changed"
_TRACK_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,62}$")
MAX_TRACKED = 100


class HttpJsonHandler:
    name = "http.json"
    description = "any JSON endpoint: done_when / fail_when / track as JMESPath (no Python)"
    default_feed = None

    def check(self, tt: TaskType) -> None:
        label = f"task type {tt.name!r}"
        params = tt.params
        unknown = sorted(set(params) - set(PARAMS))
        if unknown:
            raise InvalidTaskType(
                f"{label}: handler http.json has no param(s) {unknown}; its params: "
                f"{', '.join(PARAMS)}"
            )
        if "done_when" not in params:
            raise InvalidTaskType(
                f"{label}: handler http.json needs params.done_when, a JMESPath expression "
                "that holds when the task is done (e.g. status == 'final')"
            )
        compile_checked(params["done_when"], "params.done_when", label)
        if params.get("fail_when") is not None:
            compile_checked(params["fail_when"], "params.fail_when", label)
        track = params.get("track") or {}
        if not isinstance(track, Mapping):
            raise InvalidTaskType(
                f"{label}: params.track must map names to JMESPath expressions, got {track!r}"
            )
        if len(track) > MAX_TRACKED:
            raise InvalidTaskType(
                f"{label}: params.track has {len(track)} names; at most {MAX_TRACKED}"
            )
        for name, expr in track.items():
            if not isinstance(name, str) or not _TRACK_NAME.match(name):
                raise InvalidTaskType(
                    f"{label}: params.track name {name!r} is malformed: use letters, digits, "
                    "_ . - (up to 63), starting with a letter or _"
                )
            compile_checked(expr, f"params.track.{name}", label)
        headers = params.get("headers") or {}
        if not isinstance(headers, Mapping):
            raise InvalidTaskType(
                f"{label}: params.headers must map names to values, got {headers!r}"
            )
        for header, value in headers.items():
            check_header(header, value, label)

    def references(self, tt: TaskType) -> list[str]:
        return []

    def label(self, params: Mapping[str, Any]) -> str | None:
        """The task's ``matchup`` param, when it has one (a spawn rule names its tasks so:
        ``params: {matchup: shortName}``); else none."""
        named = params.get("matchup")
        return named if isinstance(named, str) and named else None

    def poll(self, ctx: PollContext) -> PollResult:
        params = ctx.task_type.params
        doc = ctx.client.get_json(ctx.url, headers=expand_headers(params.get("headers") or {}))
        track = params.get("track") or {}
        values = {  # in name order: the stored params (jsonb) keep no order of their own
            name: storable(search(track[name], doc, f"params.track.{name}"), f"params.track.{name}")
            for name in sorted(track)
        }
        before = (ctx.state or {}).get("tracked") if ctx.state else None
        events = []
        for name, value in values.items():
            if before is None or name not in before:
                events.append(Event(CHANGED, {"name": name, "old": None, "new": value}))
            elif before[name] != value:
                events.append(Event(CHANGED, {"name": name, "old": before[name], "new": value}))
        result = PollResult(events=events, state={"tracked": values}, display=_display(values))
        fail_when = params.get("fail_when")
        if fail_when is not None and truthy(search(fail_when, doc, "params.fail_when")):
            result.outcome = Outcome.FAILED
            result.reason = f"fail_when {fail_when!r} holds"
        elif truthy(search(params["done_when"], doc, "params.done_when")):
            result.outcome = Outcome.DONE
            result.reason = f"done_when {params['done_when']!r} holds"
        if result.outcome != Outcome.CONTINUE:
            result.detail = {"tracked": values, "polls": ctx.polls}
        result.display["done"] = result.outcome == Outcome.DONE
        return result


def _display(values: dict[str, Any]) -> dict[str, Any]:
    shown = {}
    for name, value in values.items():
        text = json.dumps(value, separators=(",", ":"))
        shown[f"track.{name}"] = text if len(text) <= 200 else text[:197] + "..."
    return shown
