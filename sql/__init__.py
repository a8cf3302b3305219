"""The task database's migrations: numbered, idempotent SQL files applied in name order.

This folder is packaged as ``otf_dagster.sql`` (see pyproject.toml), so the wheel carries
the same files a checkout has; ``otf db migrate`` reads them through importlib.resources, and
a DBA can apply them with plain psql (README).
"""
