"""Hostile input to the `otf` command line: each gets one line of at most 300 characters on
stderr and exit code 1, never a traceback, never a 10 KB echo."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

from otf_dagster.cli import MAX_ERROR_CHARS, _register, cli, error_line
from otf_dagster.handlers.task_types import DEFAULTS_FILE

T = "NBA_GAME_BOXSCORE"
AT = "2026-01-01T00:00Z"
TYPE = '{name: X_Y, handler: nba_cdn.boxscore, url_template: "/b/{key}.json", poll_interval_seconds: %s}'


@pytest.fixture
def otf(db_url, monkeypatch):
    monkeypatch.setenv("OTF_DATABASE_URL", db_url)
    _register()
    CliRunner().invoke(cli, ["task-types", "apply", str(DEFAULTS_FILE)], catch_exceptions=False)

    def invoke(*args: str):
        return CliRunner().invoke(cli, list(args), catch_exceptions=False)

    return invoke


def refused(result, needle: str) -> str:
    """The one error line of a refused command (asserting the rule), for further checks."""
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    [line] = lines
    assert line.startswith("error: ") and len(line) <= MAX_ERROR_CHARS, line
    assert "Traceback" not in line and needle in line, line
    return line


def billion_laughs() -> str:
    doc = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        doc += f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]\n"
    return doc + "task_types: *i\n"  # 9**9 (387 million) values once expanded


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (f"task_types: [{TYPE % ('9' * 400)}]", "poll_interval_seconds 99999"),  # OverflowError
        (f"task_types: [{TYPE % ('9' * 5000)}]", "cannot be read"),  # past int's digit limit
        (billion_laughs(), "expands to more than"),
        ("task_types: " + "[" * 5000 + "]" * 5000, "nests too deep"),  # RecursionError
        ("task_types: " + "[" * 40 + "]" * 40, "nests deeper than 32"),
        ("task_types: &a [*a]", "refers to itself"),
        ("task_types: [a, b\n  c: d", "is not valid YAML: expected ','"),
        (f"task_types: [{TYPE % '10'}]\n#" + "x" * (2 << 20), "at most 1048576 are read"),
    ],
)
def test_hostile_task_type_files(otf, tmp_path, content, needle):
    path = tmp_path / "types.yaml"
    path.write_text(content)
    refused(otf("task-types", "apply", str(path)), needle)


def test_a_task_type_file_that_is_not_utf8(otf, tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes(f"task_types: [{TYPE % '10'}]  # café".encode("latin-1"))
    refused(otf("task-types", "apply", str(path)), "is not UTF-8 text (byte 0xe9")


def test_an_alias_that_is_not_a_bomb_still_works(otf, tmp_path, store):
    path = tmp_path / "types.yaml"
    path.write_text(
        "base: &base {handler: nba_cdn.boxscore, poll_interval_seconds: 10, "
        'url_template: "/b/{key}.json"}\n'
        "task_types: [{<<: *base, name: X_ONE}, {<<: *base, name: X_TWO}]\n"
    )
    result = otf("task-types", "apply", str(path))
    assert result.exit_code == 0, result.output
    assert store.get_task_type("X_TWO").poll_interval_seconds == 10


@pytest.mark.parametrize(
    ("detail", "needle"),
    [
        ("[" * 5000 + "]" * 5000, "nests deeper than 32 levels"),  # RecursionError
        ('{"a": ' * 40 + "1" + "}" * 40, "nests deeper than 32 levels"),
        ("[1, 2]", "must be a JSON object, not list"),
        ("{nope", "is not valid JSON"),
    ],
)
def test_hostile_details(otf, detail, needle):
    refused(
        otf("report", "nba:1", "--service", "photo", "--state", "FINISHED", "--detail", detail),
        needle,
    )


def test_a_ten_thousand_character_key_is_not_echoed(otf):
    line = refused(otf("tasks", "schedule", "--type", T, "--key", "k" * 10_000, "--at", AT), "")
    assert "10000 characters" in line and "must be text of 1 to 200" in line


@pytest.mark.parametrize("key", ["1234\n", "12\r34", "12\x0034", "12\t"])
def test_a_key_with_a_control_character_is_refused_before_the_database(otf, key):
    line = refused(
        otf("tasks", "schedule", "--type", T, "--key", key, "--at", AT), "control character"
    )
    assert "check constraint" not in line


def test_a_non_utf8_argument_is_refused_by_the_real_command(db_url, tmp_path):
    """Run as a user would: bytes that are not UTF-8 reach Python as lone surrogates."""
    otf = Path(sys.executable).with_name("otf")
    env = {**os.environ, "OTF_DATABASE_URL": db_url}
    for args in (
        [b"tasks", b"schedule", b"--type", T.encode(), b"--key", b"caf\xe9", b"--at", AT.encode()],
        [b"report", b"nba:\xff", b"--service", b"photo", b"--state", b"FINISHED"],
    ):
        proc = subprocess.run(
            [os.fsencode(otf), *args], env=env, capture_output=True, timeout=120, check=False
        )
        assert proc.returncode == 1 and proc.stdout == b""
        [line] = proc.stderr.decode("utf-8").splitlines()  # the line itself is valid UTF-8
        assert "is not valid UTF-8 text" in line and len(line) <= MAX_ERROR_CHARS, line


def set_state(db_url: str, task_id: str, state: str, error: str | None = None) -> None:
    with psycopg.connect(db_url) as conn:
        conn.execute(
            "UPDATE tasks SET state = %s, last_error = %s, attempt = 2 WHERE task_id = %s",
            (state, error, task_id),
        )


@pytest.mark.parametrize("state", ["FAILED", "FINISHED", "CANCELLED"])
def test_scheduling_an_ended_task_says_how_it_ended(otf, db_url, state):
    assert otf("tasks", "schedule", "--type", T, "--key", "g1", "--at", AT).exit_code == 0
    set_state(db_url, "nba_game_boxscore:g1", state, "unknown game: " + "x" * 500)
    line = refused(
        otf("tasks", "schedule", "--type", T, "--key", "g1", "--at", "2026-01-02T00:00Z"),
        f"task nba_game_boxscore:g1 is {state} (attempt 2)",
    )
    assert "unchanged" not in line and "is not scheduled again" in line


def test_scheduling_a_started_task_says_it_runs(otf, db_url):
    otf("tasks", "schedule", "--type", T, "--key", "g1", "--at", AT)
    set_state(db_url, "nba_game_boxscore:g1", "STARTED")
    result = otf("tasks", "schedule", "--type", T, "--key", "g1", "--at", "2026-01-02T00:00Z")
    assert result.exit_code == 0
    assert result.output.strip() == (
        "unchanged nba_game_boxscore:g1: already STARTED (attempt 2) since 2026-01-01T00:00:00+00:00"
    )


def test_the_error_line_rule():
    line = error_line("first\nsecond\r\n\tthird \x1b[31m" + "v" * 1000)
    assert "\n" not in line and "\x1b" not in line and line.startswith("error: first second")
    assert len(line) == MAX_ERROR_CHARS and line.endswith("…")
    masked = error_line("cannot connect to postgresql:///otf?user=u&password=hunter22 (refused)")
    assert "hunter22" not in masked and "password=***" in masked
    assert error_line("key 'ab\udcff'") == "error: key 'ab\\udcff'"
