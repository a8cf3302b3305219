"""Delivery to services: each owner's endpoints get the events of the task types it subscribes
to, pushed by the relay from a durable position over ``task_events.seq`` (the outbox)."""
