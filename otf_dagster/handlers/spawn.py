"""Follow-up tasks found in responses, for any handler ("writes more tasks if found").

A type's ``spawn: {items: EXPR, type: TASK_TYPE, key: EXPR, at: EXPR, params: {NAME: EXPR}}``
is evaluated on each successful poll's document: ``items`` yields a list, ``key`` (required),
``at`` (an ISO-8601 time; default now; a time without a zone is UTC) and ``params`` are
evaluated on each item. The runner schedules the follow-ups in the same transaction as the
poll's events, idempotently by (type, key).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from otf_dagster.exceptions import InvalidTaskType, PollError
from otf_dagster.handlers.base import FollowUp
from otf_dagster.handlers.expressions import compile_checked, search
from otf_dagster.vocab.tasks import TASK_TYPE_NAME_RE, key_problem

FIELDS = ("items", "type", "key", "at", "params")
MAX_ITEMS = 5000
_TYPE_NAME_HINT = "2-63 characters of A-Z, 0-9 and _, e.g. ESPN_GAME_BOXSCORE"


def check(spawn: Any, label: str) -> dict[str, Any] | None:
    """The spawn spec, checked: every expression compiled; refused naming field and value."""
    if spawn is None:
        return None
    if not isinstance(spawn, Mapping):
        raise InvalidTaskType(
            f"{label}: spawn must be a mapping with items, type, key (and optionally at, "
            f"params), got {spawn!r}"
        )
    unknown = sorted(set(spawn) - set(FIELDS))
    if unknown:
        raise InvalidTaskType(
            f"{label}: spawn has unknown field(s) {unknown}; allowed: {list(FIELDS)}"
        )
    for required in ("items", "type", "key"):
        if required not in spawn:
            raise InvalidTaskType(
                f"{label}: spawn needs {required!r} (items: a list expression, type: the task "
                "type to schedule, key: an expression for each item's key)"
            )
    if not isinstance(spawn["type"], str) or not TASK_TYPE_NAME_RE.fullmatch(spawn["type"]):
        raise InvalidTaskType(
            f"{label}: spawn.type {spawn['type']!r} is not a task type name ({_TYPE_NAME_HINT})"
        )
    compile_checked(spawn["items"], "spawn.items", label)
    compile_checked(spawn["key"], "spawn.key", label)
    if spawn.get("at") is not None:
        compile_checked(spawn["at"], "spawn.at", label)
    params = spawn.get("params") or {}
    if not isinstance(params, Mapping):
        raise InvalidTaskType(
            f"{label}: spawn.params must map names to expressions, got {params!r}"
        )
    for name, expr in params.items():
        compile_checked(expr, f"spawn.params.{name}", label)
    return dict(spawn)


def follow_ups(spawn: Mapping[str, Any], document: Any, now: datetime) -> list[FollowUp]:
    """The follow-ups ``spawn`` finds in one document; PollError for what cannot be one."""
    items = search(spawn["items"], document, "spawn.items")
    if items is None:
        return []
    if not isinstance(items, list):
        raise PollError(f"spawn.items {spawn['items']!r} gave {type(items).__name__}, not a list")
    if len(items) > MAX_ITEMS:
        raise PollError(f"spawn.items gave {len(items)} items; at most {MAX_ITEMS} per poll")
    out: dict[str, FollowUp] = {}
    for index, item in enumerate(items):
        key = _key(search(spawn["key"], item, "spawn.key"), index)
        at = now
        if spawn.get("at") is not None:
            at = _time(search(spawn["at"], item, "spawn.at"), key, now)
        params = {
            name: search(expr, item, f"spawn.params.{name}")
            for name, expr in (spawn.get("params") or {}).items()
        }
        out[key] = FollowUp(task_type=spawn["type"], key=key, at=at, params=params)
    return list(out.values())


def _key(value: Any, index: int) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise PollError(
            f"spawn.key gave {str(value)[:60]!r} ({type(value).__name__}) for item {index}; "
            "a key is text (or a whole number)"
        )
    key = str(value)
    problem = key_problem(key)
    if problem:
        raise PollError(f"spawn.key gave an invalid key for item {index}: {problem}")
    return key


def _time(value: Any, key: str, now: datetime) -> datetime:
    if value is None:
        return now
    if not isinstance(value, str):
        raise PollError(f"spawn.at gave {value!r} for key {key!r}; expected an ISO-8601 time")
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise PollError(
            f"spawn.at gave {value[:60]!r} for key {key!r}, not an ISO-8601 time"
        ) from None
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)
