"""``sql/schema.sql`` is what the migrations leave, exactly (``make schema`` writes it).

On the TimescaleDB pass the same check reads ``sql/schema.timescaledb.sql``: the migrations
leave TimescaleDB's objects there too (extension, internal tables, continuous aggregates).
"""

from __future__ import annotations

import subprocess

from otf_dagster.core.store import migrations
from otf_dagster.local import embedded
from otf_dagster_tests import schema_dump


def test_the_migrations_produce_exactly_the_schema_file(pg_server):
    schema, timescaledb = schema_dump.migrated_schema(pg_server)
    path = schema_dump.expected_file(timescaledb)
    committed = path.read_text(encoding="utf-8") if path.exists() else ""
    assert schema == committed, (
        f"{path.name} is not what the migrations produce: run `make schema` and commit it\n"
        + schema_dump.diff(committed, schema, path)
    )


def test_the_schema_file_loads_into_an_empty_database_and_dumps_back_to_itself(pg_server):
    """A reader may load the plain file with psql, on either pass's server (a database without
    the extension). The TimescaleDB file is not loaded: restoring TimescaleDB's objects takes
    the extension's own restore steps."""
    name = "otf_test_schema_load"
    url = pg_server.create_database(name, template=None)
    try:
        psql = str(embedded.pginstall_dir() / "bin" / "psql")
        schema_file = str(schema_dump.PLAIN_FILE)
        loaded = subprocess.run(
            [psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-1", "-f", schema_file],
            env=schema_dump.libpq_env(url),
            capture_output=True,
            text=True,
            check=False,
        )
        assert loaded.returncode == 0, loaded.stderr
        versions = [f"{m.version:04d}" for m in migrations.discover()]
        again = schema_dump.normalize(schema_dump.dump_database(url), versions, False)
        assert again == schema_dump.PLAIN_FILE.read_text(encoding="utf-8")
    finally:
        pg_server.drop_database(name)
