"""`otf deployments` and `otf pools` read the leases and the pools of the task database."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner

from otf_dagster.cli import _register, cli
from otf_dagster.core import manager
from otf_dagster.handlers import task_types


@pytest.fixture
def otf(db_url, monkeypatch):
    monkeypatch.setenv("OTF_DATABASE_URL", db_url)
    _register()
    runner = CliRunner()
    return lambda *args: runner.invoke(cli, list(args), catch_exceptions=False)


def test_deployments_and_pools_are_listed(otf, store):
    task_types.apply(
        store,
        [
            task_types.validate(
                {
                    "name": "PING",
                    "handler": "http.json",
                    "base_url": "http://127.0.0.1:9",
                    "url_template": "/p/{key}",
                    "poll_interval_seconds": 5,
                    "runner": "pool",
                    "params": {"done_when": "done"},
                }
            )
        ],
    )
    now = datetime.now(UTC)
    store.schedule_tasks("PING", [(f"k{i}", now, {}) for i in range(3)])
    report = manager.tick(
        store, lambda keys: {}, deployment=manager.Deployment("dep-cli", "cli host")
    )
    [pool_id] = report.assigned
    [dep] = json.loads(otf("deployments", "--json").output)
    assert (dep["deployment_id"], dep["name"], dep["alive"], dep["started_tasks"]) == (
        "dep-cli",
        "cli host",
        True,
        3,
    )
    [pool] = json.loads(otf("pools", "--json").output)
    assert (pool["pool_id"], pool["state"], pool["load"], pool["capacity"]) == (
        pool_id,
        "LAUNCHING",
        3,
        500,
    )
    assert pool_id in otf("pools").output and "LAUNCHING" in otf("pools").output
