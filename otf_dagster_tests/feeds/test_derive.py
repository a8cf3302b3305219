"""derive_events: unit cases, and properties over replayed and generated snapshot sequences."""

from __future__ import annotations

import json
from dataclasses import replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from otf_dagster.feeds.derive import apply_events, derive_events, empty_like
from otf_dagster.feeds.espn import parse_espn_summary
from otf_dagster.feeds.models import BoxScore, GameStatus, TeamLine
from otf_dagster.feeds.nba_cdn import parse_nba_boxscore
from otf_dagster.simulator.feeds import espn as sim_espn
from otf_dagster.simulator.feeds import nba_cdn as sim_cdn
from otf_dagster.simulator.replay import CORRECTION_AFTER, recorded_replay
from otf_dagster.simulator.slate import make_slate
from otf_dagster_tests.helpers import T0

GAME = make_slate(1, T0, 0, 0)[0]
END = recorded_replay().final_time + CORRECTION_AFTER + 60


def snapshot(t: float, provider: str) -> BoxScore:
    """The box score the simulator would serve ``t`` game seconds after tip-off (no HTTP)."""
    state = recorded_replay().state_at(t)
    if provider == "espn":
        return parse_espn_summary(sim_espn.nba_summary(GAME, state), GAME.espn_id)
    return parse_nba_boxscore(sim_cdn.boxscore(GAME, state, "/x", T0))


def key(box: BoxScore) -> tuple:
    return (
        box.status,
        box.period,
        box.home.score,
        box.away.score,
        box.home.periods,
        box.away.periods,
    )


def box(status, period, clock, home, away, hp=(), ap=()) -> BoxScore:
    return BoxScore(
        "g",
        "test",
        status,
        period,
        clock,
        TeamLine("HOM", home, tuple(hp)),
        TeamLine("AWY", away, tuple(ap)),
    )


def test_no_change_no_events() -> None:
    b = box(GameStatus.LIVE, 2, 300.0, 40, 38, (20, 20), (18, 20))
    assert derive_events(b, b) == []
    assert derive_events(b, BoxScore.from_dict(b.to_dict())) == []
    assert derive_events(None, box(GameStatus.SCHEDULED, None, None, 0, 0)) == []


def test_first_poll_of_a_live_game() -> None:
    events = derive_events(None, box(GameStatus.LIVE, 1, 600.0, 2, 0, (2,), (0,)))
    assert [e.kind for e in events] == [
        "game_started",
        "period_started",
        "score_changed",
        "lead_changed",
    ]
    assert events[2].payload == {
        "team": "HOM",
        "side": "home",
        "points": 2,
        "home_score": 2,
        "away_score": 0,
        "period": 1,
        "clock_seconds": 600.0,
        "linescore": True,
        "league": "nba",
    }
    assert events[3].payload == {
        "leader": "HOM",
        "home_score": 2,
        "away_score": 0,
        "league": "nba",
    }


def test_skipped_periods_are_emitted_in_order() -> None:
    prev = box(GameStatus.LIVE, 1, 100.0, 20, 22, (20,), (22,))
    new = box(GameStatus.LIVE, 3, 500.0, 60, 50, (25, 25, 10), (24, 20, 6))
    events = derive_events(prev, new)
    assert [(e.kind, e.payload.get("period")) for e in events] == [
        ("score_changed", 1),
        ("score_changed", 1),
        ("lead_changed", None),
        ("period_ended", 1),
        ("period_started", 2),
        ("score_changed", 2),
        ("score_changed", 2),
        ("period_ended", 2),
        ("period_started", 3),
        ("score_changed", 3),
        ("score_changed", 3),
    ]
    assert events[3].payload == {
        "period": 1,
        "label": "Q1",
        "home_points": 25,
        "away_points": 24,
        "league": "nba",
    }
    assert key(apply_events(prev, events)) == key(new)


def test_period_end_at_zero_clock_is_not_repeated() -> None:
    at_zero = box(GameStatus.LIVE, 1, 0.0, 30, 28, (30,), (28,))
    before = replace(at_zero, clock_seconds=5.0)
    assert [e.kind for e in derive_events(before, at_zero)] == ["period_ended"]
    next_period = box(GameStatus.LIVE, 2, 720.0, 30, 28, (30, 0), (28, 0))
    assert [e.kind for e in derive_events(at_zero, next_period)] == ["period_started"]


def test_final_then_corrections() -> None:
    live = box(GameStatus.LIVE, 4, 3.0, 100, 98, (25, 25, 25, 25), (24, 25, 25, 24))
    final = box(GameStatus.FINAL, 4, 0.0, 100, 98, (25, 25, 25, 25), (24, 25, 25, 24))
    kinds = [e.kind for e in derive_events(live, final)]
    assert kinds == ["period_ended", "game_final"]
    fixed = replace(final, away=replace(final.away, score=99, periods=(24, 25, 25, 25)))
    [event] = derive_events(final, fixed)
    assert event.kind == "stats_corrected"
    assert event.payload["changes"]["away_score"] == {"before": 98, "after": 99}
    assert key(apply_events(final, [event])) == key(fixed)


def test_postponed_and_back() -> None:
    scheduled = box(GameStatus.SCHEDULED, None, None, 0, 0)
    postponed = replace(scheduled, status=GameStatus.POSTPONED)
    assert [e.kind for e in derive_events(scheduled, postponed)] == ["postponed"]
    assert derive_events(postponed, postponed) == []
    assert [e.kind for e in derive_events(postponed, scheduled)] == ["rescheduled"]
    cancelled = replace(scheduled, status=GameStatus.CANCELLED)
    assert [e.kind for e in derive_events(None, cancelled)] == ["cancelled"]


def test_overtime() -> None:
    prev = box(GameStatus.LIVE, 4, 0.0, 100, 100, (25,) * 4, (25,) * 4)
    new = box(GameStatus.FINAL, 5, 0.0, 110, 108, (25,) * 4 + (10,), (25,) * 4 + (8,))
    events = derive_events(prev, new)
    assert [e.kind for e in events] == [
        "period_started",
        "score_changed",
        "score_changed",
        "lead_changed",
        "period_ended",
        "game_final",
    ]
    assert key(apply_events(prev, events)) == key(new)


# --- properties --------------------------------------------------------------------------------

times = st.lists(
    st.floats(min_value=-300, max_value=END, allow_nan=False), min_size=1, max_size=10
).map(sorted)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ts=times, provider=st.sampled_from(["nba_cdn", "espn"]))
def test_replayed_events_reconstruct_the_last_snapshot(ts: list[float], provider: str) -> None:
    snaps = [snapshot(t, provider) for t in ts]
    events = []
    for prev, new in zip(snaps, snaps[1:], strict=False):
        step = derive_events(prev, new)
        assert step == derive_events(prev, new)  # deterministic
        events += step
    json.dumps([e.to_dict() for e in events])
    assert key(apply_events(snaps[0], events)) == key(snaps[-1])
    # from nothing at all: derive(None, first) then the rest
    from_none = derive_events(None, snaps[0]) + events
    assert key(apply_events(empty_like(snaps[-1]), from_none)) == key(snaps[-1])
    for s in snaps:
        assert derive_events(s, s) == []
    # score_changed points add up to the score difference, per team
    if snaps[0].status is not GameStatus.FINAL:
        scored = {"home": 0, "away": 0}
        for e in events:
            if e.kind == "score_changed":
                scored[e.payload["side"]] += e.payload["points"]
        assert scored["home"] == snaps[-1].home.score - snaps[0].home.score
        assert scored["away"] == snaps[-1].away.score - snaps[0].away.score


@st.composite
def games(draw) -> list[BoxScore]:
    """A generated game: monotone periods and per-period points, maybe OT, final, corrections."""
    periods = draw(st.integers(min_value=4, max_value=6))
    snaps = [box(GameStatus.SCHEDULED, None, None, 0, 0)]
    hp: list[int] = []
    ap: list[int] = []
    period = 0
    clock = 720.0
    for _ in range(draw(st.integers(min_value=1, max_value=12))):
        before = period
        period = min(periods, period + draw(st.integers(min_value=0, max_value=2)))
        period = max(period, 1)
        if period != before:
            clock = 720.0
        while len(hp) < period:
            hp.append(0)
            ap.append(0)
        hp[period - 1] += draw(st.integers(min_value=0, max_value=12))
        ap[period - 1] += draw(st.integers(min_value=0, max_value=12))
        clock = min(clock, draw(st.sampled_from([0.0, 30.0, 300.0])))  # runs down only
        snaps.append(box(GameStatus.LIVE, period, clock, sum(hp), sum(ap), hp, ap))
    if draw(st.booleans()):
        snaps.append(replace(snaps[-1], status=GameStatus.FINAL, clock_seconds=0.0))
        if draw(st.booleans()):
            last = snaps[-1]
            extra = draw(st.integers(min_value=-2, max_value=2))
            new_hp = last.home.periods[:-1] + (max(0, last.home.periods[-1] + extra),)
            snaps.append(replace(last, home=replace(last.home, score=sum(new_hp), periods=new_hp)))
    return snaps


@settings(max_examples=150, deadline=None)
@given(snaps=games(), data=st.data())
def test_generated_games_reconstruct(snaps: list[BoxScore], data) -> None:
    picks = sorted(data.draw(st.sets(st.integers(0, len(snaps) - 1), min_size=1)))
    chosen = [snaps[i] for i in picks]
    events = []
    for prev, new in zip(chosen, chosen[1:], strict=False):
        events += derive_events(prev, new)
    assert key(apply_events(chosen[0], events)) == key(chosen[-1])
    if chosen[-1].status is GameStatus.FINAL and chosen[0].status is not GameStatus.FINAL:
        assert [e.kind for e in events].count("game_final") == 1
    ends = [e.payload["period"] for e in events if e.kind == "period_ended"]
    assert ends == sorted(set(ends))  # each period ends once, in order
