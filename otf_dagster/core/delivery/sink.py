"""What the relay hands a sink, and what a sink answers.

A sink (a webhook endpoint, a NATS JetStream subject prefix) takes a batch of events of one
endpoint, in ``seq`` order, and says how many of them, from the first, it accepted. The relay
advances the endpoint's position past exactly those, and never past an event a sink did not
accept. Sinks are plain blocking code: the relay runs them on its own threads.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class EventBody:
    """One event as services receive it (webhook JSON, NATS message data). ``id`` is stable:
    the same on every retry and replay of the event."""

    id: str
    seq: int
    task_id: str
    task_runner_id: str | None
    task_type: str
    task_seq: int
    kind: str
    time: str  # ISO 8601, UTC
    payload: dict[str, Any]
    key: str  # the task's external key (a game id)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "seq": self.seq,
            "task_id": self.task_id,
            "task_runner_id": self.task_runner_id,
            "task_type": self.task_type,
            "task_seq": self.task_seq,
            "kind": self.kind,
            "time": self.time,
            "payload": self.payload,
            "key": self.key,
        }


@dataclass(frozen=True)
class Outcome:
    """A sink's answer to one ``send``.

    ``accepted``: how many events of the batch, from the first, the sink took (0..len).
    ``status``: the HTTP status when there was one. ``error``: one line saying what went wrong
    (never a secret). ``retry_after``: seconds the sink asked us to wait (429/503), already
    capped. ``gone``: the sink said it will never take events again (HTTP 410): disable now.
    ``response_start``: the first bytes of a failing response, for the dead-letter view.
    """

    accepted: int
    status: int | None = None
    error: str | None = None
    retry_after: float | None = None
    gone: bool = False
    response_start: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


class Sink(Protocol):
    def send(self, events: Sequence[EventBody]) -> Outcome: ...

    def close(self) -> None: ...
