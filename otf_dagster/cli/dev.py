"""``otf dev``: the whole system on one machine, and Ctrl-C stops all of it.

1. the databases: OTF_DATABASE_URL + DAGSTER_PG_URL when set, else the embedded server;
2. migrations and the default task types;
3. the feed simulator on 127.0.0.1 (unless OTF_FEED_BASE_URL points elsewhere);
4. today's game_schedule partition materialized at once (the slate becomes tasks);
5. ``dagster dev`` with DAGSTER_HOME in .otf/dagster_home (a copy of ./dagster.yaml).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import click
import psutil

from otf_dagster import config
from otf_dagster.core import task_types
from otf_dagster.core.store import TaskStore, migrations
from otf_dagster.defs.partitions import DEFAULT_TIMEZONE
from otf_dagster.local import embedded


def _bin(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


def _wait_http(url: str, seconds: float = 20) -> None:
    import requests

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=1)
            return
        except requests.RequestException:
            time.sleep(0.2)
    raise click.ClickException(f"the simulator did not answer at {url} within {seconds}s")


def _stop_tree(procs: list[subprocess.Popen]) -> None:
    """Terminate our children and everything they started; kill what does not exit."""
    me = psutil.Process()
    victims = me.children(recursive=True)
    for p in victims:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.terminate()
    _, alive = psutil.wait_procs(victims, timeout=10)
    for p in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()
    for proc in procs:
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()


@click.command()
@click.option("--port", default=3000, show_default=True, help="Dagster web UI port (127.0.0.1).")
@click.option("--sim-port", default=8765, show_default=True, help="Feed simulator port.")
@click.option("--games", default=4, show_default=True, help="Games in the simulator's slate.")
@click.option("--speed", default=30.0, show_default=True, help="Game seconds per real second.")
@click.option(
    "--first-start", default=45.0, show_default=True, help="Seconds until the first game starts."
)
@click.option("--spacing", default=45.0, show_default=True, help="Seconds between game starts.")
def dev(
    port: int, sim_port: int, games: int, speed: float, first_start: float, spacing: float
) -> None:
    """Bring the whole system up: database, simulator, today's schedule, dagster dev."""
    state = config.state_dir()
    state.mkdir(parents=True, exist_ok=True)
    embedded_used = not os.environ.get(config.TASK_DB_ENV)
    task_url, dagster_url = embedded.resolve_urls()
    click.echo(f"task database:   {config.redact(task_url)}")
    click.echo(f"dagster storage: {config.redact(dagster_url)}")
    applied = migrations.migrate(task_url, on_note=click.echo)
    click.echo(f"migrations: {', '.join(applied) or 'up to date'}")
    with TaskStore(task_url) as store:
        store.apply_task_types(task_types.load_file(task_types.DEFAULTS_FILE))

    home = state / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(config.PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
    env = dict(os.environ)
    env.update(
        {
            "DAGSTER_HOME": str(home),
            config.TASK_DB_ENV: task_url,
            config.DAGSTER_DB_ENV: config.dagster_storage_url(dagster_url),
            "OTF_FEED_PROVIDER": os.environ.get("OTF_FEED_PROVIDER", "nba_cdn"),
        }
    )
    procs: list[subprocess.Popen] = []
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the children get Ctrl-C; we clean up after
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        if not os.environ.get("OTF_FEED_BASE_URL"):
            sim = subprocess.Popen(
                [
                    _bin("otf"),
                    "simulate",
                    "--port",
                    str(sim_port),
                    "--games",
                    str(games),
                    "--speed",
                    str(speed),
                    "--first-start",
                    str(first_start),
                    "--spacing",
                    str(spacing),
                    "--fresh-ids",
                ],
                env=env,
                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
            )
            procs.append(sim)
            env["OTF_FEED_BASE_URL"] = f"http://127.0.0.1:{sim_port}"
            _wait_http(env["OTF_FEED_BASE_URL"] + "/_sim/state")
        click.echo(f"feeds: {env['OTF_FEED_PROVIDER']} at {env['OTF_FEED_BASE_URL']}")

        tz = os.environ.get("OTF_SCHEDULE_TIMEZONE", DEFAULT_TIMEZONE)
        today = datetime.now(ZoneInfo(tz)).date().isoformat()
        click.echo(f"materializing game_schedule for {today} ...")
        subprocess.run(
            [
                _bin("dagster"),
                "asset",
                "materialize",
                "-m",
                "otf_dagster.definitions",
                "-a",
                "defs",
                "--select",
                "game_schedule",
                "--partition",
                today,
            ],
            env=env,
            check=True,
            cwd=config.PROJECT_ROOT,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        click.echo(f"dagster dev on http://127.0.0.1:{port} (Ctrl-C stops everything)")
        web = subprocess.Popen(
            [_bin("dagster"), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
            env=env,
            cwd=config.PROJECT_ROOT,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        procs.append(web)
        web.wait()
    except (KeyboardInterrupt, subprocess.CalledProcessError) as exc:
        if isinstance(exc, subprocess.CalledProcessError):
            click.echo(f"error: {exc}", err=True)
    finally:
        click.echo("stopping ...")
        _stop_tree(procs)
        if embedded_used:
            embedded.stop()
        click.echo("stopped: no process left behind")
