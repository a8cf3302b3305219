"""A task's timeline merges lifecycle states, services' reports and events in time order."""

from __future__ import annotations

import pytest

from otf_dagster.core.services import report
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
