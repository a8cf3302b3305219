"""Task type definitions: validation, the known handlers, loading from YAML."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from otf_dagster.core.models import RUNNER_SERVICE, TaskType
from otf_dagster.exceptions import InvalidTaskType

# The handlers a TaskRunner knows how to run: "<provider>.<what>".
#   *.boxscore: poll the box score until the game is final;
#   *.confirm:  one poll some minutes after the final whistle (feeds correct their stats).
HANDLERS: tuple[str, ...] = ("nba_cdn.boxscore", "nba_cdn.confirm", "espn.boxscore", "espn.confirm")

NAME_RE = re.compile(r"^[A-Z][A-Z0-9_]{1,62}$")
SERVICE_RE = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")

_FIELDS = set(TaskType.__dataclass_fields__) - {"created_at", "updated_at", "deleted_at"}
# Package data (importlib.resources), so an installed wheel has it as a checkout does.
DEFAULTS_FILE = Path(str(resources.files("otf_dagster.defaults").joinpath("task_types.yaml")))


def validate(spec: Mapping[str, Any]) -> TaskType:
    """A checked TaskType from a mapping; every refusal names the field, the value and the fix."""
    if not isinstance(spec, Mapping):
        raise InvalidTaskType(f"a task type must be a mapping of fields, got {spec!r}")
    name = spec.get("name")
    label = f"task type {name!r}"
    unknown = set(spec) - _FIELDS
    if unknown:
        raise InvalidTaskType(
            f"{label}: unknown field(s) {sorted(unknown)}; allowed: {sorted(_FIELDS)}"
        )
    missing = {"name", "handler", "url_template", "poll_interval_seconds"} - set(spec)
    if missing:
        raise InvalidTaskType(f"{label}: missing field(s) {sorted(missing)}")

    if not isinstance(name, str) or not NAME_RE.match(name):
        raise InvalidTaskType(
            f"task type name {name!r} is malformed: use 2-63 characters of A-Z, 0-9 and _, "
            "starting with a letter (e.g. NBA_GAME_BOXSCORE)"
        )
    handler = spec["handler"]
    if handler not in HANDLERS:
        raise InvalidTaskType(
            f"{label}: unknown handler {handler!r}; known handlers: {', '.join(HANDLERS)}"
        )
    template = spec["url_template"]
    if not isinstance(template, str) or "{key}" not in template:
        raise InvalidTaskType(
            f"{label}: url_template {template!r} has no {{key}} placeholder; "
            "write where the external key goes, e.g. /boxscore_{key}.json"
        )
    try:
        template.format(key="x")
    except (KeyError, IndexError, ValueError) as exc:
        raise InvalidTaskType(
            f"{label}: url_template {template!r} has a placeholder other than {{key}} ({exc})"
        ) from None

    interval = _number(spec, "poll_interval_seconds", label)
    if not (interval > 0 and math.isfinite(interval)):
        raise InvalidTaskType(
            f"{label}: poll_interval_seconds must be a positive number of seconds, got {interval!r}"
        )

    ints: dict[str, int] = {}
    for fld, lo, hi in (
        ("deadline_seconds", 1, 10**7),
        ("max_attempts", 1, 100),
        ("max_consecutive_errors", 1, 10**4),
        ("stale_after_seconds", 1, 10**6),
    ):
        if fld in spec:
            v = spec[fld]
            if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                raise InvalidTaskType(
                    f"{label}: {fld} must be a whole number from {lo} to {hi}, got {v!r}"
                )
            ints[fld] = v

    services = spec.get("required_services", [RUNNER_SERVICE])
    if isinstance(services, str) or not isinstance(services, list | tuple) or not services:
        raise InvalidTaskType(
            f"{label}: required_services must be a non-empty list, got {services!r}"
        )
    for s in services:
        if not isinstance(s, str) or not SERVICE_RE.match(s):
            raise InvalidTaskType(
                f"{label}: required service {s!r} is malformed: use lowercase letters, digits, _ and -"
            )
    params = spec.get("params", {}) or {}
    if not isinstance(params, Mapping):
        raise InvalidTaskType(f"{label}: params must be a mapping, got {params!r}")
    description = spec.get("description", "") or ""
    if not isinstance(description, str):
        raise InvalidTaskType(f"{label}: description must be text, got {description!r}")

    return TaskType(
        name=name,
        handler=handler,
        url_template=template,
        poll_interval_seconds=float(interval),
        required_services=tuple(dict.fromkeys(services)),
        params=dict(params),
        description=description,
        **ints,
    )


def _number(spec: Mapping[str, Any], fld: str, label: str) -> float:
    v = spec[fld]
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise InvalidTaskType(f"{label}: {fld} must be a number, got {v!r}")
    return float(v)


def load_file(path: Path | str) -> list[TaskType]:
    """Task types from a YAML file: a list, or a mapping with a ``task_types`` list."""
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidTaskType(f"task type file {path} does not exist") from None
    except yaml.YAMLError as exc:
        raise InvalidTaskType(f"task type file {path} is not valid YAML: {exc}") from None
    if isinstance(doc, Mapping):
        doc = doc.get("task_types")
    if not isinstance(doc, list) or not doc:
        raise InvalidTaskType(
            f"task type file {path} must hold a non-empty list under 'task_types'"
        )
    return [validate(item) for item in doc]
