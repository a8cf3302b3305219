"""JMESPath (the expression language of AWS's CLI) for task types written in YAML: compiled
and checked when a type is applied, evaluated on each poll's document."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

import jmespath
from jmespath import exceptions as jp_errors
from jmespath import functions as jp_functions
from jmespath.parser import ParsedResult

from otf_dagster.exceptions import InvalidTaskType, PollError

_KNOWN_FUNCTIONS = frozenset(jp_functions.Functions().FUNCTION_TABLE)
MAX_EXPRESSION_LENGTH = 2000


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())


@lru_cache(maxsize=4096)
def _compiled(text: str) -> ParsedResult:
    return jmespath.compile(text)


def _functions_of(node: Any) -> set[str]:
    names: set[str] = set()
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, dict):
            if current.get("type") == "function_expression":
                names.add(current.get("value"))
            stack.extend(current.get("children") or [])
        elif isinstance(current, list):
            stack.extend(current)
    return names


def compile_checked(text: Any, field: str, label: str) -> ParsedResult:
    """The compiled expression, or InvalidTaskType naming the field, the expression and the
    parser's message (unknown functions included, which JMESPath itself finds only at run)."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidTaskType(
            f"{label}: {field} must be a JMESPath expression (text), got {text!r}"
        )
    if len(text) > MAX_EXPRESSION_LENGTH:
        raise InvalidTaskType(
            f"{label}: {field} is {len(text)} characters long; keep expressions under "
            f"{MAX_EXPRESSION_LENGTH}"
        )
    try:
        parsed = _compiled(text)
    except jp_errors.JMESPathError as exc:
        raise InvalidTaskType(
            f"{label}: {field} {text!r} is not a valid JMESPath expression: {_one_line(exc)}"
        ) from None
    unknown = sorted(_functions_of(parsed.parsed) - _KNOWN_FUNCTIONS)
    if unknown:
        raise InvalidTaskType(
            f"{label}: {field} {text!r} calls unknown function(s) {', '.join(unknown)}; "
            "see https://jmespath.org/specification.html#built-in-functions"
        )
    return parsed


def search(text: str, document: Any, field: str) -> Any:
    """Evaluate on a document; PollError (a counted poll error) when it errors there."""
    try:
        return _compiled(text).search(document)
    except jp_errors.JMESPathError as exc:
        raise PollError(f"{field} {text!r} failed on the response: {_one_line(exc)}") from None


def truthy(value: Any) -> bool:
    """JMESPath's truth: false, null, empty strings, lists and objects are false."""
    return not (value is None or value is False or value == "" or value == [] or value == {})


def storable(value: Any, field: str) -> Any:
    """``value`` if it can be stored as JSON (jsonb); PollError otherwise (NaN, infinity)."""
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise PollError(
            f"{field} gave {str(value)[:80]!r}, which cannot be stored as JSON ({exc})"
        ) from None
    return value
