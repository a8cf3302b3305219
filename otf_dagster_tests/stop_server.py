"""Stop the test suite's embedded PostgreSQL (``make test`` runs this at the end)."""

from otf_dagster import config
from otf_dagster.local import embedded

if __name__ == "__main__":
    embedded.stop(config.state_dir() / "test-pgdata")
