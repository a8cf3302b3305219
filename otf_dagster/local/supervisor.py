"""The processes ``otf dev`` starts, watched: a part that dies is restarted or ends the session,
and stopping leaves no process behind, which is checked, not assumed.

Each part runs in a session of its own (so Ctrl-C in the terminal reaches ``otf dev`` alone,
and the part's whole process group, run workers included, can be signalled at once), with its
output in a log file. On Linux this process is made a *child subreaper*: whatever a part leaves
orphaned (a code server's run workers when it dies) is re-parented here rather than to init,
so the final sweep finds it among this process's descendants.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> bool:
    """Adopt orphaned descendants (Linux); False where the kernel offers no such thing."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0


@dataclass
class Part:
    """One long-running process of the session."""

    name: str
    argv: list[str]
    restart: bool  # restart it when it dies (up to Supervisor.max_restarts), else end the session
    env: dict[str, str] = field(default_factory=dict)  # on top of the session's (its secrets)
    proc: subprocess.Popen | None = None
    restarts: int = 0
    groups: list[int] = field(default_factory=list)  # every process group it has had

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None


@dataclass
class External:
    """A process the session depends on but did not spawn as a part (the embedded
    PostgreSQL, daemonized by pg_ctl; the embedded nats-server): watched, never restarted."""

    name: str
    alive: Callable[[], bool]
    stop: Callable[[], bool] | None = None  # stopped after the parts, before the sweep


class PartDied(Exception):
    """A part that is not restarted died (or one used up its restarts): the session ends."""


class Supervisor:
    def __init__(
        self,
        env: dict[str, str],
        logs: Path,
        say: Callable[[str], None],
        max_restarts: int = 3,
    ) -> None:
        self.env = env
        self.logs = logs
        self.say = say
        self.max_restarts = max_restarts
        self.parts: list[Part] = []
        self.externals: list[External] = []
        self.seen: dict[int, psutil.Process] = {}  # every descendant ever seen, by pid
        self.logs.mkdir(parents=True, exist_ok=True)

    # --- starting ------------------------------------------------------------------------------

    def _spawn(self, part: Part) -> None:
        log = (self.logs / f"{part.name.replace(' ', '-')}.log").open("ab")
        try:
            part.proc = subprocess.Popen(
                part.argv,
                env={**self.env, **part.env},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            log.close()
        part.groups.append(part.proc.pid)  # a session leader's group id is its pid
        self._remember(part.proc.pid)

    def start(
        self, name: str, argv: list[str], *, restart: bool, env: dict[str, str] | None = None
    ) -> Part:
        """Start a part; ``env`` is added to the session's for this part alone."""
        part = Part(name=name, argv=argv, restart=restart, env=dict(env or {}))
        self._spawn(part)
        self.parts.append(part)
        return part

    def watch(self, external: External) -> None:
        self.externals.append(external)

    def run_once(self, name: str, argv: list[str], timeout: float) -> int:
        """Run a one-shot step as a part of the session (Ctrl-C stops it too); its exit code."""
        part = self.start(name, argv, restart=False)
        assert part.proc is not None
        try:
            return part.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise PartDied(f"{name} did not finish within {timeout:.0f}s") from None
        finally:
            self.parts.remove(part)
            self._end(part)

    # --- watching ------------------------------------------------------------------------------

    def _remember(self, pid: int) -> None:
        with contextlib.suppress(psutil.Error):
            self.seen.setdefault(pid, psutil.Process(pid))

    def check(self) -> None:
        """One look at every part: restart what may be restarted, raise PartDied otherwise."""
        for child in psutil.Process().children(recursive=True):
            self.seen.setdefault(child.pid, child)
        self._reap_orphans()
        for ext in self.externals:
            if not ext.alive():
                raise PartDied(f"{ext.name} is no longer running")
        for part in self.parts:
            assert part.proc is not None
            code = part.proc.poll()
            if code is None:
                continue
            how = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited ({code})"
            if not part.restart or part.restarts >= self.max_restarts:
                raise PartDied(f"{part.name} {how}")
            part.restarts += 1
            self._spawn(part)
            self.say(
                f"{part.name} {how}: restarted (pid {part.pid}, restart "
                f"{part.restarts}/{self.max_restarts})"
            )

    def _reap_orphans(self) -> None:
        """Collect adopted orphans that have exited (they are not ours to wait for otherwise)."""
        ours = {p.pid for p in self.parts}
        for child in psutil.Process().children():
            if child.pid in ours:
                continue
            with contextlib.suppress(psutil.Error, ChildProcessError):
                if child.status() == psutil.STATUS_ZOMBIE:
                    os.waitpid(child.pid, os.WNOHANG)

    # --- stopping ------------------------------------------------------------------------------

    def _group_members(self, part: Part) -> list[psutil.Process]:
        members = []
        for proc in psutil.process_iter():
            with contextlib.suppress(psutil.Error, OSError):  # it may exit while we look
                if os.getpgid(proc.pid) in part.groups:
                    members.append(proc)
        return members

    def _end(self, part: Part, timeout: float = 15) -> int:
        """SIGTERM the part's process groups (old ones too), SIGKILL what outlives ``timeout``;
        how many processes were stopped."""
        victims = self._group_members(part)
        if part.proc is not None and part.proc.poll() is None:
            victims.append(psutil.Process(part.proc.pid))
        victims = list({p.pid: p for p in victims}.values())
        for group in part.groups:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(group, signal.SIGTERM)
        _, alive = psutil.wait_procs(victims, timeout=timeout)
        for proc in alive:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        psutil.wait_procs(alive, timeout=5)
        if part.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                part.proc.wait(5)
        return len(victims)

    def stop_part(self, name: str) -> None:
        """Stop one part (and what it started) ahead of the others, with its line."""
        for part in [p for p in self.parts if p.name == name]:
            self._stop_one(part)
            self.parts.remove(part)

    def _stop_one(self, part: Part) -> None:
        try:
            count = self._end(part)
        except (psutil.Error, OSError) as exc:  # the final sweep still gets it
            self.say(f"stopping {part.name}: {type(exc).__name__}; swept below")
            return
        extra = f" and {count - 1} process(es) it started" if count > 1 else ""
        self.say(f"stopped {part.name}{extra}")

    def stop(self) -> list[psutil.Process]:
        """Stop every part, last started first, then the externals that can be stopped, one
        line each; then sweep and check: the processes still alive (none, or something is
        wrong)."""
        for part in reversed(self.parts):
            self._stop_one(part)
        self.parts.clear()
        for ext in reversed(self.externals):
            if ext.stop is None:
                continue
            try:
                ran = ext.stop()
            except Exception as exc:  # noqa: BLE001 - the sweep still gets it
                self.say(f"stopping {ext.name}: {type(exc).__name__}; swept below")
                continue
            self.say(f"stopped {ext.name}" if ran else f"{ext.name} had already stopped")
        return self.sweep()

    def sweep(self) -> list[psutil.Process]:
        """Kill any descendant left (adopted orphans included), then report survivors among
        every process this session ever saw."""
        for child in psutil.Process().children(recursive=True):
            self.seen.setdefault(child.pid, child)
            with contextlib.suppress(psutil.Error):
                child.kill()
        psutil.wait_procs(psutil.Process().children(), timeout=5)
        survivors = []
        for proc in self.seen.values():
            with contextlib.suppress(psutil.Error):
                if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                    survivors.append(proc)
        return survivors


def wait_until(ready: Callable[[], bool], seconds: float, sup: Supervisor, what: str) -> None:
    """Wait for ``ready()`` while the parts are watched (a part dying meanwhile ends it)."""
    deadline = time.monotonic() + seconds
    while not ready():
        sup.check()
        if time.monotonic() > deadline:
            raise PartDied(f"{what} was not ready within {seconds:.0f}s")
        time.sleep(0.3)
