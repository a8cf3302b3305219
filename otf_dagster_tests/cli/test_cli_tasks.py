"""`otf tasks run` (the TaskRunner in the foreground), `--params`, and `otf tasks retry`."""

from __future__ import annotations

import json
import textwrap
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner

from otf_dagster.cli import _register, cli
from otf_dagster.vocab.tasks import TaskState
from otf_dagster_tests.helpers import ScriptedFeed

TYPES = """
task_types:
  - name: DAY_BOARD
    handler: http.json
    base_url: {base}
    url_template: /board/{{params.day}}/{{key}}.json
    poll_interval_seconds: 0.05
    max_consecutive_errors: 2
    params:
      done_when: over
      track: {{games: games}}
"""


@pytest.fixture
def otf(db_url, monkeypatch):
    monkeypatch.setenv("OTF_DATABASE_URL", db_url)
    _register()
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(cli, list(args), catch_exceptions=False)

    return invoke


@pytest.fixture
def feed(otf, tmp_path):
    with ScriptedFeed() as server:
        path = tmp_path / "types.yaml"
        path.write_text(textwrap.dedent(TYPES.format(base=server.base_url)))
        assert "created DAY_BOARD" in otf("task-types", "apply", str(path)).output
        yield server


def schedule(otf, key: str, params: dict | None = None):
    now = datetime.now(UTC).isoformat()  # the deadline counts from the scheduled time
    args = ["tasks", "schedule", "--type", "DAY_BOARD", "--key", key, "--at", now]
    if params is not None:
        args += ["--params", json.dumps(params)]
    return otf(*args, "--json")


def test_run_prints_each_poll_and_ends_with_the_outcome(otf, feed, store):
    feed.script(
        "/board/2026-12-01/east.json", [{"games": 1}, {"games": 1}, {"games": 2, "over": True}]
    )
    out = json.loads(schedule(otf, "east", {"day": "2026-12-01"}).output)
    assert out["outcome"] == "created"
    result = otf("tasks", "run", out["task_id"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith(f"running {out['task_id']} as attempt 1")
    assert lines[1] == "poll 1: changed | track.games=1 done=False"
    assert lines[2] == "poll 2: no change | track.games=1 done=False"
    assert lines[3] == "poll 3: changed [done] | track.games=2 done=True"
    assert lines[4].startswith(f"{out['task_id']} FINISHED after 3 poll(s), 2 event(s)")
    task = store.get_task(out["task_id"])
    assert task.state == TaskState.FINISHED and task.run_id.startswith("cli-")


def test_run_takes_the_task_as_a_new_attempt_fencing_the_old_runner_out(otf, feed, store):
    feed.script("/board/d/west.json", [{"games": 0, "over": True}])
    task_id = json.loads(schedule(otf, "west", {"day": "d"}).output)["task_id"]
    [claimed] = store.claim_ready()  # the Task Manager's attempt 1
    assert claimed.task.attempt == 1
    result = otf("tasks", "run", task_id, "--json")
    assert result.exit_code == 0, result.output
    polls = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    assert [p["poll"] for p in polls] == [1] and polls[0]["outcome"] == "done"
    assert polls[0]["events"][0]["payload"] == {"name": "games", "old": None, "new": 0}
    task = store.get_task(task_id)
    assert task.attempt == 2 and task.state == TaskState.FINISHED
    with pytest.raises(Exception, match="attempt 1"):
        store.heartbeat(task_id, 1)  # the old attempt is fenced out


def test_run_of_a_failing_task_exits_1_and_retry_runs_it_again(otf, feed, store):
    feed.script("/board/d/north.json", [b"<html>down</html>"])
    task_id = json.loads(schedule(otf, "north", {"day": "d"}).output)["task_id"]
    failed = otf("tasks", "run", task_id)
    assert failed.exit_code == 1
    assert "FAILED after 2 poll(s)" in failed.output and "not JSON" in failed.output
    refused = schedule(otf, "north", {"day": "d"})  # a failed task stays failed
    assert (
        refused.exit_code == 1 and "a task that has ended is not scheduled again" in refused.output
    )
    assert store.get_task(task_id).state == TaskState.FAILED

    feed.script("/board/d/north.json", [{"games": 4, "over": True}])
    assert otf("tasks", "retry", task_id).output.startswith(f"scheduled {task_id} again at ")
    assert store.get_task(task_id).state == TaskState.SCHEDULED
    again = otf("tasks", "run", task_id)
    assert again.exit_code == 0 and f"{task_id} FINISHED after 3 poll(s)" in again.output
    task = store.get_task(task_id)
    assert task.attempt == 2 and task.state == TaskState.FINISHED
    history = [(h["state"], h["previous_state"]) for h in store.state_history(task_id)]
    assert ("SCHEDULED", "FAILED") in history
    refused = otf("tasks", "retry", task_id)
    assert refused.exit_code == 1 and "only a FAILED or CANCELLED task" in refused.output


@pytest.mark.parametrize(
    ("params", "needle"),
    [("[1, 2]", "--params must be a JSON object"), ("{nope", "--params is not valid JSON")],
)
def test_bad_params_are_one_line(otf, feed, params, needle):
    result = otf(
        "tasks",
        "schedule",
        "--type",
        "DAY_BOARD",
        "--key",
        "k",
        "--at",
        "2026-01-01T00:00Z",
        "--params",
        params,
    )
    assert result.exit_code == 1 and needle in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_a_missing_url_param_is_refused_when_scheduling(otf, feed):
    result = schedule(otf, "south")
    assert result.exit_code == 1 and "needs param(s) day" in result.output
