"""A task's timeline merges lifecycle states, services' reports and events in time order."""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest

from otf_dagster.core.services import report
from otf_dagster.core.stats import score_timeline
from otf_dagster.core.store.polls import PollWrite
from otf_dagster.core.timeline import timeline
from otf_dagster.exceptions import UnknownTask
from otf_dagster.vocab.tasks import EventRecord, TaskState


def test_timeline_of_a_task_from_schedule_to_finish(store, db_url, media_task):
    tid = media_task.task.task_id
    store.record_poll(PollWrite(tid, 1, "run-1", {"n": 1}, [EventRecord(1, "game_started", {})]))
    report(store, tid, "photo", "STARTED")
    report(store, tid, "photo", "FINISHED", {"url": "https://example.org/p.jpg"})
    report(store, tid, "caption", "FINISHED", {"reason": "captioned"})
    # The last poll: final events and the runner's end in one transaction - the task finishes.
    assert (
        store.record_poll(
            PollWrite(
                tid,
                1,
                "run-1",
                {"n": 2},
                [EventRecord(2, "score_changed", {}), EventRecord(3, "game_final", {})],
                finish=TaskState.FINISHED,
            )
        )
        == TaskState.FINISHED
    )

    entries = timeline(db_url, tid)  # a URL works as well as a store
    assert [e["summary"] for e in entries] == [
        "task SCHEDULED [by scheduler]",
        "task STARTED (was SCHEDULED) [by task_manager]",
        "event #1 game_started",
        "photo STARTED",
        "photo FINISHED (was STARTED)",
        "caption FINISHED: captioned",
        "event #2 score_changed",
        "event #3 game_final",
        "runner FINISHED",
        "task FINISHED (was STARTED) [by task_manager]",
    ]
    assert [e["type"] for e in entries][:4] == [
        "task_state",
        "task_state",
        "event",
        "service_state",
    ]
    photo = entries[4]
    assert (photo["service"], photo["state"], photo["detail"]) == (
        "photo",
        "FINISHED",
        {"url": "https://example.org/p.jpg"},
    )
    final = entries[7]
    assert (final["kind"], final["task_seq"], final["task_runner_id"]) == ("game_final", 3, "run-1")
    assert final["seq"] > entries[6]["seq"]
    assert timeline(store, tid) == entries


def test_timeline_of_an_unknown_task(store):
    with pytest.raises(UnknownTask, match="'nope' does not exist"):
        timeline(store, "nope")


def _finish_media_task(store, tid):
    store.record_poll(PollWrite(tid, 1, "run-1", {"n": 1}, [EventRecord(1, "game_started", {})]))
    report(store, tid, "photo", "FINISHED")
    store.record_poll(
        PollWrite(
            tid,
            1,
            "run-1",
            {"n": 2},
            [EventRecord(2, "score_changed", {}), EventRecord(3, "game_final", {})],
            finish=TaskState.FINISHED,
        )
    )


def test_events_at_the_edges_of_the_tasks_lifetime_are_read(store, db_url, media_task):
    """The events' read is bounded by created_at and finished_at (sql/0017): an event at
    exactly either edge is the task's and is shown."""
    tid = media_task.task.task_id
    _finish_media_task(store, tid)
    report(store, tid, "caption", "FINISHED")
    with psycopg.connect(db_url, autocommit=True) as c:
        first, last = c.execute(
            "SELECT min(time), max(time) FROM task_events WHERE task_id = %s", (tid,)
        ).fetchone()
        assert first < last  # two poll transactions
        c.execute(
            "UPDATE tasks SET created_at = %s, finished_at = %s WHERE task_id = %s",
            (first, last, tid),
        )
    events = [e["task_seq"] for e in timeline(store, tid) if e["type"] == "event"]
    assert events == [1, 2, 3]
    # `otf tasks timeline` (score per bucket) has the same bounds
    assert sum(b["events"] for b in score_timeline(store, tid, timedelta(hours=1))) == 3


def test_a_report_begun_before_the_last_poll_ends_the_task_after_its_events(
    store, db_url, media_task
):
    """A service's report whose transaction began before the runner's last poll (its now() is
    earlier) but ends the task after it: finished_at is clock_timestamp(), so the poll's
    events are inside the task's lifetime and the timeline shows them."""
    tid = media_task.task.task_id
    with psycopg.connect(db_url) as early:
        early.execute("SELECT now()")  # the report's transaction has begun
        _finish_media_task(store, tid)  # the task now waits for caption only
        early.execute(
            "SELECT * FROM otf_record_service_state(%s, 'caption', 'FINISHED', 1, NULL, 'caption')",
            (tid,),
        )
        early.commit()
    assert store.get_task(tid).state == TaskState.FINISHED
    with psycopg.connect(db_url) as c:
        late = c.execute(
            "SELECT count(*) FROM task_events e JOIN tasks t USING (task_id)"
            " WHERE t.task_id = %s AND e.time > t.finished_at",
            (tid,),
        ).fetchone()[0]
    assert late == 0
    events = [e["task_seq"] for e in timeline(store, tid) if e["type"] == "event"]
    assert events == [1, 2, 3]


def test_states_at_the_edges_of_the_tasks_lifetime_are_read(store, db_url, media_task):
    """The states' read has the same bounds: the first (SCHEDULED, written with created_at)
    and the last (the task's FINISHED, at or before finished_at) are shown."""
    tid = media_task.task.task_id
    _finish_media_task(store, tid)
    report(store, tid, "caption", "FINISHED")
    with psycopg.connect(db_url, autocommit=True) as c:
        n, first, last = c.execute(
            "SELECT count(*), min(time), max(time) FROM task_states WHERE task_id = %s", (tid,)
        ).fetchone()
        c.execute(
            "UPDATE tasks SET created_at = %s, finished_at = %s WHERE task_id = %s",
            (first, last, tid),
        )
    states = [e for e in timeline(store, tid) if e["type"] != "event"]
    assert len(states) == n
    assert states[0]["summary"] == "task SCHEDULED [by scheduler]"
    assert states[-1]["summary"] == "task FINISHED (was STARTED) [by task_manager]"
