"""One HTTP client per feed: a urllib3 connection pool, bounded retries, errors mapped to
FeedError kinds.

Retries live in urllib3 (429/5xx, connection and read errors, honouring Retry-After up to a cap)
so a poll loop only ever sees RetriableFeedError, UnknownGame, FatalFeedError or MalformedFeed.
The transport is urllib3 itself, not requests: a runner pool's polls spent a quarter of their
CPU in requests' session machinery (hooks, cookies, header merging, adapters) around the same
urllib3 GET (docs/design.md, Feeds).
"""

from __future__ import annotations

import json
import logging
import os
import threading
from typing import Any
from urllib.parse import urlencode

import requests.certs
import requests.utils
import urllib3
from urllib3 import exceptions as u3
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
# what requests sent by default, kept: gzip/deflate (and br/zstd when their decoders are there)
ACCEPT_ENCODING = urllib3.util.make_headers(accept_encoding=True)["accept-encoding"]


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


def merge_headers(base: dict[str, str], extra: dict[str, str | None] | None) -> dict[str, str]:
    """``base`` with ``extra`` over it, names compared case-insensitively (as requests did: a
    task type's ``referer`` replaces the feed's ``Referer``); a None value removes the header."""
    if not extra:
        return base
    names = {name.lower() for name in extra}
    merged = {k: v for k, v in base.items() if k.lower() not in names}
    merged.update({k: v for k, v in extra.items() if v is not None})
    return merged


def excerpt(text: str | bytes, limit: int = 80) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _is_html(response: urllib3.BaseHTTPResponse, body: bytes) -> bool:
    """A CDN's edge page (Akamai's "Access Denied"), not a feed's JSON or XML error body."""
    kind = response.headers.get("Content-Type", "").lower()
    head = body[:200].lstrip().lower()
    return "text/html" in kind or head.startswith((b"<html", b"<!doctype html"))


READ_CHUNK = 64 * 1024


class FeedClient:
    """GET JSON from one base URL; thread-safe (one urllib3 pool shared by a pool's workers)."""

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
        self._timeout = urllib3.Timeout(connect=timeout[0], read=timeout[1])
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
        self.retry = retry
        default = {
            "User-Agent": user_agent,
            "Accept-Encoding": ACCEPT_ENCODING,
            "Accept": "application/json",
            "Connection": "keep-alive",
        }
        self.headers = merge_headers(default, headers)  # the feed's own (the NBA CDN's Referer)
        # The proxy settings are read from the environment once, for this base (as requests
        # would on every request: a scan of os.environ, a third of a poll's CPU in a pool).
        self.proxies: dict[str, str] = requests.utils.get_environ_proxies(self.base_url)
        ca = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        ca = ca or requests.certs.where()  # requests' own default: certifi's bundle
        self._pool_kw: dict[str, Any] = {
            "num_pools": 4,
            "maxsize": pool_maxsize,
            "cert_reqs": "CERT_REQUIRED",
            ("ca_cert_dir" if os.path.isdir(ca) else "ca_certs"): ca,
        }
        self._managers: dict[str | None, urllib3.PoolManager] = {}
        self._lock = threading.Lock()
        self.pool = self._manager(requests.utils.select_proxy(self.base_url, self.proxies))

    def _manager(self, proxy: str | None) -> urllib3.PoolManager:
        """The pool for ``proxy`` (None: direct), made once; a ProxyManager when proxied."""
        manager = self._managers.get(proxy)
        if manager is not None:
            return manager
        with self._lock:
            manager = self._managers.get(proxy)
            if manager is None:
                manager = self._managers[proxy] = self._new_manager(proxy)
        return manager

    def _new_manager(self, proxy: str | None) -> urllib3.PoolManager:
        if not proxy:
            return urllib3.PoolManager(**self._pool_kw)
        proxy = requests.utils.prepend_scheme_if_needed(proxy, "http")
        if proxy.lower().startswith("socks"):
            try:
                from urllib3.contrib.socks import SOCKSProxyManager
            except ImportError:  # PySocks is not installed
                return _Unusable(
                    f"the proxy {redact(proxy)} is a SOCKS proxy and PySocks is not installed "
                    "(pip install PySocks), or unset it for this feed (no_proxy)"
                )
            return SOCKSProxyManager(proxy, **self._pool_kw)
        username, password = requests.utils.get_auth_from_url(proxy)
        proxy_headers = {}
        if username:
            proxy_headers = urllib3.util.make_headers(proxy_basic_auth=f"{username}:{password}")
        return urllib3.ProxyManager(proxy, proxy_headers=proxy_headers, **self._pool_kw)

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
        pool = self.pool
        if self.proxies and not url.startswith(self.base_url + "/"):
            pool = self._manager(requests.utils.select_proxy(url, self.proxies))
        try:
            response = pool.urlopen(
                "GET",
                url,
                headers=merge_headers(self.headers, headers),
                retries=self.retry,
                timeout=self._timeout,
                preload_content=False,
                redirect=True,
            )
            body = self._read(url, response)
        except u3.MaxRetryError as exc:
            if isinstance(exc.reason, u3.ResponseError):  # too many redirects
                raise RetriableFeedError(
                    f"{url} kept failing after {self._retries()} retries ({exc}); try again later"
                ) from exc
            raise self._network_error(url, exc, exc.reason) from exc
        except (u3.ReadTimeoutError, u3.SSLError, u3.ProxyError, u3.NewConnectionError) as exc:
            raise self._network_error(url, exc, exc) from exc
        except u3.HTTPError as exc:  # a broken chunked body, an undecodable gzip, a bad URL
            raise FatalFeedError(f"{url}: request failed: {exc}; check the base URL") from exc
        except ValueError as exc:  # http.client refusing a header value: the value may be secret
            raise FatalFeedError(
                f"{url}: request failed: a header name or value is not valid HTTP "
                "(a newline or a leading space?); check the feed's and the task type's headers"
            ) from exc
        return self._decode(url, response, body)

    def _network_error(self, url: str, exc: Exception, reason: object) -> RetriableFeedError:
        timed_out = isinstance(reason, u3.TimeoutError) and not isinstance(
            reason,
            u3.NewConnectionError,  # a refused connection is one, for urllib3's history
        )
        kind = "timed out" if timed_out or "timed out" in str(exc) else "unreachable"
        name = type(reason if isinstance(reason, Exception) else exc).__name__
        return RetriableFeedError(
            f"{url} {kind} after {self._retries()} retries "
            f"(timeouts connect/read {self.timeout[0]}s/{self.timeout[1]}s): "
            f"{name}; try again later or check the network/base URL"
        )

    def _read(self, url: str, response: urllib3.BaseHTTPResponse) -> bytes:
        """The body, read in chunks and refused (FatalFeedError) past ``max_bytes``: a feed
        that answers 50 MB costs this process ``max_bytes`` at most, not 50 MB and its parse.
        The connection goes back to the pool when the body was read whole; otherwise it is
        closed (the rest of a 50 MB answer is not read to keep it)."""
        whole = False
        try:
            declared = response.headers.get("Content-Length", "")
            if declared.isdigit() and int(declared) > self.max_bytes:
                raise FatalFeedError(self._too_large(url, f"{int(declared):,} bytes declared"))
            chunks, size = [], 0
            for chunk in response.stream(READ_CHUNK, decode_content=True):
                size += len(chunk)
                if size > self.max_bytes:
                    raise FatalFeedError(
                        self._too_large(url, f"more than {self.max_bytes:,} bytes")
                    )
                chunks.append(chunk)
            whole = True
            return b"".join(chunks)
        finally:
            if not whole:
                response.close()
            response.release_conn()

    def _too_large(self, url: str, what: str) -> str:
        return (
            f"{redact(url)} answered {what}, above the {self.max_bytes:,}-byte limit; the poll "
            f"read no further. If the feed is meant to be this large, raise "
            f"{settings.FEED_MAX_BYTES.env}"
        )

    def _retries(self) -> int:
        return int(self.retry.total or 0)

    def _decode(self, url: str, response: urllib3.BaseHTTPResponse, body: bytes) -> Any:
        status = response.status
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
        for manager in list(self._managers.values()):
            manager.clear()

    def __enter__(self) -> FeedClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"FeedClient({self.base_url!r}, timeout={self.timeout})"


class _Unusable(urllib3.PoolManager):
    """A proxy this process cannot use (SOCKS without PySocks): each GET fails, saying why."""

    def __init__(self, why: str) -> None:
        super().__init__()
        self.why = why

    def urlopen(self, method: str, url: str, redirect: bool = True, **kw: Any) -> Any:
        raise u3.HTTPError(self.why)
