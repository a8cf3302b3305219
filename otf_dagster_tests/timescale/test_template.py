"""The test template never races TimescaleDB's scheduler: it accepts no connections at all, so
the launcher starts no scheduler for it and every clone finds it unused."""

from __future__ import annotations

import psycopg
import pytest

from otf_dagster_tests.pg import TEMPLATE


def test_the_template_accepts_no_connections_and_clones_every_time(pg_server):
    with psycopg.connect(pg_server.admin_url) as conn:
        row = conn.execute(
            "SELECT d.datallowconn, d.datistemplate,"
            " (SELECT count(*) FROM pg_stat_activity a WHERE a.datname = d.datname)"
            " FROM pg_database d WHERE d.datname = %s",
            (TEMPLATE,),
        ).fetchone()
    assert row == (False, True, 0)
    with pytest.raises(psycopg.OperationalError, match="not currently accepting connections"):
        psycopg.connect(pg_server.url(TEMPLATE)).close()
    for _ in range(10):  # back to back, as the suite does
        name, url = pg_server.fresh_database()
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT count(*) FROM otf_schema_migrations").fetchone()[0] >= 9
        pg_server.drop_database(name)
