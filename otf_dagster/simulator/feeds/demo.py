"""The demo feed: a synthetic counter for runner pools at scale (``make dev``'s pool demo, the
pool bench, ``test_pace``). No replay behind it, so it is cheap to serve.

``/demo/count/KEY.json?start=EPOCH&steps=N&every=S`` counts from 0 at ``start`` to ``N``, one
step every ``S`` seconds, then says done.
"""

from __future__ import annotations

from otf_dagster.simulator.routing import (
    Handler,
    Request,
    Response,
    Route,
    first_match,
    json_response,
    no_such_path,
)

COUNTER_PATH = "/demo/count/{key}.json"  # the examples' DEMO_COUNTER type asks this path


def counter(key: str, query: dict[str, list[str]], now: float) -> Response:
    try:
        start = float((query.get("start") or ["0"])[0])
        steps = int((query.get("steps") or ["20"])[0])
        every = float((query.get("every") or ["5"])[0])
        if every <= 0 or steps < 0:
            raise ValueError("every must be > 0 and steps >= 0")
    except ValueError as exc:
        return json_response(400, {"code": 400, "message": f"bad counter parameters: {exc}"})
    count = max(0, min(steps, int((now - start) // every)))
    return json_response(200, {"key": key, "count": count, "steps": steps, "done": count >= steps})


def _counter(req: Request, key: str) -> Response:
    return counter(key, req.query, req.now)


ROUTES = (Route(COUNTER_PATH, _counter, {"key": "[A-Za-z0-9_.:-]{1,120}"}),)


def match(path: str) -> Handler | None:
    return first_match(ROUTES, path)


def not_found(path: str) -> Response:
    return no_such_path(path)
