"""Everything reads the same once a finished task's chunks are compressed (and after a
compress/decompress round trip), and a late event lands in a compressed chunk.

On plain PostgreSQL the compress steps do nothing and the same reads are compared; on
TimescaleDB the tests also check that chunks really were compressed."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from click.testing import CliRunner
from psycopg.types.json import Jsonb

from otf_dagster.cli import _register, cli
from otf_dagster.core.consumer import Consumer, read_events
from otf_dagster.core.services import report, subscribe
from otf_dagster.core.stats import score_timeline
from otf_dagster.core.store import TaskStore
from otf_dagster.core.store.polls import PollWrite
from otf_dagster.core.timeline import timeline
from otf_dagster.views.tables import timeline_markdown
from otf_dagster.vocab.tasks import EventRecord, TaskState
from otf_dagster_tests.helpers import MEDIA
from otf_dagster_tests.timescale import tsdb

TIME_SERIES = ("task_events", "task_states")


@pytest.fixture
def otf(db_url, monkeypatch):
    monkeypatch.setenv("OTF_DATABASE_URL", db_url)
    _register()
    runner = CliRunner()
    return lambda *args: runner.invoke(cli, list(args), catch_exceptions=False)


def score(seq: int, side: str, points: int, home: int, away: int) -> EventRecord:
    return EventRecord(
        seq,
        "score_changed",
        {"side": side, "points": points, "home_score": home, "away_score": away, "period": 1},
    )


def play_a_game(store: TaskStore, tid: str) -> None:
    """Polls with events, services' reports, and a last poll that finishes the task."""
    store.record_poll(PollWrite(tid, 1, "run-1", {"n": 1}, [EventRecord(1, "game_started", {})]))
    report(store, tid, "photo", "STARTED")
    store.record_poll(
        PollWrite(tid, 1, "run-1", {"n": 2}, [score(2, "home", 2, 2, 0), score(3, "away", 3, 2, 3)])
    )
    report(store, tid, "photo", "FINISHED", {"url": "https://example.org/p.jpg"})
    report(store, tid, "caption", "FINISHED")
    final = EventRecord(4, "game_final", {"home_score": 2, "away_score": 3})
    assert (
        store.record_poll(PollWrite(tid, 1, "run-1", {"n": 3}, [final], finish=TaskState.FINISHED))
        == TaskState.FINISHED
    )


def everything_read(store: TaskStore, db_url: str, otf, tid: str) -> dict:
    entries = timeline(store, tid)
    return {
        "timeline": entries,
        "markdown": timeline_markdown(entries),  # what the runner's materialization shows
        "events": store.task_events(tid),
        "history": store.state_history(tid),
        "consumer": read_events(db_url),
        "score": score_timeline(store, tid, timedelta(minutes=1)),
        "show": json.loads(otf("tasks", "show", tid, "--json").output),
        "tail": otf("events", "tail", "--json").output,
        "timeline_cli": json.loads(
            otf("tasks", "timeline", tid, "--bucket", "1m", "--json").output
        ),
    }


def test_a_finished_task_reads_the_same_from_compressed_chunks(store, db_url, media_task, otf):
    tid = media_task.task.task_id
    play_a_game(store, tid)
    subscribe(store, "captions", MEDIA)
    with Consumer(db_url, "captions") as c:  # a durable consumer half way through
        first = c.fetch(limit=2)
        c.ack(first[-1]["seq"])
    before = everything_read(store, db_url, otf, tid)
    assert [e["summary"] for e in before["timeline"]][-3:] == [
        "event #4 game_final",
        "runner FINISHED",
        "task FINISHED (was STARTED) [by task_manager]",
    ]

    compressed = tsdb.compress(db_url, *TIME_SERIES)
    assert (compressed > 0) == tsdb.has_timescaledb(db_url)
    assert everything_read(store, db_url, otf, tid) == before
    with Consumer(db_url, "captions") as c:  # its cursor still means the same events
        rest = c.fetch(limit=100)
    assert [e["seq"] for e in first + rest] == [e["seq"] for e in before["consumer"]]

    # A round trip: TimescaleDB rewrites the rows, the project's own columns stay.
    assert tsdb.decompress(db_url, *TIME_SERIES) == compressed
    assert everything_read(store, db_url, otf, tid) == before


def test_a_late_event_lands_in_a_compressed_chunk_and_is_read_in_order(
    store, db_url, media_types, otf
):
    """Ten-day-old rows, compressed by the shipped policy (run now); then a late event for the
    same day: consumers, the timeline and the CLI see it, after the others in seq order."""
    tid = "nba_game_media:old"
    old = datetime.now(UTC) - timedelta(days=10)
    with psycopg.connect(db_url, autocommit=True) as conn:  # one transaction per row
        conn.execute(
            # created ten days ago too: the timeline reads a task's rows within its lifetime
            "INSERT INTO tasks (task_id, task_type, external_key, created_at, scheduled_at, state,"
            " attempt, started_at, finished_at) VALUES (%s, %s, 'old', %s, %s, 'FINISHED', 1, %s, %s)",
            (tid, MEDIA, old, old, old, old + timedelta(hours=3)),
        )
        conn.execute(
            "INSERT INTO task_states (time, task_id, attempt, state, source)"
            " VALUES (%s, %s, 1, 'STARTED', 'test'), (%s, %s, 1, 'FINISHED', 'test')",
            (old, tid, old + timedelta(hours=3), tid),
        )
        for i in range(1, 6):
            conn.execute(
                "INSERT INTO task_events (time, task_id, task_runner_id, task_type, task_seq,"
                " kind, payload) VALUES (%s, %s, 'run-old', %s, %s, 'score_changed', %s)",
                (
                    old + timedelta(minutes=i),
                    tid,
                    MEDIA,
                    i,
                    Jsonb({"home_score": i, "away_score": 0}),
                ),
            )
    ran = tsdb.run_policy(db_url, "task_events")
    assert ran == tsdb.has_timescaledb(db_url)
    assert (tsdb.compressed_chunks(db_url, "task_events") == 1) == ran

    with psycopg.connect(db_url) as conn:  # the late one, in the compressed chunk's day
        conn.execute(
            "INSERT INTO task_events (time, task_id, task_runner_id, task_type, task_seq, kind,"
            " payload) VALUES (%s, %s, 'run-old', %s, 6, 'correction', %s)",
            (old + timedelta(minutes=30), tid, MEDIA, Jsonb({"home_score": 9, "away_score": 0})),
        )
    assert (tsdb.compressed_chunks(db_url, "task_events") == 1) == ran  # still compressed

    events = read_events(db_url)
    assert [e["task_seq"] for e in events] == [1, 2, 3, 4, 5, 6]
    assert events == sorted(events, key=lambda e: e["seq"])
    entries = timeline(store, tid)
    assert [e["summary"] for e in entries] == [
        "task STARTED [by test]",
        *[f"event #{i} score_changed" for i in range(1, 6)],
        "event #6 correction",
        "task FINISHED [by test]",
    ]
    tail = otf("events", "tail", "--json").output.splitlines()
    assert [json.loads(line)["task_seq"] for line in tail] == [1, 2, 3, 4, 5, 6]
    buckets = score_timeline(store, tid, timedelta(hours=1))
    assert sum(b["events"] for b in buckets) == 6 and buckets[-1]["home_score"] == 9
