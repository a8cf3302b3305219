"""``otf simulate``: run the offline feed simulator in the foreground."""

from __future__ import annotations

import time

import click

from otf_dagster.cli._output import emit_rows


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8765, show_default=True, type=int, help="Port (0: any free).")
@click.option(
    "--speed",
    default=60.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Game-clock seconds per real second.",
)
@click.option("--games", default=3, show_default=True, type=click.IntRange(1, 99))
@click.option(
    "--first-start",
    default=30.0,
    show_default=True,
    type=float,
    help="Seconds from now until the first game tips off.",
)
@click.option(
    "--spacing", default=60.0, show_default=True, type=float, help="Seconds between tip-offs."
)
@click.option(
    "--leagues",
    "league_list",
    default="nba",
    show_default=True,
    metavar="LIST",
    help="Leagues of the slate, comma-separated: nba, nfl, mlb, nhl (each replays its recorded "
    "game; --games is per league).",
)
@click.option(
    "--slates-file",
    default=None,
    type=click.Path(dir_okay=False),
    help="Keep every slate served in this JSON file; started again with it, the simulator "
    "serves the earlier slates' games too (replayed to their end, listed on their day).",
)
@click.option(
    "--fresh-ids",
    is_flag=True,
    help="Number this slate's games from the start time, so they are new to a task database "
    "that tracked an earlier slate (the recorded game's real id is then not used).",
)
def simulate(
    host: str,
    port: int,
    speed: float,
    games: int,
    first_start: float,
    spacing: float,
    league_list: str,
    slates_file: str | None,
    fresh_ids: bool,
) -> None:
    """Serve simulated NBA CDN and ESPN feeds replaying recorded games, until Ctrl-C."""
    from otf_dagster.feeds.leagues import default_leagues
    from otf_dagster.simulator import Simulator

    leagues = tuple(lg.alias for lg in default_leagues().parse_list(league_list))
    slate_id = int(time.time() // 60) if fresh_ids else None
    sim = Simulator(
        speed=speed,
        games=games,
        first_start=first_start,
        spacing=spacing,
        port=port,
        host=host,
        slate_id=slate_id,
        leagues=leagues,
        slates_file=slates_file,
    )
    try:
        base_url = sim.start()
    except OSError as exc:
        from otf_dagster.exceptions import ConfigError

        raise ConfigError(
            f"cannot listen on {host}:{port} ({exc.strerror}); pick another --port or 0"
        ) from exc
    click.echo(f"simulator listening on {base_url} (speed {speed:g}x); Ctrl-C to stop")
    click.echo(f"  state:  {base_url}/_sim/state")
    for league in leagues:
        click.echo(
            f"  try:    otf feed schedule --provider espn --league {league} --base-url {base_url} "
            f"--date {sim.today().isoformat()}"
        )
    if len(sim.games) > len(sim.slate):
        click.echo(
            f"  and {len(sim.games) - len(sim.slate)} games of earlier slates ({slates_file})"
        )
    emit_rows([g.to_dict() for g in sim.slate], as_json=False)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        click.echo("stopping")
    finally:
        sim.stop()
