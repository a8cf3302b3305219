"""The simulator refuses the NBA CDN's liveData without an nba.com Referer, as cdn.nba.com
does since May 2026 (403, Akamai's HTML page), so the suite keeps the client honest."""

from __future__ import annotations

import pytest
import requests

from otf_dagster.simulator import Simulator

PATHS = [
    "/static/json/liveData/scoreboard/todaysScoreboard_00.json",
    "/static/json/liveData/boxscore/boxscore_0022000180.json",
    "/static/json/liveData/playbyplay/playbyplay_0022000180.json",
]


@pytest.mark.parametrize("path", PATHS)
def test_live_data_needs_the_referer(sim: Simulator, path: str) -> None:
    bare = requests.get(f"{sim.base_url}{path}", timeout=5)
    assert bare.status_code == 403
    assert bare.headers["Content-Type"].startswith("text/html")
    assert b"Access Denied" in bare.content
    ok = requests.get(
        f"{sim.base_url}{path}", headers={"Referer": "https://www.nba.com/"}, timeout=5
    )
    assert ok.status_code == 200 and ok.json()


def test_other_paths_need_no_referer(sim: Simulator) -> None:
    schedule = requests.get(
        f"{sim.base_url}/static/json/staticData/scheduleLeagueV2.json", timeout=5
    )
    espn = requests.get(f"{sim.base_url}/apis/site/v2/sports/basketball/nba/scoreboard", timeout=5)
    assert (schedule.status_code, espn.status_code) == (200, 200)
