"""An offline stand-in for cdn.nba.com and site.api.espn.com, on 127.0.0.1.

It serves the real paths in the real shapes, replaying recorded games on an accelerated clock
(``speed`` game seconds per real second): the NBA on both feeds, and ESPN's
``/apis/site/v2/sports/{sport}/{league}/scoreboard|summary`` for every league of its slate
(NFL, MLB, NHL). It can be told to misbehave (5xx, 429, slow, broken bodies, 404, dropped
connections) so the client's retry rules can be tested for real.

This module holds the lifecycle, the slate, the faults and the ``/_sim/`` control endpoints;
each feed's routes and documents are its module in ``simulator/feeds/`` (the NBA CDN, ESPN,
the demo counter), asked in turn for a path.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from otf_dagster.exceptions import ConfigError
from otf_dagster.simulator import slates
from otf_dagster.simulator.feeds import route
from otf_dagster.simulator.routing import Request, Response, json_response, no_such_path
from otf_dagster.simulator.slate import SimGame, make_slate, sport_state_of, state_of

log = logging.getLogger(__name__)

FAULT_KINDS = ("error", "rate_limit", "slow", "malformed", "not_found", "drop")
_ALIASES = {"429": "rate_limit", "404": "not_found", "timeout": "slow", "reset": "drop"}


@dataclass
class Fault:
    """One queued misbehaviour for requests whose path+query contains ``path``."""

    path: str
    kind: str
    remaining: int | None = 1  # None: until cleared
    status: int = 503
    retry_after: float = 1.0
    seconds: float = 1.0
    body: str | None = None


class Simulator:
    """A slate of replayed games behind an HTTP server; ``start()`` returns its base URL."""

    def __init__(
        self,
        speed: float = 60.0,
        games: int = 3,
        first_start: float = 30.0,
        spacing: float = 60.0,
        clock: Callable[[], float] | None = None,
        port: int = 0,
        host: str = "127.0.0.1",
        slate_id: int | None = None,
        leagues: tuple[str, ...] = ("nba",),
        slates_file: str | Path | None = None,
        college_games: int = 0,
    ) -> None:
        if speed <= 0:
            raise ConfigError(f"simulator speed {speed!r} must be > 0 (game seconds per second)")
        if not 1 <= games <= 99:
            raise ConfigError(f"simulator games {games!r} must be between 1 and 99")
        self.speed = float(speed)
        self.college_games = college_games  # synthesized games per college day (ESPN's groups)
        self.clock = clock or time.time
        self.host = host
        self.port = port
        self.t0 = self.clock()
        path = Path(slates_file) if slates_file else None
        earlier = slates.load(path) if path else []
        taken = slates.game_ids(earlier)

        def slate_for(number: int | None) -> list[SimGame]:
            return make_slate(games, self.t0, first_start, spacing, number, tuple(leagues), speed)

        new = slate_for(slate_id)
        if taken & {i for g in new for i in (g.nba_id, g.espn_id) if i}:
            # a restart within the same minute, or the recorded ids again: number it afresh
            number = slate_id if slate_id is not None else int(self.t0 // 60)
            for _ in range(1000):
                number += 1
                new = slate_for(number)
                if not taken & {i for g in new for i in (g.nba_id, g.espn_id) if i}:
                    slate_id = number
                    break
        self.slate = new  # the games this start added
        self.games: list[SimGame] = [g for s in earlier for g in s["games"]] + new
        if path is not None:
            record = {"slate_id": slate_id, "speed": self.speed, "created": self.t0, "games": new}
            slates.save(path, earlier + [record])
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.requests: deque[str] = deque(maxlen=1000)  # recent request targets, for tests

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> str:
        """Serve in a daemon thread; the base URL to give providers."""
        if self._server is not None:
            return self.base_url
        self._stopping.clear()
        self._server = ThreadingHTTPServer((self.host, self.port), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},  # stop() answers quickly
            name="otf-simulator",
            daemon=True,
        )
        self._thread.start()
        return self.base_url

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise ConfigError("the simulator is not started; call start() first")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Simulator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- faults ------------------------------------------------------------------------------

    def inject(self, path: str, kind: str, count: int | None = 1, **kw: Any) -> Fault:
        """Misbehave on the next ``count`` requests whose path+query contains ``path``.

        kinds: error (status=503), rate_limit (429, retry_after=1), slow (seconds=1, then the
        normal answer), malformed (200 with a non-JSON body), not_found (404), drop (close the
        connection unanswered). A status code as kind ("500", "429", "404") also works.
        """
        kind = str(kind)
        if kind.isdigit() and kind not in _ALIASES:
            kw.setdefault("status", int(kind))
            kind = "error"
        kind = _ALIASES.get(kind, kind)
        if kind not in FAULT_KINDS:
            raise ConfigError(f"unknown fault kind {kind!r}; use one of {', '.join(FAULT_KINDS)}")
        unknown = set(kw) - {"status", "retry_after", "seconds", "body"}
        if unknown:
            raise ConfigError(f"unknown fault options {sorted(unknown)}")
        fault = Fault(path=path, kind=kind, remaining=count, **kw)
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def faults(self) -> list[dict[str, Any]]:
        with self._lock:
            return [asdict(f) for f in self._faults]

    def _take_fault(self, target: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.path in target and fault.remaining != 0:
                    if fault.remaining is not None:
                        fault.remaining -= 1
                    return fault
            self._faults = [f for f in self._faults if f.remaining != 0]
        return None

    # --- state -------------------------------------------------------------------------------

    def now(self) -> float:
        return self.clock()

    def game(self, game_id: str) -> SimGame | None:
        for game in self.games:
            if game_id in (game.nba_id, game.espn_id):
                return game
        return None

    def today(self) -> date:
        """The scoreboard's day: the (US Eastern) date of this start's first game."""
        return self.slate[0].day

    def leagues(self) -> list[str]:
        return list(dict.fromkeys(g.league for g in self.games))

    def state(self) -> dict[str, Any]:
        now = self.now()
        out = []
        for game in self.games:
            if game.league == "nba":
                s = state_of(game, now)
                status = {1: "scheduled", 2: "live", 3: "final"}[s.status]
                period, clock, home, away = s.period, s.clock, s.home_score, s.away_score
            else:
                t = sport_state_of(game, now)
                status = {"pre": "scheduled", "in": "live", "post": "final"}[t.state]
                period, clock, home, away = t.period, t.clock, t.home_score, t.away_score
            out.append(
                game.to_dict()
                | {
                    "status": status,
                    "period": period,
                    "clock": round(clock, 1),
                    "score": f"{game.away} {away} - {game.home} {home}",
                    "synthesized": game.synthesized,
                }
            )
        return {
            "now": datetime.fromtimestamp(now, UTC).isoformat(),
            "speed": self.speed,
            "leagues": self.leagues(),
            "games": out,
        }

    def day_games(self, day: date, league: str = "nba") -> list[tuple[SimGame, Any]]:
        """A league's games listed on ``day``, each with its replay state now (the feeds'
        scoreboards)."""
        now = self.now()
        state = state_of if league == "nba" else sport_state_of
        return [(g, state(g, now)) for g in self.games if g.day == day and g.league == league]

    # --- routing (socket-free, so it can be tested directly) --------------------------------

    def handle(
        self,
        method: str,
        target: str,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
    ) -> Response:
        parts = urlsplit(target)
        path, query = parts.path, parse_qs(parts.query)
        if path.startswith("/_sim/"):
            return self._control(method, path, body)
        if method != "GET":
            return json_response(405, {"code": 405, "message": f"{method} not allowed"})
        found = route(path)
        if found is None:
            return no_such_path(path)
        _feed, serve = found
        headers = {name.lower(): value for name, value in (headers or {}).items()}
        return serve(Request(self, path, target, query, headers, self.now()))

    def _control(self, method: str, path: str, body: bytes) -> Response:
        if path == "/_sim/state" and method == "GET":
            return json_response(200, self.state())
        if path == "/_sim/faults":
            if method == "GET":
                return json_response(200, {"faults": self.faults()})
            if method == "DELETE":
                self.clear_faults()
                return json_response(200, {"faults": []})
            if method == "POST":
                try:
                    spec = json.loads(body or b"{}")
                    fault = self.inject(
                        spec.pop("path"), spec.pop("kind"), spec.pop("count", 1), **spec
                    )
                except (ValueError, KeyError, TypeError, ConfigError) as exc:
                    return json_response(400, {"code": 400, "message": f"bad fault: {exc}"})
                return json_response(201, asdict(fault))
        return json_response(404, {"code": 404, "message": f"no control endpoint {method} {path}"})

    def _faulty(self, target: str) -> tuple[Response | None, bool]:
        """(response to send instead, drop connection?) for an injected fault."""
        fault = self._take_fault(target)
        if fault is None:
            return None, False
        if fault.kind == "slow":
            self._stopping.wait(fault.seconds)
            return None, False
        if fault.kind == "drop":
            return None, True
        if fault.kind == "rate_limit":
            retry_after = f"{fault.retry_after:g}"
            return (
                Response(
                    429,
                    (fault.body or '{"code":429,"message":"Too Many Requests"}').encode(),
                    headers={"Retry-After": retry_after},
                ),
                False,
            )
        if fault.kind == "malformed":
            text = fault.body or "<html><body><h1>502 Bad Gateway</h1> simulated broken body"
            return Response(200, text.encode(), "application/json"), False
        if fault.kind == "not_found":
            return _not_found(target), False
        body = fault.body or json.dumps({"code": fault.status, "message": "simulated failure"})
        return Response(fault.status, body.encode()), False


def _not_found(target: str) -> Response:
    """The 404 of the feed that serves ``target`` (the simulator's own for no feed's path)."""
    path = urlsplit(target).path
    found = route(path)
    return found[0].not_found(path) if found else no_such_path(path)


def _handler_for(sim: Simulator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "otf-simulator/0.1"
        # Headers and body go out as two writes: without TCP_NODELAY, Nagle's algorithm holds
        # the body until the client's delayed ACK, 40 ms on every keep-alive request.
        disable_nagle_algorithm = True

        def _serve(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            response: Response | None = None
            drop = False
            sim.requests.append(self.path)
            if not self.path.startswith("/_sim/"):
                response, drop = sim._faulty(self.path)
            if drop:
                self.close_connection = True
                return
            if response is None:
                try:
                    response = sim.handle(method, self.path, body, dict(self.headers))
                except Exception:  # a simulator bug must answer, not hang the client
                    log.exception("simulator failed on %s %s", method, self.path)
                    response = json_response(500, {"code": 500, "message": "simulator bug"})
            try:
                self.send_response(response.status)
                self.send_header("Content-Type", response.content_type)
                self.send_header("Content-Length", str(len(response.body)))
                for name, value in (response.headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(response.body)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True  # the client gave up (e.g. its read timeout)

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            self._serve("GET")

        def do_POST(self) -> None:  # noqa: N802
            self._serve("POST")

        def do_DELETE(self) -> None:  # noqa: N802
            self._serve("DELETE")

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            log.debug("simulator: " + format, *args)

    return Handler
