"""Per-minute stats against a hand count (continuous aggregates on TimescaleDB, plain views
elsewhere), poll records, the score timeline by bucket, compression settings, policy jobs."""

from __future__ import annotations

import json
import math
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import dagster as dg
import psycopg
import pytest
from click.testing import CliRunner
from psycopg.types.json import Jsonb

from otf_dagster.cli import _register, cli
from otf_dagster.core.stats import minute_stats, parse_duration, score_timeline
from otf_dagster.core.store import migrations, pollstats
from otf_dagster.defs.resources import TaskStoreResource
from otf_dagster.defs.task_stats import task_stats
from otf_dagster.exceptions import StoreError, UnknownTask
from otf_dagster_tests.helpers import MEDIA, PLAIN
from otf_dagster_tests.timescale import tsdb

T0 = datetime(2026, 11, 27, 19, 0, tzinfo=UTC)


@pytest.fixture
def otf(db_url, monkeypatch):
    monkeypatch.setenv("OTF_DATABASE_URL", db_url)
    _register()
    runner = CliRunner()
    return lambda *args: runner.invoke(cli, list(args), catch_exceptions=False)


def minute(t: datetime) -> datetime:
    return t.replace(second=0, microsecond=0)


def write_polls_and_events(url: str) -> dict:
    """Polls and events of two types over five minutes, at times chosen here; the hand count."""
    polls: dict = defaultdict(list)
    events: dict = defaultdict(int)
    with psycopg.connect(url, autocommit=True) as conn:
        for i in range(40):
            task_type = (MEDIA, PLAIN)[i % 2]
            at = T0 + timedelta(seconds=7 * i)
            late, n, err = (i % 5) * 0.25, i % 3, "HTTP 503" if i % 7 == 0 else None
            conn.execute(
                "INSERT INTO task_polls (time, task_id, task_type, attempt, task_runner_id,"
                " lateness_seconds, events, error) VALUES (%s, %s, %s, 1, 'r', %s, %s, %s)",
                (at, f"{task_type.lower()}:g{i % 4}", task_type, late, n, err),
            )
            polls[(minute(at), task_type)].append((late, err))
            for k in range(n):
                conn.execute(
                    "INSERT INTO task_events (time, task_id, task_runner_id, task_type, task_seq,"
                    " kind) VALUES (%s, %s, 'r', %s, %s, 'score_changed')",
                    (at, f"{task_type.lower()}:g{i % 4}", task_type, 100 * i + k + 1),
                )
                events[(minute(at), task_type)] += 1
    hand = []
    for key in sorted(set(polls) | set(events)):
        ps = polls.get(key, [])
        hand.append(
            {
                "bucket": key[0],
                "task_type": key[1],
                "polls": len(ps),
                "errors": sum(1 for _, e in ps if e),
                "events": events.get(key, 0),
                "lateness_avg_seconds": sum(p for p, _ in ps) / len(ps) if ps else None,
                "lateness_max_seconds": max(p for p, _ in ps) if ps else None,
            }
        )
    return hand


def same(rows: list[dict], hand: list[dict]) -> bool:
    def norm(r: dict) -> dict:
        return {k: round(v, 9) if isinstance(v, float) else v for k, v in r.items()}

    return [norm(r) for r in rows] == [norm(r) for r in hand]


def refresh(url: str) -> None:
    if tsdb.has_timescaledb(url):
        with psycopg.connect(url, autocommit=True) as conn:
            for view in ("task_poll_stats_1m", "task_event_stats_1m"):
                conn.execute("CALL refresh_continuous_aggregate(%s, NULL, NULL)", (view,))


def test_minute_stats_equal_a_hand_count_before_and_after_materializing(store, db_url, otf):
    hand = write_polls_and_events(db_url)
    since = T0 - timedelta(minutes=1)
    assert len(hand) >= 8  # two types over five minutes
    assert same(minute_stats(store, since=since), hand)  # real-time (or plain view)
    refresh(db_url)  # materialized by TimescaleDB; a no-op on plain views
    assert same(minute_stats(store, since=since), hand)
    assert same(
        minute_stats(store, since=since, task_type=PLAIN),
        [h for h in hand if h["task_type"] == PLAIN],
    )

    # A late poll into a materialized minute counts once the aggregate refreshes.
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO task_polls (time, task_id, task_type, attempt, task_runner_id,"
            " lateness_seconds, events) VALUES (%s, 'x', %s, 1, 'r', 9.0, 0)",
            (T0 + timedelta(seconds=1), MEDIA),
        )
    refresh(db_url)
    [first] = [
        r for r in minute_stats(store, since=since) if r["bucket"] == T0 and r["task_type"] == MEDIA
    ]
    [was] = [h for h in hand if h["bucket"] == T0 and h["task_type"] == MEDIA]
    assert (first["polls"], first["lateness_max_seconds"]) == (was["polls"] + 1, 9.0)

    rows = json.loads(otf("stats", "--since", since.isoformat(), "--json").output)
    assert len(rows) == len(hand) and rows[0]["bucket"] == T0.isoformat()
    assert (
        "error: --since 'yesterday' is not an ISO time"
        in CliRunner().invoke(cli, ["stats", "--since", "yesterday"]).output
    )


def test_log_poll_writes_in_the_callers_transaction_and_refuses_bad_values(store, db_url):
    tid = "nba_game_media:g1"

    def log(c, **kw):
        args = dict(
            task_id=tid,
            task_type=MEDIA,
            attempt=1,
            task_runner_id="r",
            lateness_seconds=0.5,
            events=2,
            error=None,
        )
        pollstats.log_poll(c, **{**args, **kw})

    def poll_that_fails_later(c) -> None:
        log(c, error="HTTP 503")
        raise RuntimeError("the poll's other writes failed")

    store.run("poll", lambda c: log(c))
    with pytest.raises(RuntimeError):  # rolled back with the poll it belongs to
        store.run("poll", poll_that_fails_later)
    [row] = store.run("read", lambda c: pollstats.task_polls(c, tid))
    assert (row["lateness_seconds"], row["events"], row["error"], row["attempt"]) == (
        0.5,
        2,
        None,
        1,
    )
    for bad, match in (
        ({"lateness_seconds": math.nan}, "lateness_seconds nan is not a finite"),
        ({"events": -1}, "events -1 must be a count"),
        ({"events": True}, "events True must be a count"),
    ):
        with pytest.raises(StoreError, match=match):
            store.run("poll", lambda c, bad=bad: log(c, **bad))
    stats = minute_stats(store, since=datetime.now(UTC) - timedelta(minutes=5))
    assert [(r["task_type"], r["polls"], r["errors"]) for r in stats] == [(MEDIA, 1, 0)]


def test_score_timeline_per_bucket_carries_the_score_forward(store, db_url, media_task, otf):
    tid = media_task.task.task_id
    rows = [  # (seconds after T0, kind, payload)
        (5, "game_started", {}),
        (20, "score_changed", {"side": "home", "points": 2, "home_score": 2, "away_score": 0}),
        (50, "score_changed", {"side": "away", "points": 3, "home_score": 2, "away_score": 3}),
        (130, "period_ended", {"period": 1}),
        (190, "score_changed", {"side": "home", "points": 1, "home_score": 3, "away_score": 3}),
    ]
    with psycopg.connect(db_url, autocommit=True) as conn:
        # the game's rows are at T0, so the task was created by then (its lifetime bounds them)
        conn.execute("UPDATE tasks SET created_at = %s WHERE task_id = %s", (T0, tid))
        for n, (s, kind, payload) in enumerate(rows, 1):
            conn.execute(
                "INSERT INTO task_events (time, task_id, task_runner_id, task_type, task_seq, kind,"
                " payload) VALUES (%s, %s, 'r', %s, %s, %s, %s)",
                (T0 + timedelta(seconds=s), tid, MEDIA, n, kind, Jsonb(payload)),
            )
    got = [
        (
            r["bucket"],
            r["events"],
            r["score_changes"],
            r["home_points"],
            r["away_points"],
            r["home_score"],
            r["away_score"],
        )
        for r in score_timeline(store, tid, timedelta(minutes=1))
    ]
    assert got == [
        (T0, 3, 2, 2, 3, 2, 3),
        (T0 + timedelta(minutes=2), 1, 0, 0, 0, 2, 3),  # no scoring: the score carried forward
        (T0 + timedelta(minutes=3), 1, 1, 1, 0, 3, 3),
    ]
    [whole] = score_timeline(store, tid, timedelta(hours=1))
    assert (whole["events"], whole["home_score"], whole["away_score"]) == (5, 3, 3)
    out = json.loads(otf("tasks", "timeline", tid, "--bucket", "1m", "--json").output)
    assert [r["events"] for r in out] == [3, 1, 1]
    assert "home_score" in otf("tasks", "timeline", tid).output
    assert (
        "--bucket '0m' is not a duration"
        in CliRunner().invoke(cli, ["tasks", "timeline", tid, "--bucket", "0m"]).output
    )
    with pytest.raises(UnknownTask):
        score_timeline(store, "nope", timedelta(minutes=1))
    assert parse_duration("90s", "--bucket") == timedelta(seconds=90)


def test_time_buckets_are_the_same_on_both_servers(db_url):
    """otf_time_bucket is time_bucket() with TimescaleDB and date_bin() without: equal."""
    with psycopg.connect(db_url) as conn:
        fn = conn.execute(
            "SELECT prosrc FROM pg_proc WHERE proname = 'otf_time_bucket'"
        ).fetchone()[0]
        assert ("time_bucket(" in fn) == tsdb.has_timescaledb(db_url)
        for width in ("1 minute", "15 minutes", "1 hour", "1 day", "7 days"):
            a, b = conn.execute(
                "SELECT otf_time_bucket(%s::interval, t), date_bin(%s::interval, t, TIMESTAMPTZ '2000-01-03 00:00:00+00')"
                " FROM (VALUES (TIMESTAMPTZ '2026-11-29 23:59:59.9+05')) v (t)",
                (width, width),
            ).fetchone()
            assert a == b, width


def test_compression_is_segmented_and_ordered_as_0003_says(db_url):
    """Segment by task_id; events ordered by seq first, states by time (TimescaleDB appends
    the time column to an order that lacks it: seq, time DESC)."""
    status = migrations.status(db_url)
    settings = {
        h["hypertable_name"]: (h["compress_segmentby"], h["compress_orderby"])
        for h in status["hypertables"]
    }
    if not tsdb.has_timescaledb(db_url):
        assert settings == {}
        return
    assert settings == {
        "task_events": ("task_id", 'seq,"time" DESC'),
        "task_polls": ("task_id", '"time"'),
        "task_states": ("task_id", '"time"'),
    }
    text = migrations.sql_folder().joinpath("0003_timescaledb.sql").read_text()
    assert "compress_orderby = 'seq'" in text and "ordered by seq" in text


def test_a_failing_job_shows_in_status_with_its_last_error(db_url, otf):
    if not tsdb.has_timescaledb(db_url):
        status = migrations.status(db_url)
        assert status["jobs"] == [] and "policy jobs" not in otf("db", "status").output
        return
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            "CREATE PROCEDURE otf_test_broken(job_id int, config jsonb) LANGUAGE plpgsql AS"
            " $$ BEGIN RAISE EXCEPTION 'disk quota exceeded (test job %)', job_id; END $$"
        )
        [job] = conn.execute(
            "SELECT add_job('otf_test_broken', '1 hour', initial_start => now())"
        ).fetchone()
        conn.execute("SELECT _timescaledb_functions.start_background_workers()")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # the scheduler runs it at once; wait for its end
            row = conn.execute(
                "SELECT last_run_status FROM timescaledb_information.job_stats WHERE job_id = %s",
                (job,),
            ).fetchone()
            if row and row[0] == "Failed":
                break
            time.sleep(0.2)
        [logged] = conn.execute(
            "SELECT err_message FROM timescaledb_information.job_errors WHERE job_id = %s"
            " ORDER BY finish_time DESC LIMIT 1",
            (job,),
        ).fetchone()
    # Its own error; or, on a server short of background workers, TimescaleDB's own reason.
    assert logged == f"disk quota exceeded (test job {job})" or "failed to start" in logged
    [mine] = [j for j in migrations.status(db_url)["jobs"] if j["job_id"] == job]
    assert (mine["last_run_status"], mine["last_error"]) == ("Failed", logged)
    text = otf("db", "status").output
    assert logged in text and "Failed" in text


def test_the_task_stats_asset_shows_the_last_hours_minutes(store, db_url):
    for err in (None, "HTTP 503"):
        store.run(
            "poll",
            lambda c, err=err: pollstats.log_poll(
                c,
                task_id="nba_game_media:g1",
                task_type=MEDIA,
                attempt=1,
                task_runner_id="r",
                lateness_seconds=1.5,
                events=0,
                error=err,
            ),
        )
    result = dg.materialize(
        [task_stats], resources={"task_store": TaskStoreResource(database_url=db_url)}
    )
    [mat] = result.asset_materializations_for_node("task_stats")
    meta = {k: v.value for k, v in mat.metadata.items()}
    assert (meta["polls"], meta["failed_polls"], meta["events"], meta["minutes"]) == (2, 1, 0, 1)
    assert f"| {MEDIA} |" in meta["per_minute"].replace("  ", " ")
