"""otf_report runs as its owner: a caller who may create objects in schema public must not be
able to plant an operator or function there that then runs with the owner's rights
(sql/0012_report_safety.sql)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from otf_dagster.core.services import REPORTER_ROLE
from otf_dagster.core.store import migrations
from otf_dagster.vocab.tasks import TaskState

PINNED = "search_path=pg_catalog, pg_temp"

# What the attacker plants: an exact-type `=` for the project's enum (it outranks pg_catalog's
# polymorphic anyenum = anyenum) and an exact-type unnest(text[]) (outranks unnest(anyarray)).
# Each logs who ran it, then tries to become superuser and to write a task; both succeed only
# when run with the owner's rights.
TRAP = """
CREATE TABLE public.{log} (ran_as text, via text);
CREATE FUNCTION public.{fn}_escalate(via text) RETURNS void LANGUAGE plpgsql AS $f$
BEGIN
    INSERT INTO public.{log} VALUES (current_user, via);
    BEGIN
        EXECUTE 'ALTER ROLE {role} SUPERUSER';
        UPDATE public.tasks SET last_error = 'hijacked';
    EXCEPTION WHEN insufficient_privilege THEN NULL;
    END;
END $f$;
CREATE FUNCTION public.{fn}_eq(a public.task_state, b public.task_state) RETURNS boolean
LANGUAGE plpgsql AS $f$
BEGIN
    PERFORM public.{fn}_escalate('=');
    RETURN a::text OPERATOR(pg_catalog.=) b::text;
END $f$;
CREATE OPERATOR public.= (LEFTARG = public.task_state, RIGHTARG = public.task_state,
                          FUNCTION = public.{fn}_eq);
CREATE FUNCTION public.unnest(a text[]) RETURNS SETOF text LANGUAGE plpgsql AS $f$
BEGIN
    PERFORM public.{fn}_escalate('unnest');
    RETURN QUERY SELECT x FROM pg_catalog.unnest(a) AS x;
END $f$;
"""


@pytest.fixture
def attacker(pg_server, db_url) -> Iterator[str]:
    """A login role that may report (a member of otf_reporter) and create objects in public."""
    role = f"otf_test_attacker_{os.getpid()}"
    ident = sql.Identifier(role)
    with psycopg.connect(pg_server.admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(ident))
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(ident))
        admin.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(REPORTER_ROLE), ident))
    with psycopg.connect(db_url, autocommit=True) as owner:
        owner.execute(sql.SQL("GRANT CREATE ON SCHEMA public TO {}").format(ident))
    try:
        yield role
    finally:
        with psycopg.connect(pg_server.admin_url, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(psycopg.conninfo.conninfo_to_dict(db_url)["dbname"])
                )
            )
            admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(ident))


def facts(db_url: str, role: str, task_id: str, log: str) -> dict:
    """Read as the owner without comparing any task_state (the planted `=` would run)."""
    with psycopg.connect(db_url, autocommit=True) as c:
        return {
            "superuser": c.execute(
                "SELECT rolsuper FROM pg_roles WHERE rolname = %s", (role,)
            ).fetchone()[0],
            "ran_as": sorted(
                set(c.execute(sql.SQL("SELECT ran_as, via FROM {}").format(sql.Identifier(log))))
            ),
            "task": c.execute(
                "SELECT state::text, last_error FROM tasks WHERE task_id = %s", (task_id,)
            ).fetchone(),
            "services": dict(
                c.execute(
                    "SELECT service, state::text FROM task_service_states WHERE task_id = %s",
                    (task_id,),
                ).fetchall()
            ),
        }


def test_a_planted_operator_and_function_never_run_with_the_owners_rights(
    db_url, media_task, attacker
):
    task_id = media_task.task.task_id
    log = f"{attacker}_log"
    with psycopg.connect(db_url, user=attacker, autocommit=True) as evil:
        assert evil.execute("SELECT current_user").fetchone() == (attacker,)
        evil.execute(TRAP.format(log=log, fn=attacker, role=attacker))
        # The trap is live: the attacker's own comparisons run it (as the attacker).
        evil.execute("SELECT 'FAILED'::task_state = 'FAILED'::task_state")
        evil.execute("SELECT * FROM unnest(ARRAY['x'])")
        assert facts(db_url, attacker, task_id, log)["ran_as"] == [
            (attacker, "="),
            (attacker, "unnest"),
        ]

        # Report as a service would, down every path: applied, overall FAILED, refused.
        row = evil.execute(
            "SELECT overall, outcome FROM otf_report(%s, 'photo', 'FINISHED', NULL)", (task_id,)
        ).fetchone()
        assert row == (TaskState.STARTED, "applied")
        first = facts(db_url, attacker, task_id, log)
        assert (first["superuser"], first["task"]) == (False, ("STARTED", None))
        row = evil.execute(
            "SELECT overall, reason FROM otf_report(%s, 'caption', 'FAILED', %s)",
            (task_id, '{"reason": "no faces"}'),
        ).fetchone()
        assert row == (TaskState.FAILED, "required service(s) failed: caption; no faces")
        with pytest.raises(psycopg.Error, match="task 'nope' does not exist"):
            evil.execute("SELECT * FROM otf_report('nope', 'photo', 'FINISHED', NULL)")

    after = facts(db_url, attacker, task_id, log)
    assert after["superuser"] is False
    assert after["ran_as"] == [(attacker, "="), (attacker, "unnest")]  # nothing more ran
    assert after["task"] == ("FAILED", "required service(s) failed: caption; no faces")
    assert after["services"] == {"photo": "FINISHED", "caption": "FAILED"}


def test_every_project_function_pins_its_search_path(db_url):
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "SELECT p.proname, p.proconfig, p.prosecdef FROM pg_proc p "
            "JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE n.nspname = 'public' AND p.proname LIKE 'otf\\_%' ORDER BY 1"
        ).fetchall()
    # Two run as their caller and never as anyone else, so a planted object gains nothing:
    # otf_time_bucket stays a bare SQL function PostgreSQL can inline into the stats views (a
    # SET clause would stop that), and otf_timescaledb_enable is run by the migrator to create
    # objects in public, which it must therefore find.
    runs_as_caller = {"otf_time_bucket", "otf_timescaledb_enable"}
    assert {name for name, _, definer in rows if name in runs_as_caller and not definer} == (
        runs_as_caller
    )
    assert {name: config for name, config, _ in rows if name not in runs_as_caller} == {
        name: [PINNED]
        for name in (
            "otf_event_holders",
            "otf_overall_state",
            "otf_record_service_state",
            "otf_report",
            "otf_state_is_terminal",
            "otf_task_events_notify",
            "otf_task_events_serialize",
        )
    }
    assert [name for name, _, definer in rows if definer] == ["otf_report"]


def test_migrating_revokes_create_on_public_from_public(db_url):
    """Where every role may create in public (PostgreSQL 14 and older), 0012 revokes it."""
    public_may_create = (
        "SELECT has_schema_privilege('public', 'public', 'CREATE')"  # role PUBLIC is 'public'
    )
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("GRANT CREATE ON SCHEMA public TO PUBLIC")
        assert conn.execute(public_may_create).fetchone() == (True,)
        [mig] = [m for m in migrations.discover() if m.name == "0012_report_safety"]
        conn.execute(mig.text())  # idempotent: applying it again is what a migration does
        assert conn.execute(public_may_create).fetchone() == (False,)
