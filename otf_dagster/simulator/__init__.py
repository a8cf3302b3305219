"""An offline HTTP simulator of the NBA CDN and ESPN feeds, replaying a recorded game.

with Simulator(speed=60, games=3) as sim:
    provider = make_provider("nba_cdn", base_url=sim.base_url)
"""

from __future__ import annotations

from otf_dagster.simulator.server import FAULT_KINDS, Fault, Simulator
from otf_dagster.simulator.slate import SimGame

__all__ = ["FAULT_KINDS", "Fault", "SimGame", "Simulator"]
