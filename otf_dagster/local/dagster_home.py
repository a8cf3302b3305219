"""A ``DAGSTER_HOME`` for this project: the packaged instance settings and workspace.

The files are package data (``deploy/`` in a checkout, ``otf_dagster.deploy`` in the wheel),
so ``otf dev``, ``otf dagster-home DIR``, the Docker image and the tests all run Dagster with
the same ``dagster.yaml``, installed or not.
"""

from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from otf_dagster import settings

INSTANCE_FILE = "dagster.yaml"
WORKSPACE_FILE = "workspace.yaml"

# Where the packaged workspace.yaml finds the code server (deploy/workspace.yaml reads them).
CODE_SERVER_HOST_ENV = settings.CODE_SERVER_HOST.env
CODE_SERVER_PORT_ENV = settings.CODE_SERVER_PORT.env
LOCATION_NAME = "otf_dagster"


def packaged(name: str) -> Traversable:
    """One of the deployment files the package carries (``dagster.yaml``, ``workspace.yaml``)."""
    return resources.files("otf_dagster.deploy").joinpath(name)


def prepare(home: Path) -> Path:
    """Write the packaged ``dagster.yaml`` and ``workspace.yaml`` into ``home`` (created if
    missing, files replaced so an upgrade takes effect); the home's path."""
    home = Path(home).resolve()
    home.mkdir(parents=True, exist_ok=True)
    for name in (INSTANCE_FILE, WORKSPACE_FILE):
        (home / name).write_text(packaged(name).read_text(encoding="utf-8"), encoding="utf-8")
    return home


def code_server_command(port: int, host: str = "127.0.0.1") -> list[str]:
    """The arguments after ``dagster`` that serve this project's code location over TCP: what
    the code server container runs, and what ``otf dev`` starts."""
    return [
        "code-server",
        "start",
        "-h",
        host,
        "-p",
        str(port),
        "-m",
        "otf_dagster.definitions",
        "-a",
        "defs",
        "--location-name",
        LOCATION_NAME,
    ]
