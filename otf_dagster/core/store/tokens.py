"""Service tokens: the credential a service presents to ``otf api`` to report under its own
owner name. A token is made here, shown once, and only its SHA-256 hash is stored."""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from otf_dagster.core.store.queries import query
from otf_dagster.core.store.store import TaskStore
from otf_dagster.exceptions import StoreError

TOKEN_PREFIX = "otf_"
PREFIX_CHARS = 12  # "otf_" + 8 random characters: enough to tell tokens apart, not to guess one


def _hash(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def create(store: TaskStore, owner: str) -> str:
    """A new token for ``owner`` (one with a subscription); returns the token itself, which is
    not kept anywhere: only its hash and its first characters are stored."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)

    def work(c) -> None:
        if c.execute(query("tokens_owner_known"), {"owner": owner}).fetchone() is None:
            raise StoreError(
                f"unknown owner {owner!r}: it subscribes to no task type; "
                f"run `otf subscriptions add {owner} TASK_TYPE` first"
            )
        c.execute(
            query("tokens_insert"),
            {"owner": owner, "token_hash": _hash(token), "prefix": token[:PREFIX_CHARS]},
        )

    store.run(f"create a token for {owner!r}", work)
    return token


def authenticate(store: TaskStore, token: str) -> str | None:
    """The owner a live token belongs to, or None (unknown or revoked)."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    row = store.run(
        "check a service token",
        lambda c: c.execute(query("tokens_authenticate"), {"token_hash": _hash(token)}).fetchone(),
    )
    return row["owner"] if row else None


def list_tokens(store: TaskStore, owner: str | None = None) -> list[dict[str, Any]]:
    return store.fetch_all("list service tokens", "tokens_list", {"owner": owner})


def revoke(store: TaskStore, prefix: str) -> dict[str, Any]:
    row = store.run(
        f"revoke token {prefix!r}",
        lambda c: c.execute(query("tokens_revoke"), {"prefix": prefix}).fetchone(),
    )
    if row is None:
        raise StoreError(
            f"no live token starts with {prefix!r}; see `otf services token list` for prefixes"
        )
    return row
