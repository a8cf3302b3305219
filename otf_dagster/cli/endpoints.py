"""``otf endpoints ...`` (where an owner's events are pushed) and ``otf relay`` (the pusher)."""

from __future__ import annotations

import os
import re
import signal
import threading

import click

from otf_dagster import settings as S
from otf_dagster.cli._output import emit_object, emit_rows, parse_time, to_json
from otf_dagster.core.delivery import relay as relay_mod
from otf_dagster.core.delivery.nats_sink import validate_prefix
from otf_dagster.core.delivery.webhook import validate_secret, validate_url
from otf_dagster.core.store import TaskStore
from otf_dagster.core.store import delivery as dstore
from otf_dagster.exceptions import ConfigError
from otf_dagster.local import embedded

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_KIND = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
LIST_COLUMNS = ["endpoint_id", "owner", "sink", "target", "state", "lag", "dead", "delivered",
                "last_success_at", "last_failure_at", "last_error"]  # fmt: skip


@click.group("endpoints")
def endpoints() -> None:
    """Where an owner's events are pushed: signed webhooks or a NATS JetStream subject."""


@endpoints.command("add")
@click.argument("owner")
@click.option("--webhook", "webhook_url", default=None, help="POST events to this http(s) URL.")
@click.option(
    "--secret-env",
    "secret_envs",
    multiple=True,
    help="Environment variable holding the whsec_... secret (repeat while rotating).",
)
@click.option("--nats-subject", default=None, help="Publish to JetStream under this prefix.")
@click.option(
    "--nats-url", default=None, help="The NATS server (default: the relay's OTF_NATS_URL)."
)
@click.option("--kind", "kinds", multiple=True, help="Only these event kinds (repeatable).")
@click.option(
    "--batch",
    "batch_size",
    type=click.IntRange(1, 1000),
    default=1,
    show_default=True,
    help="Events per POST (above 1: the body is a JSON array).",
)
@click.option(
    "--rate",
    "rate_per_s",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="At most this many events per second to this endpoint.",
)
@click.option(
    "--allow-link-local",
    is_flag=True,
    help="Allow delivery to 169.254.0.0/16 (cloud metadata lives there).",
)
@click.option("--from-start", is_flag=True, help="Deliver every stored event, not only new ones.")
@json_option  # fmt: skip
def add(owner, webhook_url, secret_envs, nats_subject, nats_url, kinds, batch_size, rate_per_s,
        allow_link_local, from_start, as_json) -> None:  # fmt: skip
    """Add an endpoint for OWNER (an owner with subscriptions): it gets the events of every task
    type OWNER subscribes to, from now on."""
    if bool(webhook_url) == bool(nats_subject):
        raise ConfigError("give exactly one of --webhook URL or --nats-subject PREFIX")
    for kind in kinds:
        if not _KIND.match(kind):
            raise ConfigError(
                f"--kind {kind!r} is not an event kind (lowercase, e.g. score_changed)"
            )
    if webhook_url:
        validate_url(webhook_url, allow_link_local=allow_link_local)
        if not secret_envs:
            raise ConfigError(
                "a webhook needs --secret-env VAR: the name of an environment variable holding "
                "its whsec_... secret (`otf endpoints secret` makes one)"
            )
        for name in secret_envs:
            if not _ENV_NAME.match(name):
                # Not echoed when it may be the secret itself (people paste the value here).
                shown = "a value" if len(name) > 40 or "whsec" in name.lower() else repr(name)
                raise ConfigError(
                    f"--secret-env {shown} is not an environment variable name; pass the "
                    "variable's name, never the secret itself"
                )
            validate_secret(name, os.environ.get(name))
        sink = "webhook"
    else:
        if secret_envs:
            raise ConfigError("--secret-env is for webhooks; a NATS endpoint has no secret")
        validate_prefix(nats_subject)
        if nats_url is not None and not re.match(r"^(nats|tls)://[^/\s]+$", nats_url):
            raise ConfigError(f"--nats-url {nats_url!r}: give e.g. nats://127.0.0.1:4222")
        if nats_url and "@" in nats_url:
            raise ConfigError("--nats-url may not carry credentials; use OTF_NATS_URL for those")
        sink = "nats"
    with TaskStore(embedded.resolve_task_url()) as store:
        row = dstore.add_endpoint(
            store,
            owner=owner.strip().lower(),
            sink=sink,
            url=webhook_url or nats_url,
            secret_envs=secret_envs,
            nats_subject=nats_subject,
            kinds=kinds or None,
            batch_size=batch_size,
            rate_per_s=rate_per_s,
            allow_link_local=allow_link_local,
            from_start=from_start,
        )
    if as_json:
        click.echo(to_json(_public(row)))
    else:
        target = row["url"] if sink == "webhook" else row["nats_subject"]
        click.echo(f"endpoint {row['endpoint_id']}: {row['owner']} -> {sink} {target}")


@endpoints.command("secret")
def secret() -> None:
    """Print a new random whsec_... secret (put it in an environment variable yourself)."""
    import base64
    import secrets as pysecrets

    click.echo("whsec_" + base64.b64encode(pysecrets.token_bytes(32)).decode())


def _public(row: dict) -> dict:
    """An endpoint as shown: never a secret (only the names of the variables holding it)."""
    out = {k: v for k, v in row.items() if k not in ("lease_until",)}
    return out


def _settings() -> relay_mod.RelaySettings:
    return relay_mod.RelaySettings.from_env()


@endpoints.command("list")
@click.option("--owner", default=None, help="Only this owner's endpoints.")
@click.option("--all", "include_removed", is_flag=True, help="Removed endpoints too.")
@json_option
def list_cmd(owner: str | None, include_removed: bool, as_json: bool) -> None:
    """Endpoints with their health: state, lag in events, last success and failure."""
    settings = _settings()
    with TaskStore(embedded.resolve_task_url(writes=False)) as store:
        rows = [
            relay_mod.health(store, e, settings)
            for e in dstore.list_endpoints(store, owner=owner, include_removed=include_removed)
        ]
    emit_rows(rows, as_json, LIST_COLUMNS)


@endpoints.command("show")
@click.argument("endpoint_id", type=int)
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True,
              help="Failed attempts to list.")  # fmt: skip
@json_option
def show(endpoint_id: int, limit: int, as_json: bool) -> None:
    """One endpoint: its settings, health, and its failed attempts (the dead-letter view)."""
    with TaskStore(embedded.resolve_task_url(writes=False)) as store:
        endpoint = dstore.get_endpoint(store, endpoint_id)
        info = {**_public(endpoint), **relay_mod.health(store, endpoint, _settings())}
        failures = dstore.failed_attempts(store, endpoint_id, limit)
    if as_json:
        click.echo(to_json({"endpoint": info, "failed_attempts": failures}))
        return
    emit_object(info, False)
    click.echo("")
    click.echo("failed attempts (newest first):")
    emit_rows(failures, False, ["at", "seq", "task_id", "kind", "attempt", "status", "error",
                                "response_start"])  # fmt: skip


def _set_state(endpoint_id: int, state: str, reason: str | None) -> None:
    with TaskStore(embedded.resolve_task_url()) as store:
        row = dstore.set_state(store, endpoint_id, state, reason)
    click.echo(f"endpoint {row['endpoint_id']} ({row['owner']}) is {row['state']}")


@endpoints.command("pause")
@click.argument("endpoint_id", type=int)
def pause(endpoint_id: int) -> None:
    """Stop sending to an endpoint; its position waits (resume sends what it missed)."""
    _set_state(endpoint_id, "paused", "paused by a person")


@endpoints.command("resume")
@click.argument("endpoint_id", type=int)
def resume(endpoint_id: int) -> None:
    """Send again to a paused or disabled endpoint, from where it stopped."""
    _set_state(endpoint_id, "active", None)


@endpoints.command("remove")
@click.argument("endpoint_id", type=int)
def remove(endpoint_id: int) -> None:
    """Stop an endpoint for good (its history stays readable with `list --all`)."""
    _set_state(endpoint_id, "removed", "removed by a person")


@endpoints.command("replay")
@click.argument("endpoint_id", type=int)
@click.option("--from-seq", type=click.IntRange(min=1), default=None, help="Events from this seq.")
@click.option("--since", default=None, help="Events at or after this ISO time.")
@click.option("--until", default=None, help="Events before this ISO time.")
def replay(endpoint_id: int, from_seq: int | None, since: str | None, until: str | None) -> None:
    """Send already-delivered events again, with their same ids."""
    if from_seq is None and since is None and until is None:
        raise ConfigError("say what to replay: --from-seq N, --since TIME and/or --until TIME")
    with TaskStore(embedded.resolve_task_url()) as store:
        n = dstore.replay(
            store,
            endpoint_id,
            from_seq=from_seq,
            since=None if since is None else parse_time(since, "--since"),
            until=None if until is None else parse_time(until, "--until"),
        )
    click.echo(f"endpoint {endpoint_id}: {n} event(s) queued again")


@click.command("relay")
@click.option("--nats-url", default=None, help="NATS server for endpoints without their own "
              "(default OTF_NATS_URL, else the embedded one).")  # fmt: skip
def relay(nats_url: str | None) -> None:
    """Deliver events to every endpoint in the foreground until SIGTERM or Ctrl-C."""
    url = embedded.resolve_task_url()
    if nats_url is None:
        nats_url = S.NATS_URL.read()
    if nats_url is None:
        from otf_dagster.local import nats as local_nats

        found = local_nats.running()
        nats_url = found.url if found is not None else None
    settings = relay_mod.RelaySettings.from_env(nats_url=nats_url)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    r = relay_mod.Relay(url, settings=settings)
    click.echo(f"otf relay {r.holder}: delivering (Ctrl-C stops)", err=True)
    r.run(stop)
    click.echo(f"otf relay: stopped; {r.sent} event(s) delivered", err=True)
