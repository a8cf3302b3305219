"""``otf deployments`` and ``otf pools``: who manages tasks here, and the runner pools."""

from __future__ import annotations

import click

from otf_dagster.cli._output import emit_rows
from otf_dagster.core.store import TaskStore
from otf_dagster.local import embedded

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


@click.command("deployments")
@json_option
def deployments(as_json: bool) -> None:
    """The deployments (Dagster instances) that manage tasks in this database: their leases and
    how many STARTED tasks each launched."""
    with TaskStore(embedded.resolve_task_url(writes=False)) as store:
        rows = store.list_deployments()
    cols = ["deployment_id", "name", "alive", "lease_expires_at", "started_tasks", "started_at"]
    emit_rows(rows, as_json, None if as_json else cols)


@click.command("pools")
@click.option("--all", "include_ended", is_flag=True, help="Include ended and failed pools.")
@json_option
def pools(include_ended: bool, as_json: bool) -> None:
    """Runner pools: their state, load and capacity, run id and last heartbeat."""
    with TaskStore(embedded.resolve_task_url(writes=False)) as store:
        rows = store.list_pools(include_ended=include_ended)
    cols = ["pool_id", "state", "load", "capacity", "run_id", "heartbeat_at", "detail"]
    emit_rows(rows, as_json, None if as_json else cols)
