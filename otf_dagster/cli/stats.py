"""``otf stats``: polls, errors, events and poll lateness per task type per minute."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from otf_dagster.cli._output import emit_rows, parse_time
from otf_dagster.core.stats import minute_stats, parse_duration
from otf_dagster.local import embedded


def since_time(value: str, option: str = "--since") -> datetime:
    """A duration back from now (``90m``, ``2h``) or an ISO time with a zone."""
    if value and value[0].isdigit() and value[-1] in "smhd":
        return datetime.now(UTC) - parse_duration(value, option)
    return parse_time(value, option)


@click.command("stats")
@click.option(
    "--since",
    default="1h",
    show_default=True,
    help="How far back: a duration (30m, 6h, 2d) or an ISO time with a zone.",
)
@click.option("--type", "task_type", default=None, help="Only this task type.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def stats(since: str, task_type: str | None, as_json: bool) -> None:
    """Per task type and minute: polls, failed polls, events, poll lateness (avg, max s).

    From TimescaleDB continuous aggregates where the server has TimescaleDB, plain views
    otherwise; the same figures either way."""
    rows = minute_stats(embedded.resolve_task_url(), since=since_time(since), task_type=task_type)
    emit_rows(
        rows,
        as_json,
        None
        if as_json
        else [
            "bucket",
            "task_type",
            "polls",
            "errors",
            "events",
            "lateness_avg_seconds",
            "lateness_max_seconds",
        ],
    )
