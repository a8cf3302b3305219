"""Shared pieces of the tests: clocks (virtual, file-backed for two processes, a simulator's
hand-moved one), the recorded fixtures, test task types, tasks started in one call, and a
small static JSON server on 127.0.0.1."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from otf_dagster.core.store import TaskStore
from otf_dagster.handlers import task_types
from otf_dagster.vocab.tasks import ClaimedTask

FIXTURES = Path(__file__).resolve().parent / "fixtures"
T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z
NOW = datetime(2026, 11, 27, 19, 0, tzinfo=UTC)
MEDIA = "NBA_GAME_MEDIA"  # a type that needs photo and caption services besides the runner
PLAIN = "NBA_GAME_PLAIN"


def wait_for(
    condition: Callable[[], Any],
    what: str,
    seconds: float = 120,
    *,
    alive: Callable[[], None] | None = None,
    diagnostics: Callable[[], str] | None = None,
    every: float = 0.5,
) -> Any:
    """Poll ``condition`` until it holds and return its value. The deadline only bounds a
    hang (it decides nothing about timing); ``alive`` asserts the processes watched are still
    up (a dead daemon fails at once, not at the deadline); ``diagnostics`` adds their logs to
    the failure."""
    deadline = time.monotonic() + seconds
    while True:
        value = condition()
        if value:
            return value
        if alive is not None:
            alive()
        if time.monotonic() >= deadline:
            extra = f"\n{diagnostics()}" if diagnostics is not None else ""
            pytest.fail(f"timed out after {seconds:g}s waiting for {what}{extra}")
        time.sleep(every)


def load(relative: str) -> Any:
    """A recorded fixture (path under otf_dagster_tests/fixtures), decoded."""
    return json.loads((FIXTURES / relative).read_text())


class FakeClock:
    """A clock the test moves by hand: the simulator reads it on every request."""

    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


class StepClock(FakeClock):
    """A simulator clock that moves ``step`` seconds at every reading (the simulator reads it
    once per request): a game advances by polls, not by wall-clock time, so a runner that
    sleeps for real still sees the same number of polls on a busy machine."""

    def __init__(self, step: float, t: float = T0) -> None:
        super().__init__(t)
        self.step = step

    def __call__(self) -> float:
        now = self.t
        self.t += self.step
        return now


def start_task(store: TaskStore, task_type: str = MEDIA, key: str = "g1") -> ClaimedTask:
    """Schedule and claim one task: it is STARTED at attempt 1."""
    store.schedule_task(task_type, key, NOW)
    [claimed] = [
        c for c in store.claim_ready(now=NOW + timedelta(minutes=1)) if c.task.external_key == key
    ]
    return claimed


class VirtualClock:
    """Time that moves only when the runner sleeps: a whole game polls in milliseconds."""

    def __init__(self, start: float | None = None) -> None:
        self.t = start if start is not None else time.time()

    def time(self) -> float:
        return self.t

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.t, UTC)

    def sleep(self, seconds: float) -> None:
        self.t += max(0.0, seconds)


class FileClock(VirtualClock):
    """A virtual clock kept in a file, so a runner process and the simulator share it.

    A sleep is one atomic file replace: a runner killed at any moment leaves the time either
    before or after a whole poll interval, never in between.
    """

    def __init__(self, path: Path, start: float | None = None) -> None:
        self.path = Path(path)
        if start is not None:
            self._write(start)

    def _write(self, t: float) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(repr(t))
        tmp.replace(self.path)

    @property
    def t(self) -> float:  # type: ignore[override]
        return float(self.path.read_text())

    def sleep(self, seconds: float) -> None:
        self._write(self.t + max(0.0, seconds))
        time.sleep(0.005)  # give a killer a chance to land between polls


def apply_test_types(store: TaskStore, poll: float = 20.0, **overrides: Any) -> None:
    """The default types, with a poll interval fit for replaying a game at speed 60."""
    types = []
    for t in task_types.load_file(task_types.DEFAULTS_FILE):
        spec = {
            **t.to_dict(),
            "poll_interval_seconds": poll,
            "stale_after_seconds": 600,
            **overrides,
        }
        for k in ("created_at", "updated_at", "deleted_at"):
            spec.pop(k)
        types.append(task_types.validate(spec))
    store.apply_task_types(types)


class StaticFeed:
    """Serves fixed JSON documents by path (query string included) on 127.0.0.1."""

    def __init__(self) -> None:
        self.docs: dict[str, Any] = {}
        feed = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                doc = feed.docs.get(self.path)
                body = json.dumps(doc if doc is not None else {"error": "not found"}).encode()
                self.send_response(200 if doc is not None else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> StaticFeed:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"


class ScriptedFeed:
    """A JSON endpoint on 127.0.0.1 serving a scripted sequence of documents per path.

    Without a clock, each request to a path gets the next document (the last one repeats).
    With ``clock`` (seconds; e.g. a FileClock's ``t`` shared with a runner process), the
    document is the one of the clock's step since ``t0``: ``(clock() - t0) // step``, so a
    killed and resumed runner sees the same feed an uninterrupted one does. A ``bytes``
    document is sent as it is (a body that is not JSON). Requests are recorded as
    (path, headers).
    """

    def __init__(
        self,
        clock: Any = None,
        t0: float = 0.0,
        step: float = 10.0,
    ) -> None:
        self.scripts: dict[str, list[Any]] = {}
        self.holds: dict[str, threading.Event] = {}
        self.served: dict[str, int] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.clock, self.t0, self.step = clock, t0, step
        self._lock = threading.Lock()
        feed = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                status, body = feed._answer(self.path, dict(self.headers))
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def script(self, path: str, docs: list[Any]) -> None:
        self.scripts[path] = list(docs)

    def hold(self, path: str, release: threading.Event) -> None:
        """Answer requests for ``path`` only once ``release`` is set (a feed that hangs)."""
        self.holds[path] = release

    def paths(self) -> list[str]:
        return [path for path, _ in self.requests]

    def _answer(self, path: str, headers: dict[str, str]) -> tuple[int, bytes]:
        if path in self.holds:
            self.holds[path].wait()
        with self._lock:
            self.requests.append((path, headers))
            docs = self.scripts.get(path)
            if not docs:
                return 404, b'{"error": "no such document"}'
            if self.clock is None:
                index = self.served.get(path, 0)
                self.served[path] = index + 1
            else:
                index = int((self.clock() - self.t0) // self.step)
            doc = docs[max(0, min(index, len(docs) - 1))]
        return 200, doc if isinstance(doc, bytes) else json.dumps(doc).encode()

    def __enter__(self) -> ScriptedFeed:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        for release in self.holds.values():
            release.set()
        self.server.shutdown()
        self.server.server_close()

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"
