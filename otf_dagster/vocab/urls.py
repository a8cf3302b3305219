"""The URL a task type polls: its ``url_template`` with ``{key}`` and ``{params.NAME}`` filled
in from the task (URL-encoded), resolved against a base URL when it is a path.

Base URL, first found: the template itself when absolute; the type's ``base_url`` when it is
a URL; otherwise the deployment's feed base URL (``OTF_FEED_BASE_URL``, the simulator under
``make dev``), else the real URL of the feed the type names in ``base_url`` (``espn``,
``nba_cdn``) or its handler polls by default.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from otf_dagster.exceptions import ConfigError, InvalidTaskType, PollError

# {key}, {params.NAME}; {{ and }} are literal braces.
_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
_PARAM = re.compile(r"^params\.([A-Za-z_][A-Za-z0-9_]{0,62})$")


def placeholders(template: str, label: str = "url_template") -> list[str]:
    """The placeholders of ``template`` ('key', 'params.NAME'); InvalidTaskType for others."""
    found = []
    for m in _TOKEN.finditer(template):
        token = m.group(0)
        if token in ("{{", "}}"):
            continue
        inner = m.group(1)
        if inner is None:
            raise InvalidTaskType(
                f"{label} {template!r} has an unmatched {token!r}; write {{{{ or }}}} for a "
                "literal brace"
            )
        if inner != "key" and not _PARAM.match(inner):
            raise InvalidTaskType(
                f"{label} {template!r} has an unknown placeholder {{{inner}}}; use {{key}} "
                "(the task's external key) or {params.NAME} (one of the task's params)"
            )
        found.append(inner)
    return found


def required_params(template: str) -> list[str]:
    """The task params a template needs (``{params.NAME}`` -> NAME)."""
    return [p.removeprefix("params.") for p in placeholders(template) if p != "key"]


def render(template: str, key: str, params: Mapping[str, Any] | None) -> str:
    """Fill the template for one task; every value URL-encoded (a key with / or ? stays one
    path segment or one query value)."""
    params = params or {}

    def value(m: re.Match[str]) -> str:
        token = m.group(0)
        if token == "{{":
            return "{"
        if token == "}}":
            return "}"
        inner = m.group(1)
        if inner == "key":
            return quote(str(key), safe="")
        name = inner.removeprefix("params.")
        if name not in params or params[name] is None:
            raise PollError(
                f"url_template {template!r} needs params.{name}, which this task does not have; "
                f"schedule it with --params '{{\"{name}\": ...}}'"
            )
        raw = params[name]
        return quote(raw if isinstance(raw, str) else str(raw), safe="")

    return _TOKEN.sub(value, template)


def is_absolute(url: str) -> bool:
    return url.startswith(("http://", "https://"))


def check_base_url(url: str, label: str, feeds: Mapping[str, str]) -> str:
    """A type's ``base_url``: an http(s) URL, or the name of a feed the project knows (then the
    deployment's feed base URL, the simulator under ``make dev``, takes its place when set)."""
    if url in feeds:
        return url
    if not is_absolute(url) or len(url) > 2000:
        raise InvalidTaskType(
            f"{label}: base_url {url[:80]!r} is neither an http(s) URL nor a feed name "
            f"({', '.join(feeds)}); write e.g. https://api.example.com or espn"
        )
    return url.rstrip("/")


def resolve_base(
    type_base: str | None,
    deployment_base: str | None,
    handler_feed: str | None,
    feeds: Mapping[str, str],
    label: str,
) -> str:
    """The base URL a relative url_template is resolved against (see the module's doc)."""
    if type_base and is_absolute(type_base):
        return type_base.rstrip("/")
    feed = type_base or handler_feed
    base = deployment_base or (feeds.get(feed) if feed else None)
    if not base:
        raise ConfigError(
            f"{label}: its url_template is a path but no base URL is known; give the type a "
            f"base_url (an http(s) URL or one of {', '.join(feeds)}), or set OTF_FEED_BASE_URL"
        )
    return base.rstrip("/")
