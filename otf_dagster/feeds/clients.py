"""HTTP clients for runners: one ``FeedClient`` (one urllib3 connection pool) per base
URL, shared by every task a runner process polls, and a per-poll face that records what the
poll fetched (``spawn`` reads the document)."""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from otf_dagster.exceptions import HostBusy
from otf_dagster.feeds.http import FeedClient
from otf_dagster.feeds.leagues import LEAGUES_FILE_ENV, load_leagues
from otf_dagster.feeds.providers import DEFAULT_BASE_URLS


def feed_hosts() -> dict[str, str]:
    """The real feeds' hosts -> feed name (cdn.nba.com -> nba_cdn)."""
    return {urlsplit(url).netloc: name for name, url in DEFAULT_BASE_URLS.items()}


class Clients:
    """FeedClients by base URL, created on first use; thread-safe. With ``per_host``, at most
    that many requests are in flight to one host at a time (a runner pool's thousands of
    tasks never hit a feed all at once); the others wait their turn. ``host_limits`` overrides
    it per host (``OTF_FEED_HOST_LIMITS``): a key is ``host:port`` or a host name (any port).
    Each host has its own permits: a slow host never holds another host's turn. With
    ``when_busy="raise"`` (a runner pool) a request finding its host's turns all taken does not
    wait: it raises HostBusy, and the pool holds the task back until ``free(host)``."""

    def __init__(
        self,
        *,
        timeout: tuple[float, float] = (3.05, 10.0),
        pool_maxsize: int = 8,
        per_host: int | None = None,
        host_limits: Mapping[str, int] | None = None,
        hosts: Mapping[str, str] | None = None,
        when_busy: str = "wait",
    ) -> None:
        if when_busy not in ("wait", "raise"):
            raise ValueError(f"when_busy must be 'wait' or 'raise', not {when_busy!r}")
        self.when_busy = when_busy
        self.timeout = timeout
        self.min_pool_maxsize = pool_maxsize
        self.per_host = per_host
        self.host_limits = {k.lower(): v for k, v in (host_limits or {}).items()}
        # a session to a feed's host carries that feed's headers (an http.json type polling
        # cdn.nba.com gets its Referer; the type's own headers win by name, per request)
        self.hosts = dict(hosts) if hosts is not None else feed_hosts()
        self._clients: dict[str, FeedClient] = {}
        self._limits: dict[str, HostTurns] = {}
        self._lock = threading.Lock()

    def limit_for(self, base_url: str) -> int | None:
        """Requests at a time to ``base_url``'s host: its override, else ``per_host``."""
        parts = urlsplit(base_url)
        netloc, name = parts.netloc.lower(), (parts.hostname or "").lower()
        return self.host_limits.get(netloc) or self.host_limits.get(name) or self.per_host

    def for_base(self, base_url: str) -> FeedClient:
        with self._lock:
            client = self._clients.get(base_url)
            if client is None:
                host = urlsplit(base_url).netloc
                feed = self.hosts.get(host)
                headers = (
                    load_leagues(os.environ.get(LEAGUES_FILE_ENV) or None).headers_for(feed)
                    if feed
                    else None
                )
                limit = self.limit_for(base_url)
                client = FeedClient(
                    base_url,
                    timeout=self.timeout,
                    pool_maxsize=max(self.min_pool_maxsize, limit or 0),
                    headers=headers,
                )
                if limit:  # one set of turns per host, shared by every base URL on it
                    turns = self._limits.setdefault(host.lower(), HostTurns(host.lower(), limit))
                    client = _Limited(client, turns, wait=self.when_busy == "wait")
                self._clients[base_url] = client
            return client

    def free(self, host: str) -> int:
        """Turns free now at ``host`` (``HostBusy.host``); a host with no limit: a large number."""
        turns = self._limits.get(host)
        return turns.free() if turns is not None else 1 << 30

    def close(self) -> None:
        with self._lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()

    def __enter__(self) -> Clients:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class HostTurns:
    """A host's requests at a time: ``limit`` turns, taken and given back (a counting
    semaphore that also says how many are free, for a pool deciding what to hold back)."""

    def __init__(self, host: str, limit: int) -> None:
        self.host = host
        self.limit = limit
        self.taken = 0
        self._cond = threading.Condition()

    def take(self, wait: bool) -> bool:
        with self._cond:
            while self.taken >= self.limit:
                if not wait:
                    return False
                self._cond.wait()
            self.taken += 1
            return True

    def give_back(self) -> None:
        with self._cond:
            self.taken -= 1
            self._cond.notify()

    def free(self) -> int:
        with self._cond:
            return self.limit - self.taken


class Wrapped:
    """A JSON client (``vocab.poll.JsonClient``) in front of another: every call goes to the
    wrapped client; a subclass adds what it does around ``get_json`` (a host's turn, the
    documents a poll fetched, a backfill's pace)."""

    def __init__(self, client: Any) -> None:
        self.client = client

    @property
    def base_url(self) -> str:
        return self.client.base_url

    def url_for(self, url_or_path: str, params: dict[str, Any] | None = None) -> str:
        return self.client.url_for(url_or_path, params)

    def get_json(
        self,
        url_or_path: str,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        return self.client.get_json(url_or_path, params, headers=headers)

    def close(self) -> None:
        self.client.close()


class _Limited(Wrapped):
    """A FeedClient whose requests take a turn of their host's: waiting for one, or (``wait``
    False) raising HostBusy when none is free."""

    def __init__(self, client: FeedClient, turns: HostTurns, *, wait: bool = True) -> None:
        super().__init__(client)
        self.turns = turns
        self.wait = wait

    def get_json(
        self,
        url_or_path: str,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        if not self.turns.take(self.wait):
            raise HostBusy(self.turns.host)
        try:
            return self.client.get_json(url_or_path, params, headers=headers)
        finally:
            self.turns.give_back()


class PollClient(Wrapped):
    """A FeedClient as one poll sees it: the documents fetched are kept for ``spawn``."""

    def __init__(self, client: Any) -> None:
        super().__init__(client)
        self.documents: list[Any] = []

    def get_json(
        self,
        url_or_path: str,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        doc = self.client.get_json(url_or_path, params, headers=headers)
        self.documents.append(doc)
        return doc

    @property
    def last_document(self) -> Any:
        return self.documents[-1] if self.documents else None
