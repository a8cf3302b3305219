"""What the TimescaleDB tests do to a database: compress, decompress, run a shipped policy.

Each helper does its work where the server has TimescaleDB and nothing on plain PostgreSQL
(returning 0), so one test asserts what is true on the server it runs on.
"""

from __future__ import annotations

import psycopg
from psycopg import sql


def has_timescaledb(url: str) -> bool:
    with psycopg.connect(url) as conn:
        return (
            conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'").fetchone()
            is not None
        )


def compress(url: str, *tables: str) -> int:
    """Compress every chunk of ``tables``; the number of chunks compressed."""
    return _each_chunk(url, tables, "compress_chunk", "NOT is_compressed")


def decompress(url: str, *tables: str) -> int:
    return _each_chunk(url, tables, "decompress_chunk", "is_compressed")


def _each_chunk(url: str, tables: tuple[str, ...], fn: str, where: str) -> int:
    if not has_timescaledb(url):
        return 0
    n = 0
    with psycopg.connect(url, autocommit=True) as conn:
        for table in tables:
            chunks = conn.execute(
                sql.SQL(
                    "SELECT format('%%I.%%I', chunk_schema, chunk_name) FROM "
                    "timescaledb_information.chunks WHERE hypertable_name = %s AND {}"
                ).format(sql.SQL(where)),
                (table,),
            ).fetchall()
            for (chunk,) in chunks:
                conn.execute(
                    sql.SQL("SELECT {}(%s::regclass)").format(sql.Identifier(fn)), (chunk,)
                )
                n += 1
    return n


def compressed_chunks(url: str, table: str) -> int:
    if not has_timescaledb(url):
        return 0
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT count(*) FROM timescaledb_information.chunks"
            " WHERE hypertable_name = %s AND is_compressed",
            (table,),
        ).fetchone()[0]


def run_policy(url: str, table: str, proc: str = "policy_compression") -> bool:
    """Run the shipped policy ``proc`` of ``table`` now (CALL run_job); False on plain tables."""
    if not has_timescaledb(url):
        return False
    with psycopg.connect(url, autocommit=True) as conn:
        [job] = conn.execute(
            "SELECT job_id FROM timescaledb_information.jobs"
            " WHERE hypertable_name = %s AND proc_name = %s",
            (table, proc),
        ).fetchone()
        conn.execute("CALL run_job(%s)", (job,))
    return True
