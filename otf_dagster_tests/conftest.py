from __future__ import annotations

from collections.abc import Iterator

import pytest

from otf_dagster import task_types
from otf_dagster.store import TaskStore
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
