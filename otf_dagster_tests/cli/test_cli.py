"""The `otf` command line: readable by default, --json for scripts, one-line errors."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from otf_dagster.cli import _register, cli
from otf_dagster.handlers.task_types import DEFAULTS_FILE


@pytest.fixture
def otf(db_url, monkeypatch):
    monkeypatch.setenv("OTF_DATABASE_URL", db_url)
    _register()
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(cli, list(args), catch_exceptions=False)

    return invoke


def test_migrate_status_and_task_types(otf):
    migrated = otf("db", "migrate").output.strip().splitlines()
    assert migrated[-1] == "up to date: nothing to apply"
    status = json.loads(otf("db", "status", "--json").output)
    notes = migrated[:-1]  # one line from the TimescaleDB step, when it could not run
    if status["timescaledb"]:
        assert notes == []
    elif status["timescaledb_available"]:
        assert len(notes) == 1 and "not preloaded" in notes[0]
        assert "shared_preload_libraries = 'timescaledb'" in notes[0]
    else:
        assert len(notes) == 1 and "not available on this server" in notes[0]
    text = otf("db", "status").output
    if status["timescaledb"]:
        assert f"timescaledb: {status['timescaledb']}\n" in text
        for name in ("task_events", "task_polls", "task_states"):
            assert name in text
        assert "policy jobs:" in text
    else:
        assert "timescaledb: not installed" in text and "plain tables" in text
    out = otf("task-types", "apply", str(DEFAULTS_FILE)).output
    assert "created NBA_GAME_BOXSCORE" in out
    assert "updated NBA_GAME_BOXSCORE" in otf("task-types", "apply", str(DEFAULTS_FILE)).output
    listed = json.loads(otf("task-types", "list", "--json").output)
    assert [t["name"] for t in listed] == [
        "ESPN_GAME_BOXSCORE",
        "ESPN_GAME_CONFIRM",
        "NBA_GAME_BOXSCORE",
        "NBA_GAME_CONFIRM",
    ]
    assert (
        otf("task-types", "delete", "ESPN_GAME_CONFIRM").output.strip()
        == "deleted ESPN_GAME_CONFIRM"
    )
    assert "ESPN_GAME_CONFIRM" not in otf("task-types", "list").output
    assert "ESPN_GAME_CONFIRM" in otf("task-types", "list", "--all").output


def test_schedule_list_show(otf):
    otf("task-types", "apply", str(DEFAULTS_FILE))
    out = otf(
        "tasks",
        "schedule",
        "--type",
        "NBA_GAME_BOXSCORE",
        "--key",
        "0022000180",
        "--at",
        "2026-11-27T19:30:00Z",
    )
    assert out.output.startswith("created nba_game_boxscore:0022000180")
    moved = json.loads(
        otf(
            "tasks",
            "schedule",
            "--type",
            "NBA_GAME_BOXSCORE",
            "--key",
            "0022000180",
            "--at",
            "2026-11-27T20:00:00-05:00",
            "--json",
        ).output
    )
    assert moved["outcome"] == "moved"
    rows = json.loads(otf("tasks", "list", "--state", "scheduled", "--json").output)
    assert [r["scheduled_at"] for r in rows] == ["2026-11-28T01:00:00+00:00"]
    assert json.loads(otf("tasks", "list", "--state", "STARTED", "--json").output) == []
    shown = otf("tasks", "show", "nba_game_boxscore:0022000180")
    assert "SCHEDULED" in shown.output and "timeline (0 events)" in shown.output
    detail = json.loads(otf("tasks", "show", "nba_game_boxscore:0022000180", "--json").output)
    assert [e["summary"] for e in detail["timeline"]][0].startswith("task SCHEDULED")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (
            ["tasks", "schedule", "--type", "NOPE", "--key", "1", "--at", "2026-01-01T00:00Z"],
            "'NOPE' does not exist",
        ),
        (
            ["tasks", "schedule", "--type", "NBA_GAME_BOXSCORE", "--key", "1", "--at", "tomorrow"],
            "'tomorrow' is not an ISO time",
        ),
        (
            [
                "tasks",
                "schedule",
                "--type",
                "NBA_GAME_BOXSCORE",
                "--key",
                "1",
                "--at",
                "2026-01-01T00:00",
            ],
            "no time zone",
        ),
        (["tasks", "show", "nope:1"], "task 'nope:1' does not exist"),
        (["task-types", "apply", "/nonexistent.yaml"], "/nonexistent.yaml does not exist"),
        (["task-types", "delete", "NOPE"], "'NOPE' does not exist"),
    ],
)
def test_errors_are_one_line_and_exit_non_zero(otf, args, needle):
    otf("task-types", "apply", str(DEFAULTS_FILE))
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1
    assert needle in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


def test_a_bad_database_url_is_named_without_its_password(monkeypatch):
    monkeypatch.setenv("OTF_DATABASE_URL", "mysql://u:pw@127.0.0.1/otf")
    _register()
    result = CliRunner().invoke(cli, ["tasks", "list"])
    assert result.exit_code == 1 and "OTF_DATABASE_URL must be a postgresql:// URL" in result.output
    assert "pw" not in result.output
