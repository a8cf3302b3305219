"""What one poll is given and gives back: the seam between the TaskRunner (``core``) and the
handlers (``handlers``), written once, below both.

A handler turns (task, its type, its state from the last committed poll, an HTTP client)
into a :class:`PollResult`: events, its next state, whether the task is done / failed / goes
on, follow-up tasks, the delay it would like before the next poll, and what the UI shows.
The TaskRunner owns everything else: the deadline, counting errors, the fenced commit,
heartbeats, the poll interval. Handlers do no database work. The runner is handed a
:class:`HandlerRegistry` (``otf_dagster.handlers.HANDLERS`` in the deployment); it never
imports one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from otf_dagster.vocab.tasks import Task, TaskType


class JsonClient(Protocol):
    """The HTTP face a poll gets (``feeds.clients.PollClient`` over a pooled session)."""

    base_url: str

    def url_for(self, url_or_path: str, params: dict[str, Any] | None = None) -> str: ...

    def get_json(
        self,
        url_or_path: str,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any: ...


class Outcome(StrEnum):
    CONTINUE = "continue"
    DONE = "done"
    FAILED = "failed"


class Markdown(str):
    """A display value the UI renders as markdown (a table, say) rather than as text."""


@dataclass(frozen=True)
class Event:
    """One event a poll found: its kind (``[a-z][a-z0-9_]*``) and a JSON-able payload."""

    kind: str
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class FollowUp:
    """A task the poll found work for: scheduled idempotently with the poll's events."""

    task_type: str
    key: str
    at: datetime
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class PollResult:
    events: list[Event]
    state: Any  # JSON-able; handed back as PollContext.state on the next poll (and on resume)
    outcome: Outcome = Outcome.CONTINUE
    reason: str | None = None  # why the task is done or failed, for its history
    detail: dict[str, Any] = field(default_factory=dict)  # the runner's end detail (done/failed)
    follow_ups: list[FollowUp] = field(default_factory=list)
    next_poll_seconds: float | None = None  # a wish, kept within the type's poll bounds
    display: dict[str, Any] = field(default_factory=dict)  # what the UI shows for this poll


@dataclass
class PollContext:
    task: Task
    task_type: TaskType
    state: Any  # the handler's state from the last committed poll; None before the first
    url: str  # the type's url_template filled in for this task, absolute
    client: JsonClient  # one HTTP session for the type's base URL
    now: datetime
    polls: int  # polls of this task so far, this one included
    consecutive_errors: int  # failed polls just before this one
    parent_state: Callable[[], Any] = lambda: None  # the parent task's handler state, if any


class Handler(Protocol):
    """One kind of polling. ``check`` runs when a type is applied (compile expressions, check
    params; raise InvalidTaskType naming the field, the value and the fix), ``poll`` on each
    poll (raise a FeedError or PollError for a poll that failed; UnknownGame ends the task)."""

    name: str
    description: str
    default_feed: str | None  # a feed name (feeds.providers.DEFAULT_BASE_URLS) or None

    def check(self, task_type: TaskType) -> None: ...

    def references(self, task_type: TaskType) -> list[str]:
        """Other task types this type's params name (they must exist when it is applied)."""
        ...

    def poll(self, ctx: PollContext) -> PollResult: ...

    def label(self, params: Mapping[str, Any]) -> str | None:
        """A short human name for one task of this kind, from its params ("ORL @ BOS"): the
        ``otf/matchup`` tag of its runs; None when the params name nothing."""
        ...


class HandlerRegistry(Protocol):
    """The handlers a runner may call, by name, and the type-level rules around a poll."""

    def get(self, name: str) -> Handler:
        """The handler called ``name``; InvalidTaskType listing the known ones otherwise."""
        ...

    def follow_ups(
        self, spec: Mapping[str, Any] | None, document: Any, now: datetime
    ) -> list[FollowUp]:
        """The tasks a type's ``spawn`` rule finds in the document a poll fetched."""
        ...

    def label(self, handler: str, params: Mapping[str, Any]) -> str | None:
        """Handler ``handler``'s label for a task with ``params``; None when it has none (an
        unknown handler included: a label never stops a launch)."""
        ...

    def validate(self, spec: Mapping[str, Any]) -> TaskType:
        """A task type spec checked against its handler (InvalidTaskType naming the field)."""
        ...
