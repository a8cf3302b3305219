"""``otf simulate --slates-file``: every slate the simulator served, kept across restarts.

A JSON file of slates, each with its number, speed and games (ids, teams, start times). Started
again with the same file, the simulator serves the earlier slates' games too: they replay to
their end on their own clock and stay listed on their day, so a task database that tracked
them still finds them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from otf_dagster.exceptions import ConfigError
from otf_dagster.simulator.slate import SimGame

VERSION = 1


def load(path: Path) -> list[dict[str, Any]]:
    """The slates kept in ``path`` ([] when it does not exist yet)."""
    if not path.exists():
        return []
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        slates = doc["slates"]
        for slate in slates:
            slate["games"] = [SimGame.from_record(g) for g in slate["games"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"slates file {path} is not one the simulator wrote ({type(exc).__name__}: {exc}); "
            "give another --slates-file or remove this one"
        ) from None
    return slates


def save(path: Path, slates: list[dict[str, Any]]) -> None:
    """Write all slates at once (a temporary file replaced in one step)."""
    doc = {
        "version": VERSION,
        "slates": [
            {k: v for k, v in slate.items() if k != "games"}
            | {"games": [g.to_record() for g in slate["games"]]}
            for slate in slates
        ],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(doc, indent=1), encoding="utf-8")
    tmp.replace(path)


def game_ids(slates: list[dict[str, Any]]) -> set[str]:
    return {i for slate in slates for g in slate["games"] for i in (g.nba_id, g.espn_id) if i}
