"""Issue 11's benchmark: the time series on TimescaleDB hypertables beside plain tables.

    python bench/bench_timescale.py [--quick] [--repeats N] [--no-write]

Two embedded servers of the same PostgreSQL 18.4 binaries run side by side: one plain
(``.otf/bench-pgdata``, the other benchmarks' server) and one with TimescaleDB preloaded
(``.otf/bench-pgdata-timescale``; the build from ``OTF_TIMESCALEDB``, default
``../shared/timescaledb`` beside the checkout). Every measurement runs on a fresh, migrated
database and is repeated (5 times by default, plain and hypertable interleaved, the order
alternating); medians.

* ``timescale.append_events``: ``TaskStore.append_events`` of 50,000 events (100 games'
  play-by-play, 1,000 rows a call) into hypertables, beside the same into plain tables
  (goal: >= 0.9x plain).
* ``timescale.consumer_read``: a durable ``Consumer`` reading those events from the start in
  batches of 500, hypertable beside plain.
* ``timescale.compression``: a day of real-shaped events (15 games, each the recorded ORL-BOS
  game's scoring as the runner writes it: score_changed, lead_changed, periods, final) in one
  chunk, compressed by ``compress_chunk``: compressed bytes beside uncompressed bytes.
* ``timescale.tasks_show_compressed``: ``otf tasks show TASK --json`` (in-process) for a game
  whose chunks are compressed, beside the same game uncompressed (ms per call).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402  (sets sys.path for the project too)
import bench_store  # noqa: E402  (its 100-game play-by-play rows)
import psycopg  # noqa: E402
from click.testing import CliRunner  # noqa: E402
from psycopg import sql  # noqa: E402
from psycopg.types.json import Jsonb  # noqa: E402

from otf_dagster import config  # noqa: E402
from otf_dagster.cli import _register, cli  # noqa: E402
from otf_dagster.core.consumer import Consumer  # noqa: E402
from otf_dagster.core.services import subscribe  # noqa: E402
from otf_dagster.core.store import TaskStore, migrations  # noqa: E402
from otf_dagster.local import embedded  # noqa: E402
from otf_dagster.vocab.tasks import TaskType  # noqa: E402

TASK_TYPE = bench_store.TASK_TYPE
FULL = {"events": 50_000, "games": 15, "show_calls": 30}
QUICK = {"events": 10_000, "games": 5, "show_calls": 10}
PLAYBYPLAY = _common.ROOT / "otf_dagster" / "simulator" / "data" / "playbyplay_0022000180.json"
GOAL_APPEND = 0.9


def log(msg: str) -> None:
    print(msg, flush=True)


def timescaledb_build() -> Path:
    build = Path(
        os.environ.get(embedded.TIMESCALEDB_ENV) or _common.ROOT.parent / "shared" / "timescaledb"
    )
    if not (build / "install.sh").is_file():
        sys.exit(
            f"bench_timescale: no TimescaleDB build at {build} (no install.sh there); "
            f"set {embedded.TIMESCALEDB_ENV} to the build folder"
        )
    return build.resolve()


@contextlib.contextmanager
def servers(build: Path) -> Iterator[dict[str, _common.BenchServer]]:
    """The plain and the TimescaleDB server, each with a migrated template; stopped at the end
    if started here."""
    started: list[Path] = []
    found: dict[str, _common.BenchServer] = {}
    try:
        for kind, folder, ts in (
            ("plain", "bench-pgdata", None),
            ("hypertable", "bench-pgdata-timescale", build),
        ):
            pgdata = (config.state_dir() / folder).resolve()
            if not (pgdata / "postmaster.pid").exists():
                started.append(pgdata)
            admin = embedded.start(pgdata, timescaledb=ts).admin_url
            server = _common.BenchServer(admin, pgdata, False)
            embedded.drop_database(admin, _common.BENCH_TEMPLATE)
            migrations.migrate(server.create_database(_common.BENCH_TEMPLATE, template=None))
            # No scheduler may hold the template open while it is cloned (TimescaleDB starts
            # one per database with the extension): close it to connections, as the tests do.
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(allow_connections(False))
                conn.execute(
                    "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE datname = %s",
                    (_common.BENCH_TEMPLATE,),
                )
            found[kind] = server
        yield found
    finally:
        for server in found.values():
            with (
                contextlib.suppress(Exception),
                psycopg.connect(server.admin_url, autocommit=True) as conn,
            ):
                conn.execute(allow_connections(True))  # the other benchmarks connect to it
        for pgdata in started:
            with contextlib.suppress(Exception):
                embedded.stop(pgdata)


def allow_connections(allow: bool) -> sql.Composed:
    return sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS {}").format(
        sql.Identifier(_common.BENCH_TEMPLATE), sql.SQL("true" if allow else "false")
    )


def hypertables(url: str) -> list[str]:
    return [h["hypertable_name"] for h in migrations.status(url)["hypertables"]]


def prepare(url: str) -> None:
    with TaskStore(url, application_name="bench-timescale") as store:
        store.apply_task_type(
            TaskType(
                name=TASK_TYPE,
                handler="nba_cdn.boxscore",
                url_template="/boxscore/{key}.json",
                poll_interval_seconds=10,
            )
        )
        subscribe(store, "bench", TASK_TYPE)


def append_and_read(url: str, rows: list) -> tuple[float, float]:
    """(append events/s, durable consumer read events/s) on one fresh database."""
    prepare(url)
    append = bench_store.append_store(url, rows)
    with Consumer(url, "bench", application_name="bench-consumer") as consumer:
        _ = consumer.position  # connected, cursor read
        start = time.perf_counter()
        count = sum(1 for _ in consumer.iter_events(batch=500))
        read = count / (time.perf_counter() - start)
    assert count == len(rows), (count, len(rows))
    return append, read


def game_events(day: datetime, games: int) -> list[tuple]:
    """A day of real-shaped events: each game is the recorded game's scoring, as derive.py
    writes it, at the recorded pace, games starting 30 minutes apart from 17:00 UTC."""
    actions = json.loads(PLAYBYPLAY.read_text())["game"]["actions"]
    t0 = datetime.fromisoformat(actions[0]["timeActual"].replace("Z", "+00:00"))
    rows = []
    for g in range(games):
        start = day.replace(hour=17) + timedelta(minutes=30 * g)
        tid = f"nba_game_boxscore:00225{g:05d}"
        seq, home, away, period, leader = 0, 0, 0, 0, None

        def add(at: datetime, kind: str, payload: dict, tid=tid, start=start, g=g) -> None:
            nonlocal seq
            seq += 1
            rows.append((start + (at - t0), tid, f"run-{g}", TASK_TYPE, seq, kind, payload))

        add(t0, "game_started", {"home": "BOS", "away": "ORL"})
        for a in actions:
            at = datetime.fromisoformat(a["timeActual"].replace("Z", "+00:00"))
            if a["period"] != period:
                if period:
                    add(
                        at,
                        "period_ended",
                        {"period": period, "home_points": home, "away_points": away},
                    )
                period = a["period"]
                add(at, "period_started", {"period": period})
            h, w = int(a["scoreHome"] or home), int(a["scoreAway"] or away)
            if h != home:
                points, home = h - home, h
                add(at, "score_changed", score_payload("home", points, home, away, period))
            if w != away:
                points, away = w - away, w
                add(at, "score_changed", score_payload("away", points, home, away, period))
            now_leading = None if home == away else ("BOS" if home > away else "ORL")
            if now_leading != leader:
                leader = now_leading
                add(at, "lead_changed", {"leader": leader, "home_score": home, "away_score": away})
        add(
            at,
            "game_final",
            {
                "home": "BOS",
                "away": "ORL",
                "home_score": home,
                "away_score": away,
                "period": period,
            },
        )
    return rows


def score_payload(side: str, points: int, home: int, away: int, period: int) -> dict:
    return {
        "team": "BOS" if side == "home" else "ORL",
        "side": side,
        "points": points,
        "home_score": home,
        "away_score": away,
        "period": period,
        "clock_seconds": 0.0,
    }


def insert_game_events(url: str, rows: list[tuple]) -> None:
    with (
        psycopg.connect(url) as conn,
        conn.cursor().copy(
            "COPY task_events (time, task_id, task_runner_id, task_type, task_seq, kind, payload) FROM STDIN"
        ) as copy,
    ):
        for time_, tid, runner, ttype, seq, kind, payload in rows:
            copy.write_row((time_, tid, runner, ttype, seq, kind, Jsonb(payload)))


def compress_all(url: str) -> tuple[int, int]:
    """Compress task_events' chunks; (bytes before, bytes after)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT compress_chunk(c) FROM show_chunks('task_events') c")
        row = conn.execute(
            "SELECT before_compression_total_bytes, after_compression_total_bytes"
            " FROM hypertable_compression_stats('task_events')"
        ).fetchone()
    return row[0], row[1]


def show_ms(url: str, task_id: str, calls: int) -> float:
    """Median ms of `otf tasks show TASK --json`, in-process."""
    os.environ[config.TASK_DB_ENV] = url
    runner = CliRunner()
    samples = []
    for _ in range(calls):
        start = time.perf_counter()
        out = runner.invoke(cli, ["tasks", "show", task_id, "--json"], catch_exceptions=False)
        samples.append((time.perf_counter() - start) * 1000)
        assert out.exit_code == 0, out.output
    return statistics.median(samples)


def seed_task(url: str, task_id: str) -> None:
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO tasks (task_id, task_type, external_key, scheduled_at, state)"
            " VALUES (%s, %s, %s, now(), 'FINISHED')",
            (task_id, TASK_TYPE, task_id.split(":")[1]),
        )


def run(quick: bool, repeats: int) -> list[dict]:
    size = QUICK if quick else FULL
    mode = "quick" if quick else "full"
    rows = bench_store.make_events(size["events"], 100)
    samples: dict[str, list[float]] = {k: [] for k in ("append_p", "append_h", "read_p", "read_h")}
    with servers(timescaledb_build()) as srv:
        machine = _common.machine_line(srv["hypertable"].machine())
        for i in range(repeats):
            for kind, tag in (
                (("plain", "p"), ("hypertable", "h"))
                if i % 2 == 0
                else (("hypertable", "h"), ("plain", "p"))
            ):
                with srv[kind].fresh_database() as url:
                    assert ("task_events" in hypertables(url)) == (kind == "hypertable")
                    append, read = append_and_read(url, rows)
                samples[f"append_{tag}"].append(append)
                samples[f"read_{tag}"].append(read)
                log(
                    f"  repeat {i + 1} {kind:10s}: append {append:,.0f} events/s, consumer read {read:,.0f} events/s"
                )

        day = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(
            days=3
        )
        events = game_events(day, size["games"])
        _register()
        with srv["hypertable"].fresh_database() as url:
            prepare(url)
            insert_game_events(url, events)
            task_id = events[0][1]
            seed_task(url, task_id)
            uncompressed_ms = show_ms(url, task_id, size["show_calls"])
            before, after = compress_all(url)
            compressed_ms = show_ms(url, task_id, size["show_calls"])
        log(
            f"  a day: {len(events):,} events of {size['games']} games; {before:,} -> {after:,} bytes"
        )

    extra = {"machine": machine, "mode": mode, "repeats": repeats}
    results: list[dict] = []
    append_h, append_p = (
        statistics.median(samples["append_h"]),
        statistics.median(samples["append_p"]),
    )
    ratio = append_h / append_p
    _common.record(
        results,
        "timescale.append_events",
        append_h,
        "events/s",
        "the same append into plain tables",
        append_p,
        goal=f">= {GOAL_APPEND}x plain",
        goal_met=ratio >= GOAL_APPEND,
        samples=samples["append_h"],
        baseline_samples=samples["append_p"],
        events=len(rows),
        **extra,
    )
    _common.record(
        results,
        "timescale.consumer_read",
        statistics.median(samples["read_h"]),
        "events/s",
        "the same durable consumer read from plain tables",
        statistics.median(samples["read_p"]),
        samples=samples["read_h"],
        baseline_samples=samples["read_p"],
        events=len(rows),
        **extra,
    )
    _common.record(
        results,
        "timescale.compression",
        after,
        "bytes",
        "the same chunk uncompressed",
        before,
        compression_factor=before / after,
        events=len(events),
        games=size["games"],
        **extra,
    )
    _common.record(
        results,
        "timescale.tasks_show_compressed",
        compressed_ms,
        "ms",
        "otf tasks show of the same game uncompressed",
        uncompressed_ms,
        events_in_task=sum(1 for e in events if e[1] == task_id),
        **extra,
    )
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (a smoke run)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--no-write", action="store_true", help="do not merge into bench/results.json"
    )
    args = parser.parse_args(argv)
    results = run(args.quick, args.repeats)
    print()
    _common.print_table(results)
    if not args.no_write:
        path = _common.write_results(results)
        print(f"\nmerged {len(results)} figures into {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
