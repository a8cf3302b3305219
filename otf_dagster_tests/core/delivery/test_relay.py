"""The relay against a real PostgreSQL and loopback receivers that verify with standardwebhooks:
at least once, in order per task, retries on a schedule, Retry-After, 410, the 5-day disable,
leases, and receivers that misbehave."""

from __future__ import annotations

import base64
import os
import threading
import time
from collections import defaultdict

import pytest

from otf_dagster.core.delivery import relay as relay_mod
from otf_dagster.core.delivery.relay import Relay, RelaySettings, make_sink, run_cycle
from otf_dagster.core.delivery.webhook import WebhookSink
from otf_dagster.core.services import subscribe
from otf_dagster.core.store import TaskStore
from otf_dagster.core.store import delivery as dstore
from otf_dagster.exceptions import ConfigError
from otf_dagster.vocab.tasks import EventRecord
from otf_dagster_tests.core.delivery.receivers import Answer, Receiver
from otf_dagster_tests.helpers import MEDIA, wait_for

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()
ENV = {"HOOK_SECRET": SECRET}
OWNER = "photo"


def append(store: TaskStore, tasks: int, per_task: int, *, start: int = 1) -> None:
    """``per_task`` events for each of ``tasks`` tasks, interleaved across tasks."""
    rows = [
        (f"t{t}", "run-1", MEDIA, EventRecord(start + i, "score_changed", {"i": start + i}))
        for i in range(per_task)
        for t in range(tasks)
    ]
    for k in range(0, len(rows), 500):
        store.append_events(rows[k : k + 500])


@pytest.fixture
def owner(store, media_types):
    subscribe(store, OWNER, MEDIA)
    return OWNER


@pytest.fixture
def receiver():
    r = Receiver(SECRET)
    yield r
    r.close()


def webhook_endpoint(store, url, **kw):
    return dstore.add_endpoint(
        store, owner=OWNER, sink="webhook", url=url, secret_envs=["HOOK_SECRET"],
        from_start=True, **kw,
    )  # fmt: skip


class Clock:
    def __init__(self, t: float = 1_800_000_000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


def lease(store, holder="relay-a"):
    return {e["endpoint_id"]: e for e in dstore.claim_endpoints(store, holder, 300, 100)}


def cycle(store, eid, sink, settings, clock, holder="relay-a"):
    endpoint = dstore.read_leased(store, eid, holder)
    assert endpoint is not None
    return run_cycle(store, endpoint, sink, holder=holder, settings=settings, clock=clock)


def per_task_in_order(events) -> dict[str, list[int]]:
    seqs = defaultdict(list)
    for e in events:
        seqs[e["task_id"]].append(e["task_seq"])
    return seqs


def test_every_event_arrives_signed_once_accepted_in_order_per_task_through_500s_and_drops(
    store, owner, receiver
):
    """10 tasks x 200 events; the receiver answers 500 to every third request and drops every
    seventh connection: every id is accepted, each exactly once, each task's in order."""

    def answer(events, n):
        if n % 7 == 0:
            return Answer(drop=True)
        return Answer(status=500, body=b"busy") if n % 3 == 0 else Answer()

    receiver.answer = answer
    append(store, 10, 200)
    eid = webhook_endpoint(store, receiver.url, batch_size=1)["endpoint_id"]
    lease(store)
    settings = RelaySettings(retry_schedule=(0,) * 50, read_batch=200)
    sink = make_sink(dstore.get_endpoint(store, eid), settings, env=ENV)
    for _ in range(20_000):
        cycle(store, eid, sink, settings, time.time)
        counts = dstore.lag(store, eid)
        if counts["unsent"] == 0 and counts["pending"] == 0:
            break
    sink.close()
    accepted = receiver.accepted()
    assert all(r.verified for r in receiver.requests)
    ids = [e["id"] for e in accepted]
    assert len(ids) == 2000 and len(set(ids)) == 2000
    for task, seqs in per_task_in_order(accepted).items():
        assert seqs == list(range(1, 201)), task
    failed = [r for r in receiver.requests if r.status != 200]
    assert failed, "the receiver failed some requests"
    # The retried ones carried the same id as their first try.
    assert {e["id"] for r in failed for e in r.events} <= set(ids)
    assert dstore.lag(store, eid) == {"unsent": 0, "pending": 0, "dead": 0}


def test_a_failing_event_holds_back_its_task_only_and_retries_on_the_schedule(
    store, owner, receiver
):
    """Task t0's events fail; t1's go through. t0's head is retried at 0, 5 s, 300 s (fake clock),
    then dead; its later events follow, in order, once the receiver takes them."""
    state = {"refuse": True}

    def answer(events, n):
        return Answer(status=500) if state["refuse"] and events[0]["task_id"] == "t0" else Answer()

    receiver.answer = answer
    append(store, 2, 3)  # t0: 1,2,3 ; t1: 1,2,3
    eid = webhook_endpoint(store, receiver.url)["endpoint_id"]
    lease(store)
    clock = Clock()
    settings = RelaySettings(retry_schedule=(0, 5, 300))
    sink = make_sink(dstore.get_endpoint(store, eid), settings, env=ENV, clock=clock)

    def tries_of_t0_head():
        return sum(1 for r in receiver.requests if r.events[0]["id"] == "evt_1")

    for _ in range(6):
        cycle(store, eid, sink, settings, clock)
    assert [e["task_seq"] for e in receiver.accepted() if e["task_id"] == "t1"] == [1, 2, 3]
    assert not [e for e in receiver.accepted() if e["task_id"] == "t0"]
    assert tries_of_t0_head() == 1
    clock.t += 4.9
    cycle(store, eid, sink, settings, clock)
    assert tries_of_t0_head() == 1, "retried before its 5 s"
    clock.t += 0.2
    cycle(store, eid, sink, settings, clock)
    assert tries_of_t0_head() == 2
    clock.t += 299
    cycle(store, eid, sink, settings, clock)
    assert tries_of_t0_head() == 2
    clock.t += 2
    state["refuse"] = False
    for _ in range(5):
        cycle(store, eid, sink, settings, clock)
    assert tries_of_t0_head() == 3
    assert [e["task_seq"] for e in receiver.accepted() if e["task_id"] == "t0"] == [1, 2, 3]
    failures = dstore.failed_attempts(store, eid)
    assert [f["attempt"] for f in failures if f["seq"] == 1] == [2, 1]
    assert failures[0]["status"] == 500


def test_exhausted_attempts_go_dead_and_release_the_task(store, owner, receiver):
    receiver.answer = lambda events, n: (
        Answer(status=500) if events[0]["task_seq"] == 1 else Answer()
    )
    append(store, 1, 3)
    eid = webhook_endpoint(store, receiver.url)["endpoint_id"]
    lease(store)
    clock = Clock()
    settings = RelaySettings(retry_schedule=(0, 1))
    sink = make_sink(dstore.get_endpoint(store, eid), settings, env=ENV, clock=clock)
    for _ in range(3):
        cycle(store, eid, sink, settings, clock)
        clock.t += 2
    for _ in range(3):
        cycle(store, eid, sink, settings, clock)
    assert [e["task_seq"] for e in receiver.accepted()] == [2, 3]
    assert dstore.lag(store, eid) == {"unsent": 0, "pending": 0, "dead": 1}
    # replay puts it back with its same id
    receiver.answer = lambda events, n: Answer()
    assert dstore.replay(store, eid, from_seq=1) == 3
    for _ in range(4):
        cycle(store, eid, sink, settings, clock)
    assert [e["id"] for e in receiver.accepted()][-3:] == ["evt_1", "evt_2", "evt_3"]


def test_retry_after_holds_the_endpoint(store, owner, receiver):
    state = {"n": 0}

    def answer(events, n):
        state["n"] += 1
        return Answer(status=429, headers={"Retry-After": "120"}) if state["n"] == 1 else Answer()

    receiver.answer = answer
    append(store, 2, 1)
    eid = webhook_endpoint(store, receiver.url)["endpoint_id"]
    lease(store)
    clock = Clock()
    settings = RelaySettings(retry_schedule=(0, 1, 1))
    sink = make_sink(dstore.get_endpoint(store, eid), settings, env=ENV, clock=clock)
    r = cycle(store, eid, sink, settings, clock)
    assert r.failed == 1
    clock.t += 60
    assert cycle(store, eid, sink, settings, clock).wait == pytest.approx(60)
    assert len(receiver.requests) == 1, "sent during Retry-After"
    clock.t += 61
    for _ in range(3):
        cycle(store, eid, sink, settings, clock)
    assert sorted(e["id"] for e in receiver.accepted()) == ["evt_1", "evt_2"]


def test_410_disables_at_once(store, owner, receiver):
    receiver.answer = lambda events, n: Answer(status=410, body=b"gone for good")
    append(store, 1, 2)
    eid = webhook_endpoint(store, receiver.url)["endpoint_id"]
    lease(store)
    settings = RelaySettings()
    sink = make_sink(dstore.get_endpoint(store, eid), settings, env=ENV)
    cycle(store, eid, sink, settings, time.time)
    endpoint = dstore.get_endpoint(store, eid)
    assert endpoint["state"] == "disabled" and "410" in endpoint["state_reason"]
    assert dstore.read_leased(store, eid, "relay-a")["state"] == "disabled"
    assert dstore.failed_attempts(store, eid)[0]["response_start"] == "gone for good"


def test_failing_for_days_warns_then_disables(store, owner, receiver):
    receiver.answer = lambda events, n: Answer(status=500)
    append(store, 1, 1)
    eid = webhook_endpoint(store, receiver.url)["endpoint_id"]
    lease(store)
    clock = Clock()
    settings = RelaySettings(retry_schedule=(0,) + (3600.0,) * 200)
    sink = make_sink(dstore.get_endpoint(store, eid), settings, env=ENV, clock=clock)
    cycle(store, eid, sink, settings, clock)
    h = relay_mod.health(store, dstore.get_endpoint(store, eid), settings, now=clock.t + 3600)
    assert h["state"] == "failing" and h["lag"] == 1
    clock.t += 2 * 86400
    cycle(store, eid, sink, settings, clock)
    h = relay_mod.health(store, dstore.get_endpoint(store, eid), settings, now=clock.t)
    assert h["state"] == "warning"
    clock.t += 3 * 86400 + 1
    cycle(store, eid, sink, settings, clock)
    endpoint = dstore.get_endpoint(store, eid)
    assert endpoint["state"] == "disabled" and "5 days" in endpoint["state_reason"]


def test_redirects_hangs_and_huge_bodies_are_failures_that_cost_little(store, owner, receiver):
    answers = iter(
        [
            Answer(status=302, headers={"Location": "http://elsewhere/"}),
            Answer(delay=3.0),  # headers after the 1 s timeout
            Answer(status=500, huge=300 * 1024 * 1024),
        ]
    )
    receiver.answer = lambda events, n: next(answers, Answer())
    settings = RelaySettings(retry_schedule=(0,) * 10, timeout=1.0)
    sink = WebhookSink(receiver.url, [SECRET], timeout=1.0)
    from otf_dagster.core.delivery.sink import EventBody

    event = EventBody(
        "evt_1", 1, "t0", "run-1", MEDIA, 1, "score_changed", "2026-01-01T00:00:00Z", {}, "k"
    )
    redirect = sink.send([event])
    assert redirect.accepted == 0 and redirect.status == 302 and "redirect" in redirect.error
    started = time.monotonic()
    slow = sink.send([event])
    assert slow.accepted == 0 and "within 1 s" in slow.error
    huge = sink.send([event])
    elapsed = time.monotonic() - started
    assert huge.accepted == 0 and huge.status == 500 and len(huge.response_start) <= 512
    assert elapsed < 60  # generous: the 300 MB body is never read (it would take far longer)
    assert sink.send([event]).accepted == 1
    del settings


def test_link_local_targets_are_refused_unless_allowed():
    with pytest.raises(ConfigError, match="link-local"):
        WebhookSink("http://169.254.169.254/latest", [SECRET])
    sink = WebhookSink(
        "http://169.254.169.254/latest", [SECRET], allow_link_local=True, timeout=0.2
    )
    sink.close()


def test_two_relays_never_deliver_one_endpoint_at_once(store, owner, receiver, db_url):
    append(store, 3, 5)
    eid = webhook_endpoint(store, receiver.url)["endpoint_id"]
    assert eid in lease(store, "relay-a")
    assert eid not in lease(store, "relay-b"), "b took a live lease"
    settings = RelaySettings()
    sink = make_sink(dstore.get_endpoint(store, eid), settings, env=ENV)
    endpoint = dstore.get_endpoint(store, eid)
    with pytest.raises(dstore.LeaseLost):
        run_cycle(store, endpoint, sink, holder="relay-b", settings=settings)
    assert dstore.get_endpoint(store, eid)["position"] == 0, "b advanced without the lease"


def test_relay_hosts_endpoints_a_hanging_one_blocks_no_other_and_a_successor_takes_over(
    store, owner, db_url
):
    fast = Receiver(SECRET)
    hanging = Receiver(SECRET, lambda events, n: Answer(delay=30.0))
    try:
        append(store, 4, 25)
        good = webhook_endpoint(store, fast.url)["endpoint_id"]
        webhook_endpoint(store, hanging.url)
        settings = RelaySettings(timeout=2.0, lease_seconds=1.5, idle_wait=0.2)
        first = Relay(db_url, settings=settings, holder="relay-1", env=ENV)
        stop1 = threading.Event()
        t1 = threading.Thread(target=first.run, args=(stop1,), daemon=True)
        t1.start()
        wait_for(lambda: len(fast.accepted()) == 100, "the fast endpoint's 100", 60, every=0.1)
        assert len(hanging.requests) <= 3
        append(store, 4, 5, start=26)
        second = Relay(db_url, settings=settings, holder="relay-2", env=ENV)
        stop2 = threading.Event()
        t2 = threading.Thread(target=second.run, args=(stop2,), daemon=True)
        t2.start()
        wait_for(lambda: len(fast.accepted()) == 120, "the next 20", 60, every=0.1)
        stop1.set()
        t1.join(30)
        append(store, 4, 5, start=31)
        wait_for(lambda: len(fast.accepted()) >= 140, "the successor's 20", 60, every=0.1)
        stop2.set()
        t2.join(30)
        ids = [e["id"] for e in fast.accepted()]
        assert len(set(ids)) == 140
        for seqs in per_task_in_order(fast.accepted()).values():
            assert seqs == sorted(seqs)
        assert dstore.get_endpoint(store, good)["lease_holder"] is None
    finally:
        fast.close()
        hanging.close()


def test_a_missing_secret_variable_is_one_line_and_nothing_is_sent(store, owner, receiver):
    append(store, 1, 1)
    endpoint = webhook_endpoint(store, receiver.url)
    with pytest.raises(ConfigError, match="HOOK_SECRET is not set"):
        make_sink(endpoint, RelaySettings(), env={})
    assert os.environ.get("HOOK_SECRET") is None
