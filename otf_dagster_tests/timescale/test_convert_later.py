"""A database migrated while TimescaleDB was absent is converted by a later `otf db migrate`,
with its rows, its event order and its consumers' cursors kept.

The test runs its own embedded server: first without TimescaleDB preloaded (the tables are
plain, as on any server without it), then - when the suite has a TimescaleDB build
(``make test-timescale``) - restarted with the build preloaded, as a user would. Without a build
it checks the plain half and that migrating again changes nothing."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from click.testing import CliRunner

from otf_dagster import config
from otf_dagster.cli import _register, cli
from otf_dagster.core.consumer import Consumer, read_events
from otf_dagster.core.services import report, subscribe
from otf_dagster.core.stats import minute_stats
from otf_dagster.core.store import TaskStore, migrations, pollstats
from otf_dagster.core.store.polls import PollWrite
from otf_dagster.core.timeline import timeline
from otf_dagster.local import embedded
from otf_dagster.vocab.tasks import EventRecord, TaskState, TaskType
from otf_dagster_tests.helpers import MEDIA, NOW
from otf_dagster_tests.pg import timescaledb_build

COUNTS = "SELECT (SELECT count(*) FROM task_events) AS events, (SELECT count(*) FROM task_states) AS states, (SELECT count(*) FROM task_polls) AS polls"


@pytest.fixture
def own_server() -> Iterator[tuple[str, str]]:
    pgdata = config.state_dir() / "test-pgdata-convert"
    embedded.stop(pgdata)
    shutil.rmtree(pgdata, ignore_errors=True)  # a fresh folder: not preloaded
    server = embedded.start(pgdata)
    try:
        yield pgdata, server.admin_url
    finally:
        with contextlib.suppress(Exception):
            embedded.stop(pgdata)
        shutil.rmtree(pgdata, ignore_errors=True)


def write_some_history(store: TaskStore) -> list[str]:
    """Two games: events, states, reports, poll records; one game finished."""
    store.apply_task_type(
        TaskType(
            name=MEDIA,
            handler="nba_cdn.boxscore",
            url_template="/boxscore/{key}.json",
            poll_interval_seconds=10,
            required_services=("runner", "photo"),
        )
    )
    ids = []
    for key in ("g1", "g2"):
        store.schedule_task(MEDIA, key, NOW)
    claimed = store.claim_ready(now=NOW + timedelta(minutes=1))
    for n, c in enumerate(sorted(claimed, key=lambda c: c.task.task_id)):
        tid = c.task.task_id
        ids.append(tid)
        for poll in range(1, 4):
            events = [
                EventRecord(poll * 2 - 1, "score_changed", {"home_score": poll, "away_score": n}),
                EventRecord(poll * 2, "lead_changed", {"home_score": poll, "away_score": n}),
            ]
            store.record_poll(PollWrite(tid, 1, f"run-{n}", {"next_seq": poll * 2 + 1}, events))
            store.run(
                "log poll",
                lambda conn, tid=tid, poll=poll, n=n: pollstats.log_poll(
                    conn,
                    task_id=tid,
                    task_type=MEDIA,
                    attempt=1,
                    task_runner_id=f"run-{n}",
                    lateness_seconds=0.5 * poll,
                    events=2,
                    error=None if poll < 3 else "HTTP 503",
                ),
            )
        report(store, tid, "photo", "FINISHED")
    store.record_poll(
        PollWrite(
            ids[0],
            1,
            "run-0",
            {"next_seq": 8},
            [EventRecord(7, "game_final", {})],
            finish=TaskState.FINISHED,
        )
    )
    return ids


def snapshot(url: str, ids: list[str]) -> dict:
    with psycopg.connect(url) as conn:
        counts = conn.execute(COUNTS).fetchone()
    with TaskStore(url) as store:
        return {
            "counts": counts,
            "events": read_events(url),
            "timelines": [timeline(store, tid) for tid in ids],
            "stats": minute_stats(store, since=datetime.now(UTC) - timedelta(hours=1)),
        }


def test_a_plain_database_is_converted_later_with_its_data(own_server, monkeypatch):
    pgdata, admin = own_server
    url = embedded.create_database(admin, "otf_convert")
    notes: list[str] = []
    migrations.migrate(url, on_note=notes.append)
    status = migrations.status(url)
    assert status["hypertables"] == [] and status["timescaledb"] is None
    assert len(notes) == 1 and (
        "not preloaded" in notes[0]
        if status["timescaledb_available"]
        else "not available" in notes[0]
    )

    with TaskStore(url) as store:
        ids = write_some_history(store)
        subscribe(store, "captions", MEDIA)
    with Consumer(url, "captions") as c:
        seen = c.fetch(limit=5)
        c.ack(seen[-1]["seq"])
    before = snapshot(url, ids)
    assert before["counts"][0] == 13 and before["counts"][2] == 6

    monkeypatch.setenv("OTF_DATABASE_URL", url)
    _register()
    otf = CliRunner()
    build = timescaledb_build()
    if build is None:  # no TimescaleDB for this pass: migrating again changes nothing
        assert otf.invoke(cli, ["db", "migrate"]).output.strip().splitlines()[-1] == (
            "up to date: nothing to apply"
        )
        assert snapshot(url, ids) == before
        return

    embedded.start(pgdata, timescaledb=build)  # installs, preloads, restarts
    text = otf.invoke(cli, ["db", "status"]).output
    assert "timescaledb is available but task_events, task_polls, task_states are plain" in text
    out = otf.invoke(cli, ["db", "migrate"]).output
    assert "timescaledb: extension created" in out
    assert (
        "timescaledb: task_events is now a hypertable (13 rows kept, in 1 chunks of 1 day)" in out
    )
    assert f"timescaledb: task_states is now a hypertable ({before['counts'][1]} rows kept" in out
    assert "timescaledb: task_polls is now a hypertable (6 rows kept" in out
    assert "timescaledb: task_event_stats_1m is a continuous aggregate" in out
    assert out.strip().splitlines()[-1] == "up to date: nothing to apply"

    status = migrations.status(url)
    assert [h["hypertable_name"] for h in status["hypertables"]] == list(migrations.TIME_SERIES)
    assert status["continuous_aggregates"] == ["task_event_stats_1m", "task_poll_stats_1m"]
    assert status["notes"] == []
    assert {j["job"].split(" [")[0] for j in status["jobs"]} >= {
        "Columnstore Policy",
        "Retention Policy",
        "Refresh Continuous Aggregate Policy",
    }
    after = snapshot(url, ids)
    assert after == before  # rows, seq order, timelines and per-minute stats all kept
    with Consumer(url, "captions") as c:  # the cursor still points between the same events
        rest = c.fetch(limit=100)
    assert [e["seq"] for e in seen + rest] == [e["seq"] for e in before["events"]]
    # and once more: nothing left to do
    assert otf.invoke(cli, ["db", "migrate"]).output.strip() == "up to date: nothing to apply"
