"""The claim returns each task's type as it is in the database now: the store reads a type
again only when its row changed (``type_version``), never a stale copy from an earlier claim."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from otf_dagster.handlers import task_types


def ping(interval: float) -> task_types.TaskType:
    return task_types.validate(
        {
            "name": "PING",
            "handler": "http.json",
            "base_url": "http://127.0.0.1:9",
            "url_template": "/p/{key}.json",
            "poll_interval_seconds": interval,
            "params": {"done_when": "done"},
        }
    )


def test_a_claim_sees_a_type_changed_since_the_last_claim(store):
    """Planted: the cache kept by name only (the version not compared): the second claim
    returned the 10 s type after it became 20 s, and the third after a raw UPDATE."""
    task_types.apply(store, [ping(10)])
    due = datetime.now(UTC) - timedelta(seconds=1)
    store.schedule_tasks("PING", [(k, due, {}) for k in ("a", "b", "c", "d")])
    [first] = store.claim_ready(1)
    assert first.task_type.poll_interval_seconds == 10
    [same] = store.claim_ready(1)  # unchanged: the cached type
    assert same.task_type is first.task_type
    task_types.apply(store, [ping(20)])
    [second] = store.claim_ready(1)
    assert second.task_type.poll_interval_seconds == 20
    # a change that does not go through the store (nor bump updated_at) is seen too
    store.run("test", lambda c: c.execute("UPDATE task_types SET poll_interval_seconds = 30"))
    [third] = store.claim_ready(1)
    assert third.task_type.poll_interval_seconds == 30
