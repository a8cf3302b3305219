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
    fresh_ids: bool,
) -> None:
    """Serve simulated NBA CDN and ESPN feeds replaying a recorded game, until Ctrl-C."""
    from otf_dagster.simulator import Simulator

    slate_id = int(time.time() // 60) if fresh_ids else None
    sim = Simulator(
        speed=speed,
        games=games,
        first_start=first_start,
        spacing=spacing,
        port=port,
        host=host,
        slate_id=slate_id,
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
    click.echo(
        f"  try:    otf feed schedule --provider nba_cdn --base-url {base_url} "
        f"--date {sim.today().isoformat()}"
    )
    emit_rows([g.to_dict() for g in sim.games], as_json=False)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        click.echo("stopping")
    finally:
        sim.stop()
