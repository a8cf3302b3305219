"""``otf feed``: ask a provider (real or the simulator) for a day's games or a box score."""

from __future__ import annotations

from datetime import UTC, date, datetime

import click

from otf_dagster.cli._output import emit_object, emit_rows, to_json
from otf_dagster.feeds.leagues import DEFAULT_LEAGUE, load_leagues
from otf_dagster.feeds.providers import PROVIDERS, make_provider

_provider_option = click.option(
    "--provider",
    type=click.Choice(PROVIDERS),
    required=True,
    help="Which feed to ask.",
)
_league_option = click.option(
    "--league",
    "league_name",
    default=DEFAULT_LEAGUE,
    show_default=True,
    metavar="LEAGUE",
    help="League alias (nfl, mlb, nhl, epl, ...) or ESPN's sport/league pair (football/nfl).",
)
_leagues_file_option = click.option(
    "--leagues-file",
    envvar="OTF_LEAGUES_FILE",
    default=None,
    type=click.Path(dir_okay=False),
    help="A YAML file adding leagues to the packaged ones [env OTF_LEAGUES_FILE].",
)
_base_url_option = click.option(
    "--base-url",
    default=None,
    metavar="URL",
    help="Feed base URL (default: the real feed; e.g. http://127.0.0.1:8765 for `otf simulate`).",
)
_json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


def _provider(provider: str, league_name: str, leagues_file: str | None, base_url: str | None):
    league = load_leagues(leagues_file).get(league_name)
    return make_provider(provider, base_url=base_url, league=league)


@click.group()
def feed() -> None:
    """Query the live sports feeds (NBA CDN, ESPN for every league) through the normalized models."""


@feed.command()
@_provider_option
@_league_option
@click.option(
    "--date",
    "day",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    help="Day of the provider's listing, YYYY-MM-DD (default: today, UTC).",
)
@_leagues_file_option
@_base_url_option
@_json_option
def schedule(
    provider: str,
    league_name: str,
    day: datetime | None,
    leagues_file: str | None,
    base_url: str | None,
    as_json: bool,
) -> None:
    """List the games of a day."""
    the_day: date = day.date() if day else datetime.now(UTC).date()
    entries = _provider(provider, league_name, leagues_file, base_url).schedule(the_day)
    emit_rows(
        [e.to_dict() for e in entries],
        as_json,
        columns=["game_id", "league", "start_time", "away", "home", "status"],
    )


@feed.command()
@_provider_option
@_league_option
@click.argument("game_id")
@_leagues_file_option
@_base_url_option
@_json_option
@click.option("--full", is_flag=True, help="With --json: the whole box score, players included.")
def boxscore(
    provider: str,
    league_name: str,
    game_id: str,
    leagues_file: str | None,
    base_url: str | None,
    as_json: bool,
    full: bool,
) -> None:
    """Show one game's normalized box score (status, period, clock, scores by period)."""
    box = _provider(provider, league_name, leagues_file, base_url).boxscore(game_id)
    summary = box.summary()
    if as_json:
        click.echo(to_json(box.to_dict() if full else summary))
        return
    emit_object(
        {
            "game": f"{box.game_id} ({box.provider}, {box.league})",
            "status": summary["status"]
            + (
                f" ({box.status_detail})"
                if box.status_detail not in (None, summary["status"])
                else ""
            ),
            "period": summary["period_label"] or "",
            "clock": box.display_clock or "",
            "clock_seconds": summary["clock_seconds"],
            "score": summary["score"],
        },
        as_json=False,
    )
    labels = box.period_labels()
    if labels:
        click.echo("")
        rows = []
        for line in (box.away, box.home):
            row: dict[str, object] = {"team": line.tricode}
            for k, label in enumerate(labels):
                row[label] = line.periods[k] if k < len(line.periods) else ""
            row["total"] = line.score
            rows.append(row)
        emit_rows(rows, as_json=False)
