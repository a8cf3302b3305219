"""`otf endpoints ...` as outside scripts use it, through click on a real database, with loopback
webhook receivers that verify with standardwebhooks: refusals at `add` (one line, nothing
written), list/show health and the dead-letter view, pause/resume/remove, replay, secret
rotation, and no secret in any output."""

from __future__ import annotations

import base64
import json

import pytest
from click.testing import CliRunner
from standardwebhooks import Webhook

from otf_dagster import cli as cli_module
from otf_dagster.core.delivery.relay import RelaySettings, make_sink, run_cycle
from otf_dagster.core.services import subscribe
from otf_dagster.core.store import TaskStore
from otf_dagster.core.store import delivery as dstore
from otf_dagster.vocab.tasks import EventRecord
from otf_dagster_tests.core.delivery.receivers import Answer, Receiver
from otf_dagster_tests.helpers import MEDIA

SECRET = "whsec_" + base64.b64encode(b"cli-endpoints-secret-32-bytes!!!").decode()
SECRET_B64 = SECRET.removeprefix("whsec_")
OWNER = "photo"
SETTINGS = RelaySettings(retry_schedule=(0, 0, 0, 0, 0))


@pytest.fixture
def outputs() -> list[str]:
    """Every stdout and stderr the test's commands printed."""
    return []


@pytest.fixture
def otf(db_url, monkeypatch, outputs):
    monkeypatch.setenv("OTF_DATABASE_URL", db_url)
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    cli_module._register()
    runner = CliRunner()

    def run(*args: str):
        result = runner.invoke(cli_module.cli, list(args), catch_exceptions=False)
        outputs.extend([result.stdout, result.stderr])
        return result

    yield run
    assert_no_secret(outputs)


def assert_no_secret(outputs: list[str], *secrets: str) -> None:
    text = "\n".join(outputs)
    for secret in (SECRET, SECRET_B64, *secrets):
        assert secret not in text, "a secret was printed"
        assert secret.removeprefix("whsec_") not in text, "a secret was printed"


@pytest.fixture
def owner(store, media_types):
    subscribe(store, OWNER, MEDIA)
    return OWNER


@pytest.fixture
def receiver():
    r = Receiver(SECRET)
    yield r
    r.close()


def append(store: TaskStore, tasks: int, per_task: int, *, start: int = 1) -> None:
    """One transaction: ``per_task`` events for each of ``tasks`` tasks (one event time)."""
    store.append_events(
        [
            (f"t{t}", "run-1", MEDIA, EventRecord(i, "score_changed", {"i": i}))
            for i in range(start, start + per_task)
            for t in range(tasks)
        ]
    )


def ok(result) -> str:
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    return result.stdout


def one_line_error(result, *matches: str) -> str:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for match in matches:
        assert match in lines[0], lines[0]
    return lines[0]


def add_webhook(otf, url: str, *extra: str) -> int:
    out = ok(otf("endpoints", "add", OWNER, "--webhook", url, "--secret-env", "HOOK_SECRET",
                 "--from-start", "--json", *extra))  # fmt: skip
    row = json.loads(out)
    return row["endpoint_id"]


def deliver(store: TaskStore, env: dict[str, str], *, cycles: int = 50) -> None:
    """Run relay cycles over the endpoints the relay may lease (active ones) until each owes
    nothing (or ``cycles`` ran): what `otf relay` does, one step at a time."""
    held = dstore.claim_endpoints(store, "relay-test", 300, 100)
    for endpoint in held:
        eid = endpoint["endpoint_id"]
        sink = make_sink(endpoint, SETTINGS, env=env)
        try:
            for _ in range(cycles):
                current = dstore.read_leased(store, eid, "relay-test")
                result = run_cycle(store, current, sink, holder="relay-test", settings=SETTINGS)
                counts = dstore.lag(store, eid)
                if result.failed or (counts["unsent"] == 0 and counts["pending"] == 0):
                    break
        finally:
            sink.close()


def endpoint_rows(otf, *extra: str) -> list[dict]:
    return json.loads(ok(otf("endpoints", "list", "--json", *extra)))


# --- add: refusals ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "env", "matches"),
    [
        (["--webhook", "ftp://example.com/hooks", "--secret-env", "HOOK_SECRET"], {},
         ["'ftp://example.com/hooks' is not http(s)"]),
        (["--webhook", "example.com/hooks", "--secret-env", "HOOK_SECRET"], {},
         ["'example.com/hooks' is not http(s)"]),
        (["--webhook", "http://169.254.169.254/latest", "--secret-env", "HOOK_SECRET"], {},
         ["link-local", "--allow-link-local"]),
        (["--nats-subject", "otf.*"], {}, ["'otf.*'", "wildcard"]),
        (["--nats-subject", "otf.events.>"], {}, ["'otf.events.>'", "wildcard"]),
        (["--webhook", "http://127.0.0.1:9/hooks"], {}, ["--secret-env VAR"]),
        (["--webhook", "http://127.0.0.1:9/hooks", "--secret-env", "OTF_NOT_SET_ANYWHERE"], {},
         ["OTF_NOT_SET_ANYWHERE is not set"]),
        (["--webhook", "http://127.0.0.1:9/hooks", "--secret-env", "BAD_SECRET"],
         {"BAD_SECRET": "hunter2-plain-password"}, ["BAD_SECRET does not hold a whsec_"]),
        (["--webhook", "http://127.0.0.1:9/hooks", "--secret-env", "BAD_SECRET"],
         {"BAD_SECRET": "whsec_@@not-base64@@"}, ["BAD_SECRET holds a whsec_ secret that is not"]),
        (["--webhook", "http://127.0.0.1:9/hooks", "--secret-env", SECRET], {},
         ["--secret-env", "not an environment variable name"]),
        (["--nats-subject", "otf.events", "--nats-url", "nats://u:natspass1@127.0.0.1:4222/x"],
         {}, ["--nats-url"]),
        (["--webhook", "http://127.0.0.1:9/h", "--nats-subject", "otf.events"], {},
         ["exactly one of --webhook URL or --nats-subject"]),
    ],
    ids=["ftp", "no-scheme", "link-local", "star", "gt", "no-secret-env", "unset-var",
         "not-whsec", "bad-base64", "secret-as-name", "nats-url-creds", "both"],
)  # fmt: skip
def test_add_refuses_in_one_line_and_writes_nothing(otf, store, owner, monkeypatch, outputs,
                                                    args, env, matches):  # fmt: skip
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    one_line_error(otf("endpoints", "add", OWNER, *args), *matches)
    assert dstore.list_endpoints(store, include_removed=True) == []
    assert_no_secret(outputs, "hunter2-plain-password", "natspass1", "@@not-base64@@")


def test_add_refuses_an_unknown_owner_and_writes_nothing(otf, store, owner):
    one_line_error(
        otf(
            "endpoints",
            "add",
            "nobody",
            "--webhook",
            "http://127.0.0.1:9/hooks",
            "--secret-env",
            "HOOK_SECRET",
        ),  # fmt: skip
        "unknown owner 'nobody'",
        "otf subscriptions add nobody",
    )
    one_line_error(
        otf("endpoints", "add", "nobody", "--nats-subject", "otf.events"), "unknown owner"
    )
    assert dstore.list_endpoints(store, include_removed=True) == []


# --- add, list, show ---------------------------------------------------------------------------


def test_add_webhook_and_nats_then_list_shows_their_health(otf, store, owner, receiver):
    append(store, 2, 3)
    out = ok(otf("endpoints", "add", OWNER, "--webhook", receiver.url, "--secret-env",
                 "HOOK_SECRET", "--from-start", "--kind", "score_changed"))  # fmt: skip
    [hook] = dstore.list_endpoints(store)
    assert out.strip() == f"endpoint {hook['endpoint_id']}: photo -> webhook {receiver.url}"
    assert hook["secret_envs"] == ["HOOK_SECRET"] and hook["kinds"] == ["score_changed"]
    added = json.loads(ok(otf("endpoints", "add", OWNER, "--nats-subject", "otf.photo",
                              "--nats-url", "nats://127.0.0.1:4222", "--json")))  # fmt: skip
    assert added["sink"] == "nats" and added["nats_subject"] == "otf.photo"
    assert added["url"] == "nats://127.0.0.1:4222" and added["secret_envs"] == []

    rows = endpoint_rows(otf)
    assert [r["endpoint_id"] for r in rows] == [hook["endpoint_id"], added["endpoint_id"]]
    for key in (
        "endpoint_id",
        "owner",
        "sink",
        "target",
        "state",
        "lag",
        "pending",
        "dead",
        "delivered",
        "position",
        "last_success_at",
        "last_failure_at",
        "last_error",
    ):
        assert all(key in r for r in rows), key  # fmt: skip
    webhook_row, nats_row = rows
    assert webhook_row["sink"] == "webhook" and webhook_row["target"] == receiver.url
    assert nats_row["sink"] == "nats" and nats_row["target"] == "otf.photo"
    assert webhook_row["state"] == "active" and webhook_row["lag"] == 6  # --from-start
    assert nats_row["lag"] == 0  # from now on
    assert webhook_row["last_success_at"] is None and webhook_row["last_failure_at"] is None
    assert endpoint_rows(otf, "--owner", "caption") == []

    ok(otf("endpoints", "pause", str(added["endpoint_id"])))  # only the webhook is delivered
    deliver(store, {"HOOK_SECRET": SECRET})
    [row] = [r for r in endpoint_rows(otf) if r["sink"] == "webhook"]
    assert row["lag"] == 0 and row["delivered"] == 6 and row["state"] == "active"
    assert row["last_success_at"] is not None and row["last_failure_at"] is None

    receiver.answer = lambda events, n: Answer(status=500, body=b"down")
    append(store, 1, 1, start=10)
    deliver(store, {"HOOK_SECRET": SECRET})
    [row] = [r for r in endpoint_rows(otf) if r["sink"] == "webhook"]
    assert row["state"] == "failing" and row["lag"] == 1 and row["pending"] == 1
    assert row["last_failure_at"] is not None and "answered 500" in row["last_error"]
    table = ok(otf("endpoints", "list"))
    assert "failing" in table and receiver.url in table and "HOOK_SECRET" not in table


def test_show_lists_failed_attempts_with_status_and_the_start_of_the_response(
    otf, store, owner, receiver
):
    receiver.answer = lambda events, n: Answer(
        status=500, body=b"database is down: try again later" + b"x" * 2000
    )
    append(store, 2, 2)
    eid = add_webhook(otf, receiver.url)
    deliver(store, {"HOOK_SECRET": SECRET})  # one cycle: the first failure ends it
    shown = json.loads(ok(otf("endpoints", "show", str(eid), "--json")))
    assert shown["endpoint"]["endpoint_id"] == eid
    assert shown["endpoint"]["state"] == "failing" and shown["endpoint"]["lag"] == 4
    [attempt] = shown["failed_attempts"]
    assert attempt["status"] == 500 and attempt["attempt"] == 1
    assert attempt["seq"] == 1 and attempt["task_id"] == "t0"
    assert attempt["response_start"].startswith("database is down: try again later")
    assert len(attempt["response_start"]) <= 512
    assert "answered 500" in attempt["error"]

    deliver(store, {"HOOK_SECRET": SECRET})  # its retry (schedule 0): attempt 2
    text = ok(otf("endpoints", "show", str(eid)))
    assert "failed attempts (newest first):" in text
    lines = text.split("failed attempts (newest first):")[1].strip().splitlines()
    assert len(lines) == 4  # header, rule, two attempts
    assert " 500 " in lines[2] and "database is down" in lines[2]
    assert "HOOK_SECRET" in text  # the variable's name is shown, its value never
    one_line_error(otf("endpoints", "show", "999"), "no endpoint 999")


# --- pause, resume, remove ---------------------------------------------------------------------


def test_pause_resume_remove(otf, store, owner, receiver):
    env = {"HOOK_SECRET": SECRET}
    append(store, 2, 1)
    eid = add_webhook(otf, receiver.url)
    deliver(store, env)
    assert len(receiver.accepted()) == 2

    assert ok(otf("endpoints", "pause", str(eid))).strip() == f"endpoint {eid} (photo) is paused"
    append(store, 2, 1, start=2)
    deliver(store, env)  # the relay leases active endpoints only
    assert len(receiver.accepted()) == 2
    [row] = endpoint_rows(otf)
    assert row["state"] == "paused" and row["lag"] == 2

    assert ok(otf("endpoints", "resume", str(eid))).strip() == f"endpoint {eid} (photo) is active"
    deliver(store, env)  # what it missed, from where it stopped
    assert [e["id"] for e in receiver.accepted()] == ["evt_1", "evt_2", "evt_3", "evt_4"]

    assert ok(otf("endpoints", "remove", str(eid))).strip() == f"endpoint {eid} (photo) is removed"
    assert endpoint_rows(otf) == []
    [gone] = endpoint_rows(otf, "--all")
    assert gone["endpoint_id"] == eid and gone["state"] == "removed"
    append(store, 1, 1, start=3)
    deliver(store, env)
    assert len(receiver.accepted()) == 4
    one_line_error(otf("endpoints", "resume", str(eid)), f"no endpoint {eid} (or it was removed)")
    one_line_error(otf("endpoints", "pause", "999"), "no endpoint 999")


# --- replay --------------------------------------------------------------------------------------


def event_times(store: TaskStore) -> dict[int, object]:
    rows = store.run(
        "read event times",
        lambda c: c.execute("SELECT seq, time FROM task_events ORDER BY seq").fetchall(),
    )
    return {r["seq"]: r["time"] for r in rows}


def test_replay_from_seq_since_until_sends_events_again_with_their_ids(otf, store, owner, receiver):
    env = {"HOOK_SECRET": SECRET}
    append(store, 2, 2)  # seqs 1-4, one event time
    append(store, 2, 2, start=3)  # seqs 5-8, another transaction: a later event time
    times = event_times(store)
    assert times[4] < times[5], "the two batches share an event time"
    eid = add_webhook(otf, receiver.url)
    deliver(store, env)
    first = {e["id"]: e for e in receiver.accepted()}
    assert list(first) == [f"evt_{s}" for s in range(1, 9)]

    def replayed(*args: str) -> list[dict]:
        before = len(receiver.accepted())
        out = ok(otf("endpoints", "replay", str(eid), *args))
        deliver(store, env)
        again = receiver.accepted()[before:]
        assert out.strip() == f"endpoint {eid}: {len(again)} event(s) queued again"
        for e in again:
            assert e == first[e["id"]], "a replayed event differs from its first delivery"
        return again

    assert [e["seq"] for e in replayed("--from-seq", "6")] == [6, 7, 8]
    since = times[5].isoformat()
    assert [e["seq"] for e in replayed("--since", since)] == [5, 6, 7, 8]
    assert [e["seq"] for e in replayed("--until", since)] == [1, 2, 3, 4]
    assert [e["seq"] for e in replayed("--from-seq", "2", "--until", since)] == [2, 3, 4]
    per_task = [e["task_id"] for e in replayed("--from-seq", "1")]
    assert len(per_task) == 8
    row = endpoint_rows(otf)[0]
    assert row["lag"] == 0 and row["dead"] == 0

    one_line_error(otf("endpoints", "replay", str(eid)), "--from-seq N, --since TIME")
    one_line_error(otf("endpoints", "replay", str(eid), "--since", "yesterday"),
                   "--since 'yesterday' is not an ISO time")  # fmt: skip
    one_line_error(otf("endpoints", "replay", "999", "--from-seq", "1"), "no endpoint 999")


# --- secrets -----------------------------------------------------------------------------------


def test_secret_rotation_signs_with_both_and_each_verifies(otf, store, owner, monkeypatch, outputs):
    old = ok(otf("endpoints", "secret")).strip()
    new = ok(otf("endpoints", "secret")).strip()
    assert old != new
    for s in (old, new):
        assert s.startswith("whsec_") and len(base64.b64decode(s.removeprefix("whsec_"))) == 32
    outputs.clear()  # `secret` prints a secret by design; nothing else may
    monkeypatch.setenv("HOOK_OLD", old)
    monkeypatch.setenv("HOOK_NEW", new)
    receiver = Receiver(old)
    try:
        append(store, 1, 2)
        ok(otf("endpoints", "add", OWNER, "--webhook", receiver.url, "--secret-env", "HOOK_OLD",
               "--secret-env", "HOOK_NEW", "--from-start"))  # fmt: skip
        deliver(store, {"HOOK_OLD": old, "HOOK_NEW": new})
        assert len(receiver.requests) == 2
        for request in receiver.requests:
            assert request.verified, "the old secret's receiver refused it"
            signatures = request.headers["webhook-signature"].split(" ")
            assert len(signatures) == 2 and all(s.startswith("v1,") for s in signatures)
            for secret in (old, new):
                data = Webhook(secret).verify(request.body, request.headers)
                assert data["id"] == request.events[0]["id"]
        ok(otf("endpoints", "list"))
        ok(otf("endpoints", "list", "--json"))
        ok(otf("endpoints", "show", "1", "--json"))
        assert_no_secret(outputs, old, new)
    finally:
        receiver.close()


def test_no_command_prints_a_secret(otf, store, owner, receiver, outputs, monkeypatch):
    """Every command that touches a webhook endpoint, on success and on failure: the secret's
    value (with or without its whsec_ prefix) is in no stdout or stderr."""
    receiver.answer = lambda events, n: Answer(status=500, body=b"nope")
    append(store, 1, 2)
    eid = add_webhook(otf, receiver.url, "--batch", "2")
    deliver(store, {"HOOK_SECRET": SECRET})
    for args in (["list"], ["list", "--json"], ["list", "--all"], ["show", str(eid)],
                 ["show", str(eid), "--json"], ["pause", str(eid)], ["resume", str(eid)],
                 ["replay", str(eid), "--from-seq", "1"]):  # fmt: skip
        ok(otf("endpoints", *args))
    one_line_error(otf("endpoints", "add", OWNER, "--webhook", receiver.url,
                       "--secret-env", SECRET))  # fmt: skip
    monkeypatch.setenv("OTHER_SECRET", SECRET_B64)  # the secret without its prefix
    one_line_error(otf("endpoints", "add", OWNER, "--webhook", receiver.url,
                       "--secret-env", "OTHER_SECRET"), "OTHER_SECRET")  # fmt: skip
    assert len(outputs) >= 20
    assert_no_secret(outputs)
