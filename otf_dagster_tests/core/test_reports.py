"""Progress reports through the Task Manager (the SQL function otf_report), against PostgreSQL."""

from __future__ import annotations

import itertools
import threading

import psycopg
import pytest
from psycopg.types.json import Jsonb

from otf_dagster.core.services import report
from otf_dagster.core.store import TaskStore
from otf_dagster.core.store.polls import PollWrite
from otf_dagster.exceptions import InvalidReport, StaleTransition, UnknownTask
from otf_dagster.vocab.tasks import EventRecord, TaskState
from otf_dagster_tests.helpers import MEDIA, start_task


def history(store: TaskStore, task_id: str) -> list[tuple[str, str, str | None]]:
    return [(h["service"], h["state"], h["previous_state"]) for h in store.state_history(task_id)]


def test_photo_failing_fails_the_task_naming_photo_while_caption_succeeds(store, media_task):
    tid = media_task.task.task_id
    r = report(store, tid, "caption", "FINISHED", {"caption": "Celtics win"})
    assert (r.overall, r.outcome) == (TaskState.STARTED, "applied")
    r = report(store, tid, "photo", "FAILED", {"reason": "no photo found"})
    error = "required service(s) failed: photo; no photo found"
    assert r.overall == TaskState.FAILED and r.reason == error
    task = store.get_task(tid)
    assert task.state == TaskState.FAILED and task.last_error == error
    assert task.finished_at is not None
    services = {s["service"]: (s["state"], s["detail"]) for s in store.service_states(tid)}
    assert services == {
        "caption": ("FINISHED", {"caption": "Celtics win"}),
        "photo": ("FAILED", {"reason": "no photo found"}),
    }
    assert history(store, tid)[-3:] == [
        ("caption", "FINISHED", None),
        ("photo", "FAILED", None),
        ("task", "FAILED", "STARTED"),
    ]
    # The failed task fences its runner off: its next poll write is refused.
    with pytest.raises(StaleTransition):
        store.record_poll(
            PollWrite(tid, 1, "run-1", {"n": 1}, [EventRecord(1, "game_started", {})])
        )


def test_all_required_services_finished_finishes_the_task_once(store, media_task):
    tid = media_task.task.task_id
    assert report(store, tid, "photo", "STARTED").overall == TaskState.STARTED
    assert report(store, tid, "photo", "FINISHED").previous == TaskState.STARTED
    # The runner is one of the required services: its end alone decides nothing yet.
    assert (
        store.record_poll(
            PollWrite(
                tid, 1, "run-1", {}, [EventRecord(1, "game_final", {})], finish=TaskState.FINISHED
            )
        )
        == TaskState.STARTED
    )
    assert store.get_task(tid).state == TaskState.STARTED
    r = report(store, tid, "caption", "FINISHED")
    assert (r.overall, r.reason) == (TaskState.FINISHED, None)
    assert store.get_task(tid).state == TaskState.FINISHED
    assert [h for h in history(store, tid) if h[0] == "task"] == [
        ("task", "SCHEDULED", None),
        ("task", "STARTED", "SCHEDULED"),
        ("task", "FINISHED", "STARTED"),
    ]


def test_services_done_before_the_runner_let_the_runner_finish_the_task(store, media_task):
    tid = media_task.task.task_id
    report(store, tid, "photo", "FINISHED")
    report(store, tid, "caption", "FINISHED")
    assert store.get_task(tid).state == TaskState.STARTED  # partial: the runner is still polling
    assert (
        store.record_poll(PollWrite(tid, 1, "run-1", {}, finish=TaskState.FINISHED))
        == TaskState.FINISHED
    )
    assert store.get_task(tid).state == TaskState.FINISHED


def test_services_a_type_does_not_require_never_decide(store, media_types):
    claimed = start_task(store, "NBA_GAME_PLAIN", "p1")
    tid = claimed.task.task_id
    assert report(store, tid, "photo", "FAILED").overall == TaskState.STARTED
    assert store.get_task(tid).state == TaskState.STARTED
    assert (
        store.record_poll(PollWrite(tid, 1, "run-1", {}, finish=TaskState.FINISHED))
        == TaskState.FINISHED
    )


@pytest.mark.parametrize(
    ("task_id", "service", "state", "error", "match"),
    [
        (
            "nba_game_media:nope",
            "photo",
            "FINISHED",
            UnknownTask,
            "'nba_game_media:nope' does not exist",
        ),
        (
            None,
            "photo",
            "DONE",
            InvalidReport,
            "unknown state 'DONE'; a service reports one of STARTED, FINISHED, FAILED",
        ),
        (None, "photo", "SCHEDULED", InvalidReport, "unknown state 'SCHEDULED'"),
        (None, "photo", "", InvalidReport, "unknown state ''"),
        (None, "Photo Service", "STARTED", InvalidReport, "bad service name 'Photo Service'"),
        (None, "9photo", "STARTED", InvalidReport, "bad service name '9photo'"),
        (None, "x" * 64, "STARTED", InvalidReport, "bad service name"),
        (None, "runner", "FINISHED", InvalidReport, "'runner' is reserved"),
        (None, "task", "FINISHED", InvalidReport, "'task' is reserved"),
    ],
)
def test_malformed_reports_are_refused_and_write_nothing(
    store, media_task, task_id, service, state, error, match
):
    tid = task_id or media_task.task.task_id
    before = store.state_history(media_task.task.task_id)
    with pytest.raises(error, match=match):
        report(store, tid, service, state)
    assert store.state_history(media_task.task.task_id) == before
    assert store.service_states(media_task.task.task_id) == []


def test_states_are_case_insensitive(store, media_task):
    r = report(store, media_task.task.task_id, " Photo ", "finished")
    assert (r.service, r.state) == ("photo", TaskState.FINISHED)
    assert store.service_states(media_task.task.task_id)[0]["service"] == "photo"


@pytest.mark.parametrize(
    ("first", "then"),
    [
        ("FINISHED", "STARTED"),
        ("FAILED", "STARTED"),
        ("FINISHED", "FAILED"),
        ("FAILED", "FINISHED"),
    ],
)
def test_a_finished_or_failed_service_cannot_move(store, media_task, first, then):
    tid = media_task.task.task_id
    if (
        first == "FAILED"
    ):  # a required service failing ends the task: use a task type that ignores it
        tid = start_task(store, "NBA_GAME_PLAIN", "p2").task.task_id
    report(store, tid, "photo", first)
    before = store.state_history(tid)
    with pytest.raises(
        InvalidReport, match=f"'photo' already reported {first} .* cannot move to {then}"
    ):
        report(store, tid, "photo", then)
    assert store.state_history(tid) == before
    assert store.service_states(tid)[0]["state"] == first


def test_terminal_tasks_refuse_reports_but_accept_idempotent_repeats(store, media_task):
    tid = media_task.task.task_id
    report(store, tid, "photo", "FAILED", {"reason": "no photo"})
    before = store.state_history(tid)
    repeat = report(store, tid, "photo", "FAILED", {"reason": "retried call"})
    assert (repeat.outcome, repeat.overall, repeat.reason) == (
        "repeat",
        TaskState.FAILED,
        "required service(s) failed: photo; no photo",
    )
    with pytest.raises(
        InvalidReport,
        match="task 'nba_game_media:g1' is FAILED; services report on STARTED tasks only",
    ):
        report(store, tid, "caption", "FINISHED")
    assert store.state_history(tid) == before
    assert store.service_states(tid)[0]["detail"] == {
        "reason": "no photo"
    }  # the repeat changed nothing


def test_a_finished_service_repeating_itself_on_a_running_task_writes_nothing(store, media_task):
    tid = media_task.task.task_id
    report(store, tid, "photo", "FINISHED")
    before = store.state_history(tid)
    assert report(store, tid, "photo", "FINISHED").outcome == "repeat"
    assert store.state_history(tid) == before
    # ...while STARTED progress reports are history worth keeping.
    report(store, tid, "caption", "STARTED", {"progress": 0.5})
    report(store, tid, "caption", "STARTED", {"progress": 0.9})
    assert history(store, tid)[-2:] == [
        ("caption", "STARTED", None),
        ("caption", "STARTED", "STARTED"),
    ]


def test_reports_on_tasks_not_started_are_refused(store, media_types):
    from otf_dagster_tests.helpers import NOW

    tid, _ = store.schedule_task(MEDIA, "later", NOW)
    with pytest.raises(InvalidReport, match="is SCHEDULED"):
        report(store, tid, "photo", "STARTED")


def test_detail_must_be_an_object(store, media_task, db_url):
    with pytest.raises(InvalidReport, match="detail must be a JSON object"):
        report(store, media_task.task.task_id, "photo", "STARTED", ["not", "an", "object"])  # type: ignore[arg-type]
    with (
        psycopg.connect(db_url) as conn,
        pytest.raises(psycopg.Error, match="detail must be a JSON object, not array"),
    ):
        conn.execute(
            "SELECT * FROM otf_report(%s, 'photo', 'STARTED', %s)",
            (media_task.task.task_id, Jsonb([1])),
        )


def _expected_overall(required: list[str], states: dict[str, str]) -> tuple[str, str | None]:
    """The rule as docs/design.md states it, written independently of the SQL."""
    failed = [s for s in required if states.get(s) == "FAILED"]
    if failed:
        return "FAILED", f"required service(s) failed: {', '.join(failed)}"
    if all(states.get(s) == "FINISHED" for s in required):
        return "FINISHED", None
    return "STARTED", None


def test_overall_state_follows_the_documented_rule(store, media_task, db_url):
    """otf_overall_state (sql/0004, the one home of the rule, used by the runner and by
    otf_report alike) on every combination of three required services."""
    required = ["runner", "photo", "caption"]
    tid = media_task.task.task_id
    values = [None, "STARTED", "FINISHED", "FAILED"]
    with psycopg.connect(db_url, autocommit=True) as conn:
        for combo in itertools.product(values, repeat=3):
            conn.execute("DELETE FROM task_service_states WHERE task_id = %s", (tid,))
            states = {s: v for s, v in zip(required, combo, strict=True) if v is not None}
            for service, state in states.items():
                conn.execute(
                    "INSERT INTO task_service_states (task_id, service, state) VALUES (%s, %s, %s)",
                    (tid, service, state),
                )
            got = conn.execute(
                "SELECT state::text, reason FROM otf_overall_state(%s, %s)", (tid, required)
            ).fetchone()
            assert got == _expected_overall(required, states), combo


def test_terminal_states_in_python_equal_the_database_rule(db_url):
    """TaskState.terminal (read by the Python side) equals otf_state_is_terminal (sql/0006)."""
    with psycopg.connect(db_url) as conn:
        for state in TaskState:
            [sql_terminal] = conn.execute(
                "SELECT otf_state_is_terminal(%s::task_state)", (state.value,)
            ).fetchone()
            assert sql_terminal == state.terminal, state


def test_concurrent_final_reports_finish_the_task_exactly_once(db_url, store, media_types):
    """Photo and caption finish at the same moment on many tasks: the task row lock makes one of
    them see the other, so every task ends FINISHED with exactly one FINISHED history row."""
    tasks = [start_task(store, MEDIA, f"c{i}").task.task_id for i in range(20)]
    for tid in tasks:
        store.record_poll(PollWrite(tid, 1, "run", {}, finish=TaskState.FINISHED))
    errors: list[BaseException] = []

    def service(name: str, barrier: threading.Barrier) -> None:
        with TaskStore(db_url) as own:
            for tid in tasks:
                barrier.wait()
                try:
                    report(own, tid, name, "FINISHED")
                except BaseException as exc:  # noqa: BLE001 - reported below
                    errors.append(exc)

    barrier = threading.Barrier(2)
    threads = [threading.Thread(target=service, args=(n, barrier)) for n in ("photo", "caption")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    for tid in tasks:
        assert store.get_task(tid).state == TaskState.FINISHED, tid
        assert [h for h in history(store, tid) if h[0] == "task" and h[1] == "FINISHED"] == [
            ("task", "FINISHED", "STARTED")
        ]
