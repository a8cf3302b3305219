"""The task store's records: task states, task types, tasks. No Dagster, no database code."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class TaskState(StrEnum):
    """Equal, value for value, to the database enum ``task_state`` (a test checks it)."""

    SCHEDULED = "SCHEDULED"
    STARTED = "STARTED"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def terminal(self) -> bool:
        return self in (TaskState.FINISHED, TaskState.FAILED, TaskState.CANCELLED)


_STATES = {s.value: s for s in TaskState}

RUNNER_SERVICE = "runner"
TASK_SERVICE = "task"  # the service name of the task's own lifecycle rows in task_states


@dataclass(frozen=True)
class TaskType:
    name: str
    handler: str
    url_template: str
    poll_interval_seconds: float
    deadline_seconds: int = 21600
    max_attempts: int = 3
    max_consecutive_errors: int = 10
    stale_after_seconds: int = 300
    required_services: tuple[str, ...] = (RUNNER_SERVICE,)
    params: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    created_at: datetime | None = None
    updated_at: datetime | None = None
    deleted_at: datetime | None = None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> TaskType:
        row = dict(row)
        row["required_services"] = tuple(row["required_services"])
        return cls(**row)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["required_services"] = list(self.required_services)
        return d


@dataclass(frozen=True)
class Task:
    task_id: str
    task_type: str
    external_key: str
    scheduled_at: datetime
    state: TaskState
    attempt: int
    params: dict[str, Any] | None = None  # None: not read (a claim returns no params)
    run_id: str | None = None
    heartbeat_at: datetime | None = None
    checkpoint: dict[str, Any] | None = None
    last_error: str | None = None
    parent_task_id: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Task:
        """From a ``tasks`` row, whole or partial (the claim returns only what runners need)."""
        get = row.get
        return cls(
            task_id=row["task_id"],
            task_type=row["task_type"],
            external_key=row["external_key"],
            scheduled_at=row["scheduled_at"],
            state=_STATES[row["state"]],
            attempt=row["attempt"],
            params=get("params"),
            run_id=get("run_id"),
            heartbeat_at=get("heartbeat_at"),
            checkpoint=get("checkpoint"),
            last_error=get("last_error"),
            parent_task_id=get("parent_task_id"),
            created_at=get("created_at"),
            updated_at=get("updated_at"),
            started_at=get("started_at"),
            finished_at=get("finished_at"),
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ClaimedTask:
    """A task the Task Manager just claimed, with what its runner needs from the type."""

    task: Task
    task_type: TaskType


@dataclass(frozen=True)
class EventRecord:
    """One event a runner writes: its place in its task's stream, its kind and payload."""

    task_seq: int
    kind: str
    payload: dict[str, Any]
