"""A history to prune: tasks that ended days ago (rows written as the lifecycle leaves them),
their events and polls, readers' positions, and their partitions and runs in a real Dagster
instance."""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg
import psycopg

from otf_dagster.core import manager
from otf_dagster.definitions import build_definitions
from otf_dagster.defs.partitions import TASKS_PARTITIONS_NAME
from otf_dagster.defs.resources import TaskStoreResource

T = "NBA_GAME_BOXSCORE"


def task_id(key: str) -> str:
    return f"nba_game_boxscore:{key}"


def seed_task(
    db_url: str,
    key: str,
    *,
    state: str = "FINISHED",
    days_ago: float = 40,
    attempt: int = 1,
    events: int = 0,
    polls: int = 0,
    finished_at: bool | None = None,
) -> str:
    """One task in ``state`` whose rows were written ``days_ago``; ``finished_at`` is set
    when the state is terminal (or when told, for a row some path left inconsistent)."""
    tid = task_id(key)
    terminal = state in ("FINISHED", "FAILED", "CANCELLED")
    with psycopg.connect(db_url, autocommit=True) as c:
        c.execute(
            """
            INSERT INTO tasks (task_id, task_type, external_key, scheduled_at, state, attempt,
                               started_at, finished_at, created_at)
            VALUES (%(tid)s, %(type)s, %(key)s, now() - make_interval(days => %(d)s, hours => 1),
                    %(state)s, %(attempt)s, now() - make_interval(days => %(d)s, hours => 1),
                    CASE WHEN %(fin)s THEN now() - make_interval(days => %(d)s) END,
                    now() - make_interval(days => %(d)s, hours => 1))
            """,
            {
                "tid": tid,
                "type": T,
                "key": key,
                "d": days_ago,
                "state": state,
                "attempt": attempt,
                "fin": terminal if finished_at is None else finished_at,
            },
        )
        c.execute(
            """
            INSERT INTO task_states (time, task_id, attempt, state, previous_state, source)
            VALUES (now() - make_interval(days => %(d)s, hours => 1), %(tid)s, %(a)s, 'STARTED',
                    'SCHEDULED', 'seed')
            """,
            {"d": days_ago, "tid": tid, "a": attempt},
        )
        if terminal:
            c.execute(
                """
                INSERT INTO task_states (time, task_id, attempt, state, previous_state, source)
                VALUES (now() - make_interval(days => %(d)s, mins => 30), %(tid)s, %(a)s, %(s)s,
                        'STARTED', 'seed')
                """,
                {"d": days_ago, "tid": tid, "a": attempt, "s": state},
            )
        if events:
            add_events(c, tid, events, days_ago)
        if polls:
            c.execute(
                """
                INSERT INTO task_polls (time, task_id, task_type, attempt, task_runner_id,
                                        lateness_seconds)
                SELECT now() - make_interval(days => %(d)s) + g * interval '1 second', %(tid)s,
                       %(type)s, %(a)s, 'r', 0.5
                FROM generate_series(1, %(n)s::integer) g
                """,
                {"d": days_ago, "tid": tid, "type": T, "a": attempt, "n": polls},
            )
    return tid


def add_events(c: psycopg.Connection, tid: str, n: int, days_ago: float, first: int = 1) -> None:
    """Events inside the task's lifetime (created an hour before it ended, ``days_ago``), as
    every real writer leaves them: the timeline reads only those (sql/0017)."""
    c.execute(
        """
        INSERT INTO task_events (time, task_id, task_runner_id, task_type, task_seq, kind, payload)
        SELECT now() - make_interval(days => %(d)s, hours => 1) + g * interval '1 millisecond',
               %(tid)s, 'r',
               %(type)s, g, 'score', jsonb_build_object('n', g)
        FROM generate_series(%(first)s::integer, %(last)s::integer) g
        """,
        {"d": days_ago, "tid": tid, "type": T, "first": first, "last": first + n - 1},
    )


def event_seqs(db_url: str) -> list[int]:
    with psycopg.connect(db_url) as c:
        return [r[0] for r in c.execute("SELECT seq FROM task_events ORDER BY seq")]


def count(db_url: str, table: str) -> int:
    with psycopg.connect(db_url) as c:
        return c.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608 - test names


def set_cursor(db_url: str, consumer: str, position: int) -> None:
    with psycopg.connect(db_url, autocommit=True) as c:
        c.execute(
            "INSERT INTO consumer_cursors (consumer, position) VALUES (%s, %s)"
            " ON CONFLICT (consumer) DO UPDATE SET position = EXCLUDED.position",
            (consumer, position),
        )


def add_endpoint(db_url: str, owner: str, position: int, state: str = "active") -> int:
    with psycopg.connect(db_url, autocommit=True) as c:
        return c.execute(
            "INSERT INTO delivery_endpoints (owner, sink, url, position, state)"
            " VALUES (%s, 'webhook', 'https://example.org/hook', %s, %s) RETURNING endpoint_id",
            (owner, position, state),
        ).fetchone()[0]


def add_pending(db_url: str, endpoint_id: int, seq: int, tid: str, dead: bool = False) -> None:
    with psycopg.connect(db_url, autocommit=True) as c:
        c.execute(
            "INSERT INTO delivery_pending (endpoint_id, seq, task_id, next_attempt_at, dead)"
            " VALUES (%s, %s, %s, now(), %s)",
            (endpoint_id, seq, tid, dead),
        )


def runner_job(db_url: str) -> dg.JobDefinition:
    defs = build_definitions(task_store=TaskStoreResource(database_url=db_url))
    return defs.resolve_job_def("task_runner")


def add_run(
    instance: dg.DagsterInstance,
    job: dg.JobDefinition,
    tid: str,
    *,
    attempt: int = 1,
    status: dg.DagsterRunStatus = dg.DagsterRunStatus.SUCCESS,
    by_hand: bool = False,
) -> str:
    """A run of the runner job for ``tid`` with an event in its log: the Task Manager's
    (task id and attempt tags) or a hand launch (the partition tag only)."""
    tags = {"dagster/partition": tid}
    if not by_hand:
        tags |= {manager.TAG_TASK_ID: tid, manager.TAG_ATTEMPT: str(attempt)}
    run = instance.create_run_for_job(job, status=status, tags=tags)
    instance.report_engine_event(f"poll of {tid}", run)
    return run.run_id


def add_pool_run(
    instance: dg.DagsterInstance,
    job: dg.JobDefinition,
    pool_id: str,
    status: dg.DagsterRunStatus = dg.DagsterRunStatus.SUCCESS,
) -> str:
    run = instance.create_run_for_job(job, status=status, tags={manager.TAG_POOL_ID: pool_id})
    instance.report_engine_event(f"pool {pool_id}", run)
    return run.run_id


def add_partitions(instance: dg.DagsterInstance, tids: Sequence[str]) -> None:
    instance.add_dynamic_partitions(TASKS_PARTITIONS_NAME, list(tids))


def partitions(instance: dg.DagsterInstance) -> set[str]:
    return set(instance.get_dynamic_partitions(TASKS_PARTITIONS_NAME))


def run_ids(instance: dg.DagsterInstance) -> set[str]:
    return {r.run_id for r in instance.get_runs()}
