"""``otf api``: the reports API on uvicorn, and ``otf services token ...``: its credentials."""

from __future__ import annotations

import socket

import click

from otf_dagster.cli._output import emit_rows
from otf_dagster.core.store import TaskStore, tokens
from otf_dagster.exceptions import ConfigError
from otf_dagster.local import embedded


@click.command("api")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8770, show_default=True, type=click.IntRange(0, 65535),
              help="Port (0: any free port; the bound URL is printed).")  # fmt: skip
def api(host: str, port: int) -> None:
    """Serve POST /v1/tasks/{task_id}/reports, GET /v1/tasks/{task_id} and /openapi.json until
    SIGTERM or Ctrl-C."""
    import uvicorn

    from otf_dagster.api import create_app

    app = create_app(embedded.resolve_task_url())
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port} ({exc.strerror}); "
                          "pick another --port (0: any free one)") from None  # fmt: skip
    sock.listen(128)  # connections wait in the backlog until uvicorn accepts them
    bound = sock.getsockname()[1]
    shown_host = f"[{host}]" if family == socket.AF_INET6 else host
    click.echo(f"otf api listening on http://{shown_host}:{bound}", err=False)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    server.run(sockets=[sock])


@click.group("services")
def services_group() -> None:
    """Services that report back to the Task Manager."""


@services_group.group("token")
def token_group() -> None:
    """Bearer tokens for `otf api` (only a hash is stored)."""


@token_group.command("create")
@click.argument("owner")
def token_create(owner: str) -> None:
    """Make a token for OWNER (one with a subscription) and print it once."""
    with TaskStore(embedded.resolve_task_url()) as store:
        click.echo(tokens.create(store, owner))


@token_group.command("list")
@click.option("--owner", default=None, help="Only this owner's tokens.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def token_list(owner: str | None, as_json: bool) -> None:
    """Tokens by owner, shown by their prefix (never the token)."""
    with TaskStore(embedded.resolve_task_url(writes=False)) as store:
        rows = tokens.list_tokens(store, owner)
    emit_rows(rows, as_json, ["owner", "prefix", "created_at", "last_used_at", "revoked_at"])


@token_group.command("revoke")
@click.argument("prefix")
def token_revoke(prefix: str) -> None:
    """Revoke the token that starts with PREFIX (as `otf services token list` shows it)."""
    with TaskStore(embedded.resolve_task_url()) as store:
        row = tokens.revoke(store, prefix)
    click.echo(f"revoked token {row['prefix']}… of {row['owner']}")
