"""``otf dev``: the whole system on one machine, laid out as a deployment, and watched.

1. the databases: OTF_DATABASE_URL + DAGSTER_PG_URL when set, else the embedded server;
2. migrations and the default task types;
3. the feed simulator on 127.0.0.1 (unless OTF_FEED_BASE_URL points elsewhere);
4. a code server (``dagster code-server start``), today's game_schedule partition
   materialized, then ``dagster-daemon`` and ``dagster-webserver``: separate processes talking
   to the code server, as Dagster's Docker and Kubernetes deployments run them, with
   DAGSTER_HOME in .otf/dagster_home (the packaged dagster.yaml and workspace.yaml);
5. delivery: the embedded nats-server (JetStream, data in .otf/nats, unless OTF_NATS_URL is
   set), ``otf api``, the webhook receiver (``otf receiver``) and the two demo endpoints of
   the owner ``dev-receiver`` (a signed webhook to the receiver, a JetStream stream under
   ``otf.dev``; see ``local/dev_delivery.py``), fed by the relay the Task Manager runs;
6. every part watched: the daemon, the webserver and the code server are restarted when they
   die, the simulator or PostgreSQL dying ends the session; Ctrl-C stops everything, one line
   per part, running runs cancelled through Dagster first (their tasks resume in the next
   session), and what is left is checked with psutil.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import socket
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import click

from otf_dagster import config, settings
from otf_dagster.core.store import TaskStore, migrations
from otf_dagster.feeds.leagues import DEFAULT_LEAGUE, LEAGUES_ENV, load_leagues
from otf_dagster.handlers import task_types
from otf_dagster.local import dagster_home, dev_delivery, embedded, session
from otf_dagster.local import nats as local_nats
from otf_dagster.local.supervisor import (
    External,
    PartDied,
    Supervisor,
    become_subreaper,
    wait_until,
)

SLATES_FILE = "sim-slates.json"


class _Stop(BaseException):
    """Ctrl-C or SIGTERM: stop everything (a BaseException, so no handler swallows it)."""


def _on_signal(signum: int, _frame: object) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the cleanup
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise _Stop(signal.Signals(signum).name)


def _bin(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers(url: str) -> bool:
    import requests

    try:
        requests.get(url, timeout=1)
    except requests.RequestException:
        return False
    return True


def _listens(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _simulator_argv(args: dict, slates: Path) -> list[str]:
    argv = [_bin("otf"), "simulate", "--fresh-ids"]
    for name in ("port", "games", "speed", "first_start", "spacing", "leagues"):
        argv += [f"--{name.replace('_', '-')}", str(args[name])]
    # Earlier sessions' slates stay served (replayed to their end): a restart turns nothing red.
    return argv + ["--slates-file", str(slates)]


def _schedule_pool_demo(task_url: str, count: int) -> None:
    """``count`` counters that start over the next ~2 minutes and run ~100 s each: a pool run
    hosts them all (DEMO_COUNTER is a pool-mode type), beside the games' own runs."""
    now = time.time()
    slate = int(now // 60)
    items = [
        (
            f"c{slate}-{i:04d}",
            datetime.fromtimestamp(now + 20 + 100 * i / count, UTC),
            {"start": round(now + 20 + 100 * i / count, 1), "steps": 20, "every": 5},
        )
        for i in range(count)
    ]
    with TaskStore(task_url) as store:
        store.schedule_tasks("DEMO_COUNTER", items, source="otf dev")


def _start_receiver(
    sup: Supervisor, task_url: str, api_url: str, secret_env: dict[str, str]
) -> str:
    """The dev owner's subscriptions, token and endpoints, then its receiver; its URL."""
    from otf_dagster.local import receiver as receiver_mod

    port = _free_port()
    url = f"http://127.0.0.1:{port}/"
    with TaskStore(task_url) as store:
        required = dev_delivery.subscribe_all(store)
        token = dev_delivery.fresh_token(store)  # kept in the receiver's environment only
        ids = dev_delivery.ensure_endpoints(store, url)
    argv = [_bin("otf"), "receiver", "--owner", dev_delivery.OWNER, "--api-url", api_url,
            "--port", str(port), "--secret-env", dev_delivery.SECRET_ENV]  # fmt: skip
    sup.start("receiver", argv, restart=True, env=secret_env | {receiver_mod.TOKEN_ENV: token})
    wait_until(lambda: _answers(url), 60, sup, "the webhook receiver")
    click.echo(
        f"endpoints {ids['webhook']} (webhook) and {ids['nats']} (nats) of "
        f"{dev_delivery.OWNER}, required by {', '.join(required) or 'no type'}"
    )
    return url


def _embedded_postgres(pgdata: Path) -> External:
    def alive() -> bool:
        import psutil

        try:
            pid = int((pgdata / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return False
        return psutil.pid_exists(pid)

    return External("PostgreSQL", alive)


def _embedded_nats(server: local_nats.NatsServer) -> External:
    def alive() -> bool:
        return local_nats.running(server.folder) is not None

    return External("nats-server", alive, stop=server.stop)


def _cancel_runs(say) -> None:
    """Cancel this instance's running runs through Dagster before their workers are stopped:
    they end CANCELED, not FAILURE (which Dagster would retry against a stopped system), and
    their tasks are re-launched from their checkpoints by the next session's Task Manager."""
    import dagster as dg

    instance = dg.DagsterInstance.get()
    running = instance.get_runs(
        filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING])
    )
    if not running:
        return
    for run in running:
        # An unreachable worker is cancelled below regardless.
        with contextlib.suppress(Exception):
            instance.run_launcher.terminate(run.run_id)
    deadline = time.monotonic() + 20
    pending = [r.run_id for r in running]
    while pending and time.monotonic() < deadline:
        time.sleep(0.5)
        pending = [i for i in pending if not instance.get_run_by_id(i).is_finished]
    for run_id in pending:
        run = instance.get_run_by_id(run_id)
        if not run.is_finished:
            instance.report_run_canceled(run, message="otf dev stopped")
    say(f"cancelled {len(running)} running run(s); their tasks resume in the next session")


@click.command()
@click.option("--port", default=3000, show_default=True, help="Dagster web UI port (127.0.0.1).")
@click.option("--sim-port", default=8765, show_default=True, help="Feed simulator port.")
@click.option("--code-port", default=0, show_default="any free", help="Code server port.")
@click.option("--games", default=4, show_default=True, help="Games in the simulator's slate.")
@click.option("--speed", default=30.0, show_default=True, help="Game seconds per real second.")
@click.option(
    "--first-start", default=45.0, show_default=True, help="Seconds until the first game starts."
)
@click.option("--spacing", default=45.0, show_default=True, help="Seconds between game starts.")
@click.option(
    "--pool-demo",
    default=200,
    show_default=True,
    type=click.IntRange(min=0, max=5000),
    help="Short counter tasks hosted by a runner pool beside the games (0: none).",
)
@click.option(
    "--leagues",
    default=DEFAULT_LEAGUE,
    show_default=True,
    help="Leagues to simulate and follow, e.g. nba,nfl,mlb,nhl (--games is per league).",
)
def dev(
    port: int,
    sim_port: int,
    code_port: int,
    games: int,
    speed: float,
    first_start: float,
    spacing: float,
    pool_demo: int,
    leagues: str,
) -> None:
    """Bring the whole system up (database, simulator, code server, today's schedule, daemon,
    webserver) and watch it until Ctrl-C."""
    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    state = config.state_dir()
    state.mkdir(parents=True, exist_ok=True)
    embedded_used = not os.environ.get(config.TASK_DB_ENV)
    sup: Supervisor | None = None
    failure: str | None = None
    try:
        followed = [lg.alias for lg in load_leagues().parse_list(leagues)]
        task_url, dagster_url = embedded.resolve_urls()
        click.echo(f"task database:   {config.redact(task_url)}")
        click.echo(f"dagster storage: {config.redact(dagster_url)}")
        applied = migrations.migrate(task_url, on_note=click.echo)
        click.echo(f"migrations: {', '.join(applied) or 'up to date'}")
        with TaskStore(task_url) as store:
            task_types.apply(store, task_types.load_file(task_types.DEFAULTS_FILE))
            task_types.apply(store, task_types.load_file(task_types.EXAMPLES_FILE))

        home = dagster_home.prepare(state / "dagster_home")
        code_port = code_port or _free_port()
        exports = {
            "DAGSTER_HOME": str(home),
            dagster_home.CODE_SERVER_HOST_ENV: "127.0.0.1",
            dagster_home.CODE_SERVER_PORT_ENV: str(code_port),
            "OTF_FEED_PROVIDER": os.environ.get("OTF_FEED_PROVIDER", "nba_cdn"),
            LEAGUES_ENV: ",".join(followed),
        }
        os.environ.update(
            exports
            | {
                config.TASK_DB_ENV: task_url,
                config.DAGSTER_DB_ENV: config.dagster_storage_url(dagster_url),
            }
        )
        become_subreaper()
        sup = Supervisor(dict(os.environ), state / "logs", click.echo)
        if embedded_used:
            sup.watch(_embedded_postgres(embedded.start().pgdata))
        if not os.environ.get(local_nats.NATS_URL_ENV):
            nats_server = local_nats.start(state / "nats")
            sup.watch(_embedded_nats(nats_server))
            os.environ[local_nats.NATS_URL_ENV] = nats_server.url
            sup.env[local_nats.NATS_URL_ENV] = nats_server.url
            click.echo(f"nats-server (JetStream) on {nats_server.url}; data in {state / 'nats'}")
        exports[local_nats.NATS_URL_ENV] = os.environ[local_nats.NATS_URL_ENV]
        # The webhook secret of this session: in the relay's host (the code server) and the
        # receiver only; the endpoint stores the variable's name.
        secret_env = {dev_delivery.SECRET_ENV: dev_delivery.new_secret()}

        if not os.environ.get("OTF_FEED_BASE_URL"):
            args = {"port": sim_port, "games": games, "speed": speed, "leagues": ",".join(followed)}
            args |= {"first_start": first_start, "spacing": spacing}
            sup.start("simulator", _simulator_argv(args, state / SLATES_FILE), restart=False)
            feed = f"http://127.0.0.1:{sim_port}"
            wait_until(lambda: _answers(feed + "/_sim/state"), 30, sup, "the simulator")
            os.environ["OTF_FEED_BASE_URL"] = sup.env["OTF_FEED_BASE_URL"] = feed
        exports["OTF_FEED_BASE_URL"] = os.environ["OTF_FEED_BASE_URL"]
        click.echo(f"feeds: {exports['OTF_FEED_PROVIDER']} at {exports['OTF_FEED_BASE_URL']}")

        dagster = _bin("dagster")
        sup.start(
            "code server",
            [dagster, *dagster_home.code_server_command(code_port)],
            restart=True,
            env=secret_env,
        )
        api_port = _free_port()
        api_url = exports["OTF_API_URL"] = f"http://127.0.0.1:{api_port}"
        sup.start("api", [_bin("otf"), "api", "--port", str(api_port)], restart=True)
        # Dagster is imported here, not at the top: every otf command (otf relay too) imports
        # this module, and Dagster costs ~40 MB and ~0.7 s.
        from otf_dagster.defs.partitions import schedule_partition_key

        tz = settings.SCHEDULE_TIMEZONE.read()
        today = datetime.now(ZoneInfo(tz)).date().isoformat()
        with TaskStore(task_url) as store:  # a generic-handler task beside the box scores
            watch, _ = store.schedule_task(
                "SCOREBOARD_WATCH",
                today.replace("-", ""),
                datetime.now(ZoneInfo(tz)),
                source="otf dev",
            )
        click.echo(f"watching the day's scoreboard as task {watch}")
        if pool_demo:
            _schedule_pool_demo(task_url, pool_demo)
            click.echo(f"{pool_demo} counter tasks for a runner pool (DEMO_COUNTER)")
        for alias in followed:
            key = str(schedule_partition_key(today, alias))
            click.echo(f"materializing game_schedule for {key} ...")
            materialize = [dagster, "asset", "materialize", "-m", "otf_dagster.definitions",
                           "-a", "defs", "--select", "game_schedule", "--partition", key]  # fmt: skip
            if sup.run_once("schedule", materialize, timeout=300) != 0:
                raise PartDied(
                    f"materializing game_schedule {key} failed; see {state / 'logs'}/schedule.log"
                )
        wait_until(lambda: _answers(api_url + "/openapi.json"), 60, sup, "otf api")
        click.echo(f"otf api on {api_url}")
        receiver_url = _start_receiver(sup, task_url, api_url, secret_env)
        click.echo(
            f"webhook receiver on {receiver_url} ({dev_delivery.OWNER}; log: "
            f"{state / 'logs' / 'receiver.log'}); JetStream subjects "
            f"{dev_delivery.SUBJECT}.>"
        )
        workspace = str(home / dagster_home.WORKSPACE_FILE)
        wait_until(lambda: _listens(code_port), 120, sup, "the code server")
        sup.start("daemon", [_bin("dagster-daemon"), "run", "-w", workspace], restart=True)
        web = [_bin("dagster-webserver"), "-w", workspace, "-h", "127.0.0.1", "-p", str(port)]
        sup.start("webserver", web, restart=True)
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: _answers(url + "/server_info"), 120, sup, "the webserver")
        session.write(exports)
        click.echo(f"Dagster UI on {url}; logs in {state / 'logs'}; Ctrl-C stops everything")
        click.echo('other shells: eval "$(.venv/bin/otf env)" for the same system')
        while True:
            sup.check()
            time.sleep(1)
    except _Stop:
        pass
    except PartDied as exc:
        failure = str(exc)
        click.echo(f"{failure}: stopping everything", err=True)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        failure = _shut_down(sup, embedded_used) or failure
    if failure:
        sys.exit(1)


def _shut_down(sup: Supervisor | None, embedded_used: bool) -> str | None:
    """Stop what the session started, one line per part; a message if something is left."""
    click.echo("stopping ...")
    session.clear()
    left = None
    if sup is not None:
        # The daemon first: its Task Manager would take the runs cancelled below for failed
        # ones and re-launch their tasks into a system that is going away, spending attempts.
        sup.stop_part("daemon")
        if any(p.name == "code server" and p.proc.poll() is None for p in sup.parts):
            try:
                _cancel_runs(click.echo)
            except Exception as exc:  # noqa: BLE001 - stopping goes on; the runs end below
                click.echo(f"could not cancel runs through Dagster ({type(exc).__name__})")
        survivors = sup.stop()
        if survivors:
            listed = ", ".join(f"{p.pid} {p.name()}" for p in survivors[:10])
            left = f"{len(survivors)} process(es) outlived the session: {listed}"
    if embedded_used and embedded.stop():
        click.echo("stopped PostgreSQL")
    if left:
        click.echo(f"error: {left}", err=True)
        return left
    click.echo("stopped: no process left behind")
    return None


@click.command("dagster-home")
@click.argument("directory", type=click.Path(file_okay=False))
def dagster_home_cmd(directory: str) -> None:
    """Write the packaged dagster.yaml and workspace.yaml into DIRECTORY, to use as
    DAGSTER_HOME (what the Docker image and `otf dev` do)."""
    home = dagster_home.prepare(Path(directory))
    click.echo(f"export DAGSTER_HOME={shlex.quote(str(home))}")
