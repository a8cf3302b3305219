"""What a running ``otf dev`` session tells other shells: where the feeds are served, which
DAGSTER_HOME it runs with, where its code server listens. ``otf env`` exports it, so the
Dagster CLI in another terminal talks to the same system.

Kept in ``<state dir>/dev-session.json`` while the session runs; no secret is written (the
database URLs are not in it: ``otf env`` derives them as ever).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from otf_dagster import config

FILE = "dev-session.json"


def path() -> Path:
    return config.state_dir() / FILE


def write(exports: dict[str, str]) -> None:
    target = path()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    tmp.write_text(json.dumps({"pid": os.getpid(), "exports": exports}, indent=2))
    tmp.replace(target)


def read() -> dict[str, str]:
    """The running session's exports; empty when no session runs (a stale file is ignored)."""
    try:
        doc = json.loads(path().read_text())
        pid = int(doc["pid"])
        os.kill(pid, 0)
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    return {str(k): str(v) for k, v in doc["exports"].items()}


def clear() -> None:
    path().unlink(missing_ok=True)
