"""Task type definitions: validation (with each handler's own checks), references between
types, applying them, loading from YAML."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

import yaml

from otf_dagster import handlers
from otf_dagster.exceptions import InvalidTaskType, shown
from otf_dagster.feeds.providers import DEFAULT_BASE_URLS
from otf_dagster.handlers import spawn
from otf_dagster.vocab import urls
from otf_dagster.vocab.tasks import RUNNER_MODES, RUNNER_SERVICE, TASK_TYPE_NAME_RE, TaskType

NAME_RE = TASK_TYPE_NAME_RE
SERVICE_RE = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
# The longest poll interval a type may have: a day. A longer one sleeps past every game.
MAX_INTERVAL_SECONDS = 86400.0
MAX_URL_LENGTH = 2000

_FIELDS = set(TaskType.__dataclass_fields__) - {"created_at", "updated_at", "deleted_at"}
# Package data (importlib.resources), so an installed wheel has it as a checkout does.
DEFAULTS_FILE = Path(str(resources.files("otf_dagster.defaults").joinpath("task_types.yaml")))
# Types on the generic handler (http.json), applied by `otf dev`.
EXAMPLES_FILE = Path(str(resources.files("otf_dagster.defaults").joinpath("examples.yaml")))


def validate(spec: Mapping[str, Any]) -> TaskType:
    """A checked TaskType from a mapping; every refusal names the field, the value and the fix.

    The handler checks its own params (and compiles its expressions) here, so a type that
    passes runs: nothing the runner reads is left to fail at the final whistle.
    """
    if not isinstance(spec, Mapping):
        raise InvalidTaskType(f"a task type must be a mapping of fields, got {spec!r}")
    name = spec.get("name")
    label = f"task type {name!r}"
    unknown = set(spec) - _FIELDS
    if unknown:
        raise InvalidTaskType(
            f"{label}: unknown field(s) {sorted(unknown)}; allowed: {sorted(_FIELDS)} "
            "(a handler's own settings go under params)"
        )
    missing = {"name", "handler", "url_template", "poll_interval_seconds"} - set(spec)
    if missing:
        raise InvalidTaskType(f"{label}: missing field(s) {sorted(missing)}")

    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise InvalidTaskType(
            f"task type name {name!r} is malformed: use 2-63 characters of A-Z, 0-9 and _, "
            "starting with a letter (e.g. NBA_GAME_BOXSCORE)"
        )
    try:
        handler = handlers.get(spec["handler"])
    except InvalidTaskType as exc:
        raise InvalidTaskType(f"{label}: {exc}") from None
    template = spec["url_template"]
    if not isinstance(template, str) or not template or len(template) > MAX_URL_LENGTH:
        raise InvalidTaskType(
            f"{label}: url_template must be a URL or a path of up to {MAX_URL_LENGTH} "
            f"characters, got {str(template)[:80]!r}"
        )
    urls.placeholders(template, f"{label}: url_template")
    base_url = spec.get("base_url")
    if base_url is not None:
        if not isinstance(base_url, str):
            raise InvalidTaskType(f"{label}: base_url must be text, got {base_url!r}")
        base_url = urls.check_base_url(base_url, label, DEFAULT_BASE_URLS)

    interval = _interval(spec, "poll_interval_seconds", label)
    lo = (
        _interval(spec, "min_poll_interval_seconds", label)
        if spec.get("min_poll_interval_seconds") is not None
        else None
    )
    hi = (
        _interval(spec, "max_poll_interval_seconds", label)
        if spec.get("max_poll_interval_seconds") is not None
        else None
    )
    if lo is not None and lo > interval:
        raise InvalidTaskType(
            f"{label}: min_poll_interval_seconds {lo:g} is above poll_interval_seconds {interval:g}"
        )
    if hi is not None and hi < interval:
        raise InvalidTaskType(
            f"{label}: max_poll_interval_seconds {hi:g} is below poll_interval_seconds {interval:g}"
        )

    ints: dict[str, int] = {}
    for fld, lo_i, hi_i in (
        ("deadline_seconds", 1, 10**7),
        ("max_attempts", 1, 100),
        ("max_consecutive_errors", 1, 10**4),
        ("stale_after_seconds", 1, 10**6),
    ):
        if fld in spec:
            v = spec[fld]
            if isinstance(v, bool) or not isinstance(v, int) or not lo_i <= v <= hi_i:
                raise InvalidTaskType(
                    f"{label}: {fld} must be a whole number from {lo_i} to {hi_i}, got {str(v)[:40]!r}"
                )
            ints[fld] = v
    deadline = ints.get("deadline_seconds", TaskType.deadline_seconds)
    longest = max(interval, hi or interval)
    if longest > deadline:
        raise InvalidTaskType(
            f"{label}: a poll interval of {longest:g}s is longer than deadline_seconds "
            f"{deadline}: the runner would sleep past the deadline; shorten the interval or "
            "lengthen the deadline"
        )

    services = spec.get("required_services", [RUNNER_SERVICE])
    if isinstance(services, str) or not isinstance(services, list | tuple) or not services:
        raise InvalidTaskType(
            f"{label}: required_services must be a non-empty list, got {services!r}"
        )
    for s in services:
        if not isinstance(s, str) or not SERVICE_RE.fullmatch(s):
            raise InvalidTaskType(
                f"{label}: required service {s!r} is malformed: use lowercase letters, digits, _ and -"
            )
    params = spec.get("params", {}) or {}
    if not isinstance(params, Mapping):
        raise InvalidTaskType(f"{label}: params must be a mapping, got {params!r}")
    runner = spec.get("runner")
    if runner is not None and runner not in RUNNER_MODES:
        raise InvalidTaskType(
            f"{label}: runner must be one of {', '.join(RUNNER_MODES)} (or left out for the "
            f"deployment's default, OTF_RUNNER_MODE), got {runner!r}"
        )
    description = spec.get("description", "") or ""
    if not isinstance(description, str):
        raise InvalidTaskType(f"{label}: description must be text, got {description!r}")

    task_type = TaskType(
        name=name,
        handler=handler.name,
        url_template=template,
        base_url=base_url,
        poll_interval_seconds=interval,
        min_poll_interval_seconds=lo,
        max_poll_interval_seconds=hi,
        required_services=tuple(dict.fromkeys(services)),
        params=dict(params),
        spawn=spawn.check(spec.get("spawn"), label),
        runner=runner,
        description=description,
        **ints,
    )
    handler.check(task_type)
    return task_type


def references(task_type: TaskType) -> list[str]:
    """The other task types ``task_type`` schedules (follow-ups, spawn): they must exist."""
    refs = list(handlers.get(task_type.handler).references(task_type))
    if task_type.spawn:
        refs.append(task_type.spawn["type"])
    return list(dict.fromkeys(refs))


class TypeStore(Protocol):
    """Where types are applied (``core.store.TaskStore``)."""

    def apply_task_types(
        self, types: list[TaskType], *, references: Mapping[str, list[str]]
    ) -> list[tuple[str, bool]]: ...


def apply(store: TypeStore, types: list[TaskType]) -> list[tuple[str, bool]]:
    """Apply ``types`` in one transaction, refused (nothing written) if any names a task type
    that neither exists nor is among them: (name, created) each."""
    return store.apply_task_types(types, references={t.name: references(t) for t in types})


def _interval(spec: Mapping[str, Any], fld: str, label: str) -> float:
    value = _number(spec, fld, label)  # an int too large for a float is refused there
    if not (value > 0 and math.isfinite(value) and value <= MAX_INTERVAL_SECONDS):
        raise InvalidTaskType(
            f"{label}: {fld} must be a number of seconds above 0 and at most "
            f"{MAX_INTERVAL_SECONDS:g} (a day), got {str(spec[fld])[:40]!r}"
        )
    return value


def _number(spec: Mapping[str, Any], fld: str, label: str) -> float:
    v = spec[fld]
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise InvalidTaskType(f"{label}: {fld} must be a number, got {shown(v)}")
    try:
        return float(v)
    except OverflowError:  # an int with hundreds of digits
        raise InvalidTaskType(
            f"{label}: {fld} {shown(v)} is too large; give a number of seconds, e.g. 10"
        ) from None


def load_file(path: Path | str) -> list[TaskType]:
    """Task types from a YAML file: a list, or a mapping with a ``task_types`` list.

    Hostile files get one clear refusal: too big, not UTF-8, not YAML, nested too deep, or an
    alias bomb ("billion laughs": a few lines whose aliases expand to millions of nodes).
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InvalidTaskType(f"task type file {path} does not exist") from None
    except OSError as exc:
        raise InvalidTaskType(f"task type file {path} cannot be read ({exc.strerror})") from None
    if len(data) > MAX_FILE_BYTES:
        raise InvalidTaskType(
            f"task type file {path} is {len(data)} bytes; at most {MAX_FILE_BYTES} are read: "
            "split it into several files"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidTaskType(
            f"task type file {path} is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset "
            f"{exc.start}); save it as UTF-8"
        ) from None
    doc = _safe_yaml(text, path)
    if isinstance(doc, Mapping):
        doc = doc.get("task_types")
    if not isinstance(doc, list) or not doc:
        raise InvalidTaskType(
            f"task type file {path} must hold a non-empty list under 'task_types'"
        )
    return [validate(item) for item in doc]


MAX_FILE_BYTES = 1 << 20
MAX_NODES = 20_000  # after aliases are expanded
MAX_DEPTH = 32


def _safe_yaml(text: str, path: Path) -> Any:
    """``yaml.safe_load``, refusing documents that expand past MAX_NODES or MAX_DEPTH before
    anything is built from them."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_shape(node, path)
        return loader.construct_document(node)
    except RecursionError:
        raise InvalidTaskType(
            f"task type file {path} nests too deep; at most {MAX_DEPTH} levels are read"
        ) from None
    except ValueError as exc:  # e.g. an integer past Python's 4,300-digit conversion limit
        raise InvalidTaskType(
            f"task type file {path} holds a value that cannot be read ({exc})"
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise InvalidTaskType(
            f"task type file {path} is not valid YAML: {problem}{where}"
        ) from None
    finally:
        loader.dispose()


def _check_shape(root: yaml.Node, path: Path) -> None:
    """Count the nodes the document expands to (an alias counts as all it refers to) and its
    depth, iteratively and once per distinct node."""
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        kids = _children(node)
        if done:
            on_path.discard(key)
            size[key] = 1 + sum(size[id(k)] for k in kids)
            depth[key] = 1 + max((depth[id(k)] for k in kids), default=0)
            if size[key] > MAX_NODES:
                raise InvalidTaskType(
                    f"task type file {path} expands to more than {MAX_NODES} values (aliases "
                    "included); write the types out, or use fewer aliases"
                )
            if depth[key] > MAX_DEPTH:
                raise InvalidTaskType(f"task type file {path} nests deeper than {MAX_DEPTH} levels")
            continue
        if key in size:
            continue
        if key in on_path:
            raise InvalidTaskType(f"task type file {path} has an alias that refers to itself")
        on_path.add(key)
        stack.append((node, True))
        stack.extend((k, False) for k in kids if id(k) not in size)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []
