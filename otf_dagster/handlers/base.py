"""The handler seam as handlers use it: the poll vocabulary (``otf_dagster.vocab.poll``,
re-exported) and the checks handlers share."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from otf_dagster.exceptions import InvalidTaskType
from otf_dagster.vocab.poll import (
    Event,
    FollowUp,
    Handler,
    Markdown,
    Outcome,
    PollContext,
    PollResult,
)

__all__ = [
    "Event",
    "FollowUp",
    "Handler",
    "Markdown",
    "Outcome",
    "PollContext",
    "PollResult",
    "param_number",
]


def param_number(
    params: Mapping[str, Any], name: str, default: float, lo: float, hi: float, label: str
) -> float:
    """A numeric handler param, refused (InvalidTaskType) unless lo <= value <= hi."""
    value = params.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidTaskType(f"{label}: params.{name} must be a number of seconds, got {value!r}")
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not (math.isfinite(number) and lo <= number <= hi):
        raise InvalidTaskType(
            f"{label}: params.{name} must be from {lo:g} to {hi:g}, got {value!r}"[:300]
        )
    return number
