"""Replaying the recorded game through the simulator, polled over HTTP by both providers."""

from __future__ import annotations

import json
from collections import Counter

import pytest
import requests

from otf_dagster.exceptions import ConfigError, UnknownGame
from otf_dagster.feeds import GameStatus, derive_events, make_provider
from otf_dagster.simulator import Simulator
from otf_dagster.simulator.replay import CORRECTION_AFTER
from otf_dagster_tests.helpers import FakeClock, load

PBP = "nba_cdn/playbyplay/playbyplay_0022000180_ORL-at-BOS_final.json"


def recorded_periods() -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Per-period points read straight off the fixture: scores at each 'period end' action."""
    actions = sorted(load(PBP)["game"]["actions"], key=lambda a: a["orderNumber"])
    ends = {}
    for a in actions:
        if a["actionType"] == "period" and a["subType"] == "end":
            ends[a["period"]] = (int(a["scoreHome"]), int(a["scoreAway"]))
    home, away, prev = [], [], (0, 0)
    for period in sorted(ends):
        home.append(ends[period][0] - prev[0])
        away.append(ends[period][1] - prev[1])
        prev = ends[period]
    return tuple(home), tuple(away)


def poll_until_final(provider, game_id: str, clock: FakeClock, step: float, limit: int = 400):
    prev, events, polls = None, [], []
    for _ in range(limit):
        box = provider.boxscore(game_id)
        events += derive_events(prev, box)
        polls.append(box)
        prev = box
        if box.status is GameStatus.FINAL:
            return box, events, polls
        clock.advance(step)
    raise AssertionError(f"{game_id} not final after {limit} polls")


@pytest.mark.parametrize(("name", "id_attr"), [("nba_cdn", "nba_id"), ("espn", "espn_id")])
def test_replay_to_final(sim: Simulator, clock: FakeClock, name: str, id_attr: str) -> None:
    provider = make_provider(name, base_url=sim.base_url, total_retries=0)
    game = sim.games[0]
    game_id = getattr(game, id_attr)

    first = provider.boxscore(game_id)
    assert first.status is GameStatus.SCHEDULED and first.period is None

    # 4 real seconds per poll at speed 60: a poll every 4 game minutes, breaks included
    final, events, polls = poll_until_final(provider, game_id, clock, step=4.0)
    assert final.score_line() == "ORL 97 - BOS 124"
    home, away = recorded_periods()
    assert (final.home.periods, final.away.periods) == (home, away)
    assert final.home.periods == (34, 26, 28, 36)

    statuses = [b.status for b in polls]
    assert GameStatus.LIVE in statuses
    assert statuses == sorted(
        statuses, key=[GameStatus.SCHEDULED, GameStatus.LIVE, GameStatus.FINAL].index
    )
    kinds = [e.kind for e in events]
    assert kinds[0] == "game_started" and kinds[-1] == "game_final"
    assert [e.payload["period"] for e in events if e.kind == "period_started"] == [1, 2, 3, 4]
    assert [e.payload["period"] for e in events if e.kind == "period_ended"] == [1, 2, 3, 4]
    ended = {e.payload["period"]: e.payload for e in events if e.kind == "period_ended"}
    assert [ended[k]["home_points"] for k in (1, 2, 3, 4)] == list(home)
    points = Counter()
    for e in events:
        if e.kind == "score_changed":
            points[e.payload["team"]] += e.payload["points"]
    assert points == {"BOS": 124, "ORL": 97}
    assert events[-1].payload["home_score"] == 124
    json.dumps([e.to_dict() for e in events])  # JSON-able

    # a last poll after the statisticians' pass: a correction, scores unchanged
    clock.advance(CORRECTION_AFTER / sim.speed + 1)
    later = provider.boxscore(game_id)
    corrections = derive_events(final, later)
    assert [e.kind for e in corrections] == ["stats_corrected"]
    assert later.score_line() == final.score_line()
    assert derive_events(later, provider.boxscore(game_id)) == []


def test_providers_agree_mid_game(sim: Simulator, clock: FakeClock) -> None:
    game = sim.games[0]
    clock.advance(30 + 1500 / sim.speed)  # 25 game minutes in: 2nd quarter
    nba = make_provider("nba_cdn", base_url=sim.base_url).boxscore(game.nba_id)
    espn = make_provider("espn", base_url=sim.base_url).boxscore(game.espn_id)
    assert nba.status is espn.status is GameStatus.LIVE
    assert nba.period == espn.period
    assert nba.home.periods == espn.home.periods and nba.away.periods == espn.away.periods
    assert nba.clock_seconds == pytest.approx(espn.clock_seconds, abs=0.1)
    nba_points = {p.player_id: p.stats["points"] for p in nba.players}
    espn_points = {p.player_id: p.stats["points"] for p in espn.players}
    assert nba_points == espn_points and sum(nba_points.values()) == nba.home.score + nba.away.score


def test_slate_and_schedules(sim: Simulator, clock: FakeClock) -> None:
    assert [g.nba_id for g in sim.games] == ["0022000180", "0029900001", "0029900002"]
    assert all(len(g.espn_id) == 9 and g.espn_id.isdigit() for g in sim.games)
    assert [g.synthesized for g in sim.games] == [False, True, True]
    assert sim.games[1].start - sim.games[0].start == 60
    day = sim.games[0].day
    for name, attr in (("nba_cdn", "nba_id"), ("espn", "espn_id")):
        provider = make_provider(name, base_url=sim.base_url)
        entries = provider.schedule(day)
        assert [e.game_id for e in entries] == [getattr(g, attr) for g in sim.games]
        assert (entries[0].home, entries[0].away) == ("BOS", "ORL")
        # ESPN dates have minute precision, as in the recorded feed
        lag = (sim.games[0].start_time - entries[0].start_time).total_seconds()
        assert 0 <= lag < (60 if name == "espn" else 1)
        other = day.replace(year=day.year - 1)
        assert provider.schedule(other) == []
    raw = requests.get(
        f"{sim.base_url}/apis/site/v2/sports/basketball/nba/scoreboard",
        params={"dates": "19990101"},
        timeout=5,
    ).json()
    assert raw["events"] == []


def test_synthesized_game_is_labelled(sim: Simulator, clock: FakeClock) -> None:
    game = sim.games[1]
    clock.advance(30 + 60 + 700 / sim.speed)
    box = make_provider("nba_cdn", base_url=sim.base_url).boxscore(game.nba_id)
    assert (box.home.tricode, box.away.tricode) == (game.home, game.away)
    assert box.status is GameStatus.LIVE and box.period == 1
    raw = requests.get(
        f"{sim.base_url}/static/json/liveData/boxscore/boxscore_{game.nba_id}.json",
        headers={"Referer": "https://www.nba.com/"},
        timeout=5,
    ).json()
    assert raw["game"]["_simulator"]["synthesized"] is True
    assert "SYNTHESIZED" in raw["game"]["_simulator"]["note"]


def test_unknown_games_are_404(sim: Simulator) -> None:
    nba = make_provider("nba_cdn", base_url=sim.base_url, total_retries=0)
    espn = make_provider("espn", base_url=sim.base_url, total_retries=0)
    with pytest.raises(UnknownGame, match="boxscore_0022099999"):
        nba.boxscore("0022099999")
    with pytest.raises(UnknownGame, match="event=401673394"):
        espn.boxscore("401673394")
    body = requests.get(
        f"{sim.base_url}/apis/site/v2/sports/basketball/nba/summary",
        params={"event": "401673394"},
        timeout=5,
    )
    assert body.status_code == 404
    assert body.json() == load("espn/summary/summary_401673394_error_404.json")


def test_control_endpoints(sim: Simulator, clock: FakeClock) -> None:
    clock.advance(31)
    state = requests.get(f"{sim.base_url}/_sim/state", timeout=5).json()
    assert [g["status"] for g in state["games"]] == ["live", "scheduled", "scheduled"]
    posted = requests.post(
        f"{sim.base_url}/_sim/faults",
        json={"path": "todaysScoreboard", "kind": "503", "count": 2},
        timeout=5,
    )
    assert posted.status_code == 201 and posted.json()["status"] == 503
    assert len(requests.get(f"{sim.base_url}/_sim/faults", timeout=5).json()["faults"]) == 1
    bad = requests.post(
        f"{sim.base_url}/_sim/faults", json={"path": "x", "kind": "nope"}, timeout=5
    )
    assert bad.status_code == 400 and "nope" in bad.json()["message"]
    requests.delete(f"{sim.base_url}/_sim/faults", timeout=5)
    assert sim.faults() == []


def test_simulator_rejects_bad_settings() -> None:
    with pytest.raises(ConfigError, match="speed"):
        Simulator(speed=0)
    with pytest.raises(ConfigError, match="fault kind 'boom'"):
        Simulator().inject("x", "boom")
