"""``otf dev`` as a user runs it, in a subprocess: its output read line by line (a test waits
for a line, not for a number of seconds), its processes followed with psutil."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

OTF = str(Path(sys.executable).with_name("otf"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class DevSession:
    def __init__(self, env: dict[str, str], *args: str, cwd: Path) -> None:
        self.port = free_port()
        self.sim_port = free_port()
        if "--pool-demo" not in args:  # the pool demo's tasks are tested on their own
            args = (*args, "--pool-demo", "0")
        argv = [OTF, "dev", "--port", str(self.port), "--sim-port", str(self.sim_port), *args]
        self.proc = subprocess.Popen(
            argv,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self.seen: dict[int, psutil.Process] = {}
        self.closed = False
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self.closed = True
            self._changed.notify_all()

    @property
    def output(self) -> str:
        with self._changed:
            return "\n".join(self.lines)

    def wait_for(self, text: str, timeout: float = 240) -> str:
        """The first output line containing ``text``; fails if the session ends first."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for line in self.lines:
                    if text in line:
                        return line
                so_far = "\n".join(self.lines)
                if self.closed:
                    raise AssertionError(f"otf dev ended before {text!r}:\n{so_far}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no {text!r} within {timeout}s:\n{so_far}")
                self._changed.wait(min(left, 1))

    def processes(self) -> list[psutil.Process]:
        """The session's processes now (all remembered, for the check that none is left)."""
        found = [psutil.Process(self.proc.pid)]
        found += found[0].children(recursive=True)
        for p in found:
            self.seen.setdefault(p.pid, p)
        return found

    def part(self, needle: str) -> psutil.Process:
        """The session's process whose command line contains ``needle``."""
        for p in self.processes():
            if needle in " ".join(p.cmdline()):
                return p
        raise AssertionError(f"no process {needle!r} in the session")

    def interrupt(self, timeout: float = 120) -> int:
        """Ctrl-C (SIGINT to otf dev), and wait for it to end; its exit code."""
        self.processes()
        os.kill(self.proc.pid, signal.SIGINT)
        return self.wait(timeout)

    def wait(self, timeout: float = 120) -> int:
        """Wait for otf dev to end and its output to be read; its exit code."""
        code = self.proc.wait(timeout)
        with self._changed:
            self._changed.wait_for(lambda: self.closed, timeout=30)
        return code

    def left_behind(self) -> list[str]:
        """Every process the session was seen to have that still runs."""
        alive = []
        for p in self.seen.values():
            try:
                if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                    alive.append(f"{p.pid} {' '.join(p.cmdline())[:120]}")
            except psutil.NoSuchProcess:
                continue
        return alive

    def kill(self) -> None:
        """Test clean-up only: whatever is left, gone."""
        for p in [*self.seen.values()]:
            try:
                p.kill()
            except psutil.Error:
                continue
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
