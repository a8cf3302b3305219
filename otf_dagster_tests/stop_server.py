"""Stop the test suite's embedded PostgreSQL (``make test`` runs this at the end)."""

from otf_dagster.local import embedded
from otf_dagster_tests.pg import pgdata_folder

if __name__ == "__main__":
    embedded.stop(pgdata_folder())
