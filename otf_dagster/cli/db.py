"""``otf db ...``, ``otf env`` and ``otf task-types ...``."""

from __future__ import annotations

import shlex

import click

from otf_dagster import config
from otf_dagster.cli._output import emit_object, emit_rows
from otf_dagster.core import task_types
from otf_dagster.core.store import TaskStore, migrations
from otf_dagster.local import embedded

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


@click.group()
def db() -> None:
    """The task database: migrations, status, the embedded server."""


@db.command()
def migrate() -> None:
    """Apply the migrations in sql/ that are not applied yet (idempotent)."""
    url = embedded.resolve_task_url()
    applied = migrations.migrate(url)
    click.echo(f"applied {', '.join(applied)}" if applied else "up to date: nothing to apply")


@db.command()
@json_option
def status(as_json: bool) -> None:
    """Applied migrations, TimescaleDB presence, hypertables."""
    info = migrations.status(embedded.resolve_task_url())
    if as_json:
        emit_object(info, True)
        return
    click.echo(f"server: PostgreSQL {info['server_version']}")
    ts = info["timescaledb"]
    click.echo(
        f"timescaledb: {ts if ts else 'not installed'}"
        + (
            ""
            if ts
            else f" ({'available' if info['timescaledb_available'] else 'not available'} on this server; plain tables)"
        )
    )
    click.echo(f"hypertables: {', '.join(info['hypertables']) or '(none)'}")
    click.echo(f"pending: {', '.join(info['pending']) or '(none)'}")
    emit_rows(info["applied"], False, ["version", "name", "applied_at"])


@db.command()
def start() -> None:
    """Start the embedded server (if not running) and create its two databases."""
    server, task_url, dagster_url = embedded.start_with_databases()
    click.echo(f"embedded PostgreSQL running in {server.pgdata}")
    click.echo(config.redact(f"task database:    {task_url}"))
    click.echo(config.redact(f"dagster storage:  {dagster_url}"))


@db.command()
def stop() -> None:
    """Stop the embedded server."""
    click.echo("stopped" if embedded.stop() else "not running")


@click.command("env")
def env() -> None:
    """Print shell exports for the databases (starting the embedded server when none is set):
    ``eval $(otf env)`` before `dagster` commands. A URL that carries a password is already in
    the environment and is not printed."""
    task_url, dagster_url = embedded.resolve_urls()
    for name, url in (
        (config.TASK_DB_ENV, task_url),
        (config.DAGSTER_DB_ENV, config.dagster_storage_url(dagster_url)),
    ):
        if config.redact(url) != url:
            click.echo(f"# {name} is set and carries a password: not printed")
        else:
            click.echo(f"export {name}={shlex.quote(url)}")


@click.group("task-types")
def task_types_group() -> None:
    """Task types: what a task is (handler, URL, poll interval, limits, services)."""


@task_types_group.command("apply")
@click.argument("file", type=click.Path(dir_okay=False))
def apply_cmd(file: str) -> None:
    """Create or update the task types in a YAML FILE (all or nothing)."""
    types = task_types.load_file(file)
    with TaskStore(embedded.resolve_task_url()) as store:
        for name, created in store.apply_task_types(types):
            click.echo(f"{'created' if created else 'updated'} {name}")


@task_types_group.command("list")
@click.option("--all", "include_deleted", is_flag=True, help="Include soft-deleted types.")
@json_option
def list_cmd(include_deleted: bool, as_json: bool) -> None:
    """List task types."""
    with TaskStore(embedded.resolve_task_url()) as store:
        types = store.list_task_types(include_deleted=include_deleted)
    cols = [
        "name",
        "handler",
        "poll_interval_seconds",
        "max_attempts",
        "required_services",
        "url_template",
    ]
    if include_deleted:
        cols.append("deleted_at")
    emit_rows([t.to_dict() for t in types], as_json, None if as_json else cols)


@task_types_group.command("delete")
@click.argument("name")
def delete_cmd(name: str) -> None:
    """Soft-delete task type NAME: its tasks are no longer claimed; running runners stop."""
    with TaskStore(embedded.resolve_task_url()) as store:
        store.delete_task_type(name)
    click.echo(f"deleted {name}")
