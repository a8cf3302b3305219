"""``otf feed`` against the simulator, through click's runner."""

from __future__ import annotations

import json

from click.testing import CliRunner

from otf_dagster.cli.feed import feed
from otf_dagster.exceptions import UnknownGame
from otf_dagster.simulator import Simulator
from otf_dagster_tests.helpers import FakeClock


def test_feed_schedule_and_boxscore(sim: Simulator, clock: FakeClock) -> None:
    runner = CliRunner()
    day = sim.games[0].day.isoformat()
    out = runner.invoke(
        feed,
        ["schedule", "--provider", "espn", "--base-url", sim.base_url, "--date", day, "--json"],
    )
    assert out.exit_code == 0, out.output
    assert [row["game_id"] for row in json.loads(out.output)][0] == sim.games[0].espn_id

    clock.advance(30 + 3000 / sim.speed)
    out = runner.invoke(
        feed,
        [
            "boxscore",
            "--provider",
            "nba_cdn",
            sim.games[0].nba_id,
            "--base-url",
            sim.base_url,
            "--json",
        ],
    )
    assert out.exit_code == 0, out.output
    doc = json.loads(out.output)
    assert doc["status"] == "live" and doc["period"] == 4
    assert doc["home"]["tricode"] == "BOS" and len(doc["home"]["periods"]) == 4

    text = runner.invoke(
        feed, ["boxscore", "--provider", "espn", sim.games[0].espn_id, "--base-url", sim.base_url]
    )
    assert text.exit_code == 0 and "ORL" in text.output and "Q4" in text.output


def test_feed_errors_are_otf_errors(sim: Simulator) -> None:
    out = CliRunner().invoke(
        feed, ["boxscore", "--provider", "espn", "401673394", "--base-url", sim.base_url]
    )
    assert isinstance(out.exception, UnknownGame)
    assert "401673394" in str(out.exception)
