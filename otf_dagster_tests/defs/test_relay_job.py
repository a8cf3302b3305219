"""The relay as a Dagster job (a real instance, a real PostgreSQL, a loopback receiver) and the
Task Manager's rule that keeps one relay run of the deployment alive."""

from __future__ import annotations

import base64
import time

import dagster as dg
import pytest
from dagster._core.events import DagsterEvent, DagsterEventType

from otf_dagster.core.services import subscribe
from otf_dagster.core.store import delivery as dstore
from otf_dagster.defs.relay import HEALTH_ASSET, RELAY_JOB, relay_job, relay_requests
from otf_dagster.defs.resources import TaskStoreResource
from otf_dagster.vocab.tasks import EventRecord
from otf_dagster_tests.core.delivery.receivers import Receiver
from otf_dagster_tests.helpers import MEDIA

SECRET = "whsec_" + base64.b64encode(b"d" * 32).decode()


@pytest.fixture
def endpoint(store, media_types, monkeypatch):
    monkeypatch.setenv("RELAY_TEST_SECRET", SECRET)
    subscribe(store, "notifier", MEDIA)
    receiver = Receiver(SECRET)
    row = dstore.add_endpoint(
        store, owner="notifier", sink="webhook", url=receiver.url,
        secret_envs=["RELAY_TEST_SECRET"], from_start=True,
    )  # fmt: skip
    yield row, receiver
    receiver.close()


def test_the_relay_job_delivers_and_observes_each_endpoints_health(store, db_url, endpoint):
    row, receiver = endpoint
    store.append_events(
        [("g1", "run-1", MEDIA, EventRecord(i, "score_changed", {"i": i})) for i in range(1, 31)]
    )
    with dg.instance_for_test() as instance:
        result = relay_job.execute_in_process(
            instance=instance,
            resources={"task_store": TaskStoreResource(database_url=db_url)},
            run_config={"ops": {"run_relay": {"config": {"max_seconds": 4.0,
                                                          "report_every_seconds": 0.5}}}},
        )  # fmt: skip
        assert result.success
        assert [e["task_seq"] for e in receiver.accepted()] == list(range(1, 31))
        observations = instance.fetch_observations(HEALTH_ASSET, limit=100).records
        assert observations, "no health observation"
        last = observations[0].asset_observation.metadata
        assert last["lag_events"].value == 0
        assert f"endpoint_{row['endpoint_id']}_lag" in last
    assert dstore.get_endpoint(store, row["endpoint_id"])["lease_holder"] is None


def _started_run(instance: dg.DagsterInstance) -> str:
    run = instance.create_run_for_job(job_def=relay_job)
    instance.handle_run_event(
        run.run_id,
        DagsterEvent(event_type_value=DagsterEventType.RUN_START.value, job_name=RELAY_JOB),
    )
    return run.run_id


def test_the_task_manager_launches_one_relay_and_replaces_a_silent_one(store, endpoint):
    row, _ = endpoint
    with dg.instance_for_test() as instance:
        requests, stale = relay_requests(instance, store)
        assert len(requests) == 1 and not stale
        assert requests[0].job_name == RELAY_JOB
        run_id = _started_run(instance)
        requests, stale = relay_requests(instance, store)
        assert requests == [] and stale == [], "a just-started relay run counts as alive"
        dstore.relay_heartbeat(store, "dagster:x", deployment_id="d", run_id=run_id,
                               endpoints=1, delivered=0)  # fmt: skip
        requests, stale = relay_requests(instance, store, now=time.time() + 3600)
        assert requests == [] and stale == [], "a relay renewing its heartbeat is alive"
        store.run(
            "age the heartbeat",
            lambda c: c.execute(
                "UPDATE delivery_relays SET heartbeat_at = now() - interval '10 minutes'"
            ),
        )
        requests, stale = relay_requests(instance, store)
        assert [r for r, _ in stale] == [run_id]
        assert len(requests) == 1, "a silent relay run is replaced on the same tick"
        dstore.set_state(store, row["endpoint_id"], "paused")
        assert relay_requests(instance, store) == ([], [])
