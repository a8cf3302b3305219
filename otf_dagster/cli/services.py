"""``otf report``, ``otf events tail`` and ``otf subscriptions ...``: services and consumers."""

from __future__ import annotations

import json
from datetime import datetime

import click

from otf_dagster.cli._output import emit_rows, parse_time, to_json
from otf_dagster.core.consumer import Consumer
from otf_dagster.core.services import list_subscriptions, report, subscribe, unsubscribe
from otf_dagster.exceptions import InvalidReport, StoreError
from otf_dagster.local import embedded

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


def _parse_since(value: str | None) -> datetime | None:
    return None if value is None else parse_time(value, "--since")


@click.command("report")
@click.argument("task_id")
@click.option("--service", required=True, help="The reporting service, e.g. photo or caption.")
@click.option("--state", required=True, help="STARTED, FINISHED or FAILED.")
@click.option(
    "--detail", default=None, help='A JSON object, e.g. \'{"reason": "no faces found"}\'.'
)
@json_option
def report_cmd(task_id: str, service: str, state: str, detail: str | None, as_json: bool) -> None:
    """Report a service's progress on a task; prints the task's overall state after it."""
    parsed = None if detail is None else _parse_detail(detail)
    result = report(embedded.resolve_task_url(), task_id, service, state, parsed)
    if as_json:
        click.echo(to_json(result.to_dict()))
        return
    line = (
        f"{result.outcome}: {result.service} {result.state} on {task_id}; task is {result.overall}"
    )
    if result.reason:
        line += f" ({result.reason})"
    click.echo(line)


MAX_DETAIL_DEPTH = 32


def _parse_detail(detail: str) -> dict:
    """--detail as a JSON object of at most MAX_DETAIL_DEPTH levels, or one clear refusal."""
    try:
        parsed = json.loads(detail)
        too_deep = _depth(parsed) > MAX_DETAIL_DEPTH
    except RecursionError:
        too_deep = True
    except ValueError as exc:
        raise InvalidReport(f"report refused: --detail is not valid JSON ({exc})") from None
    if too_deep:
        raise InvalidReport(
            f"report refused: --detail nests deeper than {MAX_DETAIL_DEPTH} levels; "
            "send a flatter JSON object"
        )
    if not isinstance(parsed, dict):
        raise InvalidReport(
            f"report refused: --detail must be a JSON object, not {type(parsed).__name__}"
        )
    return parsed


def _depth(value: object) -> int:
    """How deep containers nest in a decoded JSON value (iteratively: no recursion limit)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            stack.extend(
                (v, level + 1) for v in (item.values() if isinstance(item, dict) else item)
            )
    return deepest


@click.group()
def events() -> None:
    """Task events: what runners emit, delivered to consumers in commit order."""


@events.command()
@click.option("--follow", "-f", is_flag=True, help="Keep waiting for new events (Ctrl-C stops).")
@click.option(
    "--task-type",
    "task_types",
    multiple=True,
    help="Only these task types (repeatable; non-durable reads).",
)
@click.option(
    "--since", default=None, help="Only events at or after this ISO time (non-durable reads)."
)
@click.option(
    "--consumer",
    default=None,
    help="Read as this durable consumer: its subscriptions, from its cursor, which advances.",
)
@click.option(
    "--limit", type=click.IntRange(min=1), default=None, help="Stop after this many events."
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    default=None,
    help="With --follow: stop after this many idle seconds.",
)
@click.option(
    "--batch", type=click.IntRange(min=1), default=500, show_default=True, help="Events per read."
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def tail(
    follow: bool,
    task_types: tuple[str, ...],
    since: str | None,
    consumer: str | None,
    limit: int | None,
    timeout: float | None,
    batch: int,
    as_json: bool,
) -> None:
    """Print events in commit order: from the start (or --since), or as a durable --consumer."""
    reader = Consumer(
        embedded.resolve_task_url(),
        consumer,
        task_types=list(task_types) or None,
        since=_parse_since(since),
        application_name="otf-cli-tail",
    )
    if limit is not None:
        batch = min(batch, limit)
    seen = 0
    with reader:
        stream = reader.iter_events(follow=follow, batch=batch, timeout=timeout)
        try:
            for ev in stream:
                click.echo(_event_line(ev, as_json))
                seen += 1
                if limit is not None and seen >= limit:
                    # The last printed event counts as processed: ack it, then stop.
                    reader.ack(ev["seq"])
                    break
        except KeyboardInterrupt:
            pass
        finally:
            stream.close()


def _event_line(ev: dict, as_json: bool) -> str:
    if as_json:
        return json.dumps(
            {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in ev.items()}
        )
    payload = json.dumps(ev["payload"], separators=(",", ":"))
    return (
        f"{ev['seq']}  {ev['time'].isoformat(timespec='milliseconds')}  {ev['task_type']}  "
        f"{ev['task_id']}  #{ev['task_seq']} {ev['kind']}  {payload}"
    )


@click.group("subscriptions")
def subscriptions() -> None:
    """Which owners (consumers) receive which task types' events."""


@subscriptions.command("add")
@click.argument("owner")
@click.argument("task_type")
def add_cmd(owner: str, task_type: str) -> None:
    """Subscribe OWNER to TASK_TYPE (idempotent; revives a removed subscription)."""
    outcome = subscribe(embedded.resolve_task_url(), owner, task_type)
    click.echo(f"{outcome}: {owner} -> {task_type}")


@subscriptions.command("remove")
@click.argument("owner")
@click.argument("task_type")
def remove_cmd(owner: str, task_type: str) -> None:
    """Remove (soft-delete) OWNER's subscription to TASK_TYPE."""
    if not unsubscribe(embedded.resolve_task_url(), owner, task_type):
        raise StoreError(
            f"{owner!r} has no live subscription to {task_type!r}; see `otf subscriptions list`"
        )
    click.echo(f"removed: {owner} -> {task_type}")


@subscriptions.command("list")
@click.option("--owner", default=None, help="Only this owner.")
@click.option("--all", "include_deleted", is_flag=True, help="Include removed subscriptions.")
@json_option
def list_cmd(owner: str | None, include_deleted: bool, as_json: bool) -> None:
    """List subscriptions."""
    rows = list_subscriptions(
        embedded.resolve_task_url(writes=False), owner, include_deleted=include_deleted
    )
    emit_rows(
        rows, as_json, None if as_json else ["owner", "task_type", "created_at", "deleted_at"]
    )
