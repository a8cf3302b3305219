"""One HTTP client per feed: pooled session, bounded retries, errors mapped to FeedError kinds.

Retries live in urllib3 (429/5xx, connection and read errors, honouring Retry-After up to a cap)
so a poll loop only ever sees RetriableFeedError, UnknownGame, FatalFeedError or MalformedFeed.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any
from urllib.parse import urlencode

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from otf_dagster import settings
from otf_dagster.config import redact
from otf_dagster.exceptions import (
    ConfigError,
    FatalFeedError,
    FeedRefused,
    MalformedFeed,
    RetriableFeedError,
    UnknownGame,
)

log = logging.getLogger(__name__)

RETRY_STATUSES = (429, 500, 502, 503, 504)
USER_AGENT = "otf-dagster/0.1 (+https://github.com/; live game tracker)"


class FeedHttpError(FatalFeedError):
    """A 4xx answer other than 404/429; ``status`` and ``url`` say which."""

    def __init__(self, message: str, status: int, url: str) -> None:
        super().__init__(message)
        self.status = status
        self.url = url


class _CappedRetry(Retry):
    """Retry whose Retry-After sleep is capped, so one rude header cannot stall a poll loop."""

    max_retry_after: float = 30.0

    def parse_retry_after(self, retry_after: str) -> float:
        return min(super().parse_retry_after(retry_after), self.max_retry_after)

    def new(self, **kw: Any) -> _CappedRetry:
        retry = super().new(**kw)
        retry.max_retry_after = self.max_retry_after
        return retry


def excerpt(text: str | bytes, limit: int = 80) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _is_html(response: requests.Response, body: bytes) -> bool:
    """A CDN's edge page (Akamai's "Access Denied"), not a feed's JSON or XML error body."""
    kind = response.headers.get("Content-Type", "").lower()
    head = body[:200].lstrip().lower()
    return "text/html" in kind or head.startswith((b"<html", b"<!doctype html"))


READ_CHUNK = 64 * 1024


class FeedClient:
    """GET JSON from one base URL; not thread-safe beyond what requests.Session is."""

    def __init__(
        self,
        base_url: str,
        timeout: tuple[float, float] = (3.05, 10.0),
        total_retries: int = 3,
        backoff_factor: float = 0.5,
        max_retry_after: float = 30.0,
        backoff_max: float = 10.0,
        user_agent: str = USER_AGENT,
        pool_maxsize: int = 8,
        headers: dict[str, str] | None = None,
        max_bytes: int | None = None,
    ) -> None:
        if not base_url or not base_url.startswith(("http://", "https://")):
            raise ConfigError(
                f"feed base URL {base_url!r} is not an http(s) URL; "
                "give e.g. https://cdn.nba.com or the simulator's http://127.0.0.1:8765"
            )
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.max_bytes = max_bytes or settings.FEED_MAX_BYTES.read()
        retry = _CappedRetry(
            total=total_retries,
            connect=total_retries,
            read=total_retries,
            status=total_retries,
            other=0,
            allowed_methods=frozenset({"GET"}),
            status_forcelist=RETRY_STATUSES,
            backoff_factor=backoff_factor,
            backoff_max=backoff_max,
            respect_retry_after_header=True,
            raise_on_status=False,
            raise_on_redirect=True,
        )
        retry.max_retry_after = max_retry_after
        self.session = requests.Session()
        adapter = HTTPAdapter(max_retries=retry, pool_connections=4, pool_maxsize=pool_maxsize)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers.update({"User-Agent": user_agent, "Accept": "application/json"})
        self.session.headers.update(headers or {})  # the feed's own (the NBA CDN's Referer)
        # requests reads the proxy settings from the environment on every request (a scan of
        # os.environ: a third of a poll's CPU in a runner pool); read them once, for this base.
        self.session.trust_env = False
        self.session.proxies = requests.utils.get_environ_proxies(self.base_url)
        self.session.verify = (
            os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        )

    def url_for(self, url_or_path: str, params: dict[str, Any] | None = None) -> str:
        url = url_or_path
        if not url.startswith(("http://", "https://")):
            url = f"{self.base_url}/{url.lstrip('/')}"
        if params:
            url = f"{url}{'&' if '?' in url else '?'}{urlencode(params)}"
        return url

    def get_json(
        self,
        url_or_path: str,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        """GET and decode JSON, retrying what may pass; raise a FeedError kind otherwise.
        ``headers`` (a task type's, secrets included) are sent, never logged."""
        url = self.url_for(url_or_path, params)
        log.debug("GET %s", url)
        try:
            response = self.session.get(url, timeout=self.timeout, headers=headers, stream=True)
            try:
                body = self._read(url, response)
            finally:
                response.close()
        except requests.exceptions.RetryError as exc:
            raise RetriableFeedError(
                f"{url} kept failing after {self._retries()} retries ({exc}); try again later"
            ) from exc
        except (requests.exceptions.Timeout, requests.exceptions.ConnectionError) as exc:
            timed_out = isinstance(exc, requests.exceptions.Timeout) or "timed out" in str(exc)
            kind = "timed out" if timed_out else "unreachable"
            raise RetriableFeedError(
                f"{url} {kind} after {self._retries()} retries "
                f"(timeouts connect/read {self.timeout[0]}s/{self.timeout[1]}s): "
                f"{type(exc).__name__}; try again later or check the network/base URL"
            ) from exc
        except requests.exceptions.RequestException as exc:
            raise FatalFeedError(f"{url}: request failed: {exc}; check the base URL") from exc
        return self._decode(url, response, body)

    def _read(self, url: str, response: requests.Response) -> bytes:
        """The body, read in chunks and refused (FatalFeedError) past ``max_bytes``: a feed
        that answers 50 MB costs this process ``max_bytes`` at most, not 50 MB and its parse."""
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            raise FatalFeedError(self._too_large(url, f"{int(declared):,} bytes declared"))
        chunks, size = [], 0
        for chunk in response.iter_content(READ_CHUNK):
            size += len(chunk)
            if size > self.max_bytes:
                raise FatalFeedError(self._too_large(url, f"more than {self.max_bytes:,} bytes"))
            chunks.append(chunk)
        return b"".join(chunks)

    def _too_large(self, url: str, what: str) -> str:
        return (
            f"{redact(url)} answered {what}, above the {self.max_bytes:,}-byte limit; the poll "
            f"read no further. If the feed is meant to be this large, raise "
            f"{settings.FEED_MAX_BYTES.env}"
        )

    def _retries(self) -> int:
        adapter = self.session.get_adapter(self.base_url)
        return int(getattr(getattr(adapter, "max_retries", None), "total", 0) or 0)

    def _decode(self, url: str, response: requests.Response, body: bytes) -> Any:
        status = response.status_code
        if status in RETRY_STATUSES:
            raise RetriableFeedError(
                f"{url} answered HTTP {status} after {self._retries()} retries "
                f"({excerpt(body)!r}); try again later"
            )
        if status == 404:
            raise UnknownGame(
                f"{url} answered 404 ({excerpt(body)!r}); check the game id and the provider"
            )
        if status == 403 and _is_html(response, body):
            raise FeedRefused(
                f"the feed refused this client (HTTP 403, HTML body "
                f"{excerpt(body)!r}) at {redact(url)}; it wants headers this client "
                "did not send (the NBA CDN: Referer https://www.nba.com/, see `headers` in "
                "leagues.yaml), or use ESPN (OTF_FEED_PROVIDER=espn); counted as a feed outage"
            )
        if 400 <= status < 600:
            raise FeedHttpError(
                f"{url} answered HTTP {status} ({excerpt(body)!r}); "
                "retrying will not help: check the URL, id and provider",
                status=status,
                url=url,
            )
        try:
            return json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise MalformedFeed(
                f"{url} answered HTTP {status} with a body that is not JSON: "
                f"{excerpt(body)!r}; the feed may have changed or is degraded"
            ) from exc

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> FeedClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"FeedClient({self.base_url!r}, timeout={self.timeout})"
