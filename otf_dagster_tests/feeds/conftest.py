"""Shared helpers of the feeds tests: fixture files, a fake clock, a simulator on 127.0.0.1."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from otf_dagster.simulator import Simulator

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z


def load(relative: str) -> Any:
    return json.loads((FIXTURES / relative).read_text())


class FakeClock:
    """A clock the test moves by hand: the simulator reads it on every request."""

    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sim(clock: FakeClock):
    with Simulator(speed=60, games=3, first_start=30, spacing=60, clock=clock) as simulator:
        yield simulator
