"""The task id rule lives in the database (the tasks_task_id_format CHECK); Python's copy
(scheduling.task_id_is_valid) is held equal to it by trying the same values on both."""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from psycopg import errors

from otf_dagster.core.store.scheduling import task_id_for, task_id_is_valid
from otf_dagster.exceptions import StoreError

T = "NBA_GAME_BOXSCORE"
NOW = datetime(2026, 1, 1, tzinfo=UTC)
# What PostgreSQL text can hold: no NUL, no lone surrogates.
pg_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    max_size=210,
)
near_ids = st.text(alphabet="ab:._-\n\r\t Z9/é...", max_size=12)


@pytest.fixture
def conn(db_url, store, default_types):
    with psycopg.connect(db_url, autocommit=True) as c:
        yield c


def database_accepts(conn: psycopg.Connection, task_id: str) -> bool:
    """Insert a task with this id and roll it back: did the CHECK let it in?"""
    try:
        with conn.transaction(force_rollback=True):
            conn.execute(
                "INSERT INTO tasks (task_id, task_type, external_key, scheduled_at) "
                "VALUES (%s, %s, 'k', now())",
                (task_id, T),
            )
    except errors.CheckViolation:
        return False
    return True


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(task_id=st.one_of(pg_text, near_ids, near_ids.map(lambda s: f"nba:{s}")))
@example("nba:1234\n")
@example("nba:1234")
@example("a" * 200)
@example("a" * 201)
@example("nba:a...b")
@example("nba:a..b")
@example("")
@example("nba:١٢")  # digits, but not ASCII ones
def test_python_and_the_database_agree_on_task_ids(conn, task_id):
    assert task_id_is_valid(task_id) == database_accepts(conn, task_id), repr(task_id)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(key=pg_text)
@example("1234\n")
@example("a...b")
@example("x" * 120)
@example("x" * 121)
def test_every_key_python_lets_through_gets_an_id_the_database_accepts(store, default_types, key):
    try:
        task_id, _ = store.schedule_task(T, key, NOW)
    except StoreError as exc:  # refused in Python, never by the CHECK
        assert "check constraint" not in str(exc)
        assert not key or len(key) > 200 or not key.isprintable()
        return
    assert task_id == task_id_for(T, key) and task_id_is_valid(task_id)
    assert store.get_task(task_id).external_key == key
