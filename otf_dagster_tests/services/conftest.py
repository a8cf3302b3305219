"""Fixtures for the services tests: a task type that needs photo and caption services too."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from otf_dagster.models import ClaimedTask, TaskType
from otf_dagster.store import TaskStore

NOW = datetime(2026, 11, 27, 19, 0, tzinfo=UTC)
MEDIA = "NBA_GAME_MEDIA"
PLAIN = "NBA_GAME_PLAIN"


@pytest.fixture
def media_types(store: TaskStore) -> None:
    for name, required in ((MEDIA, ("runner", "photo", "caption")), (PLAIN, ("runner",))):
        store.apply_task_type(
            TaskType(
                name=name,
                handler="nba_cdn.boxscore",
                url_template="/boxscore/{key}.json",
                poll_interval_seconds=10,
                required_services=required,
            )
        )


def start_task(store: TaskStore, task_type: str = MEDIA, key: str = "g1") -> ClaimedTask:
    """Schedule and claim one task: it is STARTED at attempt 1."""
    store.schedule_task(task_type, key, NOW)
    [claimed] = [
        c for c in store.claim_ready(now=NOW + timedelta(minutes=1)) if c.task.external_key == key
    ]
    return claimed


@pytest.fixture
def media_task(store: TaskStore, media_types) -> ClaimedTask:
    return start_task(store)
