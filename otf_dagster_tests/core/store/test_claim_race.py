"""Eight claimers, each with its own connection, over 5,000 ready tasks: each claimed once."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, datetime, timedelta

import psycopg

from otf_dagster.core.store import TaskStore

N_TASKS = 5000
N_CLAIMERS = 8


def seed_ready_tasks(url: str, n: int, task_type: str = "NBA_GAME_BOXSCORE") -> None:
    with psycopg.connect(url) as conn:
        conn.execute(
            """
            INSERT INTO tasks (task_id, task_type, external_key, scheduled_at)
            SELECT 'race:' || g, %s, 'g' || g, now() - interval '1 minute' * (g %% 7)
            FROM generate_series(1, %s) g
            """,
            (task_type, n),
        )


def test_concurrent_claimers_claim_every_task_exactly_once(db_url, default_types):
    seed_ready_tasks(db_url, N_TASKS)
    barrier = threading.Barrier(N_CLAIMERS)
    results: list[list[str]] = [[] for _ in range(N_CLAIMERS)]
    errors: list[BaseException] = []
    now = datetime.now(UTC) + timedelta(seconds=1)

    def claimer(i: int) -> None:
        try:
            with TaskStore(db_url, application_name=f"claimer-{i}") as store:
                store.conn.execute("SELECT 1")  # connect before the start line
                barrier.wait()
                while batch := store.claim_ready(limit=37, now=now, source=f"claimer-{i}"):
                    results[i].extend(c.task.task_id for c in batch)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=claimer, args=(i,)) for i in range(N_CLAIMERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    claimed = Counter(tid for r in results for tid in r)
    assert len(claimed) == N_TASKS, "a task was lost"
    assert max(claimed.values()) == 1, "a task was claimed twice"
    assert sum(1 for r in results if r) >= 2, "the claimers did not actually overlap"
    with psycopg.connect(db_url) as conn:
        states = conn.execute("SELECT state, attempt, count(*) FROM tasks GROUP BY 1, 2").fetchall()
        assert states == [("STARTED", 1, N_TASKS)]
        started_rows = conn.execute(
            "SELECT task_id, count(*) FROM task_states WHERE state = 'STARTED' GROUP BY 1 HAVING count(*) <> 1"
        ).fetchall()
        assert started_rows == []
        total = conn.execute("SELECT count(*) FROM task_states WHERE state = 'STARTED'").fetchone()[
            0
        ]
        assert total == N_TASKS
