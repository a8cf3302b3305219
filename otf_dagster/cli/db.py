"""``otf db ...``, ``otf env`` and ``otf task-types ...``."""

from __future__ import annotations

import os
import shlex
from datetime import timedelta

import click

from otf_dagster import config
from otf_dagster.cli._output import emit_object, emit_rows
from otf_dagster.core.store import TaskStore, migrations
from otf_dagster.handlers import task_types
from otf_dagster.local import dagster_home, embedded, session

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


@click.group()
def db() -> None:
    """The task database: migrations, status, the embedded server."""


@db.command()
def migrate() -> None:
    """Apply the migrations in sql/ that are not applied yet (idempotent), then the TimescaleDB
    step: where the server has TimescaleDB, plain time-series tables become hypertables with
    their rows, with compression, retention and continuous aggregates."""
    url = embedded.resolve_task_url()
    applied = migrations.migrate(url, on_note=click.echo)
    click.echo(f"applied {', '.join(applied)}" if applied else "up to date: nothing to apply")


@db.command()
@json_option
def status(as_json: bool) -> None:
    """Migrations; TimescaleDB: hypertables, chunks, compression, continuous aggregates, policy
    jobs with their last run and last error."""
    info = migrations.status(embedded.resolve_task_url(writes=False))
    if as_json:
        emit_object(info, True)
        return
    click.echo(f"server: PostgreSQL {info['server_version']}")
    click.echo(f"timescaledb: {_timescaledb_line(info)}")
    for note in info["notes"]:
        click.echo(f"note: {note}")
    if info["hypertables"]:
        click.echo("\nhypertables:")
        emit_rows([_hypertable_row(h) for h in info["hypertables"]], False)
        click.echo(
            f"\ncontinuous aggregates: {', '.join(info['continuous_aggregates']) or '(none)'}"
        )
        click.echo("\npolicy jobs:")
        emit_rows(
            [{**j, "schedule_interval": _interval(j["schedule_interval"])} for j in info["jobs"]],
            False,
            [
                "job_id",
                "job",
                "relation",
                "schedule_interval",
                "scheduled",
                "last_run_started_at",
                "last_run_status",
                "next_start",
                "last_error",
            ],
        )
    click.echo(f"\npending: {', '.join(info['pending']) or '(none)'}")
    emit_rows(info["applied"], False, ["version", "name", "applied_at"])


def _timescaledb_line(info: dict) -> str:
    if info["timescaledb"] and info["timescaledb_preloaded"]:
        return f"{info['timescaledb']}"
    if info["timescaledb"]:
        return f"{info['timescaledb']} installed in this database, library not preloaded"
    if info["timescaledb_available"]:
        preload = "preloaded" if info["timescaledb_preloaded"] else "not preloaded"
        return f"not installed in this database (available on this server, {preload}); plain tables"
    return "not installed (not available on this server); plain tables"


def _hypertable_row(h: dict) -> dict:
    before, after = h["before_compression_total_bytes"], h["after_compression_total_bytes"]
    return {
        "hypertable": h["hypertable_name"],
        "chunk_interval": _interval(h["chunk_interval"]),
        "chunks": h["num_chunks"],
        "compressed": h["compressed_chunks"],
        "segment_by": h["compress_segmentby"],
        "order_by": h["compress_orderby"],
        "size": _bytes(h["total_bytes"]),
        "compression": f"{before / after:.1f}x" if before and after else "",
    }


def _interval(td: timedelta | None) -> str:
    if td is None:
        return ""
    seconds = int(td.total_seconds())
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _bytes(n: int | None) -> str:
    if n is None:
        return ""
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return ""


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
    """Print shell exports for the databases (starting the embedded server when none is set)
    and, while `otf dev` runs, for its system (DAGSTER_HOME, the simulator's
    OTF_FEED_BASE_URL, the code server): ``eval "$(otf env)"`` before `dagster` or `otf`
    commands in another shell."""
    embedded_used = not os.environ.get(config.TASK_DB_ENV)
    task_url, dagster_url = embedded.resolve_urls()
    if embedded_used:
        embedded.announce(task_url)
    exports = {
        config.TASK_DB_ENV: task_url,
        config.DAGSTER_DB_ENV: config.dagster_storage_url(dagster_url),
    }
    running = session.read()
    if running:
        exports |= running
    else:
        home = dagster_home.prepare(config.state_dir() / "dagster_home")
        exports["DAGSTER_HOME"] = str(home)
        click.echo(
            "# no `otf dev` running: feeds are the real ones unless OTF_FEED_BASE_URL is set"
        )
    for name, value in exports.items():
        if config.redact(value) != value:  # a password: already in the environment
            click.echo(f"# {name} is set and carries a password: not printed")
        else:
            click.echo(f"export {name}={shlex.quote(value)}")


@click.group("task-types")
def task_types_group() -> None:
    """Task types: what a task is (handler, URL, poll interval, limits, services)."""


@task_types_group.command("apply")
@click.argument("file", type=click.Path(dir_okay=False))
def apply_cmd(file: str) -> None:
    """Create or update the task types in a YAML FILE (all or nothing)."""
    types = task_types.load_file(file)
    with TaskStore(embedded.resolve_task_url()) as store:
        for name, created in task_types.apply(store, types):
            click.echo(f"{'created' if created else 'updated'} {name}")


@task_types_group.command("list")
@click.option("--all", "include_deleted", is_flag=True, help="Include soft-deleted types.")
@json_option
def list_cmd(include_deleted: bool, as_json: bool) -> None:
    """List task types."""
    with TaskStore(embedded.resolve_task_url(writes=False)) as store:
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
