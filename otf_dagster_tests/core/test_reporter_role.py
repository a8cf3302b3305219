"""The otf_reporter role may call otf_report and do nothing else."""

from __future__ import annotations

import os

import psycopg
import pytest
from psycopg import errors, sql

from otf_dagster.core.services import REPORTER_ROLE
from otf_dagster.vocab.tasks import TaskState


def as_reporter(db_url: str) -> psycopg.Connection:
    conn = psycopg.connect(db_url, autocommit=True)
    conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(REPORTER_ROLE)))
    return conn


def test_the_role_exists_cannot_log_in_and_is_granted_only_the_function(db_url):
    with psycopg.connect(db_url) as conn:
        (login,) = conn.execute(
            "SELECT rolcanlogin FROM pg_roles WHERE rolname = %s", (REPORTER_ROLE,)
        ).fetchone()
        assert login is False
        table_grants = conn.execute(
            "SELECT table_name, privilege_type FROM information_schema.role_table_grants WHERE grantee = %s",
            (REPORTER_ROLE,),
        ).fetchall()
        assert table_grants == []
        routines = conn.execute(
            "SELECT routine_name FROM information_schema.role_routine_grants WHERE grantee = %s",
            (REPORTER_ROLE,),
        ).fetchall()
        assert routines == [("otf_report",)]


def test_the_reporter_can_report(db_url, store, media_task):
    tid = media_task.task.task_id
    with as_reporter(db_url) as conn:
        assert conn.execute("SELECT current_user").fetchone() == (REPORTER_ROLE,)
        row = conn.execute(
            "SELECT overall, outcome FROM otf_report(%s, 'photo', 'FINISHED', NULL)", (tid,)
        ).fetchone()
        assert row == ("STARTED", "applied")
        with pytest.raises(psycopg.Error, match="unknown state 'NOPE'") as info:
            conn.execute("SELECT * FROM otf_report(%s, 'caption', 'NOPE', NULL)", (tid,))
        assert info.value.sqlstate == "OTF02"
    states = {s["service"]: s["state"] for s in store.service_states(tid)}
    assert states == {"photo": TaskState.FINISHED}


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT * FROM tasks",
        "SELECT * FROM task_states",
        "SELECT * FROM task_events",
        "SELECT * FROM task_service_states",
        "SELECT * FROM consumer_cursors",
        "INSERT INTO task_states (task_id, service, state) VALUES ('x', 'photo', 'FINISHED')",
        "INSERT INTO task_service_states (task_id, service, state) VALUES ('x', 'photo', 'FINISHED')",
        "UPDATE tasks SET state = 'FINISHED'",
        "DELETE FROM subscriptions",
        "SELECT * FROM otf_overall_state('x', ARRAY['runner'])",  # runs as the caller: no table access
    ],
)
def test_the_reporter_can_do_nothing_else(db_url, media_task, statement):
    with as_reporter(db_url) as conn, pytest.raises(errors.InsufficientPrivilege):
        conn.execute(statement)


def test_other_roles_cannot_call_the_definer_function(db_url, pg_server, media_task):
    """EXECUTE is revoked from PUBLIC: a role without otf_reporter cannot borrow the owner's rights."""
    role = f"otf_test_nobody_{os.getpid()}"
    with psycopg.connect(pg_server.admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
        admin.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(role)))
    try:
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
            with pytest.raises(errors.InsufficientPrivilege, match="otf_report"):
                conn.execute(
                    "SELECT * FROM otf_report(%s, 'photo', 'FINISHED', NULL)",
                    (media_task.task.task_id,),
                )
    finally:
        with psycopg.connect(pg_server.admin_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def test_the_function_pins_its_search_path(db_url):
    """A caller's search_path cannot redirect the definer function to look-alike tables."""
    with psycopg.connect(db_url) as conn:
        config, definer = conn.execute(
            "SELECT proconfig, prosecdef FROM pg_proc WHERE proname = 'otf_report'"
        ).fetchone()
    assert definer is True
    assert config == ["search_path=pg_catalog, pg_temp"]  # sql/0008: no writable schema searched
