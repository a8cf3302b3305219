"""The simulator's college scoreboards answer as ESPN's: a featured subset without ``groups``,
the whole division with it, 25 events for a ``limit`` above 500; the client gets the day."""

from __future__ import annotations

import requests

from otf_dagster.feeds import make_provider
from otf_dagster.simulator import Simulator
from otf_dagster_tests.helpers import FakeClock

BOARD = "/apis/site/v2/sports/basketball/mens-college-basketball/scoreboard"


def test_college_scoreboards_answer_as_espn_does() -> None:
    with Simulator(clock=FakeClock(), college_games=82) as sim:
        day = sim.today().strftime("%Y%m%d")

        def count(**params) -> int:
            r = requests.get(f"{sim.base_url}{BOARD}", params={"dates": day, **params}, timeout=5)
            return len(r.json()["events"])

        assert count() == 10
        assert count(limit=500) == 10
        assert count(groups=50) == 82
        assert count(groups=50, limit=1000) == 25
        games = make_provider("espn", base_url=sim.base_url, league="ncaam").schedule(sim.today())
        assert len(games) == 82
        football = "/apis/site/v2/sports/football/college-football/scoreboard"
        r = requests.get(f"{sim.base_url}{football}", params={"groups": 80}, timeout=5)
        assert len(r.json()["events"]) == 82
