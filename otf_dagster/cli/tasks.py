"""``otf tasks ...``: schedule, list and inspect tasks."""

from __future__ import annotations

import json
import sys
import uuid
from collections import Counter
from pathlib import Path

import click
from tabulate import tabulate

from otf_dagster import settings
from otf_dagster.cli._output import (
    emit_object,
    emit_rows,
    parse_json_object,
    parse_time,
    to_json,
)
from otf_dagster.core.runner import PollReport, TaskRunner
from otf_dagster.core.stats import parse_duration, score_timeline
from otf_dagster.core.store import TaskStore
from otf_dagster.core.timeline import timeline
from otf_dagster.exceptions import ConfigError, StaleTransition, StoreError, shown
from otf_dagster.handlers import HANDLERS, Markdown, Outcome
from otf_dagster.local import embedded
from otf_dagster.views.charts import score_chart_png
from otf_dagster.views.tables import timeline_rows
from otf_dagster.vocab.tasks import TaskState

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


@click.group()
def tasks() -> None:
    """Tasks: one row per (type, external key), and their state history."""


@tasks.command()
@click.option("--type", "task_type", required=True, help="Task type name, e.g. NBA_GAME_BOXSCORE.")
@click.option("--key", required=True, help="External key, e.g. a game id.")
@click.option("--at", "at", required=True, help="When it becomes ready (ISO time with zone).")
@click.option(
    "--params",
    "params_json",
    default=None,
    help='The task\'s params as a JSON object, e.g. \'{"date": "20261127"}\' (for the '
    "{params.NAME} placeholders of the type's url_template).",
)
@json_option
def schedule(task_type: str, key: str, at: str, params_json: str | None, as_json: bool) -> None:
    """Schedule a task (idempotent: a still-SCHEDULED task moves to the new time).

    A task that has already started is left as it is and says so; one that has ended
    (FINISHED, FAILED, CANCELLED) is not scheduled again: the command says how it ended and
    exits 1.
    """
    when = parse_time(at, "--at")
    params = parse_json_object(params_json, "--params")
    with TaskStore(embedded.resolve_task_url()) as store:
        task_id, outcome = store.schedule_task(task_type, key, when, params=params, source="cli")
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
    with TaskStore(embedded.resolve_task_url(writes=False)) as store:
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
@click.option(
    "--plot",
    "plot",
    type=click.Path(dir_okay=False, writable=True),
    default=None,
    help="Also write the game's score over time to this PNG file.",
)
@json_option
def show(task_id: str, plot: str | None, as_json: bool) -> None:
    """A task, its services' states and its timeline (states, reports and events in order)."""
    with TaskStore(embedded.resolve_task_url(writes=False)) as store:
        task = store.get_task(task_id)
        services = store.service_states(task_id)
        entries = timeline(store, task_id)
    if plot:
        try:
            Path(plot).write_bytes(score_chart_png(entries))
        except OSError as exc:
            raise ConfigError(
                f"cannot write --plot {plot!r} ({exc.strerror}); pick a writable path"
            ) from None
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
    click.echo(tabulate(timeline_rows(entries), headers=["time", "entry", "what"]))
    if plot:
        click.echo(f"\nscore chart written to {plot}")


@tasks.command("run")
@click.argument("task_id")
@click.option(
    "--attempt",
    type=click.IntRange(min=1),
    default=None,
    help="Run as this (current, STARTED) attempt instead of taking the task as a new one.",
)
@click.option(
    "--base-url",
    default=None,
    metavar="URL",
    help="Feed base URL (default: OTF_FEED_BASE_URL, else each type's own).",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per poll (JSON lines).")
def run_cmd(task_id: str, attempt: int | None, base_url: str | None, as_json: bool) -> None:
    """Run TASK_ID's TaskRunner here, in the foreground, printing each poll: the same code a
    Dagster run executes. It takes the task as a new attempt (fencing any other runner out),
    as a hand-launched run does; Ctrl-C stops it (the Task Manager re-launches the task once
    its heartbeat is stale)."""
    run_id = f"cli-{uuid.uuid4().hex[:12]}"
    with TaskStore(embedded.resolve_task_url(), application_name="otf-cli-run") as store:
        if attempt is None:
            attempt = store.adopt(task_id, run_id, source="cli").attempt
        click.echo(f"running {task_id} as attempt {attempt} (run {run_id}); Ctrl-C stops", err=True)

        def on_poll(report: PollReport) -> None:
            click.echo(
                json.dumps(_poll_dict(report), default=str) if as_json else _poll_line(report)
            )

        runner = TaskRunner(
            store,
            task_id,
            attempt,
            run_id,
            handlers=HANDLERS,
            feed_base_url=base_url or settings.FEED_BASE_URL.read() or None,
            on_poll=on_poll,
        )
        try:
            outcome = runner.run()
        except KeyboardInterrupt:
            click.echo(f"stopped; {task_id} stays STARTED at attempt {attempt}", err=True)
            sys.exit(130)
    if outcome.state is None:
        raise StaleTransition(f"fenced out: {outcome.reason}")
    line = f"{task_id} {outcome.state} after {outcome.polls} poll(s), {outcome.events} event(s)"
    click.echo(line + (f": {outcome.reason}" if outcome.reason else ""), err=as_json)
    if outcome.state == TaskState.FAILED:
        sys.exit(1)


@tasks.command("retry")
@click.argument("task_id")
@click.option("--reason", default="retried by hand", show_default=True, help="Kept in its history.")
def retry_cmd(task_id: str, reason: str) -> None:
    """Schedule a FAILED or CANCELLED task again, now: the Task Manager claims it as the next
    attempt, and its runner resumes from the checkpoint (its events continue)."""
    with TaskStore(embedded.resolve_task_url()) as store:
        task = store.retry(task_id, reason, source="cli")
    click.echo(f"scheduled {task.task_id} again at {task.scheduled_at.isoformat()}")


def _poll_dict(report: PollReport) -> dict:
    return {
        "poll": report.poll,
        "outcome": str(report.outcome),
        "error": report.error,
        "events": [
            {"task_seq": e.task_seq, "kind": e.kind, "payload": e.payload} for e in report.events
        ],
        "display": {k: str(v) for k, v in report.display.items() if not isinstance(v, Markdown)},
    }


def _poll_line(report: PollReport) -> str:
    if report.error:
        return f"poll {report.poll}: error: {report.error}"
    kinds = Counter(e.kind for e in report.events)
    what = ", ".join(f"{k} x{n}" if n > 1 else k for k, n in kinds.items()) or "no change"
    shown = [f"{k}={v}" for k, v in report.display.items() if not isinstance(v, Markdown)]
    done = "" if report.outcome == Outcome.CONTINUE else f" [{report.outcome}]"
    return f"poll {report.poll}: {what}{done}" + (f" | {' '.join(shown)}" if shown else "")


@tasks.command("timeline")
@click.argument("task_id")
@click.option(
    "--bucket", default="1m", show_default=True, help="Bucket width: 30s, 1m, 5m, 1h, 1d."
)
@json_option
def timeline_cmd(task_id: str, bucket: str, as_json: bool) -> None:
    """A game's events per time bucket: score changes, points, and the score at each bucket's
    end (TimescaleDB's time_bucket where the server has it)."""
    width = parse_duration(bucket, "--bucket")
    rows = score_timeline(embedded.resolve_task_url(), task_id, width)
    emit_rows(
        rows,
        as_json,
        None
        if as_json
        else [
            "bucket",
            "events",
            "score_changes",
            "home_points",
            "away_points",
            "home_score",
            "away_score",
        ],
    )
