"""A real nats-server for the delivery tests, started like the test PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from otf_dagster.local import nats as embedded_nats
from otf_dagster.local.nats import NatsServer


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    """One JetStream server shared by the tests that neither stop nor restart it."""
    server = embedded_nats.start(tmp_path_factory.mktemp("nats"))
    yield server
    server.stop()


@pytest.fixture
def own_nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    """A JetStream server of this test alone (it may stop and restart it)."""
    server = embedded_nats.start(tmp_path / "nats")
    yield server
    embedded_nats.stop(server.folder)
