"""The otf command line stays light: loading its commands must not import Dagster (~40 MB and
~0.7 s), so `otf relay` and the other long-running services it starts stay small."""

from __future__ import annotations

import subprocess
import sys


def test_registering_every_otf_command_does_not_import_dagster():
    code = (
        "import sys\n"
        "from otf_dagster import cli\n"
        "cli._register()\n"
        "print(sorted(m for m in sys.modules if m == 'dagster' or m.startswith('dagster.'))[:5])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    ).stdout.strip()
    assert out == "[]", f"otf's commands import Dagster at start-up: {out}"
