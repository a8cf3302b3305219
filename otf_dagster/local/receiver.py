"""A small webhook receiver for ``otf dev``: the service at the other end of a webhook endpoint.

It verifies each request with ``standardwebhooks`` (``webhook-id``, ``webhook-timestamp``,
``webhook-signature`` over the raw body; a request that does not verify gets 401 and one log
line, and nothing else happens), logs one line per event received (kind, task, seq), and for
each final event (``game_final`` by default: the box-score handlers' last event of a game)
reports FINISHED for its owner through ``otf api``:
``POST {api_url}/v1/tasks/{task_id}/reports`` with ``Authorization: Bearer TOKEN``.

A body is one event's JSON object, or a JSON array of them when the endpoint batches.
Answers: 200 once every event was handled; 503 when a report could not be made (the API is
unreachable or answered 5xx), so the relay sends the request again (a report already applied
comes back as a repeat); a report the API refuses for good (4xx: the task is no longer
STARTED, the token belongs to another owner) is logged and the request still answered 200,
since sending it again would change nothing.

The secret (``whsec_...``) and the token come from environment variables, never from
arguments, and are never logged. Starlette on uvicorn, bound to 127.0.0.1 (port 0 by default:
any free port), like ``otf api``; :func:`start` runs it on a thread of the calling process
(``.url`` and ``.stop()``, like ``local/nats.py``), ``python -m otf_dagster.cli.receiver``
(or ``otf receiver``) in the foreground.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

import requests
from standardwebhooks import Webhook, WebhookVerificationError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from otf_dagster import settings
from otf_dagster.exceptions import ConfigError

SECRET_ENV = settings.RECEIVER_SECRET.env  # the endpoint's signing secret, whsec_...
TOKEN_ENV = (
    settings.RECEIVER_TOKEN.env
)  # the owner's token for `otf api` (otf services token create)
API_URL_ENV = settings.API_URL.env  # where `otf api` listens, when --api-url is not given
FINAL_KINDS = ("game_final",)
MAX_BODY_BYTES = 1024 * 1024
REPORT_TIMEOUT = 10.0
_OWNER = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")  # otf_report's service names

log = logging.getLogger("otf_dagster.receiver")


@dataclass(frozen=True)
class ReceiverConfig:
    owner: str
    api_url: str
    secret: str = field(repr=False)
    token: str = field(repr=False)
    final_kinds: tuple[str, ...] = FINAL_KINDS

    @classmethod
    def from_env(
        cls,
        owner: str,
        api_url: str | None = None,
        *,
        secret_env: str = SECRET_ENV,
        token_env: str = TOKEN_ENV,
        final_kinds: Iterable[str] = FINAL_KINDS,
        environ: Mapping[str, str] | None = None,
    ) -> ReceiverConfig:
        """The configuration, checked: each refusal is one line naming the value and the fix
        (never the secret or the token)."""
        env = os.environ if environ is None else environ
        if not _OWNER.match(owner or ""):
            raise ConfigError(
                f"owner {owner!r} is not a service name: use a lowercase letter, then "
                "lowercase letters, digits, _ or - (the owner of the endpoint)"
            )
        api_url = (api_url or env.get(API_URL_ENV) or "").strip().rstrip("/")
        if not api_url:
            raise ConfigError(
                f"no API URL: pass --api-url (the URL `otf api` printed) or set {API_URL_ENV}"
            )
        parts = urlsplit(api_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(
                f"API URL {api_url!r} is not an http(s) URL; pass the URL `otf api` printed, "
                "e.g. http://127.0.0.1:8770"
            )
        secret = env.get(secret_env, "").strip()
        if not secret:
            raise ConfigError(
                f"environment variable {secret_env} is not set: export the endpoint's "
                "signing secret (whsec_...) in it"
            )
        try:
            Webhook(secret)
        except Exception as exc:  # binascii.Error, EmptyWebhookSecretError: never the value
            raise ConfigError(
                f"the secret in {secret_env} is not a Standard Webhooks secret "
                f"({type(exc).__name__}); it looks like whsec_ followed by base64"
            ) from None
        token = env.get(token_env, "").strip()
        if not token:
            raise ConfigError(
                f"environment variable {token_env} is not set: export {owner}'s API token "
                f"in it (`otf services token create {owner}` prints one)"
            )
        kinds = tuple(final_kinds)
        if not kinds:
            raise ConfigError("no final event kind: pass at least one --final-kind")
        return cls(owner, api_url, secret, token, kinds)


def _events(data: Any) -> list[dict[str, Any]] | None:
    """The events of a body (an object, or an array of them), or None when it is neither."""
    items = data if isinstance(data, list) else [data]
    for item in items:
        if not (
            isinstance(item, dict)
            and isinstance(item.get("kind"), str)
            and isinstance(item.get("task_id"), str)
        ):
            return None
    return items


class _Reporter:
    """Reports to ``otf api`` over HTTP, one requests session per worker thread."""

    def __init__(self, config: ReceiverConfig):
        self.config = config
        self._local = threading.local()

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
            session.headers["Authorization"] = f"Bearer {self.config.token}"
        return session

    def finished(self, event: dict[str, Any]) -> tuple[int | None, str]:
        """Report FINISHED for the event's task: (the API's status or None, one line)."""
        url = f"{self.config.api_url}/v1/tasks/{quote(event['task_id'], safe='')}/reports"
        detail = {k: event.get(k) for k in ("id", "seq", "kind", "key")}
        body = {"service": self.config.owner, "state": "FINISHED", "detail": detail}
        try:
            r = self._session().post(url, json=body, timeout=REPORT_TIMEOUT)
        except requests.RequestException as exc:
            return None, f"API at {self.config.api_url} unreachable ({type(exc).__name__})"
        try:
            answer = r.json()
        except ValueError:
            answer = {}
        if r.ok:
            return r.status_code, str(answer.get("outcome", "ok"))
        error = answer.get("error") if isinstance(answer, dict) else None
        return r.status_code, str(error or r.reason)[:200]


def create_app(config: ReceiverConfig, say: Callable[[str], None] | None = None) -> Starlette:
    """The receiver's ASGI app: POST / takes webhooks, GET / says it is up."""
    say = log.info if say is None else say
    hook = Webhook(config.secret)
    reporter = _Reporter(config)

    async def receive(request: Request) -> JSONResponse:
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY_BYTES:
                say(f"refused a body over {MAX_BODY_BYTES} bytes")
                return JSONResponse({"error": "body too large"}, status_code=413)
        try:
            hook.verify(bytes(body), dict(request.headers), json_parse=False)
        except WebhookVerificationError as exc:
            client = request.client.host if request.client else "?"
            say(f"refused a request from {client}: signature does not verify ({exc})")
            return JSONResponse({"error": "signature does not verify"}, status_code=401)
        try:
            events = _events(json.loads(body))
        except ValueError:
            events = None
        if events is None:
            say("refused a signed body that is not an event or an array of events")
            return JSONResponse({"error": "not an event or an array of events"}, status_code=400)
        reported = 0
        for event in events:
            say(f"received {event['kind']} task={event['task_id']} seq={event.get('seq')}")
            if event["kind"] not in config.final_kinds:
                continue
            status, line = await run_in_threadpool(reporter.finished, event)
            if status is None or status >= 500:
                say(f"could not report FINISHED for {event['task_id']}: {line}; "
                    "answering 503 so the event is sent again")  # fmt: skip
                return JSONResponse({"error": "report failed, send again"}, status_code=503)
            if status >= 300:
                say(f"report FINISHED for {event['task_id']} refused ({status}): {line}")
                continue
            reported += 1
            say(f"reported FINISHED for {event['task_id']} as {config.owner} ({line})")
        return JSONResponse({"received": len(events), "reported": reported})

    async def health(_request: Request) -> JSONResponse:
        return JSONResponse({"receiver": "otf", "owner": config.owner})

    return Starlette(routes=[Route("/", receive, methods=["POST"]),
                             Route("/", health, methods=["GET"])])  # fmt: skip


def bind(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A listening socket (port 0: any free one); a port in use is one line."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port} ({exc.strerror}); "
                          "pick another --port (0: any free one)") from None  # fmt: skip
    sock.listen(128)
    return sock


class Receiver:
    """The receiver serving on a thread of this process; ``url`` is where the webhook goes."""

    def __init__(self, server: Any, thread: threading.Thread, sock: socket.socket):
        self._server, self._thread, self._sock = server, thread, sock
        self.port: int = sock.getsockname()[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop serving; True if it had been running."""
        was = self._thread.is_alive()
        self._server.should_exit = True
        self._thread.join(timeout)
        self._sock.close()
        return was


def start(
    config: ReceiverConfig,
    *,
    port: int = 0,
    say: Callable[[str], None] | None = None,
    timeout: float = 10.0,
) -> Receiver:
    """Serve on 127.0.0.1 from a daemon thread; returns once it accepts connections."""
    import uvicorn

    sock = bind("127.0.0.1", port)
    server = uvicorn.Server(
        uvicorn.Config(create_app(config, say), log_level="warning", access_log=False)
    )
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="otf-receiver", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            raise ConfigError(f"the webhook receiver did not start within {timeout:g} s")
        time.sleep(0.02)
    return Receiver(server, thread, sock)


def serve_forever(config: ReceiverConfig, *, port: int, say: Callable[[str], None]) -> None:
    """Serve in the foreground until SIGTERM or Ctrl-C; first says the URL it listens on."""
    import uvicorn

    sock = bind("127.0.0.1", port)
    say(f"otf receiver listening on http://127.0.0.1:{sock.getsockname()[1]}/ "
        f"(reports as {config.owner} to {config.api_url})")  # fmt: skip

    class Foreground(uvicorn.Server):
        """Stops on SIGTERM or Ctrl-C and returns (uvicorn itself re-raises the signal once
        shut down, so the process would end killed by it instead of with status 0)."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            before = {
                s: signal.signal(s, self.handle_exit) for s in (signal.SIGINT, signal.SIGTERM)
            }
            try:
                yield
            finally:
                for s, handler in before.items():
                    signal.signal(s, handler)

    server = Foreground(
        uvicorn.Config(create_app(config, say), log_level="warning", access_log=False)
    )
    server.run(sockets=[sock])
    say("otf receiver stopped")
