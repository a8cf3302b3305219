"""The webhook receiver of ``otf dev`` and the receiver example, against a real ``otf api`` on
the suite's PostgreSQL: requests signed with ``standardwebhooks`` over loopback HTTP, the
reports read back from the database and through the API."""

from __future__ import annotations

import base64
import json
import os
import secrets
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
from standardwebhooks import Webhook

from otf_dagster.core.store import tokens
from otf_dagster.exceptions import ConfigError
from otf_dagster.local import receiver as receiver_mod
from otf_dagster_tests.api.test_api import _rows, api  # noqa: F401 - api is a fixture
from otf_dagster_tests.helpers import MEDIA, start_task

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "webhook_receiver.py"


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def event(task_id: str, seq: int, kind: str, key: str = "g1") -> dict:
    return {
        "id": f"evt_{task_id}_{seq}", "seq": seq, "task_id": task_id, "task_runner_id": None,
        "task_type": MEDIA, "task_seq": seq, "kind": kind, "time": "2026-11-27T19:05:00Z",
        "payload": {"final": {"home": 124, "away": 97}} if kind == "game_final" else {},
        "key": key,
    }  # fmt: skip


def post(url: str, secret: str, body: object, *, msg_id: str = "evt_1") -> requests.Response:
    """POST ``body`` as the relay does: JSON, signed with ``secret`` per Standard Webhooks."""
    data = json.dumps(body).encode()
    now = datetime.now(UTC)
    headers = {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, now, data),
    }
    return requests.post(url, data=data, headers=headers, timeout=30)


def photo_state(db_url: str, task_id: str) -> str | None:
    states = {s[0]: s[1] for s in _rows(db_url, task_id)[0]}
    return states.get("photo")


class Lines(list):
    def __call__(self, line: str) -> None:
        self.append(line)


@pytest.fixture
def secret() -> str:
    return new_secret()


@pytest.fixture
def receiver(api, store, secret) -> Iterator[tuple[receiver_mod.Receiver, Lines]]:  # noqa: F811
    env = {"OTF_RECEIVER_SECRET": secret, "OTF_RECEIVER_TOKEN": tokens.create(store, "photo")}
    config = receiver_mod.ReceiverConfig.from_env("photo", api, environ=env)
    lines = Lines()
    running = receiver_mod.start(config, say=lines)
    yield running, lines
    assert running.stop() is True


def test_a_final_event_reports_finished_for_the_owner(receiver, api, db_url, store, secret):  # noqa: F811
    rx, lines = receiver
    task_id = start_task(store).task.task_id
    r = post(rx.url, secret, event(task_id, 1, "score_changed"))
    assert r.status_code == 200, r.text
    assert photo_state(db_url, task_id) is None  # not final: nothing reported
    batch = [event(task_id, 2, "period_ended"), event(task_id, 3, "game_final")]
    r = post(rx.url, secret, batch, msg_id=batch[0]["id"])
    assert r.status_code == 200, r.text
    assert r.json() == {"received": 2, "reported": 1}
    assert photo_state(db_url, task_id) == "FINISHED"
    services, _history, task = _rows(db_url, task_id)
    [(_, _, _, detail)] = [s for s in services if s[0] == "photo"]
    assert detail == {"id": f"evt_{task_id}_3", "seq": 3, "kind": "game_final", "key": "g1"}
    assert task[0] == "STARTED"  # caption has not reported yet
    token = tokens.create(store, "photo")
    got = requests.get(f"{api}/v1/tasks/{task_id}", headers={"Authorization": f"Bearer {token}"},
                       timeout=10).json()  # fmt: skip
    assert {s["service"]: s["state"] for s in got["services"]}["photo"] == "FINISHED"
    received = [line for line in lines if line.startswith("received ")]
    assert received == [
        f"received score_changed task={task_id} seq=1",
        f"received period_ended task={task_id} seq=2",
        f"received game_final task={task_id} seq=3",
    ]
    assert any(line.startswith(f"reported FINISHED for {task_id} as photo") for line in lines)
    # At least once: the same event again is a repeat, still 200.
    again = post(rx.url, secret, event(task_id, 3, "game_final"))
    assert again.status_code == 200 and again.json()["reported"] == 1
    # A report refused for good (no such task) is logged and answered 200: sending it again
    # would change nothing.
    gone = post(rx.url, secret, event("nba_game_media:nosuch", 1, "game_final"))
    assert gone.status_code == 200 and gone.json() == {"received": 1, "reported": 0}
    assert any(line.startswith("report FINISHED for nba_game_media:nosuch refused (404)")
               for line in lines)  # fmt: skip


def test_a_request_that_does_not_verify_gets_401_and_writes_nothing(receiver, db_url, store,
                                                                    secret):  # fmt: skip
    rx, lines = receiver
    task_id = start_task(store).task.task_id
    before = _rows(db_url, task_id)
    final = event(task_id, 1, "game_final")
    wrong = post(rx.url, new_secret(), final)  # signed with another secret
    data = json.dumps(final).encode()
    not_an_event = post(rx.url, secret, {"other": "body"})  # signed, but not an event
    assert not_an_event.status_code == 400
    now = datetime.now(UTC)
    sig = Webhook(secret).sign("evt_1", now, b'{"other": "body"}')
    tampered = requests.post(rx.url, data=data, timeout=10, headers={
        "webhook-id": "evt_1", "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": sig})  # fmt: skip
    unsigned = requests.post(rx.url, data=data, timeout=10)
    old = datetime.fromtimestamp(now.timestamp() - 3600, UTC)  # a replay an hour later
    stale = requests.post(rx.url, data=data, timeout=10, headers={
        "webhook-id": "evt_1", "webhook-timestamp": str(int(old.timestamp())),
        "webhook-signature": Webhook(secret).sign("evt_1", old, data)})  # fmt: skip
    for r in (wrong, tampered, unsigned, stale):
        assert r.status_code == 401, r.text
    assert _rows(db_url, task_id) == before
    refused = [line for line in lines if line.startswith("refused a request")]
    assert len(refused) == 4 and not any(line.startswith("received") for line in lines)
    assert not any(secret in line or secret[6:] in line for line in lines)


def test_an_unreachable_api_answers_503_so_the_relay_sends_again(store, db_url, media_types,
                                                                 secret):  # fmt: skip
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]  # nothing listens once the socket is closed
    env = {"OTF_RECEIVER_SECRET": secret, "OTF_RECEIVER_TOKEN": "otf_unused"}
    config = receiver_mod.ReceiverConfig.from_env(
        "photo", f"http://127.0.0.1:{closed}", environ=env
    )
    lines = Lines()
    rx = receiver_mod.start(config, say=lines)
    try:
        task_id = start_task(store).task.task_id
        r = post(rx.url, secret, event(task_id, 1, "game_final"))
        assert r.status_code == 503, r.text
        assert any("answering 503" in line for line in lines)
        assert photo_state(db_url, task_id) is None
    finally:
        rx.stop()


def test_bad_configuration_is_one_line_without_the_secret():
    good = {"OTF_RECEIVER_SECRET": new_secret(), "OTF_RECEIVER_TOKEN": "otf_x"}
    cases = [
        ("photo", "http://127.0.0.1:1", {"OTF_RECEIVER_TOKEN": "otf_x"}, "OTF_RECEIVER_SECRET"),
        ("photo", "http://127.0.0.1:1", {**good, "OTF_RECEIVER_SECRET": "whsec_"}, "not a"),
        ("photo", "http://127.0.0.1:1", {**good, "OTF_RECEIVER_TOKEN": ""}, "token create"),
        ("photo", "ftp://127.0.0.1", good, "http(s)"),
        ("photo", None, good, "--api-url"),
        ("Photo Service", "http://127.0.0.1:1", good, "not a service name"),
    ]
    for owner, url, env, words in cases:
        with pytest.raises(ConfigError) as err:
            receiver_mod.ReceiverConfig.from_env(owner, url, environ=env)
        assert words in str(err.value) and "\n" not in str(err.value)
        assert good["OTF_RECEIVER_SECRET"] not in str(err.value)
    ran = subprocess.run(
        [sys.executable, "-m", "otf_dagster.cli.receiver", "--owner", "photo",
         "--api-url", "http://127.0.0.1:1"],
        env={k: v for k, v in os.environ.items() if not k.startswith("OTF_RECEIVER")},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert ran.returncode == 1 and "Traceback" not in ran.stderr
    assert ran.stderr.strip().splitlines() == [
        "error: environment variable OTF_RECEIVER_SECRET is not set: export the endpoint's "
        "signing secret (whsec_...) in it"
    ]


def test_the_receiver_in_the_foreground(api, db_url, store, secret):  # noqa: F811
    env = os.environ | {"OTF_RECEIVER_SECRET": secret,
                        "OTF_RECEIVER_TOKEN": tokens.create(store, "photo")}  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "otf_dagster.cli.receiver", "--owner", "photo", "--api-url", api],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        first = proc.stdout.readline().strip()  # printed once the socket listens
        assert first.startswith("otf receiver listening on http://127.0.0.1:"), proc.stderr.read()
        url = first.split(" ")[4]
        task_id = start_task(store).task.task_id
        assert post(url, secret, event(task_id, 7, "game_final")).status_code == 200
        assert photo_state(db_url, task_id) == "FINISHED"
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert f"received game_final task={task_id} seq=7" in out
    assert secret not in out + err and env["OTF_RECEIVER_TOKEN"] not in out + err


def test_the_receiver_example_verifies(secret):
    env = os.environ | {"WEBHOOK_SECRET": secret, "PORT": "0"}
    proc = subprocess.Popen(
        [sys.executable, str(EXAMPLE)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        first = proc.stdout.readline().strip()
        assert first.startswith("listening on http://127.0.0.1:"), proc.stderr.read()
        url = first.split(" ")[2]
        one = event("nba_game_boxscore:g1", 1, "game_final")
        assert post(url, secret, one).status_code == 204
        batch = [event("t2", 2, "score_changed"), event("t2", 3, "period_ended")]
        assert post(url, secret, batch).status_code == 204
        assert post(url, new_secret(), event("t3", 4, "game_final")).status_code == 401
        # Each event is printed (flushed) before its 204 is sent, so the lines are there now:
        # read them while the example runs, rather than waiting for the pipe's end after a
        # SIGTERM (a CI run timed out there, the example's output complete).
        lines = [proc.stdout.readline().rstrip("\n") for _ in range(3)]
    finally:
        proc.kill()
        proc.wait(timeout=20)
        proc.stdout.close()
        proc.stderr.close()
    assert lines == [  # after the first line, read above
        "game_final nba_game_boxscore:g1 1 evt_nba_game_boxscore:g1_1",
        "score_changed t2 2 evt_t2_2",
        "period_ended t2 3 evt_t2_3",
    ]
