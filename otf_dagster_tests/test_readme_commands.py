"""The README's ``bash`` blocks work as written after ``make dev``: they are read from
README.md (so the README cannot drift) and run, in order, in one shell, beside a running
``otf dev`` (its simulator as the feed), from a folder whose ``.venv`` is the test venv."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from otf_dagster.vocab.tasks import TaskState
from otf_dagster_tests.local.dev_session import DevSession
from otf_dagster_tests.local.test_dev import dev_env  # noqa: F401 - a fixture
from otf_dagster_tests.wheel import CHECKOUT

pytestmark = pytest.mark.e2e
BLOCK = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)


def readme_blocks() -> dict[str, list[str]]:
    blocks: dict[str, list[str]] = {}
    for lang, body in BLOCK.findall((CHECKOUT / "README.md").read_text()):
        blocks.setdefault(lang, []).append(body)
    return blocks


def test_every_command_block_is_run_or_marked_as_an_example():
    blocks = readme_blocks()
    # bash: run by this test; sh: examples for real feeds; text, yaml: not commands
    assert set(blocks) <= {"bash", "sh", "text", "yaml", ""}, "a block in another language"
    assert len(blocks["bash"]) >= 3
    # `make dev ARGS=...` passes the options through to `otf dev`.
    make = subprocess.run(
        ["make", "--no-print-directory", "-n", "dev", 'ARGS=--games 8 --speed 60'],
        cwd=CHECKOUT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert make.stdout.strip().splitlines()[-1].endswith("otf dev --games 8 --speed 60")


def all_live_and_scoring(store) -> bool:
    tasks = store.list_tasks(task_type="NBA_GAME_BOXSCORE")
    return bool(tasks) and all(
        t.state == TaskState.STARTED
        and any(e["kind"] == "score_changed" for e in store.task_events(t.task_id))
        for t in tasks
    )


def test_the_readme_commands_work_after_make_dev(dev_env, store, tmp_path):  # noqa: F811
    (tmp_path / ".venv").symlink_to(Path(sys.prefix))
    dev = DevSession(dev_env, "--games", "2", "--first-start", "5", "--spacing", "5", cwd=tmp_path)
    try:
        dev.wait_for("Dagster UI on")
        deadline = time.monotonic() + 180
        while not all_live_and_scoring(store):  # `otf report` and the chart need a live game
            assert time.monotonic() < deadline, f"no live game:\n{dev.output}"
            assert dev.proc.poll() is None, dev.output
            time.sleep(1)
        script = "set -euo pipefail\n" + "\n".join(readme_blocks()["bash"])
        ran = subprocess.run(
            ["bash", "-c", script], cwd=tmp_path, env=dev_env,
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert ran.returncode == 0, f"stdout:\n{ran.stdout}\nstderr:\n{ran.stderr}"
        assert (tmp_path / "score.png").read_bytes().startswith(b"\x89PNG")
        assert "Traceback" not in ran.stderr
        assert dev.interrupt() == 0
    finally:
        dev.kill()
