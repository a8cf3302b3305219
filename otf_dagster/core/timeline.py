"""A task's timeline: its lifecycle states, its services' reports and its events, in time order.

Rows written by one transaction are kept together in the order they happened: a runner's last
poll writes its final events and the task's FINISHED state at once, and although the state rows
carry the transaction's start time (``now()``) and the events a later one, the timeline puts the
states after the events of their own transaction. Rows of one transaction share ``txid``, a
column each row gets from its default (sql/0007), not a system column: it is readable in
TimescaleDB's compressed chunks and survives compression. A state with no ``txid`` (written
before 0007 into a chunk since compressed) keeps its own time.
"""

from __future__ import annotations

from typing import Any

from otf_dagster.core.services import using_store
from otf_dagster.core.store import TaskStore
from otf_dagster.core.store import timeline as reads
from otf_dagster.exceptions import UnknownTask
from otf_dagster.vocab.tasks import TASK_SERVICE


def timeline(store_or_url: TaskStore | str, task_id: str) -> list[dict[str, Any]]:
    """Entries with ``type`` 'task_state' (the task's lifecycle), 'service_state' (a service's
    report; the runner is a service) or 'event', each with ``time`` and a one-line ``summary``."""

    with using_store(store_or_url) as store:
        found = store.run(
            f"read timeline of {task_id!r}", lambda c: reads.timeline_rows(c, task_id)
        )
    if found is None:
        raise UnknownTask(f"task {task_id!r} does not exist; see `otf tasks list`")
    states, events = found

    last_event_time: dict[str, Any] = {}
    for e in events:
        if e["txid"] not in last_event_time or e["time"] > last_event_time[e["txid"]]:
            last_event_time[e["txid"]] = e["time"]

    keyed: list[tuple[tuple, dict[str, Any]]] = []
    for e in events:
        keyed.append(((e["time"], 0, e["seq"]), _event_entry(e)))
    for s in states:
        at = s["time"]
        if s["txid"] is not None:
            at = max(at, last_event_time.get(s["txid"], at))
        keyed.append(((at, 1, s["id"]), _state_entry(s)))
    keyed.sort(key=lambda pair: pair[0])
    return [entry for _, entry in keyed]


def _state_entry(s: dict[str, Any]) -> dict[str, Any]:
    is_task = s["service"] == TASK_SERVICE
    who = "task" if is_task else s["service"]
    summary = f"{who} {s['state']}"
    if s["previous_state"]:
        summary += f" (was {s['previous_state']})"
    reason = (s["detail"] or {}).get("reason") if isinstance(s["detail"], dict) else None
    if reason:
        summary += f": {reason}"
    if s["source"] and s["source"] != s["service"]:
        summary += f" [by {s['source']}]"
    return {
        "type": "task_state" if is_task else "service_state",
        "time": s["time"],
        "service": s["service"],
        "state": s["state"],
        "previous_state": s["previous_state"],
        "attempt": s["attempt"],
        "source": s["source"],
        "detail": s["detail"],
        "summary": summary,
    }


def _event_entry(e: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "event",
        "time": e["time"],
        "seq": e["seq"],
        "task_seq": e["task_seq"],
        "kind": e["kind"],
        "task_runner_id": e["task_runner_id"],
        "detail": e["payload"],
        "summary": f"event #{e['task_seq']} {e['kind']}",
    }
