"""``otf tasks ...``: schedule, list and inspect tasks."""

from __future__ import annotations

import click

from otf_dagster.cli._output import emit_object, emit_rows, parse_time, to_json
from otf_dagster.core.models import TaskState
from otf_dagster.core.store import TaskStore
from otf_dagster.core.timeline import timeline
from otf_dagster.exceptions import StoreError, shown
from otf_dagster.local import embedded

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


@click.group()
def tasks() -> None:
    """Tasks: one row per (type, external key), and their state history."""


@tasks.command()
@click.option("--type", "task_type", required=True, help="Task type name, e.g. NBA_GAME_BOXSCORE.")
@click.option("--key", required=True, help="External key, e.g. a game id.")
@click.option("--at", "at", required=True, help="When it becomes ready (ISO time with zone).")
@json_option
def schedule(task_type: str, key: str, at: str, as_json: bool) -> None:
    """Schedule a task (idempotent: a still-SCHEDULED task moves to the new time).

    A task that has already started is left as it is and says so; one that has ended
    (FINISHED, FAILED, CANCELLED) is not scheduled again: the command says how it ended and
    exits 1.
    """
    when = parse_time(at, "--at")
    with TaskStore(embedded.resolve_task_url()) as store:
        task_id, outcome = store.schedule_task(task_type, key, when, source="cli")
        task = store.get_task(task_id) if outcome == "unchanged" else None
    if task is not None and task.state.terminal:
        how = f" ({shown(task.last_error, 120)})" if task.last_error else ""
        raise StoreError(
            f"task {task_id} is {task.state} (attempt {task.attempt}){how}: a task that has "
            "ended is not scheduled again; see `otf tasks show`"
        )
    state = task.state if task is not None else TaskState.SCHEDULED
    if as_json:
        click.echo(
            to_json({"task_id": task_id, "outcome": outcome, "state": state, "scheduled_at": when})
        )
    elif task is not None and task.state != TaskState.SCHEDULED:
        click.echo(
            f"unchanged {task_id}: already {task.state} (attempt {task.attempt}) since "
            f"{task.scheduled_at.isoformat()}"
        )
    else:
        click.echo(f"{outcome} {task_id} at {when.isoformat()}")


@tasks.command("list")
@click.option("--state", type=click.Choice([s.value for s in TaskState], case_sensitive=False))
@click.option("--type", "task_type", default=None, help="Only this task type.")
@click.option("--limit", default=200, show_default=True)
@json_option
def list_cmd(state: str | None, task_type: str | None, limit: int, as_json: bool) -> None:
    """List tasks, newest scheduled first."""
    with TaskStore(embedded.resolve_task_url()) as store:
        rows = store.list_tasks(state=state, task_type=task_type, limit=limit)
    cols = [
        "task_id",
        "task_type",
        "external_key",
        "scheduled_at",
        "state",
        "attempt",
        "run_id",
        "last_error",
    ]
    emit_rows([t.to_dict() for t in rows], as_json, None if as_json else cols)


@tasks.command()
@click.argument("task_id")
@json_option
def show(task_id: str, as_json: bool) -> None:
    """A task, its services' states and its timeline (states, reports and events in order)."""
    with TaskStore(embedded.resolve_task_url()) as store:
        task = store.get_task(task_id)
        services = store.service_states(task_id)
        entries = timeline(store, task_id)
    if as_json:
        click.echo(to_json({"task": task.to_dict(), "services": services, "timeline": entries}))
        return
    d = task.to_dict()
    d.pop("checkpoint", None)
    emit_object(d, False)
    click.echo("\nservices:")
    emit_rows(services, False, ["service", "state", "attempt", "updated_at", "detail"])
    events = sum(1 for e in entries if e["type"] == "event")
    click.echo(f"\ntimeline ({events} events):")
    emit_rows(entries, False, ["time", "type", "summary"])
