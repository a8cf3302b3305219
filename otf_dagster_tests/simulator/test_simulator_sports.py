"""The recorded NFL, MLB and NHL games replayed at ESPN's paths, polled over HTTP."""

from __future__ import annotations

import json
from collections import Counter

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from otf_dagster.exceptions import ConfigError, UnknownGame
from otf_dagster.feeds import GameStatus, apply_events, derive_events, empty_like, make_provider
from otf_dagster.feeds.espn import parse_espn_summary
from otf_dagster.feeds.leagues import league
from otf_dagster.simulator import Simulator
from otf_dagster.simulator.espn_replay import sport_replay
from otf_dagster.simulator.feeds.espn import sport_summary
from otf_dagster.simulator.slate import make_slate
from otf_dagster_tests.helpers import T0, FakeClock, load

MS = "espn-multisport"
RECORDED = {
    "nfl": ("401547417", f"{MS}/nfl/summary/summary_2023-09-17_post_GB-at-ATL_401547417.json"),
    "mlb": ("401472463", f"{MS}/mlb/summary/summary_2023-07-19_post_CLE-at-PIT_401472463.json"),
    "nhl": ("401672881", f"{MS}/nhl/summary/summary_2024-06-01_post_NYR-at-FLA_401672881.json"),
}
MIXED = ("nba", "nfl", "mlb", "nhl")


def recorded_final(alias: str):
    """The final box score read straight off the recorded summary fixture."""
    event_id, relative = RECORDED[alias]
    return parse_espn_summary(load(relative), event_id, league(alias))


@pytest.fixture
def mixed(clock: FakeClock):
    with Simulator(
        speed=60, games=2, first_start=30, spacing=60, clock=clock, leagues=MIXED
    ) as sim:
        yield sim


def poll_to_final(provider, game_id: str, clock: FakeClock, step: float, limit: int = 600):
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


@pytest.mark.parametrize("alias", ["nfl", "mlb", "nhl"])
def test_a_replay_ends_at_its_recorded_final(
    mixed: Simulator, clock: FakeClock, alias: str
) -> None:
    provider = make_provider("espn", base_url=mixed.base_url, league=alias, total_retries=0)
    game = next(g for g in mixed.games if g.league == alias and not g.synthesized)
    assert game.espn_id == RECORDED[alias][0]
    first = provider.boxscore(game.espn_id)
    assert first.status is GameStatus.SCHEDULED and first.league == alias

    final, events, polls = poll_to_final(provider, game.espn_id, clock, step=3.0)
    expected = recorded_final(alias)
    assert final.score_line() == expected.score_line()
    assert (final.home.periods, final.away.periods) == (
        expected.home.periods,
        expected.away.periods,
    )
    assert [p.play_id for p in final.plays] == [p.play_id for p in expected.plays]

    statuses = [b.status for b in polls]
    assert statuses == sorted(
        statuses, key=[GameStatus.SCHEDULED, GameStatus.LIVE, GameStatus.FINAL].index
    )
    kinds = [e.kind for e in events]
    assert kinds[0] == "game_started" and kinds[-1] == "game_final"
    assert all(e.payload["league"] == alias for e in events)
    regulation = expected.format.regulation
    assert [e.payload["period"] for e in events if e.kind == "period_ended"] == list(
        range(1, regulation + 1)
    )
    points = Counter()
    for e in events:
        if e.kind == "score_changed":
            points[e.payload["team"]] += e.payload["points"]
    assert points == {
        expected.home.tricode: expected.home.score,
        expected.away.tricode: expected.away.score,
    }
    assert apply_events(empty_like(final), events).score_line() == final.score_line()
    json.dumps([e.to_dict() for e in events])

    if alias == "nfl":
        assert kinds.count("scoring_play") == 10 and "possession_changed" in kinds
        teams = {e.payload["team"] for e in events if e.kind == "possession_changed"}
        assert teams >= {"GB", "ATL"}
    if alias == "nhl":
        assert kinds.count("goal") == 3 and kinds.count("penalty") == 2
        assert any(b.status_detail == "end_period" for b in polls)
    if alias == "mlb":
        halves = [
            (e.payload["inning"], e.payload["half"])
            for e in events
            if e.kind == "half_inning_ended"
        ]
        assert halves[-1] == (9, "top") and len(halves) == 17  # no bottom of the 9th
        runs = {
            (e.payload["inning"], e.payload["half"]): e.payload["runs"]
            for e in events
            if e.kind == "half_inning_ended"
        }
        assert runs[(7, "bottom")] == 5 and runs[(5, "top")] == 3
        assert all(b.clock_seconds is None for b in polls)
        assert {b.inning_half for b in polls if b.status is GameStatus.LIVE} <= {
            "top",
            "mid",
            "bottom",
            "end",
        }


def test_a_mixed_slate_lists_each_league_on_its_own_path(
    mixed: Simulator, clock: FakeClock
) -> None:
    day = mixed.today()
    for alias in MIXED:
        entries = make_provider("espn", base_url=mixed.base_url, league=alias).schedule(day)
        ids = [g.espn_id for g in mixed.games if g.league == alias]
        assert [e.game_id for e in entries] == ids and len(ids) == 2
        assert {e.league for e in entries} == {alias}
    assert len({g.espn_id for g in mixed.games}) == 8
    assert len(make_provider("nba_cdn", base_url=mixed.base_url).schedule(day)) == 2
    nfl = next(g for g in mixed.games if g.league == "nfl" and g.synthesized)
    clock.advance(60 + 1000 / mixed.speed)
    box = make_provider("espn", base_url=mixed.base_url, league="nfl").boxscore(nfl.espn_id)
    assert (box.home.tricode, box.away.tricode) == (nfl.home, nfl.away)
    raw = requests.get(
        f"{mixed.base_url}/apis/site/v2/sports/football/nfl/summary",
        params={"event": nfl.espn_id},
        timeout=5,
    ).json()
    assert raw["_simulator"]["synthesized"] is True and "SYNTHESIZED" in raw["_simulator"]["note"]
    state = requests.get(f"{mixed.base_url}/_sim/state", timeout=5).json()
    assert state["leagues"] == list(MIXED) and {g["league"] for g in state["games"]} == set(MIXED)


def test_events_of_other_leagues_and_leagues_without_games(mixed: Simulator) -> None:
    mlb_game = next(g for g in mixed.games if g.league == "mlb")
    nhl = make_provider("espn", base_url=mixed.base_url, league="nhl", total_retries=0)
    with pytest.raises(UnknownGame, match=mlb_game.espn_id):
        nhl.boxscore(mlb_game.espn_id)
    epl = make_provider("espn", base_url=mixed.base_url, league="epl", total_retries=0)
    assert epl.schedule(mixed.today()) == []
    unknown = requests.get(f"{mixed.base_url}/apis/site/v2/sports/curling/x/scoreboard", timeout=5)
    assert unknown.status_code == 404
    with pytest.raises(ConfigError, match="cannot replay epl"):
        Simulator(leagues=("nba", "epl"))


def test_slates_persist_across_restarts(tmp_path, clock: FakeClock) -> None:
    path = tmp_path / "slates.json"
    with Simulator(
        speed=60,
        games=1,
        first_start=30,
        spacing=60,
        clock=clock,
        leagues=("nba", "mlb"),
        slates_file=path,
    ) as first:
        earlier = [(g.league, g.espn_id, g.nba_id) for g in first.games]
        day = first.today()
    assert len(json.loads(path.read_text())["slates"]) == 1
    clock.advance(4 * 3600)  # hours later, the same day's database restarts the simulator
    with Simulator(
        speed=30,
        games=1,
        first_start=30,
        spacing=60,
        clock=clock,
        leagues=("nba", "mlb"),
        slates_file=path,
    ) as second:
        assert [(g.league, g.espn_id, g.nba_id) for g in second.games][:2] == earlier
        new_ids = {g.espn_id for g in second.slate}
        assert len(second.games) == 4 and not new_ids & {e[1] for e in earlier}
        for alias in ("nba", "mlb"):
            provider = make_provider("espn", base_url=second.base_url, league=alias)
            listed = {e.game_id: e for e in provider.schedule(day)}
            old = next(e for e in earlier if e[0] == alias)
            assert old[1] in listed and listed[old[1]].status is GameStatus.FINAL
            assert provider.boxscore(old[1]).status is GameStatus.FINAL
        # the earlier NBA game keeps its own speed (60) and is final on the NBA CDN too
        assert (
            make_provider("nba_cdn", base_url=second.base_url).boxscore(earlier[0][2]).status
            is GameStatus.FINAL
        )
    assert len(json.loads(path.read_text())["slates"]) == 2
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="slates file"):
        Simulator(slates_file=path)


# --- the property over the replays: events rebuild the last snapshot --------------------------

GAMES = {alias: make_slate(1, T0, 0, 0, leagues=(alias,))[0] for alias in ("nfl", "mlb", "nhl")}


def replayed(alias: str, t: float):
    state = sport_replay(alias).state_at(t)
    game = GAMES[alias]
    return parse_espn_summary(sport_summary(game, state), game.espn_id, league(alias))


def rebuild_key(box) -> tuple:
    return (box.status, box.period, box.home.score, box.away.score, box.home.periods,
            box.away.periods, box.inning_half, box.possession, box.plays)  # fmt: skip


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(alias=st.sampled_from(["nfl", "mlb", "nhl"]), data=st.data())
def test_replayed_events_rebuild_the_last_snapshot(alias: str, data) -> None:
    end = sport_replay(alias).final_time + 60
    ts = sorted(data.draw(st.lists(st.floats(-100, end, allow_nan=False), min_size=1, max_size=12)))
    snaps = [replayed(alias, t) for t in ts]
    events = []
    for prev, new in zip(snaps, snaps[1:], strict=False):
        events += derive_events(prev, new)
    assert rebuild_key(apply_events(snaps[0], events)) == rebuild_key(snaps[-1])
    from_none = derive_events(None, snaps[0]) + events
    assert rebuild_key(apply_events(empty_like(snaps[-1]), from_none)) == rebuild_key(snaps[-1])
