"""Issue 5's benchmark: event delivery to consumers.

    python bench/bench_consumer.py [--quick] [--repeats N] [--no-write]

* Read throughput (events/s): a durable ``Consumer`` (its subscriptions joined, its cursor
  committed after every batch) reading 100,000 events from the start, in batches of 500 and of
  5,000, beside the raw baseline - one ``SELECT ... FROM task_events ORDER BY seq`` of the same
  columns into the same dict rows, no subscriptions, no cursor.
* Delivery latency (ms): from the moment a writer sends COMMIT (one event per transaction, written
  as the store does) to a following consumer's receipt, p50 and p99 over a few hundred events,
  the follower woken by LISTEN/NOTIFY; beside a follower that polls every 100 ms instead.

Every measurement runs on a fresh database; throughput is repeated (3 times by default) and the
median reported. Figures go to stdout and are merged into bench/results.json.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402  (sets sys.path for the project too)
import psycopg  # noqa: E402
from psycopg.rows import dict_row  # noqa: E402

from otf_dagster.core.consumer import Consumer  # noqa: E402
from otf_dagster.core.services import subscribe  # noqa: E402
from otf_dagster.core.store import TaskStore, polls  # noqa: E402
from otf_dagster.vocab.tasks import EventRecord, TaskType  # noqa: E402

TASK_TYPE = "NBA_GAME_BOXSCORE"
FULL = {"events": 100_000, "latency_events": 300, "poll_events": 60}
QUICK = {"events": 10_000, "latency_events": 60, "poll_events": 20}
POLL_BASELINE_INTERVAL = 0.1


def log(msg: str) -> None:
    print(msg, flush=True)


def prepare(url: str) -> TaskStore:
    store = TaskStore(url, application_name="bench-consumer")
    store.apply_task_type(
        TaskType(
            name=TASK_TYPE,
            handler="nba_cdn.boxscore",
            url_template="/boxscore/{key}.json",
            poll_interval_seconds=10,
        )
    )
    return store


def seed_events(store: TaskStore, n: int, n_tasks: int = 100) -> None:
    """n events over n_tasks games, in transactions of 1,000 as runners' batches would be."""
    rows = []
    for i in range(n):
        game = i % n_tasks
        rows.append(
            (
                f"nba_game_boxscore:{game:010d}",
                f"run-{game}",
                TASK_TYPE,
                EventRecord(
                    i // n_tasks + 1,
                    "score_changed",
                    {"home": i % 120, "away": i % 117, "period": 1 + i % 4},
                ),
            )
        )
    for start in range(0, n, 1000):
        store.append_events(rows[start : start + 1000])


def read_consumer(url: str, name: str, batch: int, expected: int) -> float:
    with Consumer(url, name, application_name="bench-consumer") as consumer:
        start = time.perf_counter()
        count = sum(1 for _ in consumer.iter_events(batch=batch))
        elapsed = time.perf_counter() - start
    assert count == expected, (count, expected)
    return count / elapsed


def read_raw(url: str, expected: int) -> float:
    with psycopg.connect(url, row_factory=dict_row) as conn:
        start = time.perf_counter()
        rows = conn.execute(
            "SELECT seq, time, task_id, task_runner_id, task_type, task_seq, kind, payload "
            "FROM task_events ORDER BY seq"
        ).fetchall()
        elapsed = time.perf_counter() - start
    assert len(rows) == expected
    return len(rows) / elapsed


def latencies(url: str, store: TaskStore, n: int, *, notify: bool) -> list[float]:
    """Commit-to-receipt delays in ms for n single-event transactions."""
    sent: dict[int, float] = {}
    received: dict[int, float] = {}
    ready = threading.Event()
    name = f"latency-{'notify' if notify else 'poll'}"
    subscribe(store, name, TASK_TYPE)

    def follower() -> None:
        with Consumer(url, name, start="end", application_name="bench-follower") as consumer:
            if notify:
                stream = consumer.iter_events(
                    follow=True, batch=500, poll_interval=5.0, timeout=10.0
                )
                ready.set()
                for ev in stream:
                    received[ev["task_seq"]] = time.perf_counter()
                    if len(received) == n:
                        break
            else:
                consumer.fetch()
                ready.set()
                while len(received) < n:
                    for ev in consumer.fetch(500):
                        received[ev["task_seq"]] = time.perf_counter()
                    time.sleep(POLL_BASELINE_INTERVAL)

    thread = threading.Thread(target=follower)
    thread.start()
    ready.wait(10)
    time.sleep(0.2)  # the follower is waiting
    rng = random.Random(5)
    conn = store.conn
    for i in range(1, n + 1):
        with conn.transaction():
            polls.copy_events(
                conn,
                [
                    (
                        "nba_game_boxscore:latency",
                        "run-l",
                        TASK_TYPE,
                        EventRecord(i, "score_changed", {"i": i}),
                    )
                ],
            )
            sent[i] = time.perf_counter()  # the block's end sends COMMIT
        time.sleep(rng.uniform(0.005, 0.02))
    thread.join(60)
    assert len(received) == n, (len(received), n)
    return [(received[i] - sent[i]) * 1000 for i in range(1, n + 1)]


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def run(quick: bool, repeats: int) -> list[dict]:
    sizes = QUICK if quick else FULL
    results: list[dict] = []
    mode = "quick" if quick else "full"
    with _common.bench_server() as server:
        info = server.machine()
        log(f"machine: {_common.machine_line(info)}")
        common = {"machine": info, "mode": mode, "repeats": repeats}

        with server.fresh_database() as url:
            store = prepare(url)
            n = sizes["events"]
            log(f"seeding {n:,} events ...")
            seed_events(store, n)
            for batch in (500, 5000):
                subscribe(store, f"reader-{batch}", TASK_TYPE)
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("VACUUM ANALYZE task_events")
            samples: dict[str, list[float]] = {"500": [], "5000": [], "raw": []}
            for r in range(repeats):  # interleaved, so background load hits all alike
                for batch in (500, 5000):
                    with psycopg.connect(
                        url, autocommit=True
                    ) as conn:  # each repeat from the start
                        conn.execute(
                            "DELETE FROM consumer_cursors WHERE consumer = %s", (f"reader-{batch}",)
                        )
                    samples[str(batch)].append(read_consumer(url, f"reader-{batch}", batch, n))
                samples["raw"].append(read_raw(url, n))
                log(
                    f"  repeat {r + 1}: "
                    + ", ".join(f"{k}={v[-1]:,.0f}/s" for k, v in samples.items())
                )
            raw = statistics.median(samples["raw"])
            for batch in (500, 5000):
                _common.record(
                    results,
                    f"consumer.read_batch{batch}",
                    statistics.median(samples[str(batch)]),
                    "events/s",
                    "raw SELECT ... ORDER BY seq, one query, dict rows",
                    raw,
                    samples=samples[str(batch)],
                    baseline_samples=samples["raw"],
                    events=n,
                    note=(
                        "durable consumer: subscriptions joined, "
                        f"cursor committed every {batch} events"
                    ),
                    **common,
                )
            store.close()

        with server.fresh_database() as url:
            store = prepare(url)
            log(f"latency: {sizes['latency_events']} events, NOTIFY-woken follower ...")
            woke = latencies(url, store, sizes["latency_events"], notify=True)
            every = f"{POLL_BASELINE_INTERVAL * 1000:.0f} ms"
            log(f"latency: {sizes['poll_events']} events, follower polling every {every} ...")
            polled = latencies(url, store, sizes["poll_events"], notify=False)
            store.close()
        for p in (50, 99):
            _common.record(
                results,
                f"consumer.latency_p{p}",
                percentile(woke, p),
                "ms",
                f"follower polling every {POLL_BASELINE_INTERVAL * 1000:.0f} ms (p{p})",
                percentile(polled, p),
                events=len(woke),
                baseline_events=len(polled),
                lower_is_better=True,
                note=(
                    "from the writer sending COMMIT to the follower's receipt; "
                    "woken by LISTEN/NOTIFY"
                ),
                **common,
            )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smoke sizes (figures not comparable)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="do not touch bench/results.json")
    args = parser.parse_args()
    results = run(args.quick, args.repeats)
    print()
    _common.print_table(results)
    if not args.no_write:
        path = _common.write_results(results)
        log(f"\nmerged into {path}")


if __name__ == "__main__":
    main()
