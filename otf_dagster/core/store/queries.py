"""The store's named SQL, read once from the package's ``queries/*.sql`` files.

Each query starts with ``-- name: NAME``; parameters are psycopg's ``%(name)s`` placeholders,
always bound. The files are package data, read through ``importlib.resources``, so an
installed wheel finds them as a checkout does.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

_NAME = re.compile(r"(?m)^-- name: ")


@cache
def _load() -> dict[str, str]:
    found: dict[str, str] = {}
    folder = resources.files(__package__).joinpath("queries")
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".sql"):
            continue
        for chunk in _NAME.split(entry.read_text(encoding="utf-8"))[1:]:
            name, _, body = chunk.partition("\n")
            name = name.strip()
            if name in found:
                raise RuntimeError(f"query {name!r} is defined twice (second in {entry.name})")
            found[name] = body.strip().rstrip(";")
    return found


def query(name: str) -> str:
    """The text of the named query; a KeyError names a query no file defines."""
    try:
        return _load()[name]
    except KeyError:
        raise KeyError(f"no query named {name!r} in otf_dagster/core/store/queries/") from None


def names() -> list[str]:
    return sorted(_load())
