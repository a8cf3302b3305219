"""A sink that POSTs events to a webhook URL, signed per the Standard Webhooks spec.

Headers: ``webhook-id`` (the event's stable ``id``; a batch's first event's), ``webhook-timestamp``
(Unix seconds), ``webhook-signature`` (``v1,<base64 HMAC-SHA256 of id.timestamp.body>``, one per
secret, space-separated while a secret is rotated), made by the ``standardwebhooks`` package.
The body is the event's JSON object, or a JSON array of events for an endpoint that batches.

Only a 2xx whose headers arrive within the timeout is success; a 3xx is a failure (redirects are
not followed: give the final URL); 410 Gone says the endpoint is gone for good; 429/503 with
``Retry-After`` sets when to try again (capped). A failing response's first bytes are kept for
the dead-letter view and the rest is never read, so a 300 MB answer costs nothing. Addresses in
169.254.0.0/16 (and IPv6 link-local, where cloud metadata services live) are refused unless the
endpoint allows them. ``send`` never raises: every fault is an ``Outcome`` with one line.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import socket
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from standardwebhooks import Webhook

from otf_dagster.core.delivery.sink import EventBody, Outcome
from otf_dagster.exceptions import ConfigError

DEFAULT_TIMEOUT = 15.0
RESPONSE_START_BYTES = 512
KEEP_BODY_BYTES = 64 * 1024  # read a success's body (and keep the connection) below this
USER_AGENT = "otf-relay/1 (Standard Webhooks)"


def validate_url(url: object, *, allow_link_local: bool = False) -> str:
    """An http(s) URL with a host, not link-local unless allowed; else one line naming it."""
    if not isinstance(url, str) or not url:
        raise ConfigError(f"webhook URL {url!r}: give an http:// or https:// URL")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"webhook URL {url!r} is not http(s) with a host: give e.g. https://example.com/hooks"
        )
    if parts.username or parts.password:
        raise ConfigError(
            "a webhook URL may not carry a user or password; the endpoint's secret signs instead"
        )
    if not allow_link_local:
        problem = link_local_problem(parts.hostname, parts.port)
        if problem:
            raise ConfigError(problem)
    return url


def validate_secret(name: str, value: str | None) -> str:
    if not value:
        raise ConfigError(
            f"environment variable {name} is not set: export the endpoint's whsec_... secret in it"
        )
    if not value.startswith("whsec_"):
        raise ConfigError(
            f"environment variable {name} does not hold a whsec_... secret: "
            "use a Standard Webhooks secret (whsec_ followed by base64)"
        )
    try:
        Webhook(value)
    except Exception:
        raise ConfigError(
            f"environment variable {name} holds a whsec_ secret that is not valid base64; "
            "make one with `otf endpoints secret`"
        ) from None
    return value


def link_local_problem(host: str, port: int | None) -> str | None:
    """Why delivering to ``host`` is refused (it resolves to a link-local address), or None."""
    try:
        infos = socket.getaddrinfo(host, port or 443, proto=socket.IPPROTO_TCP)
    except OSError:
        return None  # cannot resolve now: the send will say so; nothing to refuse yet
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%")[0])
        mapped = getattr(address, "ipv4_mapped", None)
        if address.is_link_local or (mapped is not None and mapped.is_link_local):
            return (
                f"webhook host {host} resolves to link-local address {address} (cloud metadata "
                "lives there): refused; pass --allow-link-local if you mean it"
            )
    return None


def parse_retry_after(value: str | None, cap: float, now: float) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date), capped."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = when.timestamp() - now
    if seconds != seconds:  # NaN
        return None
    return max(0.0, min(seconds, cap))


class WebhookSink:
    """POSTs an endpoint's events; see the module docstring."""

    all_or_nothing = True  # a failed POST failed every event in it

    def __init__(
        self,
        url: str,
        secrets: Sequence[str],
        *,
        batched: bool = False,
        timeout: float = DEFAULT_TIMEOUT,
        retry_after_cap: float = 3600.0,
        allow_link_local: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.url = validate_url(url, allow_link_local=allow_link_local)
        if not secrets:
            raise ConfigError("a webhook endpoint needs a secret (--secret-env VAR)")
        self._signers = [Webhook(s) for s in secrets]
        self.batched = batched
        self.timeout = timeout
        self.retry_after_cap = retry_after_cap
        self.allow_link_local = allow_link_local
        self.clock = clock
        self._host = urlsplit(url).hostname or ""
        self._port = urlsplit(url).port
        self._session = requests.Session()
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=1, max_retries=0)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)

    def body(self, events: Sequence[EventBody]) -> bytes:
        data = [e.to_dict() for e in events] if self.batched else events[0].to_dict()
        return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()

    def headers(self, msg_id: str, body: bytes, now: float) -> dict[str, str]:
        stamp = datetime.fromtimestamp(int(now), tz=UTC)
        return {
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(now)),
            "webhook-signature": " ".join(s.sign(msg_id, stamp, body) for s in self._signers),
        }

    def send(self, events: Sequence[EventBody]) -> Outcome:
        if not events:
            return Outcome(accepted=0)
        if not self.batched:
            events = events[:1]
        if not self.allow_link_local:
            problem = link_local_problem(self._host, self._port)
            if problem:
                return Outcome(accepted=0, error=problem)
        body = self.body(events)
        now = self.clock()
        try:
            response = self._session.post(
                self.url,
                data=body,
                headers=self.headers(events[0].id, body, now),
                timeout=(min(self.timeout, 5.0), self.timeout),
                allow_redirects=False,
                stream=True,
            )
        except requests.Timeout:
            return Outcome(accepted=0, error=f"no answer from {self.url} within {self.timeout:g} s")
        except requests.ConnectionError as exc:
            return Outcome(accepted=0, error=f"cannot reach {self.url}: {_reason(exc)}")
        except requests.RequestException as exc:
            return Outcome(accepted=0, error=f"posting to {self.url}: {_reason(exc)}")
        try:
            return self._outcome(response, len(events))
        finally:
            response.close()

    def _outcome(self, response: requests.Response, count: int) -> Outcome:
        status = response.status_code
        if 200 <= status < 300:
            length = response.headers.get("content-length")
            if length is not None and length.isdigit() and int(length) <= KEEP_BODY_BYTES:
                with contextlib.suppress(Exception):  # a small body: keep the connection
                    response.raw.read(KEEP_BODY_BYTES, decode_content=False)
            return Outcome(accepted=count, status=status)
        start = _response_start(response)
        retry_after = None
        if status in (429, 503):
            retry_after = parse_retry_after(
                response.headers.get("retry-after"), self.retry_after_cap, self.clock()
            )
        if 300 <= status < 400:
            where = response.headers.get("location", "")
            error = f"{self.url} answered {status} (a redirect is a failure; give the final URL"
            error += f", {where[:100]})" if where else ")"
        elif status == 410:
            error = f"{self.url} answered 410 Gone: the endpoint is disabled"
        else:
            error = f"{self.url} answered {status} {response.reason or ''}".rstrip()
        return Outcome(
            accepted=0,
            status=status,
            error=error,
            retry_after=retry_after,
            gone=status == 410,
            response_start=start,
        )

    def close(self) -> None:
        self._session.close()


def _response_start(response: requests.Response) -> str:
    try:
        chunk = response.raw.read(RESPONSE_START_BYTES, decode_content=False) or b""
    except Exception:
        chunk = b""
    return chunk.decode("utf-8", "replace")


def _reason(exc: BaseException) -> str:
    """One short line from a requests error (urllib3 nests the real reason several levels)."""
    inner: BaseException | None = exc
    while inner is not None and inner.args and isinstance(inner.args[0], BaseException):
        inner = inner.args[0]
    reason = getattr(inner, "reason", None)
    text = str(reason if reason is not None else inner).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    return line[:200]
