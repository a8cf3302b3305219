"""HTTP clients for runners: one ``FeedClient`` (one pooled ``requests.Session``) per base
URL, shared by every task a runner process polls, and a per-poll face that records what the
poll fetched (``spawn`` reads the document)."""

from __future__ import annotations

import threading
from typing import Any

from otf_dagster.feeds.http import FeedClient


class Clients:
    """FeedClients by base URL, created on first use; thread-safe."""

    def __init__(self, *, timeout: tuple[float, float] = (3.05, 10.0), pool_maxsize: int = 8):
        self.timeout = timeout
        self.pool_maxsize = pool_maxsize
        self._clients: dict[str, FeedClient] = {}
        self._lock = threading.Lock()

    def for_base(self, base_url: str) -> FeedClient:
        with self._lock:
            client = self._clients.get(base_url)
            if client is None:
                client = FeedClient(base_url, timeout=self.timeout, pool_maxsize=self.pool_maxsize)
                self._clients[base_url] = client
            return client

    def close(self) -> None:
        with self._lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()

    def __enter__(self) -> Clients:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class PollClient:
    """A FeedClient as one poll sees it: the documents fetched are kept for ``spawn``."""

    def __init__(self, client: FeedClient) -> None:
        self.client = client
        self.documents: list[Any] = []

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
        doc = self.client.get_json(url_or_path, params, headers=headers)
        self.documents.append(doc)
        return doc

    @property
    def last_document(self) -> Any:
        return self.documents[-1] if self.documents else None
