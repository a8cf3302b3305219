"""Running the project on one machine: the embedded PostgreSQL server."""
