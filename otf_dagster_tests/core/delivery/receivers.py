"""A loopback webhook receiver for the delivery tests: verifies every request with the
``standardwebhooks`` package and answers as the test's ``answer`` function says."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook


@dataclass
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b"ok"
    drop: bool = False  # close the connection without an answer
    delay: float = 0.0  # seconds before answering
    huge: int = 0  # stream this many bytes of body (never all read by a good client)


@dataclass
class Received:
    events: list[dict[str, Any]]
    status: int
    headers: dict[str, str]
    verified: bool
    body: bytes = b""  # as received, to verify again with another secret


class Receiver:
    def __init__(self, secret: str, answer: Callable[[list[dict], int], Answer] | None = None):
        self.secret = secret
        self.answer = answer or (lambda events, n: Answer())
        self.requests: list[Received] = []
        self.lock = threading.Lock()
        self.count = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                length = int(self.headers.get("content-length", 0))
                body = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                try:
                    data = Webhook(receiver.secret).verify(body, headers)
                    verified = True
                except Exception:
                    data, verified = json.loads(body or b"null"), False
                events = data if isinstance(data, list) else [data]
                with receiver.lock:
                    receiver.count += 1
                    n = receiver.count
                answer = receiver.answer(events, n) if verified else Answer(status=401)
                if answer.delay:
                    time.sleep(answer.delay)
                if answer.drop:
                    with receiver.lock:
                        receiver.requests.append(Received(events, 0, headers, verified, body))
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                with receiver.lock:
                    receiver.requests.append(
                        Received(events, answer.status, headers, verified, body)
                    )
                self.send_response(answer.status)
                for k, v in answer.headers.items():
                    self.send_header(k, v)
                if answer.huge:
                    self.send_header("content-length", str(answer.huge))
                    self.end_headers()
                    chunk = b"x" * 65536
                    sent = 0
                    try:
                        while sent < answer.huge:
                            self.wfile.write(chunk)
                            sent += len(chunk)
                    except OSError:
                        pass  # the client closed: what a good client does
                    self.close_connection = True
                    return
                self.send_header("content-length", str(len(answer.body)))
                try:
                    self.end_headers()
                    self.wfile.write(answer.body)
                except OSError:
                    self.close_connection = True  # the client gave up (its timeout)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def accepted(self) -> list[dict[str, Any]]:
        """Events of the requests answered 2xx, in arrival order."""
        with self.lock:
            return [e for r in self.requests if 200 <= r.status < 300 for e in r.events]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
