from __future__ import annotations

from collections.abc import Iterator

import pytest

from otf_dagster.core.store import TaskStore
from otf_dagster.handlers import task_types
from otf_dagster.simulator import Simulator
from otf_dagster.vocab.tasks import ClaimedTask, TaskType
from otf_dagster_tests.helpers import MEDIA, PLAIN, FakeClock, start_task
from otf_dagster_tests.pg import TestServer, start_test_server


@pytest.fixture(scope="session")
def pg_server() -> Iterator[TestServer]:
    server = start_test_server()
    yield server
    # The server keeps running for the next session (starting it costs a second or two);
    # `make test` stops it at the end.


@pytest.fixture
def db_url(pg_server: TestServer) -> Iterator[str]:
    """A fresh, migrated database for this test."""
    name, url = pg_server.fresh_database()
    yield url
    pg_server.drop_database(name)


@pytest.fixture
def store(db_url: str) -> Iterator[TaskStore]:
    with TaskStore(db_url, application_name="otf-test") as s:
        yield s


@pytest.fixture
def default_types(store: TaskStore) -> list:
    types = task_types.load_file(task_types.DEFAULTS_FILE)
    store.apply_task_types(types)
    return types


@pytest.fixture
def media_types(store: TaskStore) -> None:
    """A type that needs photo and caption services besides the runner, and a plain one."""
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


@pytest.fixture
def media_task(store: TaskStore, media_types) -> ClaimedTask:
    return start_task(store)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sim(clock: FakeClock):
    with Simulator(speed=60, games=3, first_start=30, spacing=60, clock=clock) as simulator:
        yield simulator


@pytest.fixture(autouse=True)
def _no_leaked_defs_state_storage() -> Iterator[None]:
    """Each test loads definitions with no Dagster instance's state storage in scope.

    Entering a ``DagsterInstance`` sets a context variable (the defs-state storage) that its
    exit resets; an instance a sensor evaluation opens from ``instance_ref`` and leaves to the
    garbage collector leaks it to the next test, whose definitions load then reads the
    disposed instance's storage (a deleted temp folder) and fails depending on test order."""
    from dagster._core.storage.defs_state.base import _current_storage

    token = _current_storage.set(None)
    yield
    try:
        _current_storage.reset(token)
    except ValueError:  # reset from another context: leave it cleared
        _current_storage.set(None)
