"""`otf history prune | status`: one-line refusals, a dry run, a prune of DAGSTER_HOME's
instance, and the status that shows what is there and what the next prune would remove."""

from __future__ import annotations

import json

import dagster as dg
import pytest
from click.testing import CliRunner

from otf_dagster.cli import _register, cli
from otf_dagster.handlers.task_types import DEFAULTS_FILE
from otf_dagster_tests.cli.test_cli_edges import refused
from otf_dagster_tests.core import history_seed as hs


@pytest.fixture
def otf(db_url, monkeypatch, tmp_path):
    monkeypatch.setenv("OTF_DATABASE_URL", db_url)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))  # a sqlite instance of its own
    _register()
    CliRunner().invoke(cli, ["task-types", "apply", str(DEFAULTS_FILE)], catch_exceptions=False)

    def invoke(*args: str):
        return CliRunner().invoke(cli, list(args), catch_exceptions=False)

    return invoke


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["prune", "--older-than", "0"], "--older-than 0 must be at least 1 day"),
        (["prune", "--older-than", "-5"], "--older-than -5 must be at least 1 day"),
        (["prune", "--older-than", "soon"], "--older-than 'soon' is not a whole number of days"),
        (["prune", "--events-older-than", "0"], "--events-older-than 0 must be at least 1 day"),
        (["status", "--older-than", "-1"], "--older-than -1 must be at least 1 day"),
        (
            ["prune", "--no-dagster", "--events-older-than", "30", "--force-consumer", "nobody"],
            "--force-consumer 'nobody' names no consumer",
        ),
    ],
)
def test_bad_settings_are_refused_in_one_line(otf, args, needle, db_url):
    hs.seed_task(db_url, "g", polls=3)
    refused(otf("history", *args), needle)
    assert hs.count(db_url, "task_polls") == 3  # nothing was removed


def test_without_dagster_home_it_says_what_to_do(otf, monkeypatch):
    monkeypatch.delenv("DAGSTER_HOME")
    refused(otf("history", "prune"), "DAGSTER_HOME is not set")
    assert "--no-dagster" in otf("history", "prune").stderr


def test_dry_run_then_prune_then_status(otf, db_url):
    old = [hs.seed_task(db_url, f"g{i}", polls=2, events=3) for i in range(2)]
    recent = hs.seed_task(db_url, "recent", days_ago=2, polls=1)
    hs.set_cursor(db_url, "captions", hs.event_seqs(db_url)[1])
    with dg.DagsterInstance.get() as instance:
        hs.add_partitions(instance, [*old, recent])
        job = hs.runner_job(db_url)
        for t in [*old, recent]:
            hs.add_run(instance, job, t)

        text = otf("history", "status", "--events-older-than", "30").output
        assert "task_polls" in text and "3 task partition(s), 3 run(s)" in text
        assert "consumer captions at seq" in text
        assert "2 ended task(s) not yet pruned from deployment" in text
        assert "4 poll row(s); 2 event(s) older than 30 days, 4 held back by consumer" in text

        dry = otf("history", "prune", "--dry-run", "--events-older-than", "30").output
        assert "would remove 2 partition(s) and 2 run(s) of 2 task(s)" in dry
        assert "task_polls: would remove 4 row(s)" in dry
        assert "held back by consumer captions (--force-consumer captions" in dry
        assert len(hs.partitions(instance)) == 3 and hs.count(db_url, "task_polls") == 5

        out = otf("history", "prune", "--events-older-than", "30", "--json").output
        report = json.loads(out)
        assert (report["partitions"], report["runs"], report["polls"], report["events"]) == (
            2,
            2,
            4,
            2,
        )
        assert hs.partitions(instance) == {recent}

        status = json.loads(otf("history", "status", "--json").output)
        assert status["dagster"]["task_partitions"] == 1
        assert status["next_prune"]["tasks_for_dagster"] == 0
        tables = {t["table"]: t for t in status["tables"]}
        assert tables["tasks"]["rows"] == 3 and tables["task_polls"]["rows"] == 1
        [last] = status["last_prunes"]
        assert last["removed"]["partitions"] == 2 and last["finished_at"]
        assert "prune #" in otf("history", "status").output

    # the task database alone, no Dagster instance needed
    again = otf("history", "prune", "--no-dagster").output
    assert "dagster: not pruned" in again and "task_polls: removed 0 row(s)" in again
