"""Without OTF_DATABASE_URL a writing command refuses the embedded fallback unless told to
(`otf --embedded`), and a command that used the embedded server says so on stderr."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

OTF = str(Path(sys.executable).with_name("otf"))


def otf(state: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTF_", "DAGSTER_"))}
    env["OTF_STATE_DIR"] = str(state)
    return subprocess.run([OTF, *args], env=env, capture_output=True, text=True, timeout=120)


def test_writing_needs_a_url_or_embedded_and_says_which_database(tmp_path):
    state = tmp_path / ".otf"
    refused = otf(state, "tasks", "schedule", "--type", "NBA_GAME_BOXSCORE", "--key", "1",
                  "--at", "2026-11-27T19:30:00Z")  # fmt: skip
    assert refused.returncode == 1 and refused.stdout == ""
    [line] = refused.stderr.splitlines()
    assert "OTF_DATABASE_URL is not set" in line and "--embedded" in line
    assert not (state / "pgdata").exists(), "a refused command started a server"
    try:
        migrated = otf(state, "--embedded", "db", "migrate")
        assert migrated.returncode == 0, migrated.stderr
        said = migrated.stderr.splitlines()
        assert said == [
            f"otf: using the embedded task database postgresql://postgres:@/otf?host={state / 'pgdata'}"
        ]
        listed = otf(state, "tasks", "list")  # reading may fall back, and says so
        assert listed.returncode == 0 and listed.stderr.startswith("otf: using the embedded")
    finally:
        otf(state, "db", "stop")
