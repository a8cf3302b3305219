"""`otf backfill` against the offline simulator: each past day once per league (a second run
creates nothing), a day the feed does not know fails alone and the others go on, and bad input
is one line."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from otf_dagster.cli import _register, cli
from otf_dagster.handlers.task_types import DEFAULTS_FILE
from otf_dagster.simulator import Simulator
from otf_dagster_tests.cli.test_cli_edges import refused
from otf_dagster_tests.helpers import T0, FakeClock

DAYS = ("2023-11-13", "2023-11-14", "2023-11-15")  # the slate plays on the 14th (T0)
LEAGUES = ("nba", "nfl")
SCOREBOARD = "/apis/site/v2/sports/{}/scoreboard"
NFL_14TH = "nfl/scoreboard?dates=20231114"


@pytest.fixture
def otf(db_url, monkeypatch):
    monkeypatch.setenv("OTF_DATABASE_URL", db_url)
    monkeypatch.setenv("OTF_BACKFILL_RPS", "1000")  # the pace is test_pace's; be quick here
    for name in ("OTF_FEED_PROVIDER", "OTF_FEED_BASE_URL", "OTF_LEAGUES_FILE"):
        monkeypatch.delenv(name, raising=False)
    _register()
    CliRunner().invoke(cli, ["task-types", "apply", str(DEFAULTS_FILE)], catch_exceptions=False)

    def invoke(*args: str):
        return CliRunner().invoke(cli, list(args), catch_exceptions=False)

    return invoke


@pytest.fixture
def sim():
    """Yesterday's games, long over: every one is final when the backfill lists it."""
    clock = FakeClock(T0)
    with Simulator(games=2, clock=clock, leagues=LEAGUES) as simulator:
        clock.advance(86400)
        yield simulator


def backfill(otf, sim, *extra: str):
    result = otf(
        "backfill",
        "--league",
        ",".join(LEAGUES),
        "--from",
        DAYS[0],
        "--to",
        DAYS[-1],
        "--provider",
        "espn",  # the NBA's games from ESPN too: every league asks one date a request
        "--base-url",
        sim.base_url,
        "--json",
        *extra,
    )
    rows = {(r["day"], r["league"]): r for r in map(json.loads, result.stdout.splitlines())}
    return result, rows


def tasks_by_league(store) -> dict[str, set[tuple[str, str]]]:
    out: dict[str, set[tuple[str, str]]] = {}
    for t in store.list_tasks():
        out.setdefault(t.params.get("league", "nba"), set()).add((t.external_key, t.lane))
    return out


def days_asked(sim, pair: str) -> list[str]:
    path = SCOREBOARD.format(pair)
    return sorted(p.split("dates=")[1][:8] for p in sim.requests if p.startswith(path))


def test_a_backfill_ingests_each_past_day_once_per_league_and_again_changes_nothing(
    otf, sim, store
):
    result, rows = backfill(otf, sim)
    assert result.exit_code == 0, result.output
    assert set(rows) == {(d, lg) for d in DAYS for lg in LEAGUES}
    assert all(r["ok"] for r in rows.values())
    for league in LEAGUES:
        day = rows[("2023-11-14", league)]
        assert (day["games"], day["created"], day["backfill"]) == (2, 2, 2)
        assert rows[("2023-11-13", league)]["games"] == 0
    expected = {
        "nba": {(g.espn_id, "backfill") for g in sim.games if g.league == "nba"},
        "nfl": {(g.espn_id, "backfill") for g in sim.games if g.league == "nfl"},
    }
    assert tasks_by_league(store) == expected
    for pair in ("basketball/nba", "football/nfl"):  # each day once, one date a request
        assert days_asked(sim, pair) == ["20231113", "20231114", "20231115"]

    again, rows = backfill(otf, sim)
    assert again.exit_code == 0, again.output
    assert sum(r["created"] for r in rows.values()) == 0
    assert rows[("2023-11-14", "nfl")]["unchanged"] == 2
    assert tasks_by_league(store) == expected  # no duplicates


def test_a_day_the_feed_does_not_know_fails_alone_and_the_others_go_on(otf, sim, store):
    sim.inject(NFL_14TH, "404", count=None)  # ESPN's NFL scoreboard of the 14th
    result, rows = backfill(otf, sim)
    assert result.exit_code == 1
    failed = rows[("2023-11-14", "nfl")]
    assert not failed["ok"] and "nfl 2023-11-14" in failed["error"] and "404" in failed["error"]
    assert all(r["ok"] for k, r in rows.items() if k != ("2023-11-14", "nfl"))
    assert len(rows) == len(DAYS) * len(LEAGUES)  # the days after it were asked too
    assert result.stderr.splitlines() == [
        "error: 1 day(s) could not be listed (see FAILED above); the other days were "
        "ingested; run the same command again to retry them"
    ]
    assert set(tasks_by_league(store)) == {"nba"}

    sim.clear_faults()  # the same command again ingests the day it missed
    retry, rows = backfill(otf, sim)
    assert retry.exit_code == 0, retry.output
    assert rows[("2023-11-14", "nfl")]["created"] == 2
    assert len(tasks_by_league(store)["nfl"]) == 2


def test_the_text_output_names_the_failed_day(otf, sim):
    sim.inject(NFL_14TH, "404", count=None)
    result = otf(
        "backfill", "--league", "nfl", "--from", "2023-11-14", "--to", "2023-11-14",
        "--provider", "espn", "--base-url", sim.base_url,
    )  # fmt: skip
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert "at most 1000 requests/s per host (OTF_BACKFILL_RPS)" in lines[0]
    assert lines[1].startswith("2023-11-14 nfl: FAILED: nfl 2023-11-14: espn could not list")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--from", "2023-13-01", "--to", "2023-11-14"], "--from '2023-13-01' is not a day"),
        (["--from", "2023-11-13", "--to", "yesterday"], "--to 'yesterday' is not a day"),
        (["--from", "2023-11-14", "--to", "2023-11-13"], "is before --from 2023-11-14"),
        (["--from", "2023-11-13", "--to", "2099-01-01"], "--to 2099-01-01 is not a past day"),
        (["--from", "2020-01-01", "--to", "2023-11-14"], "backfill at most 366"),
        (["--league", "nosuch"], "unknown league 'nosuch'"),
    ],
)
def test_bad_input_is_one_line(otf, sim, args, needle):
    if "--league" not in args:
        args = ["--league", "nba", *args]
    if "--from" not in args:
        args = [*args, "--from", "2023-11-13", "--to", "2023-11-14"]
    refused(otf("backfill", *args, "--base-url", sim.base_url), needle)
    assert list(sim.requests) == []  # refused before any request
