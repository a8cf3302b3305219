"""The reports API (`otf api`) as a service uses it: the real CLI serving on a free loopback
port, requests over HTTP, the rows it writes read back from PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import requests

from otf_dagster.core.services import subscribe
from otf_dagster.core.store import TaskStore, tokens
from otf_dagster_tests.helpers import MEDIA, start_task

OTF = str(Path(sys.executable).with_name("otf"))


def _otf(db_url: str, *args: str) -> subprocess.CompletedProcess:
    env = os.environ | {"OTF_DATABASE_URL": db_url}
    return subprocess.run([OTF, *args], env=env, capture_output=True, text=True, timeout=60)


@pytest.fixture
def api(db_url: str, store: TaskStore, media_types) -> Iterator[str]:
    subscribe(store, "photo", MEDIA)
    subscribe(store, "caption", MEDIA)
    env = os.environ | {"OTF_DATABASE_URL": db_url}
    proc = subprocess.Popen(
        [OTF, "api", "--port", "0"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    line = proc.stdout.readline().strip()  # blocks until the socket is bound
    assert line.startswith("otf api listening on http://127.0.0.1:"), proc.stderr.read()
    yield line.rsplit(" ", 1)[1]
    proc.terminate()
    proc.wait(timeout=20)


def _rows(db_url: str, task_id: str) -> tuple[list, list, tuple]:
    """What a report writes: the service states, the state history (no times), the task."""
    with psycopg.connect(db_url) as c:
        services = c.execute(
            "SELECT service, state, attempt, detail FROM task_service_states "
            "WHERE task_id = %s ORDER BY service", (task_id,)).fetchall()  # fmt: skip
        history = c.execute(
            "SELECT service, state, previous_state, source, detail, attempt FROM task_states "
            "WHERE task_id = %s ORDER BY time, txid", (task_id,)).fetchall()  # fmt: skip
        task = c.execute(
            "SELECT state, attempt, last_error, finished_at IS NULL FROM tasks WHERE task_id = %s",
            (task_id,)).fetchone()  # fmt: skip
    return services, history, task


def _post(api: str, task_id: str, token: str | None, body: dict) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.post(
        f"{api}/v1/tasks/{task_id}/reports", json=body, headers=headers, timeout=10
    )


def test_a_report_through_the_api_equals_one_through_otf_report(api, db_url, store):
    by_api, by_cli = (
        start_task(store, key="g1").task.task_id,
        start_task(store, key="g2").task.task_id,
    )
    token = tokens.create(store, "photo")
    steps = [("STARTED", {"url": "https://example.org/p.jpg"}), ("FINISHED", {"ok": True})]
    for state, detail in steps:
        r = _post(api, by_api, token, {"service": "photo", "state": state, "detail": detail})
        assert r.status_code == 200, r.text
        assert r.json()["outcome"] == "applied"
        done = _otf(db_url, "report", by_cli, "--service", "photo", "--state", state,
                    "--detail", __import__("json").dumps(detail))  # fmt: skip
        assert done.returncode == 0, done.stderr
    api_rows, cli_rows = _rows(db_url, by_api), _rows(db_url, by_cli)
    assert api_rows == cli_rows
    assert [s[:2] for s in api_rows[0]] == [("photo", "FINISHED")]
    got = requests.get(f"{api}/v1/tasks/{by_api}", headers={"Authorization": f"Bearer {token}"},
                       timeout=10).json()  # fmt: skip
    assert got["state"] == "STARTED" and got["attempt"] == 1
    assert {s["service"]: s["state"] for s in got["services"]} == {
        "photo": "FINISHED"}  # fmt: skip


def test_refused_reports_write_nothing(api, db_url, store):
    task_id = start_task(store).task.task_id
    photo, caption = tokens.create(store, "photo"), tokens.create(store, "caption")
    revoked = tokens.create(store, "photo")
    tokens.revoke(store, revoked[: tokens.PREFIX_CHARS])
    before = _rows(db_url, task_id)
    body = {"service": "photo", "state": "FINISHED"}
    cases = [
        (None, task_id, body, 401),
        ("otf_not-a-real-token", task_id, body, 401),
        (revoked, task_id, body, 401),
        (caption, task_id, body, 403),  # caption's token, photo's name
        (photo, "nba_game_media:nosuchgame", body, 404),
        (photo, task_id, {"service": "photo", "state": "DONE"}, 409),
        (photo, task_id, {"service": "photo"}, 400),
    ]
    for token, tid, payload, status in cases:
        r = _post(api, tid, token, payload)
        assert r.status_code == status, (token and token[:12], payload, r.text)
        assert r.json()["error"]
    raw = requests.post(f"{api}/v1/tasks/{task_id}/reports", data=b"{not json",
                        headers={"Authorization": f"Bearer {photo}"}, timeout=10)  # fmt: skip
    assert raw.status_code == 400
    assert _rows(db_url, task_id) == before
    assert requests.get(f"{api}/v1/tasks/{task_id}", timeout=10).status_code == 401


def test_tokens_are_stored_hashed_and_never_listed(db_url, store, media_types):
    subscribe(store, "photo", MEDIA)
    made = _otf(db_url, "services", "token", "create", "photo")
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    assert token.startswith("otf_") and len(token) > 40
    assert tokens.authenticate(store, token) == "photo"
    with psycopg.connect(db_url) as c:
        dump = repr(c.execute("SELECT * FROM service_tokens").fetchall())
    secret = token[tokens.PREFIX_CHARS :]  # no 8 characters of the secret part are kept
    assert not [secret[i : i + 8] for i in range(len(secret) - 7) if secret[i : i + 8] in dump]
    listed = _otf(db_url, "services", "token", "list", "--json")
    assert listed.returncode == 0 and token[:12] in listed.stdout and token not in listed.stdout
    unknown = _otf(db_url, "services", "token", "create", "nobody")
    assert unknown.returncode == 1
    assert unknown.stderr.strip().startswith("error: unknown owner 'nobody'")
    assert len(unknown.stderr.strip().splitlines()) == 1


def test_openapi_describes_both_routes(api):
    doc = requests.get(f"{api}/openapi.json", timeout=10).json()
    assert doc["openapi"].startswith("3.")
    post = doc["paths"]["/v1/tasks/{task_id}/reports"]["post"]
    schema = post["requestBody"]["content"]["application/json"]["schema"]
    assert schema["properties"]["state"]["enum"] == ["STARTED", "FINISHED", "FAILED"]
    assert {"200", "401", "403", "404", "409"} <= set(post["responses"])
    assert "get" in doc["paths"]["/v1/tasks/{task_id}"]
