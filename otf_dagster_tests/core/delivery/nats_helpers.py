"""Reading a JetStream stream back with a nats-py consumer, and making events."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import nats

from otf_dagster.core.delivery.sink import EventBody


def make_events(tasks: int, per_task: int, *, task_type: str = "nba.game") -> list[EventBody]:
    """``tasks`` x ``per_task`` events interleaved by seq, the way task_events holds them."""
    events = []
    for n in range(per_task):
        for t in range(tasks):
            seq = len(events) + 1
            events.append(
                EventBody(
                    id=f"evt-{seq}",
                    seq=seq,
                    task_id=f"task.{t}",
                    task_runner_id="run-1",
                    task_type=task_type,
                    task_seq=n + 1,
                    kind="poll",
                    time="2026-12-06T12:00:00Z",
                    payload={"n": n},
                    key=f"g{t}",
                )
            )
    return events


def read_stream(url: str, stream: str, prefix: str) -> list[tuple[str, str, dict[str, Any]]]:
    """Every message of ``stream`` (subjects ``prefix.>``) in stream order: (subject, Nats-Msg-Id, data)."""

    async def read() -> list[tuple[str, str, dict[str, Any]]]:
        nc = await nats.connect(url)
        try:
            js = nc.jetstream()
            total = (await js.stream_info(stream)).state.messages
            sub = await js.pull_subscribe(f"{prefix}.>", stream=stream)
            out: list[tuple[str, str, dict[str, Any]]] = []
            while len(out) < total:
                for msg in await sub.fetch(min(500, total - len(out)), timeout=5):
                    out.append((msg.subject, msg.headers["Nats-Msg-Id"], json.loads(msg.data)))
                    await msg.ack()
            return out
        finally:
            await nc.close()

    return asyncio.run(read())


def delete_stream(url: str, stream: str) -> None:
    async def delete() -> None:
        nc = await nats.connect(url)
        try:
            await nc.jetstream().delete_stream(stream)
        finally:
            await nc.close()

    asyncio.run(delete())
