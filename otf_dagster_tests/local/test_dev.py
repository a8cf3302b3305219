"""``otf dev`` supervises what it starts: a killed daemon is restarted, a dead simulator ends
the session, and Ctrl-C stops every part, one line each, no traceback, no process left
(checked with psutil, over every process the session was seen to have)."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from otf_dagster.cli import _register, cli
from otf_dagster_tests.helpers import wait_for
from otf_dagster_tests.local.dev_session import DevSession
from otf_dagster_tests.wheel import CHECKOUT

pytestmark = pytest.mark.e2e
# The daemon first (before runs are cancelled), then the others, last started first.
PARTS = ("daemon", "webserver", "receiver", "api", "code server", "simulator", "nats-server")


def readme_nats_script() -> str:
    """The README's nats-py reader (run as written, against this session's OTF_NATS_URL)."""
    text = (CHECKOUT / "README.md").read_text()
    found = re.search(r"^python - <<'EOF'.*?\n(.*?)^EOF$", text, re.S | re.M)
    assert found and "otf.dev.>" in found.group(1), "the README's nats-py script is gone"
    return found.group(1)


def read_first_line(env: dict, lines: list[str]) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", readme_nats_script()],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)

    threading.Thread(target=read, daemon=True).start()
    return proc


@pytest.fixture
def dev_env(pg_server, db_url, tmp_path):
    """The environment of a shell that runs `otf dev` against the test server's databases."""
    storage = f"otf_test_dev_storage_{os.getpid()}"
    storage_url = pg_server.create_database(storage, template=None)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTF_", "DAGSTER_"))}
    env |= {
        "OTF_DATABASE_URL": db_url,
        "DAGSTER_PG_URL": storage_url,
        "OTF_STATE_DIR": str(tmp_path / ".otf"),
    }
    yield env
    pg_server.drop_database(storage)


def otf_env(env: dict) -> dict[str, str]:
    _register()
    out = CliRunner().invoke(cli, ["env"], env=env, catch_exceptions=False).output
    pairs = [shlex.split(line)[1] for line in out.splitlines() if line.startswith("export ")]
    return dict(pair.split("=", 1) for pair in pairs)


def start(env: dict, tmp_path: Path) -> DevSession:
    # Games far off: these tests watch the processes, not the games.
    return DevSession(env, "--games", "1", "--first-start", "3600", cwd=tmp_path)


def test_a_killed_daemon_is_restarted_and_ctrl_c_leaves_nothing(dev_env, tmp_path):
    dev = start(dev_env, tmp_path)
    try:
        dev.wait_for("Dagster UI on")
        exports = otf_env(dev_env)  # what another shell gets from `eval "$(otf env)"`
        assert exports["OTF_FEED_BASE_URL"] == f"http://127.0.0.1:{dev.sim_port}"
        assert exports["DAGSTER_HOME"] == str(tmp_path / ".otf" / "dagster_home")
        assert exports["OTF_DATABASE_URL"] == dev_env["OTF_DATABASE_URL"]
        # The demo endpoints: the receiver verifies and logs the events the relay (in the code
        # server's run) signs with the session's secret, and JetStream has them under otf.dev.
        receiver_log = tmp_path / ".otf" / "logs" / "receiver.log"

        def received() -> list[str]:
            text = receiver_log.read_text() if receiver_log.exists() else ""
            assert "signature does not verify" not in text, text
            return re.findall(r"^received \w+ task=\S+ seq=\d+$", text, re.M)

        def alive() -> None:
            assert dev.proc.poll() is None, dev.output

        wait_for(received, "the receiver logs a verified event", 240, alive=alive,
                 diagnostics=lambda: dev.output)  # fmt: skip
        lines: list[str] = []
        reader = read_first_line(dev_env | exports, lines)
        try:
            wait_for(lambda: any(line.startswith("otf.dev.") for line in lines),
                     "the README's nats-py script reads the dev stream", 60,
                     diagnostics=lambda: "".join(lines))  # fmt: skip
        finally:
            reader.kill()
            reader.wait(10)
        assert re.match(
            r"^otf\.dev\.\w+\.\S+ \{", next(x for x in lines if x.startswith("otf.dev."))
        )
        daemon = dev.part("dagster-daemon")
        os.kill(daemon.pid, signal.SIGKILL)
        dev.wait_for("daemon was killed by SIGKILL: restarted")
        again = dev.part("dagster-daemon")
        assert again.pid != daemon.pid and again.is_running()

        assert dev.interrupt() == 0
        out = dev.output
        assert "Traceback" not in out and "KeyboardInterrupt" not in out
        tail = out[out.index("stopping ...") :].splitlines()[1:]
        if tail[1].startswith("cancelled "):  # the day's scoreboard watcher runs already
            del tail[1]
        stopped = [f"stopped {p}" for p in PARTS]
        assert [line.split(" and ")[0] for line in tail[: len(PARTS)]] == stopped, tail
        assert tail[-1] == "stopped: no process left behind"
        assert dev.left_behind() == []  # nats-server, otf api and the receiver among them
        assert not (tmp_path / ".otf" / "dev-session.json").exists()
        secret = re.compile(r"whsec_|otf_[A-Za-z0-9_-]{40}")
        logs = [p.read_text() for p in (tmp_path / ".otf" / "logs").glob("*.log")]
        assert not secret.search(out) and not any(secret.search(x) for x in logs)
    finally:
        dev.kill()


def test_a_dead_simulator_ends_the_session_and_leaves_nothing(dev_env, tmp_path):
    dev = start(dev_env, tmp_path)
    try:
        dev.wait_for("Dagster UI on")
        code_server = dev.part("code-server start")
        grpc = [
            p for p in code_server.children(recursive=True) if "api grpc" in " ".join(p.cmdline())
        ]
        assert grpc, "the code server's gRPC process was not found"
        os.kill(dev.part("otf simulate").pid, signal.SIGKILL)
        assert dev.wait() == 1
        out = dev.output
        assert "simulator was killed by SIGKILL: stopping everything" in out
        assert "stopped: no process left behind" in out and "Traceback" not in out
        assert dev.left_behind() == []
        assert not any(p.is_running() for p in grpc)
    finally:
        dev.kill()


def test_orphans_of_a_killed_code_server_are_found_and_stopped(dev_env, tmp_path):
    """SIGKILL the code server alone: its gRPC child is orphaned (re-parented to otf dev, a
    child subreaper), the code server is restarted, and Ctrl-C still stops the orphan."""
    dev = start(dev_env, tmp_path)
    try:
        dev.wait_for("Dagster UI on")
        code_server = dev.part("code-server start")
        orphans = [p for p in code_server.children(recursive=True)]
        assert orphans
        os.kill(code_server.pid, signal.SIGKILL)
        dev.wait_for("code server was killed by SIGKILL: restarted")
        assert all(p.ppid() == dev.proc.pid for p in orphans if p.is_running())
        assert dev.interrupt() == 0
        assert dev.left_behind() == []
        assert not any(p.is_running() for p in orphans)
    finally:
        dev.kill()
