"""derive_events for every sport: unit cases and the property that events rebuild the snapshot."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from otf_dagster.feeds.derive import apply_events, derive_events, empty_like
from otf_dagster.feeds.leagues import league
from otf_dagster.feeds.models import BoxScore, GameFormat, GameStatus, Play, TeamLine
from otf_dagster.feeds.sports import HALF_ORDER

LEAGUES = {
    "basketball": "wnba",
    "football": "nfl",
    "hockey": "nhl",
    "baseball": "mlb",
    "soccer": "mls",
}


def fmt_of(sport: str) -> GameFormat:
    lg = league(LEAGUES[sport])
    return GameFormat(lg.periods, lg.period_name, lg.extra, lg.clock)


def game(sport: str, status, period, clock, home, away, hp=(), ap=(), **kw) -> BoxScore:
    return BoxScore(
        "g",
        "espn",
        status,
        period,
        clock,
        TeamLine("HOM", home, tuple(hp)),
        TeamLine("AWY", away, tuple(ap)),
        league=LEAGUES[sport],
        sport=sport,
        format=fmt_of(sport),
        **kw,
    )


def key(box: BoxScore) -> tuple:
    return (
        box.status,
        box.period,
        box.home.score,
        box.away.score,
        box.home.periods,
        box.away.periods,
        box.inning_half,
        box.possession,
        box.plays,
    )


def kinds(events) -> list[str]:
    return [e.kind for e in events]


LIVE, FINAL = GameStatus.LIVE, GameStatus.FINAL


def test_baseball_half_innings_and_runs_per_inning() -> None:
    top1 = game("baseball", LIVE, 1, None, 0, 0, (), (0,), inning_half="top")
    events = derive_events(None, top1)
    assert kinds(events) == ["game_started", "period_started", "half_inning_started"]
    assert events[1].payload["lines"] == ["away"]  # the home side has no linescore yet
    assert events[2].payload == {"inning": 1, "half": "top", "batting": "AWY", "league": "mlb"}
    bot2 = game("baseball", LIVE, 2, None, 1, 2, (1, 0), (2, 0), inning_half="bottom")
    events = derive_events(top1, bot2)
    assert [(e.kind, e.payload.get("inning") or e.payload.get("period")) for e in events] == [
        ("score_changed", 1),
        ("lead_changed", None),
        ("half_inning_ended", 1),
        ("half_inning_started", 1),
        ("score_changed", 1),
        ("half_inning_ended", 1),
        ("period_ended", 1),
        ("period_started", 2),
        ("half_inning_started", 2),
        ("half_inning_ended", 2),
        ("half_inning_started", 2),
    ]
    ended = [e.payload for e in events if e.kind == "half_inning_ended"]
    assert [(p["half"], p["batting"], p["runs"]) for p in ended] == [
        ("top", "AWY", 2),
        ("bottom", "HOM", 1),
        ("top", "AWY", 0),
    ]
    assert key(apply_events(top1, events)) == key(bot2)


def test_baseball_final_without_the_home_half_of_the_ninth() -> None:
    top9 = game(
        "baseball", LIVE, 9, None, 3, 1, (1, 1, 1) + (0,) * 5, (1,) + (0,) * 8, inning_half="top"
    )
    final = replace(top9, status=FINAL, inning_half=None)
    events = derive_events(top9, final)
    assert kinds(events) == ["half_inning_ended", "period_ended", "game_final"]
    assert events[1].payload["home_points"] is None and events[1].payload["away_points"] == 0
    assert key(apply_events(top9, events)) == key(final)


def test_football_scoring_plays_and_possession() -> None:
    q1 = game("football", LIVE, 1, 600.0, 0, 0, (0,), (0,), possession="HOM")
    td = Play("p1", "scoring_play", "AWY", 1, "4:12", "Pass for a touchdown", 0, 7)
    later = game("football", LIVE, 1, 240.0, 0, 7, (0,), (7,), possession="HOM", plays=(td,))
    events = derive_events(q1, later)
    assert kinds(events) == ["score_changed", "lead_changed", "scoring_play"]
    assert events[2].payload == td.to_dict() | {"league": "nfl"}
    turnover = replace(later, possession="AWY")
    [event] = derive_events(later, turnover)
    assert (event.kind, event.payload["team"]) == ("possession_changed", "AWY")
    assert key(apply_events(q1, events + [event])) == key(turnover)


def test_hockey_goals_and_penalties_in_period_order() -> None:
    p1 = game("hockey", LIVE, 1, 1100.0, 0, 0, (0,), (0,))
    pen = Play("a", "penalty", "HOM", 1, "3:56", "Hooking")
    goal = Play("b", "goal", "AWY", 2, "5:00", "Wrist shot", 0, 1)
    p2 = game("hockey", LIVE, 2, 900.0, 0, 1, (0, 0), (0, 1), plays=(pen, goal))
    events = derive_events(p1, p2)
    assert kinds(events) == [
        "penalty",
        "period_ended",
        "period_started",
        "score_changed",
        "lead_changed",
        "goal",
    ]
    assert events[2].payload["label"] == "P2"
    assert key(apply_events(p1, events)) == key(p2)


def test_soccer_goals_red_cards_and_extra_time() -> None:
    h1 = game("soccer", LIVE, 1, 600.0, 0, 0, status_detail="first_half")
    goal = Play("g1", "goal", "HOM", 1, "23'", "Header")
    red = Play("r1", "red_card", "AWY", 2, "61'", "Foul")
    h2 = game("soccer", LIVE, 2, 3700.0, 1, 0, status_detail="second_half", plays=(goal, red))
    events = derive_events(h1, h2)
    assert kinds(events) == [
        "score_changed",
        "lead_changed",
        "goal",
        "period_ended",
        "period_started",
        "red_card",
    ]
    assert events[0].payload["linescore"] is False and events[4].payload["lines"] == []
    et = replace(h2, period=3, status_detail="first_half_extra_time")
    assert [(e.kind, e.payload["label"]) for e in derive_events(h2, et)] == [
        ("period_ended", "H2"),
        ("period_started", "ET1"),
    ]
    assert key(apply_events(h1, events)) == key(h2)


def test_suspended_then_resumed_and_rain_delays() -> None:
    live = game("baseball", LIVE, 5, None, 2, 1, (1, 1, 0, 0), (1, 0, 0, 0, 0), inning_half="top")
    suspended = replace(live, status=GameStatus.SUSPENDED, status_detail="suspended")
    [event] = derive_events(live, suspended)
    assert event.kind == "suspended" and event.payload["inning_half"] == "top"
    resumed = replace(live, inning_half="bottom", home=replace(live.home, periods=(1, 1, 0, 0, 0)))
    events = derive_events(suspended, resumed)
    assert kinds(events) == ["resumed", "half_inning_ended", "half_inning_started"]
    assert key(apply_events(live, [event] + events)) == key(resumed)
    rain = replace(resumed, status_detail="rain_delay")
    assert [(e.kind, e.payload["detail"]) for e in derive_events(resumed, rain)] == [
        ("delayed", "rain_delay")
    ]
    assert [(e.kind, e.payload["from"]) for e in derive_events(rain, resumed)] == [
        ("resumed", "rain_delay")
    ]
    late = game(
        "nfl" and "football", GameStatus.SCHEDULED, None, None, 0, 0, status_detail="delayed"
    )
    assert kinds(derive_events(None, late)) == ["delayed"]


def test_a_play_taken_back_is_a_correction() -> None:
    goal = Play("b", "goal", "AWY", 1, "5:00", "Wrist shot", 0, 1)
    before = game("hockey", LIVE, 1, 900.0, 0, 1, (0,), (1,), plays=(goal,))
    after = game("hockey", LIVE, 1, 880.0, 0, 0, (0,), (0,))
    events = derive_events(before, after)
    assert "play_corrected" in kinds(events)
    assert key(apply_events(before, events)) == key(after)


# --- the property: for every sport, the events rebuild the last snapshot ------------------------


def _countdown_game(draw, sport: str) -> list[BoxScore]:
    fmt = fmt_of(sport)
    length = {"basketball": 600.0, "football": 900.0, "hockey": 1200.0}[sport]
    periods = fmt.regulation + draw(st.integers(0, 2))
    snaps = [game(sport, GameStatus.SCHEDULED, None, None, 0, 0)]
    hp: list[int] = []
    ap: list[int] = []
    plays: list[Play] = []
    period, clock, possession = 0, length, None
    unit = {"basketball": 3, "football": 7, "hockey": 1}[sport]
    for i in range(draw(st.integers(1, 10))):
        before = period
        period = max(1, min(periods, period + draw(st.integers(0, 2))))
        if period != before:
            clock = length
        while len(hp) < period:
            hp.append(0)
            ap.append(0)
        for side, line in (("home", hp), ("away", ap)):
            points = draw(st.integers(0, 2)) * unit
            line[period - 1] += points
            if points and sport != "basketball":
                kind = "scoring_play" if sport == "football" else "goal"
                team = "HOM" if side == "home" else "AWY"
                plays.append(Play(f"{i}{side}", kind, team, period, "1:00", "", sum(hp), sum(ap)))
        if sport == "hockey" and draw(st.booleans()):
            plays.append(Play(f"pen{i}", "penalty", "HOM", period, "2:00", "Tripping"))
        if sport == "football":
            possession = draw(st.sampled_from(["HOM", "AWY", None]))
        clock = min(clock, draw(st.sampled_from([0.0, 30.0, 300.0])))
        snaps.append(
            game(
                sport,
                LIVE,
                period,
                clock,
                sum(hp),
                sum(ap),
                hp,
                ap,
                possession=possession,
                plays=tuple(plays),
            )
        )
    return snaps


def _baseball_game(draw) -> list[BoxScore]:
    snaps = [game("baseball", GameStatus.SCHEDULED, None, None, 0, 0)]
    hp: list[int] = []
    ap: list[int] = []
    pos = -1
    for _ in range(draw(st.integers(1, 14))):
        pos = min(pos + draw(st.integers(1, 5)), 4 * 11 - 1)
        inning, half = pos // 4 + 1, HALF_ORDER[pos % 4]
        while len(ap) < inning:
            ap.append(0)
        while len(hp) < inning - (half in ("top", "mid")):
            hp.append(0)
        batting = ap if half in ("top", "mid") else hp
        batting[-1] += draw(st.integers(0, 3)) if half in ("top", "bottom") else 0
        snaps.append(
            game("baseball", LIVE, inning, None, sum(hp), sum(ap), hp, ap, inning_half=half)
        )
    last = snaps[-1]
    if last.inning_half in ("mid", "end") and draw(st.booleans()):
        snaps.append(replace(last, status=FINAL, inning_half=None))
    return snaps


def _soccer_game(draw) -> list[BoxScore]:
    snaps = [game("soccer", GameStatus.SCHEDULED, None, None, 0, 0)]
    plays: list[Play] = []
    score = {"home": 0, "away": 0}
    minute = 0
    for i in range(draw(st.integers(1, 10))):
        minute = min(120, minute + draw(st.integers(1, 30)))
        period = 1 if minute <= 45 else 2 if minute <= 90 else 3 if minute <= 105 else 4
        for side in ("home", "away"):
            if draw(st.integers(0, 3)) == 0:
                score[side] += 1
                team = "HOM" if side == "home" else "AWY"
                plays.append(Play(f"g{i}{side}", "goal", team, period, f"{minute}'", ""))
        if draw(st.integers(0, 5)) == 0:
            plays.append(Play(f"r{i}", "red_card", "AWY", period, f"{minute}'", ""))
        last = snaps[-1]
        if last.period == 1 and period > 1 and draw(st.booleans()):
            snaps.append(replace(last, status_detail="halftime"))
        detail = "first_half" if period == 1 else "second_half"
        snaps.append(
            game(
                "soccer",
                LIVE,
                period,
                minute * 60.0,
                score["home"],
                score["away"],
                status_detail=detail,
                plays=tuple(plays),
            )
        )
    return snaps


@st.composite
def any_game(draw) -> list[BoxScore]:
    sport = draw(st.sampled_from(sorted(LEAGUES)))
    if sport == "baseball":
        snaps = _baseball_game(draw)
    elif sport == "soccer":
        snaps = _soccer_game(draw)
    else:
        snaps = _countdown_game(draw, sport)
    if snaps[-1].status is LIVE and sport != "baseball" and draw(st.booleans()):
        snaps.append(replace(snaps[-1], status=FINAL, possession=None))
    if snaps[-1].status is FINAL and draw(st.booleans()):  # a correction after the final
        last = snaps[-1]
        snaps.append(replace(last, away=replace(last.away, score=last.away.score + 1)))
    return snaps


@settings(max_examples=300, deadline=None)
@given(snaps=any_game(), data=st.data())
def test_events_rebuild_the_last_snapshot_for_every_sport(snaps: list[BoxScore], data) -> None:
    picks = sorted(data.draw(st.sets(st.integers(0, len(snaps) - 1), min_size=1)))
    chosen = [snaps[i] for i in picks]
    events = []
    for prev, new in zip(chosen, chosen[1:], strict=False):
        step = derive_events(prev, new)
        assert step == derive_events(prev, new)  # deterministic
        assert all(e.payload["league"] == new.league for e in step)
        events += step
    assert key(apply_events(chosen[0], events)) == key(chosen[-1])
    from_none = derive_events(None, chosen[0]) + events
    assert key(apply_events(empty_like(chosen[-1]), from_none)) == key(chosen[-1])
    ends = [e.payload["period"] for e in events if e.kind == "period_ended"]
    assert ends == sorted(set(ends))  # each period ends once, in order
    if chosen[-1].status is FINAL and chosen[0].status is not FINAL:
        assert kinds(events).count("game_final") == 1
