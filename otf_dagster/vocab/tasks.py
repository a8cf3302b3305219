"""The task store's records: task states, task types, tasks. No Dagster, no database code."""

from __future__ import annotations

import re
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


class PoolState(StrEnum):
    """A runner pool's state; equal, value for value, to the CHECK runner_pools_state_values
    (a test checks it)."""

    LAUNCHING = "LAUNCHING"  # assigned tasks, its run not yet started
    RUNNING = "RUNNING"  # its run registered and heartbeats
    ENDED = "ENDED"  # idle past its grace, ended itself
    FAILED = "FAILED"  # stale, interrupted or never started

    @property
    def live(self) -> bool:
        return self in (PoolState.LAUNCHING, PoolState.RUNNING)


# A task type's name (the database's CHECK task_types_name_format says the same).
TASK_TYPE_NAME_RE = re.compile(r"^[A-Z][A-Z0-9_]{1,62}$")
MAX_KEY_LENGTH = 200


def key_problem(key: object) -> str | None:
    """Why ``key`` cannot be a task's external key (None: it can): text of 1 to 200 printable
    characters (the database's CHECK tasks_external_key_length bounds the length; no newline,
    NUL, other control or bytes that were not UTF-8, which would reach messages and logs)."""
    if not isinstance(key, str):
        return f"a key must be text, not {type(key).__name__}"
    if not 1 <= len(key) <= MAX_KEY_LENGTH:
        return f"a key must be text of 1 to {MAX_KEY_LENGTH} characters, not {len(key)} characters"
    if not key.isprintable():
        return (
            "it holds a control character or bytes that are not UTF-8; pass the key as "
            "printable UTF-8 text (no trailing newline)"
        )
    return None


RUNNER_MODES = ("run", "pool")
RUNNER_SERVICE = "runner"
TASK_SERVICE = "task"  # the service name of the task's own lifecycle rows in task_states
# The claim's lanes (sql/0015): live work first, backfill work with what is left.
LIVE = "live"
BACKFILL = "backfill"
LANES = (LIVE, BACKFILL)


@dataclass(frozen=True)
class TaskType:
    """What a task is: which handler polls what URL how often, within which limits.

    ``params`` are the handler's settings (checked by the handler when the type is applied);
    ``spawn`` declares follow-up tasks found in each poll's response (any handler).
    """

    name: str
    handler: str
    url_template: str
    poll_interval_seconds: float
    base_url: str | None = None
    min_poll_interval_seconds: float | None = None
    max_poll_interval_seconds: float | None = None
    deadline_seconds: int = 21600
    max_attempts: int = 3
    max_consecutive_errors: int = 10
    stale_after_seconds: int = 300
    required_services: tuple[str, ...] = (RUNNER_SERVICE,)
    params: dict[str, Any] = field(default_factory=dict)
    spawn: dict[str, Any] | None = None
    runner: str | None = None  # "run" | "pool" | None: the deployment's default
    description: str = ""
    created_at: datetime | None = None
    updated_at: datetime | None = None
    deleted_at: datetime | None = None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> TaskType:
        row = dict(row)
        row.pop("inserted", None)
        row["required_services"] = tuple(row["required_services"])
        return cls(**row)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["required_services"] = list(self.required_services)
        return d

    def mode(self, default: str) -> str:
        """How its tasks run: 'run' (a Dagster run each) or 'pool' (hosted by a runner pool)."""
        return self.runner or default

    def poll_bounds(self) -> tuple[float, float]:
        """(shortest, longest) delay a handler may ask for between polls."""
        lo = self.min_poll_interval_seconds or self.poll_interval_seconds
        hi = self.max_poll_interval_seconds or self.poll_interval_seconds
        return lo, hi


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
    deployment_id: str | None = None  # the deployment that launched the current attempt
    pool_id: str | None = None  # the runner pool hosting it, in pool mode
    created_at: datetime | None = None
    updated_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    lane: str = LIVE  # LIVE, or BACKFILL: a game already final when it was ingested

    @property
    def backfill(self) -> bool:
        return self.lane == BACKFILL

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
            deployment_id=get("deployment_id"),
            pool_id=get("pool_id"),
            created_at=get("created_at"),
            updated_at=get("updated_at"),
            started_at=get("started_at"),
            finished_at=get("finished_at"),
            lane=get("lane") or LIVE,
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
