"""`otf report`, `otf events tail`, `otf subscriptions ...` through click, on a real database."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from otf_dagster import cli as cli_module
from otf_dagster.core.store.polls import PollWrite
from otf_dagster.vocab.tasks import EventRecord, TaskState
from otf_dagster_tests.helpers import MEDIA, PLAIN


@pytest.fixture
def otf(db_url, monkeypatch):
    monkeypatch.setenv("OTF_DATABASE_URL", db_url)
    cli_module._register()
    runner = CliRunner()

    def run(*args: str):
        return runner.invoke(cli_module.cli, list(args), catch_exceptions=False)

    return run


def assert_one_line_error(result, match: str) -> None:
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert match in lines[0]


def test_report_applies_and_prints_the_overall_state(otf, store, media_task):
    tid = media_task.task.task_id
    r = otf(
        "report",
        tid,
        "--service",
        "photo",
        "--state",
        "FAILED",
        "--detail",
        '{"reason": "no photo"}',
    )
    assert r.exit_code == 0, r.output
    assert (
        r.stdout.strip()
        == f"applied: photo FAILED on {tid}; task is FAILED (required service(s) failed: photo; no photo)"
    )
    assert store.get_task(tid).state == TaskState.FAILED
    r = otf("report", tid, "--service", "photo", "--state", "failed", "--json")
    assert r.exit_code == 0
    assert json.loads(r.stdout) == {
        "task_id": tid,
        "service": "photo",
        "state": "FAILED",
        "overall": "FAILED",
        "outcome": "repeat",
        "reason": "required service(s) failed: photo; no photo",
        "previous": "FAILED",
    }


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (
            ["nba_game_media:missing", "--service", "photo", "--state", "FINISHED"],
            "'nba_game_media:missing' does not exist",
        ),
        (
            ["{tid}", "--service", "photo", "--state", "DONE"],
            "unknown state 'DONE'; a service reports one of STARTED, FINISHED, FAILED",
        ),
        (["{tid}", "--service", "Photo!", "--state", "STARTED"], "bad service name 'Photo!'"),
        (
            ["{tid}", "--service", "photo", "--state", "STARTED", "--detail", "{oops"],
            "--detail is not valid JSON",
        ),
        (
            ["{tid}", "--service", "photo", "--state", "STARTED", "--detail", "[1]"],
            "--detail must be a JSON object",
        ),
    ],
)
def test_report_errors_are_one_line_and_exit_1(otf, media_task, args, match):
    args = [media_task.task.task_id if a == "{tid}" else a for a in args]
    assert_one_line_error(otf("report", *args), match)


def test_report_backwards_is_refused(otf, media_task):
    tid = media_task.task.task_id
    assert otf("report", tid, "--service", "photo", "--state", "FINISHED").exit_code == 0
    assert_one_line_error(
        otf("report", tid, "--service", "photo", "--state", "STARTED"), "already reported FINISHED"
    )


def test_events_tail_json_durable_and_not(otf, store, media_task):
    tid = media_task.task.task_id
    store.record_poll(
        PollWrite(
            tid,
            1,
            "run-1",
            {},
            [
                EventRecord(1, "game_started", {"home": 0}),
                EventRecord(2, "score_changed", {"home": 2}),
            ],
        )
    )
    r = otf("events", "tail", "--json")
    assert r.exit_code == 0, r.output
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    assert [(e["task_id"], e["task_seq"], e["kind"], e["payload"]) for e in lines] == [
        (tid, 1, "game_started", {"home": 0}),
        (tid, 2, "score_changed", {"home": 2}),
    ]
    assert lines[0]["seq"] < lines[1]["seq"] and lines[0]["task_runner_id"] == "run-1"
    assert otf("events", "tail", "--task-type", PLAIN).stdout == ""
    assert otf("events", "tail", "--since", "2999-01-01T00:00:00Z").stdout == ""

    assert (
        otf("subscriptions", "add", "photo-svc", MEDIA).stdout.strip()
        == f"created: photo-svc -> {MEDIA}"
    )
    r = otf("events", "tail", "--consumer", "photo-svc", "--limit", "1")
    assert r.exit_code == 0 and "#1 game_started" in r.stdout and "#2" not in r.stdout
    r = otf("events", "tail", "--consumer", "photo-svc", "--json")
    assert [json.loads(line)["task_seq"] for line in r.stdout.splitlines()] == [2]
    assert otf("events", "tail", "--consumer", "photo-svc").stdout == ""  # the cursor moved

    store.record_poll(PollWrite(tid, 1, "run-1", {}, [EventRecord(3, "game_final", {})]))
    r = otf("events", "tail", "--consumer", "photo-svc", "--follow", "--timeout", "0.2", "--json")
    assert [json.loads(line)["kind"] for line in r.stdout.splitlines()] == ["game_final"]


def test_events_tail_errors(otf, media_types):
    assert_one_line_error(
        otf("events", "tail", "--consumer", "c1", "--task-type", MEDIA), "non-durable reads only"
    )
    assert_one_line_error(
        otf("events", "tail", "--since", "yesterday"), "--since 'yesterday' is not an ISO time"
    )
    assert_one_line_error(
        otf("events", "tail", "--since", "2026-01-01T00:00:00"), "has no time zone"
    )
    assert_one_line_error(otf("events", "tail", "--consumer", "bad name"), "bad consumer name")


def test_subscriptions_cli(otf, media_types):
    assert otf("subscriptions", "add", "caption-svc", MEDIA).exit_code == 0
    assert (
        otf("subscriptions", "add", "caption-svc", MEDIA).stdout.strip()
        == f"unchanged: caption-svc -> {MEDIA}"
    )
    rows = json.loads(otf("subscriptions", "list", "--json").stdout)
    assert [(r["owner"], r["task_type"]) for r in rows] == [("caption-svc", MEDIA)]
    assert otf("subscriptions", "remove", "caption-svc", MEDIA).exit_code == 0
    assert otf("subscriptions", "list").stdout.strip() == "(none)"
    assert "caption-svc" in otf("subscriptions", "list", "--all").stdout
    assert_one_line_error(
        otf("subscriptions", "remove", "caption-svc", MEDIA), "no live subscription"
    )
    assert_one_line_error(
        otf("subscriptions", "add", "caption-svc", "NOPE"), "'NOPE' does not exist"
    )
