"""A feed server for the benches that is not the bottleneck: nginx (Debian's ``nginx-light``)
serving the counter document (``/demo/count/KEY.json``, the simulator's synthetic feed) from one
file that a thread of the bench rewrites every second, so each poll 10 s apart sees a new count,
as it would from the simulator, at a compiled server's speed. Started and stopped by the bench:
its own folder, loopback, a free port below the ephemeral range."""

from __future__ import annotations

import json
import os
import random
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import requests

CONF = """daemon off;
master_process on;
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    keepalive_requests 10000000;
    keepalive_timeout 600s;
    client_body_temp_path {root}/tmp;
    proxy_temp_path {root}/tmp;
    fastcgi_temp_path {root}/tmp;
    uwsgi_temp_path {root}/tmp;
    scgi_temp_path {root}/tmp;
    server {{
        listen 127.0.0.1:{port};
        root {root}/www;
        location /demo/count/ {{
            default_type application/json;
            try_files /count.json =404;
        }}
    }}
}}
"""


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None
    )


def _free_port() -> int:
    """A free port below 32768 (the kernel's ephemeral client ports start there)."""
    for _ in range(200):
        port = random.randint(20000, 32000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 20000-32000")


class StaticFeed:
    def __init__(self, every: float = 1.0) -> None:
        self.every = every
        self.root = Path(tempfile.mkdtemp(prefix="otf-static-feed-"))
        self.proc: subprocess.Popen | None = None
        self.stop_event = threading.Event()
        self.writer: threading.Thread | None = None
        self.base_url = ""

    def _write(self, count: int) -> None:
        doc = {"key": "static", "count": count, "steps": 10**9, "done": False}
        tmp = self.root / "www" / "count.json.tmp"
        tmp.write_text(json.dumps(doc))
        os.replace(tmp, self.root / "www" / "count.json")

    def _tick(self) -> None:
        start = time.time()
        while not self.stop_event.wait(self.every):
            self._write(int((time.time() - start) // self.every))

    def start(self) -> str:
        binary = nginx_binary()
        if binary is None:
            raise RuntimeError(
                "nginx not found: install Debian's nginx-light (apt-get install nginx-light) or "
                "run the bench with --feed simulator"
            )
        # nginx's workers run as its own user when started by root: the folder must be readable
        self.root.chmod(0o755)
        (self.root / "www").mkdir(mode=0o755)
        (self.root / "tmp").mkdir()
        self._write(0)
        port = _free_port()
        conf = self.root / "nginx.conf"
        conf.write_text(CONF.format(root=self.root, port=port))
        self.proc = subprocess.Popen(
            [binary, "-c", str(conf), "-p", str(self.root), "-e", str(self.root / "error.log")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.base_url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                requests.get(f"{self.base_url}/demo/count/probe.json", timeout=1).raise_for_status()
                break
            except requests.RequestException:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    log = (
                        (self.root / "error.log").read_text()
                        if (self.root / "error.log").exists()
                        else ""
                    )
                    self.stop()
                    raise RuntimeError(f"nginx did not start: {log[-500:]}") from None
                time.sleep(0.05)
        self.writer = threading.Thread(target=self._tick, daemon=True)
        self.writer.start()
        return self.base_url

    def stop(self) -> None:
        self.stop_event.set()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.writer is not None:
            self.writer.join(5)
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> StaticFeed:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
