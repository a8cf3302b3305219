"""A runner killed with SIGKILL mid-game, then resumed, writes the same event stream as an
uninterrupted one: no duplicates, no gaps."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime

import pytest

from otf_dagster.core.store import TaskStore
from otf_dagster.simulator.server import Simulator
from otf_dagster.vocab.tasks import TaskState
from otf_dagster_tests.helpers import FileClock, apply_test_types

T = "NBA_GAME_BOXSCORE"


def stream(store: TaskStore, task_id: str) -> list[tuple]:
    return [(e["task_seq"], e["kind"], e["payload"]) for e in store.task_events(task_id)]


def launch(
    db_url: str, sim: Simulator, task_id: str, attempt: int, run_id: str, clock: FileClock
) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "otf_dagster_tests.core.run_runner",
            "--db",
            db_url,
            "--base-url",
            sim.base_url,
            "--task-id",
            task_id,
            "--attempt",
            str(attempt),
            "--run-id",
            run_id,
            "--clock",
            str(clock.path),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def play(db_url: str, tmp_path, kill_after_events: list[int]) -> tuple[list[tuple], TaskStore, str]:
    """Replay game 1 from the same virtual start; SIGKILL the runner each time the stored
    stream reaches the next count in ``kill_after_events``, then re-launch the next attempt."""
    start = float(int(time.time()))  # the simulator rounds start times to the second
    clock = FileClock(tmp_path / f"clock-{len(kill_after_events)}", start=start)
    store = TaskStore(db_url)
    apply_test_types(store, poll=5.0, max_attempts=10)
    with Simulator(speed=20, games=1, first_start=5, spacing=30, clock=lambda: clock.t) as sim:
        task_id, _ = store.schedule_task(T, sim.games[0].nba_id, datetime.fromtimestamp(start, UTC))
        [claimed] = store.claim_ready(now=datetime.now(UTC))
        attempt = claimed.task.attempt
        for n, threshold in enumerate(kill_after_events):
            proc = launch(db_url, sim, task_id, attempt, f"run-{n}", clock)
            deadline = time.monotonic() + 60
            while len(store.task_events(task_id)) < threshold:
                assert proc.poll() is None, (
                    f"runner ended before it could be killed: {proc.stdout.read()}"
                )
                assert time.monotonic() < deadline, "runner made no progress"
                time.sleep(0.002)
            os.kill(proc.pid, signal.SIGKILL)
            assert proc.wait(10) == -signal.SIGKILL
            attempt = store.relaunch(task_id, attempt, "test: runner killed").attempt
        proc = launch(db_url, sim, task_id, attempt, f"run-{len(kill_after_events)}", clock)
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, out
    return stream(store, task_id), store, task_id


@pytest.mark.parametrize("kills", [[7], [3, 19, 40]])
def test_killed_and_resumed_runner_writes_the_uninterrupted_stream(
    pg_server, db_url, tmp_path, kills
):
    _, reference_url = pg_server.fresh_database()
    reference, ref_store, _ = play(reference_url, tmp_path, [])
    ref_store.close()
    assert len(reference) > max(kills) + 10 and reference[-1][1] == "game_final"

    resumed, store, task_id = play(db_url, tmp_path, kills)
    assert [seq for seq, _, _ in resumed] == list(range(1, len(resumed) + 1)), "duplicate or gap"
    assert resumed == reference
    task = store.get_task(task_id)
    assert task.state == TaskState.FINISHED and task.attempt == len(kills) + 1
    writers = [e["task_runner_id"] for e in store.task_events(task_id)]
    assert len(set(writers)) >= 2, "the kill did not split the stream between runners"
    store.close()
