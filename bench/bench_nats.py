"""Issue 17's NATS benchmark: events/s through NatsSink against a raw nats-py loop.

    python bench/bench_nats.py [--quick] [--repeats N] [--no-write]

``delivery.nats_throughput``: 10 tasks' events sent through ``NatsSink.send`` in batches of 500
(what the relay hands it), each event acked by JetStream before it counts, beside the baseline:
a plain nats-py ``js.publish`` loop (publish, await the ack, next) of the same subjects, headers
and bodies on one connection. Both publish to a fresh file-stored stream of a nats-server of
their own (``.otf/bench-nats``), repeats interleaved; the medians are reported. Goal >= 0.5x.
The sink's rate for one task alone (no two acks of one task in flight, so nothing pipelined)
is kept beside it as ``one_task_events_per_s``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402  (sets sys.path for the project too)
import nats  # noqa: E402
from nats.js.api import StorageType, StreamConfig  # noqa: E402

from otf_dagster.core.delivery.nats_sink import NatsSink, event_subject, stream_name  # noqa: E402
from otf_dagster.core.delivery.sink import EventBody  # noqa: E402
from otf_dagster.local import nats as embedded_nats  # noqa: E402

GOAL = 0.5
BATCH = 500


def log(msg: str) -> None:
    print(msg, flush=True)


def make_events(n: int, tasks: int = 10) -> list[EventBody]:
    return [
        EventBody(
            id=f"evt-{i}",
            seq=i,
            task_id=f"nba_game_boxscore:{i % tasks:010d}",
            task_runner_id=f"run-{i % tasks}",
            task_type="NBA_GAME_BOXSCORE",
            task_seq=i // tasks + 1,
            kind="score_changed",
            time="2026-12-06T12:00:00+00:00",
            payload={"home": i % 120, "away": i % 117, "period": 1 + i % 4},
            key=f"{i % tasks:010d}",
        )
        for i in range(n)
    ]


def through_sink(url: str, prefix: str, events: list[EventBody]) -> float:
    sink = NatsSink(prefix, url, timeout=30.0)
    sink.send(events[:1])  # connect and create the stream outside the timing, as the raw loop
    began = time.perf_counter()
    position = 1
    while position < len(events):
        outcome = sink.send(events[position : position + BATCH])
        if outcome.error:
            raise SystemExit(f"bench: the sink failed: {outcome.error}")
        position += outcome.accepted
    elapsed = time.perf_counter() - began
    sink.close()
    return (len(events) - 1) / elapsed


def raw_loop(url: str, prefix: str, events: list[EventBody]) -> float:
    async def go() -> float:
        nc = await nats.connect(url)
        js = nc.jetstream()
        await js.add_stream(
            StreamConfig(
                name=stream_name(prefix),
                subjects=[f"{prefix}.>"],
                storage=StorageType.FILE,
                duplicate_window=120,
            )
        )
        messages = [
            (
                event_subject(prefix, e.task_type, e.task_id),
                json.dumps(e.to_dict(), separators=(",", ":")).encode(),
                e.id,
            )
            for e in events[1:]
        ]
        began = time.perf_counter()
        for subject, data, msg_id in messages:
            await js.publish(subject, data, headers={"Nats-Msg-Id": msg_id})
        elapsed = time.perf_counter() - began
        await nc.close()
        return len(messages) / elapsed

    return asyncio.run(go())


def run(quick: bool, repeats: int) -> list[dict]:
    n = 2_000 if quick else 20_000
    results: list[dict] = []
    info = _common.machine()
    log(f"machine: {_common.machine_line(info)}")
    folder = _common.ROOT / ".otf" / "bench-nats"
    embedded_nats.stop(folder)
    server = embedded_nats.start(folder)
    try:
        events = make_events(n)
        one_task = make_events(n // 4, tasks=1)  # nothing to pipeline: each ack awaited in turn
        sink_rates: list[float] = []
        raw_rates: list[float] = []
        one_task_rates: list[float] = []
        for r in range(repeats):
            sink_rates.append(through_sink(server.url, f"bench.sink{r}.{time.time_ns()}", events))
            raw_rates.append(raw_loop(server.url, f"bench.raw{r}.{time.time_ns()}", events))
            one_task_rates.append(
                through_sink(server.url, f"bench.one{r}.{time.time_ns()}", one_task)
            )
            log(
                f"  repeat {r + 1}: sink={sink_rates[-1]:,.0f}/s raw={raw_rates[-1]:,.0f}/s "
                f"sink, one task={one_task_rates[-1]:,.0f}/s"
            )
    finally:
        server.stop()
    value, baseline = statistics.median(sink_rates), statistics.median(raw_rates)
    _common.record(
        results,
        "delivery.nats_throughput",
        value,
        "events/s",
        "raw nats-py js.publish loop, awaiting each ack, same messages",
        baseline,
        goal=f">= {GOAL}x",
        goal_met=value / baseline >= GOAL,
        samples=sink_rates,
        baseline_samples=raw_rates,
        events=n,
        batch=BATCH,
        one_task_events_per_s=statistics.median(one_task_rates),
        one_task_samples=one_task_rates,
        note=(
            "NatsSink.send in batches of 500 from the caller's thread; acks pipelined across "
            "distinct tasks; file-stored stream, embedded nats-server on 127.0.0.1"
        ),
        machine=info,
        mode="quick" if quick else "full",
        repeats=repeats,
    )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smoke sizes (figures not comparable)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="do not touch bench/results.json")
    args = parser.parse_args()
    results = run(args.quick, args.repeats)
    print()
    _common.print_table(results)
    if not args.no_write:
        path = _common.write_results(results)
        log(f"\nmerged into {path}")


if __name__ == "__main__":
    main()
