"""The Task Manager's core, free of Dagster: models, the task store, the Task Manager's
decisions, the TaskRunner's poll loop, ingestion, services, consumers and timelines."""
