"""``otf backfill``: catch up past days without Dagster, as a Dagster backfill of the
``game_schedule`` asset does: each day once per league, at the backfill's pace."""

from __future__ import annotations

import json
import sys
from datetime import date, datetime

import click

from otf_dagster import settings
from otf_dagster.core.ingest import backfill_days, backfill_range
from otf_dagster.core.pace import RPS_ENV, Pace, PacedClient, configured_rps
from otf_dagster.core.store import TaskStore
from otf_dagster.exceptions import ConfigError, shown
from otf_dagster.feeds.http import FeedClient
from otf_dagster.feeds.leagues import load_leagues
from otf_dagster.feeds.providers import (
    DEFAULT_BASE_URLS,
    DEFAULT_NBA_PROVIDER,
    PROVIDERS,
    make_provider,
    schedule_feed,
)
from otf_dagster.handlers import HANDLERS
from otf_dagster.local import embedded


def parse_day(value: str, option: str) -> date:
    """A YYYY-MM-DD day, or ConfigError naming the option and the value (click's own
    DateTime refusal is a usage block of four lines)."""
    try:
        return datetime.strptime(value, "%Y-%m-%d").date()
    except ValueError:
        raise ConfigError(
            f"{option} {shown(value)} is not a day; give YYYY-MM-DD, e.g. 2023-11-14"
        ) from None


@click.command("backfill")
@click.option(
    "--league",
    "league_names",
    required=True,
    metavar="LEAGUES",
    help="League aliases, comma-separated (nba,nfl) or ESPN sport/league pairs.",
)
@click.option("--from", "start", required=True, metavar="DAY", help="First day, YYYY-MM-DD.")
@click.option("--to", "end", required=True, metavar="DAY", help="Last day (included), YYYY-MM-DD.")
@click.option(
    "--provider",
    type=click.Choice(PROVIDERS),
    envvar="OTF_FEED_PROVIDER",
    default=DEFAULT_NBA_PROVIDER,
    show_default=True,
    help="The NBA's feed [env OTF_FEED_PROVIDER]; other leagues are ESPN's.",
)
@click.option(
    "--base-url",
    envvar="OTF_FEED_BASE_URL",
    default=None,
    metavar="URL",
    help="Feed base URL [env OTF_FEED_BASE_URL] (default: the real feeds).",
)
@click.option(
    "--leagues-file",
    envvar="OTF_LEAGUES_FILE",
    default=None,
    type=click.Path(dir_okay=False),
    help="A YAML file adding leagues to the packaged ones [env OTF_LEAGUES_FILE].",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per day and league.")
def backfill(
    league_names: str,
    start: str,
    end: str,
    provider: str,
    base_url: str | None,
    leagues_file: str | None,
    as_json: bool,
) -> None:
    """Ingest past days' games: the ones already final become backfill tasks, which the Task
    Manager claims after live work (at most OTF_BACKFILL_MAX_STARTED at once) and polls once
    each for the final state and events, at most OTF_BACKFILL_RPS requests per second per
    feed host. Re-running a range changes nothing already ingested. A day the feed cannot
    list is reported and the others go on; the exit code is then 1."""
    tz = settings.SCHEDULE_TIMEZONE.read()
    days = backfill_range(parse_day(start, "--from"), parse_day(end, "--to"), tz)
    registry = load_leagues(leagues_file)
    leagues = registry.parse_list(league_names)
    rps = configured_rps()
    with TaskStore(embedded.resolve_task_url(), application_name="otf-backfill") as store:
        pace = Pace(store, rps)
        clients: dict[str, PacedClient] = {}

        def provider_for(league):
            name, _ = schedule_feed(provider, league)
            if name not in clients:
                base = base_url or DEFAULT_BASE_URLS[name]
                clients[name] = PacedClient(FeedClient(base), pace)
            return make_provider(name, client=clients[name], league=league, leagues=registry)

        failed = 0
        if not as_json:
            click.echo(
                f"backfill {days[0]} to {days[-1]} ({len(days)} days) for "
                f"{', '.join(lg.alias for lg in leagues)}, at most {rps:g} requests/s per host "
                f"({RPS_ENV})"
            )
        try:
            for result in backfill_days(
                store,
                days,
                leagues,
                provider_for,
                lambda league: schedule_feed(provider, league)[1],
                handlers=HANDLERS,
                tz=tz,
            ):
                failed += result.error is not None
                if as_json:
                    click.echo(json.dumps(result.to_dict()))
                elif result.error is not None:
                    click.echo(f"{result.day} {result.league}: FAILED: {result.error}")
                else:
                    row = result.to_dict()
                    click.echo(
                        f"{result.day} {result.league}: {row['games']} games, "
                        f"{row['created']} tasks created ({row['backfill']} final: backfill), "
                        f"{row['unchanged']} unchanged, {row['cancelled']} cancelled"
                    )
        finally:
            for client in clients.values():
                client.close()
    if failed:
        click.echo(
            f"error: {failed} day(s) could not be listed (see FAILED above); the other days "
            "were ingested; run the same command again to retry them",
            err=True,
        )
        sys.exit(1)
