"""Reports over NATS take the path of `otf report`, against real nats-server and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import nats
import nats.errors
import psycopg
import pytest

from otf_dagster.core import services
from otf_dagster.core.delivery.reports_nats import NatsReports, reports_subject
from otf_dagster.exceptions import ConfigError
from otf_dagster.local import nats as embedded_nats
from otf_dagster_tests.helpers import start_task

PREFIX = "otf.media"


@pytest.fixture
def reports(nats_server, db_url) -> Iterator[NatsReports]:
    subscriber = NatsReports(nats_server.url, [(PREFIX, "photo"), (PREFIX, "caption")])
    subscriber.start(db_url)
    yield subscriber
    subscriber.stop()


def request(url: str, owner: str, body: dict[str, Any], retry: bool = False) -> dict[str, Any]:
    """Ask over NATS; with ``retry``, until a subscriber that is reconnecting answers."""

    async def ask() -> dict[str, Any]:
        nc = await nats.connect(url)
        try:
            for _ in range(100 if retry else 1):
                try:
                    msg = await nc.request(
                        reports_subject(PREFIX, owner), json.dumps(body).encode(), 5
                    )
                    return json.loads(msg.data)
                except nats.errors.NoRespondersError:
                    if not retry:
                        raise
                    await asyncio.sleep(0.05)
            raise AssertionError("no subscriber came back")
        finally:
            await nc.close()

    return asyncio.run(ask())


def rows(db_url: str, task_id: str) -> dict[str, list[tuple]]:
    """What a report writes, minus the task id and the times."""
    with psycopg.connect(db_url) as conn:
        return {
            "services": conn.execute(
                "SELECT service, state, detail FROM task_service_states WHERE task_id = %s "
                "ORDER BY service",
                (task_id,),
            ).fetchall(),
            "states": conn.execute(
                "SELECT service, state, previous_state FROM task_states WHERE task_id = %s "
                "ORDER BY id",
                (task_id,),
            ).fetchall(),
            "task": conn.execute(
                "SELECT state, last_error FROM tasks WHERE task_id = %s", (task_id,)
            ).fetchall(),
        }


def counts(db_url: str) -> tuple[int, int]:
    with psycopg.connect(db_url) as conn:
        return conn.execute(
            "SELECT (SELECT count(*) FROM task_service_states), (SELECT count(*) FROM task_states)"
        ).fetchone()


def test_a_report_over_nats_equals_one_through_otf_report(
    store, db_url, media_types, reports, nats_server
):
    over_nats = start_task(store, key="g1").task.task_id
    direct = start_task(store, key="g2").task.task_id
    steps = [
        ("photo", "STARTED", None),
        ("photo", "FINISHED", {"url": "https://example.test/p.jpg"}),
        ("caption", "FAILED", {"reason": "no caption"}),
    ]
    for service, state, detail in steps:
        answer = request(
            nats_server.url,
            service,
            {"task_id": over_nats, "service": service, "state": state, "detail": detail},
        )
        expected = services.report(store, direct, service, state, detail).to_dict()
        assert answer == {"ok": True, **expected, "task_id": over_nats}
    assert rows(db_url, over_nats) == rows(db_url, direct)
    assert rows(db_url, over_nats)["task"][0][0] == "FAILED"


def test_another_owners_name_and_an_unknown_task_are_refused_and_nothing_written(
    store, db_url, media_task, reports, nats_server
):
    tid = media_task.task.task_id
    before = counts(db_url)
    wrong = request(
        nats_server.url, "photo", {"task_id": tid, "service": "caption", "state": "FINISHED"}
    )
    assert wrong["ok"] is False and "'caption'" in wrong["error"] and "'photo'" in wrong["error"]
    unknown = request(
        nats_server.url,
        "photo",
        {"task_id": "00000000-0000-0000-0000-000000000000", "service": "photo", "state": "STARTED"},
    )
    assert unknown["ok"] is False and "00000000-0000-0000-0000-000000000000" in unknown["error"]
    garbage = request(
        nats_server.url, "photo", {"task_id": tid, "service": "photo", "state": "DONE"}
    )
    assert garbage["ok"] is False and "\n" not in garbage["error"]
    assert counts(db_url) == before


def test_no_server_is_one_line_at_start(db_url):
    subscriber = NatsReports("nats://127.0.0.1:1", [(PREFIX, "photo")], timeout=1.0)
    with pytest.raises(ConfigError) as refused:
        subscriber.start(db_url)
    assert "nats://127.0.0.1:1" in str(refused.value) and "\n" not in str(refused.value)


def test_routes_follow_the_endpoints_and_survive_a_server_restart(
    store, db_url, media_task, own_nats_server
):
    tid = media_task.task.task_id
    subscriber = NatsReports(own_nats_server.url, [(PREFIX, "photo")])
    subscriber.start(db_url)
    try:
        photo = {"task_id": tid, "service": "photo", "state": "STARTED"}
        assert request(own_nats_server.url, "photo", photo)["ok"] is True
        own_nats_server.stop()
        server = embedded_nats.start(own_nats_server.folder)  # same port: the client comes back
        assert request(server.url, "photo", {**photo, "state": "FINISHED"}, retry=True)["ok"]
        subscriber.update([(PREFIX, "caption")])
        caption = {"task_id": tid, "service": "caption", "state": "STARTED"}
        assert request(server.url, "caption", caption)["ok"] is True
        with pytest.raises(nats.errors.NoRespondersError):
            request(server.url, "photo", photo)
    finally:
        subscriber.stop()
    assert [(r[0], r[1]) for r in rows(db_url, tid)["services"]] == [
        ("caption", "STARTED"),
        ("photo", "FINISHED"),
    ]
