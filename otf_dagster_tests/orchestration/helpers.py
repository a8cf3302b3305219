"""Shared pieces of the orchestration tests: a virtual clock, a file-backed clock that two
processes share, a test task type, and a small static JSON server on 127.0.0.1."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from otf_dagster import task_types
from otf_dagster.store import TaskStore


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
