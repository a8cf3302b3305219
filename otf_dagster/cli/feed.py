"""``otf feed``: ask a provider (real or the simulator) for a day's games or a box score."""

from __future__ import annotations

from datetime import UTC, date, datetime

import click

from otf_dagster.cli._output import emit_object, emit_rows, to_json
from otf_dagster.feeds.providers import PROVIDERS, make_provider

_provider_option = click.option(
    "--provider",
    type=click.Choice(PROVIDERS),
    required=True,
    help="Which feed to ask.",
)
_base_url_option = click.option(
    "--base-url",
    default=None,
    metavar="URL",
    help="Feed base URL (default: the real feed; e.g. http://127.0.0.1:8765 for `otf simulate`).",
)
_json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


@click.group()
def feed() -> None:
    """Query the live sports feeds (NBA CDN, ESPN) through the normalized models."""


@feed.command()
@_provider_option
@click.option(
    "--date",
    "day",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    help="Day of the provider's listing, YYYY-MM-DD (default: today, UTC).",
)
@_base_url_option
@_json_option
def schedule(provider: str, day: datetime | None, base_url: str | None, as_json: bool) -> None:
    """List the games of a day."""
    the_day: date = day.date() if day else datetime.now(UTC).date()
    entries = make_provider(provider, base_url=base_url).schedule(the_day)
    emit_rows(
        [e.to_dict() for e in entries],
        as_json,
        columns=["game_id", "start_time", "away", "home", "status"],
    )


@feed.command()
@_provider_option
@click.argument("game_id")
@_base_url_option
@_json_option
@click.option("--full", is_flag=True, help="With --json: the whole box score, players included.")
def boxscore(provider: str, game_id: str, base_url: str | None, as_json: bool, full: bool) -> None:
    """Show one game's normalized box score (status, period, clock, scores by period)."""
    box = make_provider(provider, base_url=base_url).boxscore(game_id)
    if as_json:
        click.echo(to_json(box.to_dict() if full else box.summary()))
        return
    summary = box.summary()
    emit_object(
        {
            "game": f"{box.game_id} ({box.provider})",
            "status": summary["status"],
            "period": summary["period"],
            "clock_seconds": summary["clock_seconds"],
            "score": summary["score"],
        },
        as_json=False,
    )
    periods = max(len(box.home.periods), len(box.away.periods))
    if periods:
        click.echo("")
        rows = []
        for line in (box.away, box.home):
            row: dict[str, object] = {"team": line.tricode}
            for k in range(periods):
                label = f"Q{k + 1}" if k < 4 else f"OT{k - 3}"
                row[label] = line.periods[k] if k < len(line.periods) else ""
            row["total"] = line.score
            rows.append(row)
        emit_rows(rows, as_json=False)
