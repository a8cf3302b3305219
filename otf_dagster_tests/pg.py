"""The test suite's PostgreSQL: the embedded server in its own folder, a migrated template
database, and a fresh database cloned from it for each test that wants one."""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from pathlib import Path

from otf_dagster import config
from otf_dagster.core.store import migrations
from otf_dagster.local import embedded

TEMPLATE = "otf_test_template"
_counter = itertools.count(1)


@dataclass
class TestServer:
    admin_url: str
    owned: embedded.EmbeddedServer | None

    def url(self, database: str) -> str:
        return embedded.database_url(self.admin_url, database)

    def create_database(self, name: str, template: str | None = TEMPLATE) -> str:
        return embedded.create_database(self.admin_url, name, template)

    def drop_database(self, name: str) -> None:
        embedded.drop_database(self.admin_url, name)

    def fresh_database(self) -> tuple[str, str]:
        name = f"otf_test_{os.getpid()}_{next(_counter)}"
        return name, self.create_database(name)


def start_test_server() -> TestServer:
    """OTF_TEST_ADMIN_URL names an existing server's admin database; otherwise the embedded
    server starts in .otf/test-pgdata (separate from `make dev`'s)."""
    admin = os.environ.get("OTF_TEST_ADMIN_URL")
    owned = None
    if not admin:
        owned = embedded.start(Path(config.state_dir()) / "test-pgdata")
        admin = owned.admin_url
    server = TestServer(admin_url=admin, owned=owned)
    url = server.create_database(TEMPLATE, template=None)
    migrations.migrate(url)
    return server
