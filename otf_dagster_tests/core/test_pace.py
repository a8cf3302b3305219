"""The backfill's pace (OTF_BACKFILL_RPS requests per second per feed host) on a fake clock:
requests to one host are spaced one gap apart, two hosts keep separate slots. The feed is
the simulator's counter, which answers how far the (shared, fake) clock had moved when each
request arrived."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from otf_dagster.core.pace import Pace, PacedClient, host_of
from otf_dagster.feeds.http import FeedClient
from otf_dagster.simulator import Simulator
from otf_dagster_tests.helpers import T0, FakeClock

RPS = 4.0  # one request every 0.25 s per host
STEP = 0.01  # the counter's resolution, in fake seconds


def paced(sim: Simulator, pace: Pace, clock: FakeClock) -> PacedClient:
    return PacedClient(FeedClient(sim.base_url), pace, sleep=clock.advance)


def served_at(client: PacedClient) -> float:
    """One paced request; the fake-clock time (seconds after T0) the feed served it at."""
    start = T0 - STEP / 2  # the counter floors: half a step early rounds instead
    doc = client.get_json("/demo/count/pace.json", {"start": start, "steps": 10**9, "every": STEP})
    return round(doc["count"] * STEP, 2)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def pace(store, clock) -> Pace:
    return Pace(store, RPS, clock=lambda: datetime.fromtimestamp(clock(), UTC))


def test_requests_to_one_host_are_spaced_one_gap_apart(store, clock, pace):
    with Simulator(clock=clock) as sim:
        client = paced(sim, pace, clock)
        times = [served_at(client) for _ in range(5)]
        client.close()
        url = f"{sim.base_url}/x"
    assert times == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0], abs=STEP / 2)
    assert client.waited == pytest.approx(1.0, abs=1e-6)  # four gaps waited for
    # A host idle for longer than a gap goes at once: its next slot is now, not a debt.
    clock.advance(10)
    assert pace.reserve(url) == 0.0
    assert pace.reserve(url) == pytest.approx(0.25, abs=1e-6)


def test_two_hosts_keep_separate_slots(store, clock, pace):
    with Simulator(clock=clock) as a, Simulator(clock=clock) as b:
        assert host_of(a.base_url) != host_of(b.base_url)  # 127.0.0.1:port, two ports
        ca, cb = paced(a, pace, clock), paced(b, pace, clock)
        times: dict[str, list[float]] = {"a": [], "b": []}
        for _ in range(3):  # alternately: b's request never waits for a's slot
            times["a"].append(served_at(ca))
            times["b"].append(served_at(cb))
        ca.close()
        cb.close()
    assert times["a"] == pytest.approx([0.0, 0.25, 0.5], abs=STEP / 2)
    assert times["b"] == pytest.approx([0.0, 0.25, 0.5], abs=STEP / 2)
    assert cb.waited == 0.0  # each of b's slots was free when a's gap had passed
