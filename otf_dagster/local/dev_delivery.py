"""``otf dev``'s two demo endpoints: its owner, subscriptions, token, secret and endpoints.

The owner ``dev-receiver`` subscribes to every live task type and is made a *required* service
of the box-score types (their handlers end a game with ``game_final``, after which the receiver
reports FINISHED): a game's task is FINISHED once both its runner and the receiver reported.
Each session gets a fresh signing secret (an environment variable of the relay's host and of
the receiver only; the endpoint stores its name) and a fresh token (only in the receiver's
environment; the session's earlier tokens are revoked). The endpoints are kept across
sessions, so their positions carry on: the webhook one is moved to the new receiver's URL.
"""

from __future__ import annotations

import base64
import dataclasses
import secrets

from otf_dagster.core.services import subscribe
from otf_dagster.core.store import TaskStore, tokens
from otf_dagster.core.store import delivery as dstore

OWNER = "dev-receiver"
SECRET_ENV = "OTF_DEV_WEBHOOK_SECRET"
SUBJECT = "otf.dev"
FINAL_HANDLER_SUFFIX = ".boxscore"  # handlers whose tasks end with a game_final event


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def subscribe_all(store: TaskStore, owner: str = OWNER) -> list[str]:
    """Subscribe ``owner`` to every live task type (idempotent); the types it now requires."""
    required = []
    types = store.list_task_types()
    for tt in types:
        subscribe(store, owner, tt.name)
    changed = []
    for tt in types:
        if not tt.handler.endswith(FINAL_HANDLER_SUFFIX):
            continue
        required.append(tt.name)
        if owner not in tt.required_services:
            services = (*tt.required_services, owner)
            changed.append(dataclasses.replace(tt, required_services=services))
    if changed:
        from otf_dagster.handlers import task_types

        task_types.apply(store, changed)
    return required


def fresh_token(store: TaskStore, owner: str = OWNER) -> str:
    """A new token for ``owner``; its earlier live ones are revoked (one session, one token)."""
    for row in tokens.list_tokens(store, owner):
        if row["revoked_at"] is None:
            tokens.revoke(store, row["prefix"])
    return tokens.create(store, owner)


def ensure_endpoints(
    store: TaskStore, webhook_url: str, owner: str = OWNER, subject: str = SUBJECT
) -> dict[str, int]:
    """The owner's webhook endpoint (at ``webhook_url``) and NATS endpoint (``subject``),
    added once and kept: their ids, by sink."""
    ids: dict[str, int] = {}
    for row in dstore.list_endpoints(store, owner=owner):
        if row["sink"] == "webhook" and "webhook" not in ids:
            if row["url"] != webhook_url or list(row["secret_envs"]) != [SECRET_ENV]:
                dstore.set_url(store, row["endpoint_id"], webhook_url, [SECRET_ENV])
            ids["webhook"] = row["endpoint_id"]
        elif row["sink"] == "nats" and row["nats_subject"] == subject and "nats" not in ids:
            ids["nats"] = row["endpoint_id"]
    if "webhook" not in ids:
        row = dstore.add_endpoint(
            store, owner=owner, sink="webhook", url=webhook_url, secret_envs=[SECRET_ENV]
        )
        ids["webhook"] = row["endpoint_id"]
    if "nats" not in ids:
        row = dstore.add_endpoint(store, owner=owner, sink="nats", nats_subject=subject)
        ids["nats"] = row["endpoint_id"]
    return ids
