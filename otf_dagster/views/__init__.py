"""What people look at: tables and charts shared by the Dagster UI and the CLI (no Dagster)."""
