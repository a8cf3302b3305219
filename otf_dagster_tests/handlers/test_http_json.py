"""User-defined task types on the generic JSON handler (http.json), written in YAML, polled
against a scripted JSON server on 127.0.0.1 by the real TaskRunner and the real store."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from otf_dagster.core.runner import TaskRunner
from otf_dagster.core.store import TaskStore
from otf_dagster.exceptions import InvalidTaskType, StoreError
from otf_dagster.handlers import HANDLERS, task_types
from otf_dagster.vocab.tasks import TaskState
from otf_dagster_tests.helpers import ScriptedFeed, VirtualClock

ORDERS = """
task_types:
  - name: ORDER_STATUS
    description: A parcel's delivery, tracked until it arrives.
    handler: http.json
    base_url: {base}
    url_template: /orders/{{key}}.json
    poll_interval_seconds: 10
    max_consecutive_errors: 2
    params:
      done_when: "status == 'delivered'"
      fail_when: "status == 'lost'"
      track:
        status: status
        eta: eta
"""


def apply_yaml(store: TaskStore, tmp_path: Path, text: str) -> list:
    path = tmp_path / "types.yaml"
    path.write_text(textwrap.dedent(text))
    types = task_types.load_file(path)
    task_types.apply(store, types)
    return types


def start(store: TaskStore, task_type: str, key: str, params: dict | None = None) -> str:
    task_id, _ = store.schedule_task(task_type, key, datetime.now(UTC), params=params)
    [claimed] = [c for c in store.claim_ready() if c.task.task_id == task_id]
    return task_id


def changes(store: TaskStore, task_id: str) -> list[tuple]:
    return [
        (e["task_seq"], e["kind"], e["payload"]["name"], e["payload"]["old"], e["payload"]["new"])
        for e in store.task_events(task_id)
    ]


def run(store: TaskStore, task_id: str, attempt: int = 1, **kw):
    return TaskRunner(
        store, task_id, attempt, "run-1", handlers=HANDLERS, clock=VirtualClock(), **kw
    ).run()


def test_a_yaml_type_runs_to_done_with_exactly_the_changed_events(store, tmp_path):
    with ScriptedFeed() as feed:
        feed.script(
            "/orders/A17.json",
            [
                {"status": "placed", "eta": 5},
                {"status": "placed", "eta": 5},
                {"status": "shipped", "eta": 3},
                {"status": "delivered", "eta": 0},
            ],
        )
        apply_yaml(store, tmp_path, ORDERS.format(base=feed.base_url))
        task_id = start(store, "ORDER_STATUS", "A17")
        outcome = run(store, task_id)
    assert outcome.state == TaskState.FINISHED and outcome.polls == 4
    assert changes(store, task_id) == [
        (1, "changed", "eta", None, 5),  # names in order within a poll
        (2, "changed", "status", None, "placed"),
        (3, "changed", "eta", 5, 3),
        (4, "changed", "status", "placed", "shipped"),
        (5, "changed", "eta", 3, 0),
        (6, "changed", "status", "shipped", "delivered"),
    ]
    assert feed.paths() == ["/orders/A17.json"] * 4
    runner_row = [s for s in store.service_states(task_id) if s["service"] == "runner"][0]
    assert runner_row["detail"]["tracked"] == {"status": "delivered", "eta": 0}


def test_fail_when_ends_the_task_failed_with_the_expression(store, tmp_path):
    with ScriptedFeed() as feed:
        feed.script("/orders/B2.json", [{"status": "shipped", "eta": 2}, {"status": "lost"}])
        apply_yaml(store, tmp_path, ORDERS.format(base=feed.base_url))
        task_id = start(store, "ORDER_STATUS", "B2")
        outcome = run(store, task_id)
    assert outcome.state == TaskState.FAILED and "fail_when" in outcome.reason
    assert "status == 'lost'" in store.get_task(task_id).last_error
    assert [c[2:] for c in changes(store, task_id)][-2:] == [
        ("eta", 2, None),
        ("status", "shipped", "lost"),
    ]


def test_changing_the_url_template_changes_the_next_request(store, tmp_path):
    """Planted-bug check: a runner that rendered the URL once, or stopped reading the type's
    url_template, would keep asking for /v1/."""
    with ScriptedFeed() as feed:
        feed.script("/v1/orders/C3.json", [{"status": "placed", "eta": 9}])
        feed.script(
            "/v2/orders/C3.json", [{"status": "shipped", "eta": 1}, {"status": "delivered"}]
        )
        [tt] = apply_yaml(
            store, tmp_path, ORDERS.format(base=feed.base_url).replace("/orders/", "/v1/orders/")
        )
        task_id = start(store, "ORDER_STATUS", "C3")

        def on_poll(report):
            if report.poll == 2:
                store.apply_task_type(
                    task_types.validate({**_spec(tt), "url_template": "/v2/orders/{key}.json"})
                )

        outcome = run(store, task_id, on_poll=on_poll)
    assert outcome.state == TaskState.FINISHED
    assert feed.paths() == ["/v1/orders/C3.json"] * 2 + ["/v2/orders/C3.json"] * 2


def test_params_fill_the_url_template_url_encoded(store, tmp_path):
    with ScriptedFeed() as feed:
        feed.script("/boards/east%2Fwest/day/2026-12-01.json", [{"games": 3, "over": True}])
        apply_yaml(
            store,
            tmp_path,
            f"""
            task_types:
              - name: BOARD
                handler: http.json
                base_url: {feed.base_url}
                url_template: /boards/{{key}}/day/{{params.day}}.json
                poll_interval_seconds: 5
                params: {{done_when: over, track: {{games: games}}}}
            """,
        )
        with pytest.raises(StoreError, match=r"needs param\(s\) day"):
            store.schedule_task("BOARD", "east/west", datetime.now(UTC))
        task_id = start(store, "BOARD", "east/west", params={"day": "2026-12-01"})
        assert run(store, task_id).state == TaskState.FINISHED
    assert feed.paths() == ["/boards/east%2Fwest/day/2026-12-01.json"]


def test_headers_carry_secrets_from_the_environment_only(store, tmp_path, monkeypatch, db_url):
    monkeypatch.setenv("OTF_TEST_API_TOKEN", "s3cret-value")
    with ScriptedFeed() as feed:
        feed.script("/orders/D4.json", [{"status": "delivered", "eta": 0}])
        text = ORDERS.format(base=feed.base_url) + (
            "      headers:\n        Authorization: 'Bearer ${OTF_TEST_API_TOKEN}'\n"
            "        X-Client: otf\n"
        )
        apply_yaml(store, tmp_path, text)
        task_id = start(store, "ORDER_STATUS", "D4")
        assert run(store, task_id).state == TaskState.FINISHED
    [(_, headers)] = feed.requests
    assert headers["Authorization"] == "Bearer s3cret-value" and headers["X-Client"] == "otf"
    stored = store.get_task_type("ORDER_STATUS").params["headers"]
    assert stored["Authorization"] == "Bearer ${OTF_TEST_API_TOKEN}"
    with psycopg.connect(db_url) as conn:
        for table in ("task_types", "tasks", "task_states", "task_events", "task_service_states"):
            dump = conn.execute(f"SELECT coalesce(string_agg(t::text, ' '), '') FROM {table} t")
            assert "s3cret" not in dump.fetchone()[0], table


@pytest.mark.parametrize(
    ("change", "needles"),
    [
        ({"handler": "http.xml"}, ["'http.xml'", "known handlers"]),
        ({"url_template": "/orders/{id}.json"}, ["{id}", "{key}"]),
        ({"url_template": "/orders/{key.json"}, ["unmatched"]),
        ({"params": {"track": {"s": "status"}}}, ["params.done_when"]),
        ({"params": {"done_when": "status =="}}, ["params.done_when", "'status =='", "JMESPath"]),
        ({"params": {"done_when": "oops(status)"}}, ["unknown function", "oops"]),
        ({"params": {"done_when": "a", "track": {"x": "foo["}}}, ["params.track.x", "'foo['"]),
        ({"params": {"done_when": "a", "colour": "red"}}, ["colour", "done_when"]),
        ({"params": {"done_when": "a", "headers": {"Authorization": "Bearer abc"}}}, ["${"]),
        (
            {"params": {"done_when": "a", "headers": {"X-Api": "${OTF_TEST_UNSET_VAR}"}}},
            ["OTF_TEST_UNSET_VAR", "not set"],
        ),
        ({"spawn": {"items": "games", "type": "ORDER_STATUS"}}, ["spawn needs 'key'"]),
        ({"spawn": {"items": "games", "key": "id"}}, ["spawn needs 'type'"]),
        ({"spawn": {"items": "games[", "key": "id", "type": "ORDER_STATUS"}}, ["spawn.items"]),
        ({"spawn": {"items": "g", "key": "id", "type": "nope"}}, ["spawn.type", "'nope'"]),
        ({"poll_interval_seconds": 10**400}, ["poll_interval_seconds"]),
        ({"poll_interval_seconds": 50000, "deadline_seconds": 3600}, ["deadline_seconds 3600"]),
        ({"min_poll_interval_seconds": 20}, ["min_poll_interval_seconds 20"]),
        ({"base_url": "ftp://files"}, ["base_url", "ftp://files"]),
    ],
)
def test_bad_types_are_refused_at_apply_time_naming_field_and_value(
    store, monkeypatch, change, needles
):
    monkeypatch.delenv("OTF_TEST_UNSET_VAR", raising=False)
    base = {
        "name": "ORDER_STATUS",
        "handler": "http.json",
        "base_url": "http://127.0.0.1:9",
        "url_template": "/orders/{key}.json",
        "poll_interval_seconds": 10,
        "params": {"done_when": "status == 'delivered'"},
    }
    with pytest.raises(InvalidTaskType) as err:
        task_types.apply(store, [task_types.validate({**base, **change})])
    for needle in needles:
        assert needle in str(err.value), (needle, str(err.value))
    assert "\n" not in str(err.value)
    assert store.list_task_types(include_deleted=True) == []


def test_a_type_naming_a_missing_type_is_refused_and_writes_nothing(store):
    spec = {
        "name": "WATCHER",
        "handler": "http.json",
        "base_url": "http://127.0.0.1:9",
        "url_template": "/board.json",
        "poll_interval_seconds": 10,
        "params": {"done_when": "over"},
        "spawn": {"items": "games", "type": "CHILD_GAME", "key": "id"},
    }
    child = {**spec, "name": "CHILD_GAME", "spawn": None}
    with pytest.raises(InvalidTaskType, match="'CHILD_GAME', which does not exist"):
        task_types.apply(store, [task_types.validate(spec)])
    assert store.list_task_types(include_deleted=True) == []
    # applied together (the child in the same file), both go in
    task_types.apply(store, [task_types.validate(spec), task_types.validate(child)])
    assert [t.name for t in store.list_task_types()] == ["CHILD_GAME", "WATCHER"]


@pytest.mark.parametrize(
    ("docs", "track", "needle"),
    [
        ([b"<html>502 Bad Gateway</html>"], {"s": "status"}, "not JSON"),
        ([{"count": 3}], {"n": "length(count)"}, "params.track.n 'length(count)' failed"),
        ([b'{"v": NaN}'], {"v": "v"}, "cannot be stored as JSON"),
    ],
)
def test_bad_responses_are_counted_poll_errors_then_fail_the_task(
    store, tmp_path, docs, track, needle
):
    with ScriptedFeed() as feed:
        feed.script("/orders/E5.json", docs)
        [tt] = apply_yaml(store, tmp_path, ORDERS.format(base=feed.base_url))
        store.apply_task_type(
            task_types.validate({**_spec(tt), "params": {"done_when": "x", "track": track}})
        )
        task_id = start(store, "ORDER_STATUS", "E5")
        errors: list[str] = []
        outcome = run(store, task_id, on_poll=lambda r: errors.append(r.error))
    assert outcome.state == TaskState.FAILED and outcome.polls == 2
    assert all(needle in e for e in errors), errors
    assert outcome.reason.startswith("2 consecutive poll errors") and needle in outcome.reason
    assert store.task_events(task_id) == []


def test_a_passing_bad_response_is_ridden_out(store, tmp_path):
    with ScriptedFeed() as feed:
        feed.script(
            "/orders/F6.json",
            [{"status": "placed", "eta": 1}, b"not json", {"status": "delivered", "eta": 0}],
        )
        apply_yaml(store, tmp_path, ORDERS.format(base=feed.base_url))
        task_id = start(store, "ORDER_STATUS", "F6")
        outcome = run(store, task_id)
    assert outcome.state == TaskState.FINISHED and outcome.polls == 3
    assert [c[0] for c in changes(store, task_id)] == [1, 2, 3, 4]


def _spec(tt) -> dict:
    spec = tt.to_dict()
    for key in ("created_at", "updated_at", "deleted_at"):
        spec.pop(key)
    return spec
