"""``otf api``: services report back to the Task Manager over HTTP (an ASGI app)."""

from otf_dagster.api.app import create_app

__all__ = ["create_app"]
