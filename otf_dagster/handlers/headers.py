"""A task type's ``params.headers``, shared by the handlers that send them (``http.json``,
the box-score handlers): checked when the type is applied, expanded at each poll.

A value's ``${VAR}`` is read from the runner's environment at each poll, so secrets stay in
the environment, never stored or logged; a header that looks like a credential must use it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

from otf_dagster.exceptions import InvalidTaskType, PollError

HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}$")  # an HTTP token
ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
CREDENTIAL = re.compile(r"auth|token|key|secret|cookie|password", re.IGNORECASE)


def check_header(header: Any, value: Any, label: str) -> None:
    """Refuse (InvalidTaskType, naming the header) a malformed one, a credential written in
    clear, or one naming an environment variable not set here."""
    if not isinstance(header, str) or not HEADER_NAME.match(header):
        raise InvalidTaskType(f"{label}: params.headers name {header!r} is not an HTTP header name")
    if not isinstance(value, str) or "\n" in value or "\r" in value or len(value) > 4000:
        raise InvalidTaskType(
            f"{label}: params.headers.{header} must be one line of text, got {str(value)[:40]!r}"
        )
    names = ENV_REF.findall(value)
    if CREDENTIAL.search(header) and not names:
        raise InvalidTaskType(
            f"{label}: params.headers.{header} looks like a credential: write it as "
            f"'${{ENV_VAR}}' (e.g. 'Bearer ${{API_TOKEN}}') so the secret stays in the "
            "environment and is never stored"
        )
    missing = [n for n in names if not os.environ.get(n)]
    if missing:
        raise InvalidTaskType(
            f"{label}: params.headers.{header} names environment variable(s) "
            f"{', '.join(missing)}, which are not set here; export them (the runners need them "
            "too) and apply again"
        )


def expand_headers(spec: Mapping[str, str]) -> dict[str, str] | None:
    """The headers to send, each ``${VAR}`` read from the environment now (PollError when
    unset); None for none."""
    if not spec:
        return None
    out = {}
    for header, value in spec.items():

        def env(m: re.Match[str], header: str = header) -> str:
            found = os.environ.get(m.group(1))
            if not found:
                raise PollError(
                    f"params.headers.{header} names ${{{m.group(1)}}}, which is not set in this "
                    "runner's environment; export it where the runners run"
                )
            return found

        out[header] = ENV_REF.sub(env, value)
    return out
