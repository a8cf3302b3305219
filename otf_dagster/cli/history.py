"""``otf history prune | status``: retention by hand, the same code as the history_prune job.

The Dagster side prunes the instance ``DAGSTER_HOME`` names (``eval "$(otf env)"`` exports it
while ``otf dev`` runs); ``--no-dagster`` prunes the task database alone.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import click
from tabulate import tabulate

from otf_dagster.cli._output import to_json
from otf_dagster.core import retention
from otf_dagster.core.store import TaskStore
from otf_dagster.exceptions import ConfigError, shown
from otf_dagster.local import embedded

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


def parse_days(value: str | None, option: str) -> int | None:
    """A whole number of days from the command line, at least 1 (None stays None)."""
    if value is None:
        return None
    try:
        days = int(value.strip())
    except ValueError:
        raise ConfigError(
            f"{option} {shown(value)} is not a whole number of days; e.g. {option} 30"
        ) from None
    return retention.check_days(days, option)


@contextlib.contextmanager
def dagster_instance(wanted: bool) -> Iterator[object | None]:
    """The instance of DAGSTER_HOME, or None when not wanted."""
    if not wanted:
        yield None
        return
    if not os.environ.get("DAGSTER_HOME"):
        raise ConfigError(
            "DAGSTER_HOME is not set, so there is no Dagster storage to prune "
            '(eval "$(otf env)" exports it while `otf dev` runs); pass --no-dagster to prune '
            "the task database alone"
        )
    import dagster as dg

    try:
        instance = dg.DagsterInstance.get()
    except Exception as exc:  # noqa: BLE001 - Dagster's own errors: one line, then stop
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"cannot open the Dagster instance of DAGSTER_HOME: {first}") from None
    with instance:
        yield instance


def _side(instance):
    from otf_dagster.defs.history import InstanceSide

    return InstanceSide(instance)


@click.group("history")
def history() -> None:
    """Retention: prune old history from Dagster's storage and the task database, and see
    what is kept."""


@history.command("prune")
@click.option(
    "--older-than",
    "older_than",
    default=str(retention.DEFAULT_OLDER_THAN_DAYS),
    show_default=True,
    metavar="DAYS",
    help="Tasks that ended, and poll rows written, more than DAYS ago.",
)
@click.option(
    "--events-older-than",
    "events_older_than",
    default=None,
    metavar="DAYS",
    help="Also events older than DAYS, up to the lowest position a consumer cursor or "
    "delivery endpoint holds (default: events are kept).",
)
@click.option("--dry-run", is_flag=True, help="Say what would go; remove and write nothing.")
@click.option(
    "--force-consumer",
    "force",
    multiple=True,
    metavar="NAME",
    help="Leave this reader out of the events guard: a consumer's name, or endpoint:ID "
    "(again for more).",
)
@click.option("--batch-size", default=retention.DEFAULT_BATCH_SIZE, show_default=True, type=int)
@click.option("--no-dagster", is_flag=True, help="The task database only (no DAGSTER_HOME).")
@json_option
def prune_cmd(
    older_than: str,
    events_older_than: str | None,
    dry_run: bool,
    force: tuple[str, ...],
    batch_size: int,
    no_dagster: bool,
    as_json: bool,
) -> None:
    """Remove what ended long ago: ended tasks' partitions and runs from Dagster's storage,
    old poll rows, and (with --events-older-than) events every reader has passed. Tasks and
    their states stay in the task database: `otf tasks show` reads a pruned task in full."""
    settings = retention.PruneSettings(
        older_than_days=parse_days(older_than, "--older-than"),
        events_older_than_days=parse_days(events_older_than, "--events-older-than"),
        force=force,
        dry_run=dry_run,
        batch_size=batch_size,
    )
    url = embedded.resolve_task_url(writes=not dry_run)
    with dagster_instance(not no_dagster) as instance, TaskStore(url) as store:
        side = _side(instance) if instance is not None else None
        report = retention.prune(store, side, settings, source="otf history prune")
    if as_json:
        click.echo(to_json(report.to_dict()))
        return
    for line in report.lines():
        click.echo(line)


@history.command("status")
@click.option(
    "--older-than",
    "older_than",
    default=str(retention.DEFAULT_OLDER_THAN_DAYS),
    show_default=True,
    metavar="DAYS",
    help="The age the next prune is counted for.",
)
@click.option("--events-older-than", "events_older_than", default=None, metavar="DAYS")
@click.option("--force-consumer", "force", multiple=True, metavar="NAME")
@json_option
def status_cmd(
    older_than: str, events_older_than: str | None, force: tuple[str, ...], as_json: bool
) -> None:
    """Sizes per table (rows, oldest row, bytes; chunks and compressed chunks on TimescaleDB),
    the readers holding events back, the last prunes, and what the next prune would remove.
    With DAGSTER_HOME set: this instance's task partitions and runs too."""
    days = parse_days(older_than, "--older-than")
    events_days = parse_days(events_older_than, "--events-older-than")
    url = embedded.resolve_task_url(writes=False)
    with dagster_instance(bool(os.environ.get("DAGSTER_HOME"))) as instance:
        dagster = None
        if instance is not None:
            from otf_dagster.defs.partitions import TASKS_PARTITIONS_NAME

            side = _side(instance)
            dagster = {
                "deployment_id": side.deployment_id,
                "task_partitions": len(instance.get_dynamic_partitions(TASKS_PARTITIONS_NAME)),
                "runs": instance.get_runs_count(),
            }
        with TaskStore(url) as store:
            info = retention.status(
                store,
                older_than_days=days,
                events_older_than_days=events_days,
                force=force,
                deployment_id=dagster["deployment_id"] if dagster else None,
            )
    info["dagster"] = dagster
    if as_json:
        click.echo(to_json(info))
        return
    _print_status(info)


def _print_status(info: dict) -> None:
    rows = [
        [
            t["table"],
            t["rows"],
            t["oldest"].isoformat(timespec="seconds") if t["oldest"] else "",
            _bytes(t["bytes"]),
            "" if t["chunks"] is None else t["chunks"],
            "" if t["compressed_chunks"] is None else t["compressed_chunks"],
        ]
        for t in info["tables"]
    ]
    click.echo(tabulate(rows, headers=["table", "rows", "oldest", "size", "chunks", "compressed"]))
    click.echo("")
    if info["holders"]:
        click.echo("readers holding events (lowest first):")
        for h in info["holders"][:10]:
            click.echo(f"  {h['holder']} at seq {h['held_at']}")
    else:
        click.echo("readers holding events: none")
    d = info["dagster"]
    if d:
        click.echo(
            f"dagster (deployment {d['deployment_id']}): {d['task_partitions']} task "
            f"partition(s), {d['runs']} run(s)"
        )
    else:
        click.echo("dagster: DAGSTER_HOME not set (its partitions and runs are not counted)")
    n = info["next_prune"]
    where = f"deployment {n['deployment_id']}" if n["deployment_id"] else "any Dagster storage"
    events = (
        "events kept (no --events-older-than)"
        if n["events_older_than_days"] is None
        else f"{n['events']} event(s) older than {n['events_older_than_days']} days"
        + (f", {n['events_held']} held back by {n['held_back_by']}" if n["events_held"] else "")
    )
    click.echo(
        f"next prune (older than {n['older_than_days']} days): {n['tasks_for_dagster']} ended "
        f"task(s) not yet pruned from {where}; {n['polls']} poll row(s); {events}"
    )
    for p in info["last_prunes"]:
        state = (
            f"failed: {p['error']}"
            if p["error"]
            else "finished " + p["finished_at"].isoformat(timespec="seconds")
            if p["finished_at"]
            else "not finished (running, or stopped: the next prune carries on)"
        )
        removed = ", ".join(f"{k} {v}" for k, v in p["removed"].items() if v) or "nothing"
        click.echo(
            f"prune #{p['prune_id']} ({p['source']}, started "
            f"{p['started_at'].isoformat(timespec='seconds')}): {state}; removed {removed}"
        )


def _bytes(n: int | None) -> str:
    if n is None:
        return ""
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)
