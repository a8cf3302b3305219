"""`otf relay` as a real process, SIGKILLed mid-batch and started again, delivering 10 tasks x 50
events to a loopback webhook receiver (verifying with standardwebhooks) and to a real JetStream:
every id arrives at least once with its same id, each task's events first arrive in order, and
the stream holds each id exactly once (Nats-Msg-Id dedupes what the restarted relay re-sends)."""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import nats
import nats.js.errors
import pytest

from otf_dagster.core.delivery.nats_sink import event_subject, stream_name
from otf_dagster.core.services import subscribe
from otf_dagster.core.store import delivery as dstore
from otf_dagster.vocab.tasks import EventRecord
from otf_dagster_tests.core.delivery.nats_helpers import read_stream
from otf_dagster_tests.core.delivery.receivers import Answer, Receiver
from otf_dagster_tests.helpers import MEDIA, wait_for

SECRET = "whsec_" + base64.b64encode(b"relay-kill-test-secret-32-bytes!").decode()
OWNER = "photo"
PREFIX = "otf.kill"
TASKS, PER_TASK = 10, 50
TOTAL = TASKS * PER_TASK
OTF = Path(sys.executable).with_name("otf")


def stream_count(url: str, stream: str) -> int:
    async def count() -> int:
        nc = await nats.connect(url)
        try:
            return (await nc.jetstream().stream_info(stream)).state.messages
        except nats.js.errors.NotFoundError:
            return 0
        finally:
            await nc.close()

    return asyncio.run(count())


def start_relay(db_url: str, nats_url: str, log: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "OTF_DATABASE_URL": db_url,
        "OTF_NATS_URL": nats_url,
        "HOOK_SECRET": SECRET,
        "OTF_DELIVERY_RETRY_SCHEDULE": "0,0.2,0.2,0.2,0.2,0.2,0.2,0.2,0.2,0.2",
        "OTF_DELIVERY_TIMEOUT": "5",
        "OTF_DELIVERY_LEASE_SECONDS": "2",  # the killed relay's leases lapse soon
    }
    with log.open("ab") as out:
        return subprocess.Popen([str(OTF), "relay"], env=env, stdout=out, stderr=out)


def test_a_relay_sigkilled_mid_batch_resends_with_the_same_ids_and_jetstream_keeps_each_once(
    store, db_url, media_types, nats_server, tmp_path
):
    subscribe(store, OWNER, MEDIA)
    store.append_events(
        [
            (f"t{t}", "run-1", MEDIA, EventRecord(i, "score_changed", {"i": i}))
            for i in range(1, PER_TASK + 1)
            for t in range(TASKS)
        ]
    )
    # Slow sinks, so the kill lands while a batch is half sent: 10 ms per webhook answer, and
    # the NATS endpoint rate-limited to 100 events/s.
    receiver = Receiver(SECRET, lambda events, n: Answer(delay=0.01))
    log = tmp_path / "relay.log"
    procs: list[subprocess.Popen] = []
    try:
        hook = dstore.add_endpoint(store, owner=OWNER, sink="webhook", url=receiver.url,
                                   secret_envs=["HOOK_SECRET"], from_start=True)  # fmt: skip
        jet = dstore.add_endpoint(store, owner=OWNER, sink="nats", url=nats_server.url,
                                  nats_subject=PREFIX, rate_per_s=100, from_start=True)  # fmt: skip
        stream = stream_name(PREFIX)

        def alive() -> None:
            assert procs[-1].poll() is None, f"otf relay exited:\n{log.read_text()}"

        def diagnostics() -> str:
            return log.read_text()

        procs.append(start_relay(db_url, nats_server.url, log))
        wait_for(
            lambda: len(receiver.accepted()) >= 40 and stream_count(nats_server.url, stream) >= 40,
            "both sinks part way",
            60,
            alive=alive,
            diagnostics=diagnostics,
            every=0.05,
        )
        procs[-1].send_signal(signal.SIGKILL)
        procs[-1].wait(10)
        hooked = {e["id"] for e in receiver.accepted()}
        streamed = stream_count(nats_server.url, stream)
        assert len(hooked) < TOTAL and streamed < TOTAL, "the kill landed after the work was done"

        procs.append(start_relay(db_url, nats_server.url, log))

        def settled() -> bool:
            if log.read_text().count(": delivering") < 2:
                return False  # the new relay is not up yet (nor handling SIGTERM)
            return all(
                dstore.lag(store, e["endpoint_id"]) == {"unsent": 0, "pending": 0, "dead": 0}
                for e in (hook, jet)
            )

        wait_for(settled, "the restarted relay to deliver the rest", 90, alive=alive,
                 diagnostics=diagnostics, every=0.1)  # fmt: skip
        procs[-1].send_signal(signal.SIGTERM)
        assert procs[-1].wait(30) == 0, log.read_text()
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        receiver.close()

    expected = {f"evt_{seq}" for seq in range(1, TOTAL + 1)}

    # The webhook: every id at least once, verified, each copy the same event; first arrivals of
    # each task in task_seq order.
    assert all(r.verified for r in receiver.requests)
    accepted = receiver.accepted()
    assert {e["id"] for e in accepted} == expected
    first: dict[str, dict] = {}
    for e in accepted:
        assert e["id"] == f"evt_{e['seq']}"
        assert first.setdefault(e["id"], e) == e, "a re-sent event differs from its first copy"
    per_task: dict[str, list[int]] = defaultdict(list)
    for e in first.values():  # dicts keep first-arrival order
        per_task[e["task_id"]].append(e["task_seq"])
    assert len(per_task) == TASKS
    for task, seqs in per_task.items():
        assert seqs == list(range(1, PER_TASK + 1)), task
    assert len(accepted) > TOTAL, "the restarted relay re-sent nothing the killed one had sent"

    # JetStream: each id exactly once, in order per task.
    got = read_stream(nats_server.url, stream, PREFIX)
    ids = [msg_id for _, msg_id, _ in got]
    assert len(ids) == len(set(ids)), f"{len(ids) - len(set(ids))} id(s) stored twice"
    assert set(ids) == expected
    per_subject: dict[str, list[int]] = defaultdict(list)
    for subject, msg_id, data in got:
        assert data["id"] == msg_id == f"evt_{data['seq']}"
        assert subject == event_subject(PREFIX, data["task_type"], data["task_id"])
        per_subject[subject].append(data["task_seq"])
    assert len(per_subject) == TASKS
    for seqs in per_subject.values():
        assert seqs == list(range(1, PER_TASK + 1))


@pytest.fixture(autouse=True)
def _needs_the_otf_script():
    assert OTF.exists(), f"{OTF} is missing: install the package into the venv"
