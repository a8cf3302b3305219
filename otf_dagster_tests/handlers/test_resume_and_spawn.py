"""A generic-handler task killed with SIGKILL mid-sequence and resumed writes the event stream
of an uninterrupted run, and the follow-up tasks it spawns exist once each, however often
their items are seen and however often the runner is killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest

from otf_dagster.core.store import TaskStore
from otf_dagster.handlers import task_types
from otf_dagster.vocab.tasks import TaskState
from otf_dagster_tests.helpers import FileClock, ScriptedFeed

STEPS = 40
START = 1_800_000_000.0  # a fixed virtual start: both runs see the same documents at each step


def board(step: int) -> dict:
    """The watched document at each step: a count that grows, a phase that changes twice,
    games that appear one by one (seen again on every later poll), one game moved once."""
    games = [
        {"id": f"g{i}", "at": f"2026-12-0{1 + i // 4}T20:0{i % 4}:00Z"}
        for i in range(step // 8 + 1)
    ]
    if step >= 20 and len(games) > 2:
        games[2]["at"] = "2026-12-05T23:30:00Z"  # moved while still scheduled
    return {
        "count": step // 2,
        "phase": ["warmup", "main", "cooldown"][min(step // 15, 2)],
        "games": games,
        "over": step == STEPS - 1,
    }


def types(base: str) -> list:
    watch = {
        "name": "BOARD_WATCH",
        "handler": "http.json",
        "base_url": base,
        "url_template": "/board/{key}.json",
        "poll_interval_seconds": 10,
        "params": {"done_when": "over", "track": {"count": "count", "phase": "phase"}},
        "spawn": {"items": "games", "type": "BOARD_GAME", "key": "id", "at": "at"},
        "max_attempts": 10,
    }
    game = {
        "name": "BOARD_GAME",
        "handler": "http.json",
        "base_url": base,
        "url_template": "/game/{key}.json",
        "poll_interval_seconds": 10,
        "params": {"done_when": "over"},
    }
    return [task_types.validate(watch), task_types.validate(game)]


def launch(db_url: str, task_id: str, attempt: int, run_id: str, clock: FileClock):
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "otf_dagster_tests.core.run_runner",
            "--db",
            db_url,
            "--base-url",
            "http://127.0.0.1:9",  # unused: the types name their own base URL
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


def play(db_url: str, tmp_path, kills: list[int]):
    clock = FileClock(tmp_path / f"clock-{len(kills)}", start=START)
    store = TaskStore(db_url)
    with ScriptedFeed(clock=lambda: clock.t, t0=START, step=10.0) as feed:
        feed.script("/board/day1.json", [board(i) for i in range(STEPS)])
        task_types.apply(store, types(feed.base_url))
        task_id, _ = store.schedule_task("BOARD_WATCH", "day1", datetime.fromtimestamp(START, UTC))
        [claimed] = store.claim_ready(now=datetime.fromtimestamp(START, UTC) + timedelta(1))
        attempt = claimed.task.attempt
        for n, threshold in enumerate(kills):
            proc = launch(db_url, task_id, attempt, f"run-{n}", clock)
            deadline = time.monotonic() + 60
            while len(store.task_events(task_id)) < threshold:
                assert proc.poll() is None, f"runner ended early: {proc.stdout.read()}"
                assert time.monotonic() < deadline, "runner made no progress"
                time.sleep(0.002)
            os.kill(proc.pid, signal.SIGKILL)
            assert proc.wait(10) == -signal.SIGKILL
            attempt = store.relaunch(task_id, attempt, "test: runner killed").attempt
        proc = launch(db_url, task_id, attempt, f"run-{len(kills)}", clock)
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, out
    events = [(e["task_seq"], e["kind"], e["payload"]) for e in store.task_events(task_id)]
    return events, store, task_id


@pytest.mark.parametrize("kills", [[5], [2, 9, 16]])
def test_killed_and_resumed_generic_task_writes_the_uninterrupted_stream_and_spawns_once(
    pg_server, db_url, tmp_path, kills
):
    _, reference_url = pg_server.fresh_database()
    reference, ref_store, _ = play(reference_url, tmp_path, [])
    ref_store.close()
    assert len(reference) == 2 + (STEPS // 2 - 1) + 2  # initial count and phase, changes
    assert len(reference) > max(kills) + 5

    resumed, store, task_id = play(db_url, tmp_path, kills)
    assert [seq for seq, _, _ in resumed] == list(range(1, len(resumed) + 1)), "duplicate or gap"
    assert resumed == reference
    task = store.get_task(task_id)
    assert task.state == TaskState.FINISHED and task.attempt == len(kills) + 1
    assert len({e["task_runner_id"] for e in store.task_events(task_id)}) == len(kills) + 1

    children = store.list_tasks(task_type="BOARD_GAME")
    last = board(STEPS - 1)["games"]
    assert sorted(c.external_key for c in children) == sorted(g["id"] for g in last)
    for child in children:
        assert child.parent_task_id == task_id and child.state == TaskState.SCHEDULED
        scheduled_rows = [
            h for h in store.state_history(child.task_id) if h["state"] == "SCHEDULED"
        ]
        assert len(scheduled_rows) == 1, child.task_id  # created once, never again
    moved = next(c for c in children if c.external_key == "g2")
    assert moved.scheduled_at == datetime(2026, 12, 5, 23, 30, tzinfo=UTC)
    store.close()
