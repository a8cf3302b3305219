"""Output helpers: readable tables by default, JSON for scripts."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from typing import Any

import click
from tabulate import tabulate

from otf_dagster.exceptions import StoreError


def _default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if hasattr(value, "to_dict"):
        return value.to_dict()
    return str(value)


def to_json(value: Any) -> str:
    return json.dumps(value, default=_default, indent=2, sort_keys=False)


def emit_rows(
    rows: Iterable[Mapping[str, Any]], as_json: bool, columns: list[str] | None = None
) -> None:
    rows = [dict(r) for r in rows]
    if as_json:
        click.echo(to_json(rows))
        return
    if not rows:
        click.echo("(none)")
        return
    columns = columns or list(rows[0].keys())
    table = [[_cell(r.get(c)) for c in columns] for r in rows]
    click.echo(tabulate(table, headers=columns, tablefmt="simple"))


def emit_object(obj: Mapping[str, Any], as_json: bool) -> None:
    if as_json:
        click.echo(to_json(obj))
        return
    click.echo(tabulate([[k, _cell(v)] for k, v in obj.items()], tablefmt="plain"))


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    if isinstance(value, dict | list):
        text = json.dumps(value, default=_default)
        return text if len(text) <= 60 else text[:57] + "..."
    return str(value)


def parse_time(value: str, option: str) -> datetime:
    """An ISO time with a zone from a command-line option, or one clear error naming it."""
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise StoreError(
            f"{option} {value!r} is not an ISO time; write e.g. 2026-11-27T19:30:00Z or 2026-11-27T14:30-05:00"
        ) from None
    if at.tzinfo is None:
        raise StoreError(
            f"{option} {value!r} has no time zone; add Z (UTC) or an offset such as -05:00"
        )
    return at


def parse_json_object(value: str | None, option: str) -> dict[str, Any]:
    """A JSON object from a command-line option ({} when absent), or one clear error."""
    if value is None:
        return {}
    try:
        parsed = json.loads(value)
    except (ValueError, RecursionError) as exc:
        raise StoreError(f"{option} is not valid JSON ({str(exc)[:120]})") from None
    if not isinstance(parsed, dict):
        raise StoreError(f"{option} must be a JSON object, not {type(parsed).__name__}")
    return parsed
