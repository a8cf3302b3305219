"""Issue 2's benchmark: the task store's two hot paths against naive and raw baselines.

    python bench/bench_store.py [--quick] [--repeats N] [--profile]

* Claim throughput (tasks/s): ``TaskStore.claim_ready`` in batches of 500 over 10,000 ready
  tasks, beside (a) the naive claim - per task ``SELECT ... LIMIT 1 FOR UPDATE SKIP LOCKED``,
  ``UPDATE``, history ``INSERT``, ``COMMIT`` - and (b) the server-only figure: the very same
  claim statement looped inside one ``DO`` block that commits after every batch (no client,
  no wire, no Python), which shows what the Python side costs.
* Event append (events/s): ``TaskStore.append_events`` over 50,000 events in calls of 1,000,
  beside (a) per-row ``INSERT`` + commit (3,000 rows, as a rate) and (b) raw ``COPY`` of the
  same rows, pre-formatted as COPY text before the clock starts, in the same 1,000-row
  transactions but without our advisory lock or Jsonb wrapping.

Every measurement runs on a fresh database, is repeated (3 times by default) and the median is
reported; figures go to stdout and are merged into bench/results.json.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402  (sets sys.path for the project too)
import psycopg  # noqa: E402
from psycopg import sql  # noqa: E402
from psycopg.types.json import Jsonb  # noqa: E402

from otf_dagster.core.store import TaskStore, query  # noqa: E402
from otf_dagster.handlers import task_types  # noqa: E402
from otf_dagster.vocab.tasks import EventRecord  # noqa: E402

TASK_TYPE = "NBA_GAME_BOXSCORE"
CLAIM_BATCH = 500
EVENT_BATCH = 1000
CLAIM_GOAL = 40_000.0  # tasks/s
EVENTS_GOAL = 50_000.0  # events/s
EVENTS_VS_COPY_GOAL = 0.5  # x raw COPY

FULL = {
    "finished": 50_000,
    "tasks": 10_000,
    "naive_tasks": 10_000,
    "events": 50_000,
    "naive_events": 3_000,
    "tasks_with_events": 100,
}
QUICK = {
    "finished": 10_000,
    "tasks": 2_000,
    "naive_tasks": 1_000,
    "events": 10_000,
    "naive_events": 500,
    "tasks_with_events": 20,
}


def log(msg: str) -> None:
    print(msg, flush=True)


# --- seeding ------------------------------------------------------------------------------------


def seed_ready_tasks(url: str, n: int) -> datetime:
    """n SCHEDULED tasks of a live type, all due; returns the ``now`` to claim with."""
    with TaskStore(url, application_name="bench-seed") as store:
        store.apply_task_types(task_types.load_file(task_types.DEFAULTS_FILE))
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            """
            INSERT INTO tasks (task_id, task_type, external_key, scheduled_at)
            SELECT 'bench:' || g, %s, 'g' || g, now() - interval '1 minute' * (g %% 7)
            FROM generate_series(1, %s) g
            """,
            (TASK_TYPE, n),
        )
        # Steady state, as after autovacuum: statistics and a visibility map, no cold planner.
        conn.execute("VACUUM ANALYZE tasks, task_types, task_states")
    return datetime.now(UTC) + timedelta(seconds=1)


def add_finished_tasks(url: str, n: int) -> None:
    """n FINISHED tasks of last month: the table a claimer sees after weeks of operation."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            """
            INSERT INTO tasks (task_id, task_type, external_key, scheduled_at, state, attempt)
            SELECT 'old:' || g, %s, 'old' || g, now() - interval '30 days', 'FINISHED', 1
            FROM generate_series(1, %s) g
            """,
            (TASK_TYPE, n),
        )
        conn.execute("VACUUM ANALYZE tasks")


def check_all_claimed(url: str, n: int) -> None:
    with psycopg.connect(url) as conn:
        started = conn.execute(
            "SELECT count(*) FROM tasks WHERE state = 'STARTED' AND attempt = 1"
        ).fetchone()[0]
        history = conn.execute(
            "SELECT count(*) FROM task_states WHERE state = 'STARTED'"
        ).fetchone()[0]
    if started != n or history != n:
        raise AssertionError(
            f"expected {n} claimed tasks and history rows, got {started} and {history}"
        )


# --- the claim ----------------------------------------------------------------------------------


def claim_store(url: str, n: int, now: datetime) -> float:
    """TaskStore.claim_ready in batches of 500 until nothing is ready; tasks/s."""
    with TaskStore(url, application_name="bench-claim") as store:
        _ = store.conn  # connect before the clock starts
        claimed = 0
        start = time.perf_counter()
        while batch := store.claim_ready(
            CLAIM_BATCH, now=now, source="bench", deployment="bench-deployment"
        ):
            claimed += len(batch)
        elapsed = time.perf_counter() - start
    if claimed != n:
        raise AssertionError(f"claim_ready claimed {claimed} of {n}")
    return claimed / elapsed


NAIVE_PICK = """
SELECT t.task_id
FROM tasks t JOIN task_types tt ON tt.name = t.task_type AND tt.deleted_at IS NULL
WHERE t.state = 'SCHEDULED' AND t.scheduled_at <= %s
ORDER BY t.scheduled_at, t.task_id
LIMIT 1
FOR UPDATE OF t SKIP LOCKED
"""
NAIVE_UPDATE = """
UPDATE tasks SET state = 'STARTED', attempt = attempt + 1, started_at = now(), heartbeat_at = now(),
       run_id = NULL, last_error = NULL, updated_at = now()
WHERE task_id = %s
RETURNING attempt
"""
NAIVE_HISTORY = """
INSERT INTO task_states (time, task_id, attempt, service, state, previous_state, source)
VALUES (now(), %s, %s, 'task', 'STARTED', 'SCHEDULED', %s)
"""


def claim_naive(url: str, n: int, now: datetime) -> float:
    """One task per transaction: pick one, update it, write its history, commit; tasks/s."""
    with psycopg.connect(url, application_name="bench-claim-naive") as conn:
        claimed = 0
        start = time.perf_counter()
        while claimed < n:
            with conn.cursor() as cur:
                row = cur.execute(NAIVE_PICK, (now,)).fetchone()
                if row is None:
                    conn.commit()
                    break
                attempt = cur.execute(NAIVE_UPDATE, (row[0],)).fetchone()[0]
                cur.execute(NAIVE_HISTORY, (row[0], attempt, "bench"))
            conn.commit()
            claimed += 1
        elapsed = time.perf_counter() - start
    if claimed != n:
        raise AssertionError(f"the naive claim claimed {claimed} of {n}")
    return claimed / elapsed


def _server_claim_sql() -> str:
    """The store's claim statement with $1..$4 for PL/pgSQL's EXECUTE ... USING."""
    text = query("claim_ready")
    text = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))
    return (
        text.replace("%(now)s", "$1")
        .replace("%(limit)s", "$2")
        .replace("%(source)s", "$3")
        .replace("%(deployment)s", "$4")
        .replace("%(lane)s", "'live'")  # the live lane, as the store claims first (0015)
    )


def claim_server_only(url: str, n: int, now: datetime) -> float:
    """The same claim statement looped in one DO block, a COMMIT after each batch; tasks/s.

    The server's own clock (clock_timestamp) times it, so nothing of the client is counted."""
    body = sql.SQL(
        """
DO $bench$
DECLARE
    claim_sql text := {claim};
    got int;
    total int := 0;
    r record;
    t0 timestamptz := clock_timestamp();
BEGIN
    LOOP
        got := 0;
        FOR r IN EXECUTE claim_sql USING {now}::timestamptz, {limit}::int, {source}::text, {deployment}::text LOOP
            got := got + 1;
        END LOOP;
        COMMIT;
        EXIT WHEN got = 0;
        total := total + got;
    END LOOP;
    RAISE NOTICE 'bench: % % ', total, extract(epoch FROM clock_timestamp() - t0);
END
$bench$
"""
    ).format(
        claim=sql.Literal(_server_claim_sql()),
        now=sql.Literal(now),
        limit=sql.Literal(CLAIM_BATCH),
        source=sql.Literal("bench"),
        deployment=sql.Literal("bench-deployment"),
    )
    notices: list[str] = []
    with psycopg.connect(url, autocommit=True, application_name="bench-claim-server") as conn:
        conn.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
        conn.execute(body)
    msg = next((m for m in notices if m.startswith("bench:")), None)
    if msg is None:
        raise AssertionError(f"the DO block reported nothing: {notices}")
    _, total, seconds = msg.split()
    if int(total) != n:
        raise AssertionError(f"the server-side loop claimed {total} of {n}")
    return int(total) / float(seconds)


def claim_psycopg_only(url: str, n: int, now: datetime) -> float:
    """The same statement from Python, rows fetched as tuples, no Task objects; tasks/s."""
    text = query("claim_ready")
    params = {
        "now": now,
        "limit": CLAIM_BATCH,
        "source": "bench",
        "deployment": "bench-deployment",
        "lane": "live",
    }
    with psycopg.connect(url, autocommit=True, application_name="bench-claim-psycopg") as conn:
        claimed = 0
        start = time.perf_counter()
        while True:
            with conn.transaction():
                rows = conn.execute(text, params).fetchall()
            if not rows:
                break
            claimed += len(rows)
        elapsed = time.perf_counter() - start
    if claimed != n:
        raise AssertionError(f"the psycopg-only claim claimed {claimed} of {n}")
    return claimed / elapsed


# --- events -------------------------------------------------------------------------------------


def make_events(n: int, n_tasks: int) -> list[tuple[str, str, str, EventRecord]]:
    """n events of n_tasks games, interleaved as runners' polls would write them."""
    rows = []
    seq = [0] * n_tasks
    for i in range(n):
        t = i % n_tasks
        seq[t] += 1
        payload = {
            "action_number": seq[t],
            "clock": f"PT{11 - (seq[t] // 60) % 12:02d}M{seq[t] % 60:02d}.00S",
            "period": 1 + (seq[t] // 120) % 4,
            "team": "BOS" if i % 2 else "LAL",
            "player_id": 1_628_000 + i % 450,
            "action_type": "2pt",
            "description": f"Player {i % 450} 12' driving layup (2 PTS)",
            "score_home": seq[t] // 3,
            "score_away": seq[t] // 4,
        }
        rows.append(
            (
                f"nba_game_boxscore:002250{t:04d}",
                f"run-{t:04d}",
                TASK_TYPE,
                EventRecord(seq[t], "play", payload),
            )
        )
    return rows


def batches(rows: list, size: int) -> list[list]:
    return [rows[i : i + size] for i in range(0, len(rows), size)]


def count_events(url: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT count(*) FROM task_events").fetchone()[0]


def append_store(url: str, rows: list) -> float:
    """TaskStore.append_events, 1,000 rows a call; events/s."""
    chunks = batches(rows, EVENT_BATCH)
    with TaskStore(url, application_name="bench-events") as store:
        _ = store.conn  # connect before the clock starts
        start = time.perf_counter()
        for chunk in chunks:
            store.append_events(chunk)
        elapsed = time.perf_counter() - start
    if count_events(url) != len(rows):
        raise AssertionError("append_events lost rows")
    return len(rows) / elapsed


NAIVE_INSERT = """
INSERT INTO task_events (time, task_id, task_runner_id, task_type, task_seq, kind, payload)
VALUES (now(), %s, %s, %s, %s, %s, %s)
"""


def append_naive(url: str, rows: list) -> float:
    """One INSERT and one commit per event; events/s over a smaller sample."""
    with psycopg.connect(url, application_name="bench-events-naive") as conn:
        start = time.perf_counter()
        for task_id, runner_id, ttype, ev in rows:
            conn.execute(
                NAIVE_INSERT, (task_id, runner_id, ttype, ev.task_seq, ev.kind, Jsonb(ev.payload))
            )
            conn.commit()
        elapsed = time.perf_counter() - start
    if count_events(url) != len(rows):
        raise AssertionError("the naive insert lost rows")
    return len(rows) / elapsed


def _copy_text(value: str) -> str:
    return (
        value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    )


def preformat_copy(rows: list, now: datetime) -> list[bytes]:
    """The rows as COPY text, 1,000 to a chunk (done before the clock starts)."""
    ts = now.isoformat()
    out = []
    for chunk in batches(rows, EVENT_BATCH):
        lines = [
            "\t".join(
                (
                    ts,
                    _copy_text(tid),
                    _copy_text(rid),
                    _copy_text(tt),
                    str(ev.task_seq),
                    _copy_text(ev.kind),
                    _copy_text(json.dumps(ev.payload, separators=(",", ":"))),
                )
            )
            for tid, rid, tt, ev in chunk
        ]
        out.append(("\n".join(lines) + "\n").encode("utf-8"))
    return out


def append_raw_copy(url: str, rows: list) -> float:
    """COPY of pre-formatted text, one 1,000-row transaction per chunk, no lock; events/s."""
    chunks = preformat_copy(rows, datetime.now(UTC))
    stmt = (
        "COPY task_events (time, task_id, task_runner_id, task_type, task_seq, kind, payload)"
        " FROM STDIN"
    )
    with psycopg.connect(url, autocommit=True, application_name="bench-events-copy") as conn:
        start = time.perf_counter()
        for data in chunks:
            with conn.transaction(), conn.cursor().copy(stmt) as copy:
                copy.write(data)
        elapsed = time.perf_counter() - start
    if count_events(url) != len(rows):
        raise AssertionError("raw COPY lost rows")
    return len(rows) / elapsed


# --- the run ------------------------------------------------------------------------------------


def fmt_samples(samples: list[float]) -> str:
    return ", ".join(f"{s:,.0f}" for s in samples)


def run(quick: bool, repeats: int) -> list[dict]:
    size = QUICK if quick else FULL
    mode = "quick" if quick else "full"
    results: list[dict] = []
    samples: dict[str, list[float]] = {
        k: []
        for k in ("claim", "history", "naive", "server", "psycopg", "append", "insert", "copy")
    }
    with _common.bench_server() as server:
        info = server.machine()
        log(f"machine: {_common.machine_line(info)}")
        log(f"mode: {mode}, {repeats} repeats, median reported; a fresh database per measurement")
        events = make_events(size["events"], size["tasks_with_events"])
        naive_events = make_events(size["naive_events"], size["tasks_with_events"])

        def on_fresh(fn, n_tasks: int | None = None, payload=None, finished: int = 0) -> float:
            with server.fresh_database() as url:
                if n_tasks is not None:
                    now = seed_ready_tasks(url, n_tasks)
                    if finished:
                        add_finished_tasks(url, finished)
                    rate = fn(url, n_tasks, now)
                    check_all_claimed(url, n_tasks)
                    return rate
                return fn(url, payload)

        for i in range(repeats):  # interleaved, so background load hits every figure alike
            samples["claim"].append(on_fresh(claim_store, size["tasks"]))
            samples["history"].append(
                on_fresh(claim_store, size["tasks"], finished=size["finished"])
            )
            samples["naive"].append(on_fresh(claim_naive, size["naive_tasks"]))
            samples["server"].append(on_fresh(claim_server_only, size["tasks"]))
            samples["psycopg"].append(on_fresh(claim_psycopg_only, size["tasks"]))
            samples["append"].append(on_fresh(append_store, payload=events))
            samples["insert"].append(on_fresh(append_naive, payload=naive_events))
            samples["copy"].append(on_fresh(append_raw_copy, payload=events))
            log(
                f"  repeat {i + 1}/{repeats}: claim {samples['claim'][-1]:,.0f}, "
                f"claim beside {size['finished']:,} finished {samples['history'][-1]:,.0f}, "
                f"naive {samples['naive'][-1]:,.0f}, server-only {samples['server'][-1]:,.0f}, "
                f"psycopg-only {samples['psycopg'][-1]:,.0f} tasks/s; "
                f"append {samples['append'][-1]:,.0f}, insert {samples['insert'][-1]:,.0f}, "
                f"raw COPY {samples['copy'][-1]:,.0f} events/s"
            )

    import statistics

    med = {k: statistics.median(v) for k, v in samples.items()}
    common = {"mode": mode, "repeats": repeats, "machine": _common.machine_line(info)}
    claim_n = {"tasks": size["tasks"], "batch": CLAIM_BATCH}
    _common.record(
        results,
        "store.claim_ready",
        med["claim"],
        "tasks/s",
        "naive claim: LIMIT 1 FOR UPDATE SKIP LOCKED + UPDATE + INSERT + COMMIT per task"
        f" ({size['naive_tasks']:,} tasks)",
        med["naive"],
        samples=samples["claim"],
        baseline_samples=samples["naive"],
        goal=f">= {CLAIM_GOAL:,.0f} tasks/s",
        goal_met=med["claim"] >= CLAIM_GOAL,
        **claim_n,
        **common,
    )
    _common.record(
        results,
        "store.claim_ready.vs_server_only",
        med["claim"],
        "tasks/s",
        "server-only: the same claim statement looped in a DO block, COMMIT per batch",
        med["server"],
        samples=samples["claim"],
        baseline_samples=samples["server"],
        python_overhead_pct=100.0 * (1 - med["claim"] / med["server"]),
        **claim_n,
        **common,
    )
    _common.record(
        results,
        "store.claim_ready.with_finished_tasks",
        med["history"],
        "tasks/s",
        f"store.claim_ready on a table of only the {size['tasks']:,} ready tasks",
        med["claim"],
        samples=samples["history"],
        baseline_samples=samples["claim"],
        finished_tasks=size["finished"],
        note=f"the same claim with {size['finished']:,} FINISHED tasks also in the table",
        **claim_n,
        **common,
    )
    _common.record(
        results,
        "store.claim_ready.psycopg_only",
        med["psycopg"],
        "tasks/s",
        "server-only: the same claim statement looped in a DO block, COMMIT per batch",
        med["server"],
        samples=samples["psycopg"],
        baseline_samples=samples["server"],
        note="the same statement from psycopg: tuple rows, no Task objects, no task-type lookup",
        **claim_n,
        **common,
    )
    ev_n = {"events": size["events"], "batch": EVENT_BATCH}
    _common.record(
        results,
        "store.append_events",
        med["append"],
        "events/s",
        f"per-row INSERT + COMMIT ({size['naive_events']:,} events, as a rate)",
        med["insert"],
        samples=samples["append"],
        baseline_samples=samples["insert"],
        goal=f">= {EVENTS_GOAL:,.0f} events/s",
        goal_met=med["append"] >= EVENTS_GOAL,
        **ev_n,
        **common,
    )
    _common.record(
        results,
        "store.append_events.vs_raw_copy",
        med["append"],
        "events/s",
        "raw COPY of the same rows, pre-formatted text, 1,000-row transactions, no lock",
        med["copy"],
        samples=samples["append"],
        baseline_samples=samples["copy"],
        goal=f">= {EVENTS_VS_COPY_GOAL}x raw COPY",
        goal_met=med["append"] >= EVENTS_VS_COPY_GOAL * med["copy"],
        **ev_n,
        **common,
    )
    return results


def profile(quick: bool) -> None:
    """cProfile of one claim run and one append run (on fresh databases)."""
    size = QUICK if quick else FULL
    events = make_events(size["events"], size["tasks_with_events"])
    with _common.bench_server() as server:
        for title, setup, fn in (
            (
                "claim_ready",
                lambda url: (url, size["tasks"], seed_ready_tasks(url, size["tasks"])),
                claim_store,
            ),
            ("append_events", lambda url: (url, events), append_store),
        ):
            with server.fresh_database() as url:
                args = setup(url)
                prof = cProfile.Profile()
                prof.enable()
                fn(*args)
                prof.disable()
            out = io.StringIO()
            pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(18)
            log(f"\n=== cProfile: {title} (by own time) ===")
            log("\n".join(out.getvalue().splitlines()[4:]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="smaller sizes (a smoke run; not comparable)"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--profile", action="store_true", help="cProfile one claim run and one append run instead"
    )
    parser.add_argument(
        "--no-write", action="store_true", help="do not merge into bench/results.json"
    )
    args = parser.parse_args(argv)
    if args.profile:
        profile(args.quick)
        return 0
    results = run(args.quick, args.repeats)
    print()
    _common.print_table(results)
    missed = [r["name"] for r in results if r.get("goal_met") is False]
    if missed:
        print(f"\ngoal missed: {', '.join(missed)} (see bench/README.md; profile with --profile)")
    if not args.no_write:
        path = _common.write_results(results)
        print(f"\nmerged {len(results)} figures into {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
