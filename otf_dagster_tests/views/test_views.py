"""What people look at, from a whole replayed game written by the real runner: the timeline
tells the game (scores, period and clock, times with their zone), the box score is a table,
and the score-over-time chart is a real PNG, in the CLI and as Dagster metadata."""

from __future__ import annotations

import base64
import io
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner
from matplotlib import image

from otf_dagster.cli import _register, cli
from otf_dagster.core.runner import Checkpoint, TaskRunner
from otf_dagster.core.timeline import timeline
from otf_dagster.defs.ui import score_chart_metadata
from otf_dagster.exceptions import NothingToPlot
from otf_dagster.feeds import BoxScore
from otf_dagster.handlers import HANDLERS
from otf_dagster.simulator.server import Simulator
from otf_dagster.views.charts import score_chart_png
from otf_dagster.views.tables import score_table, timeline_markdown
from otf_dagster_tests.core.test_runner import start_task
from otf_dagster_tests.helpers import VirtualClock, apply_test_types

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def game(store):
    """(task id, final box score): ORL at BOS replayed to its end by the TaskRunner."""
    clock = VirtualClock()
    with Simulator(speed=60, games=1, first_start=10, clock=clock.time) as sim:
        apply_test_types(store)
        task = start_task(store, sim.games[0].nba_id, clock)
        TaskRunner(
            store,
            task.task_id,
            1,
            "run-1",
            handlers=HANDLERS,
            feed_base_url=sim.base_url,
            clock=clock,
        ).run()
    final = Checkpoint.load(store.get_task(task.task_id).checkpoint).state
    return task.task_id, BoxScore.from_dict(final)


def test_the_timeline_tells_the_game_with_zoned_times(store, game):
    task_id, _ = game
    entries = timeline(store, task_id)
    text = timeline_markdown(entries)
    lines = text.splitlines()
    assert "tip-off: ORL @ BOS" in text
    assert "final: ORL 97 - BOS 124" in text
    scores = [line for line in lines if "score_changed" in line]
    assert scores and all(" UTC " in line for line in scores)
    first = scores[0]
    assert "+" in first and "(Q1 " in first  # who scored, the score, the period and clock
    assert "lead: " in text and "end of Q4" in text
    eastern = timeline_markdown(entries, ZoneInfo("America/New_York"))
    assert " UTC " not in eastern and (" EST " in eastern or " EDT " in eastern)


def test_the_box_score_is_a_table_by_period(game):
    _, final = game
    cells = [[c.strip() for c in line.split("|")[1:-1]] for line in score_table(final).splitlines()]
    assert cells[0] == ["team", "Q1", "Q2", "Q3", "Q4", "total"]
    away, home = cells[2], cells[3]
    assert away[0] == "ORL" and away[-1] == "97" and sum(map(int, away[1:-1])) == 97
    assert home[0] == "BOS" and home[-1] == "124" and sum(map(int, home[1:-1])) == 124


def test_the_score_chart_is_a_png_of_the_game(store, game):
    task_id, _ = game
    png = score_chart_png(timeline(store, task_id))
    assert png.startswith(PNG)
    pixels = image.imread(io.BytesIO(png), format="png")
    assert pixels.shape[:2] == (400, 900)
    assert score_chart_png(store.task_events(task_id)).startswith(PNG)  # stored events work too
    with pytest.raises(NothingToPlot):
        score_chart_png([e for e in timeline(store, task_id) if e.get("kind") != "score_changed"])


def test_the_chart_as_dagster_metadata(store, game):
    task_id, _ = game
    meta = score_chart_metadata(timeline(store, task_id))
    md = meta["score_chart"].value
    prefix = "![score over time](data:image/png;base64,"
    assert md.startswith(prefix) and md.endswith(")")
    assert base64.b64decode(md[len(prefix) : -1]).startswith(PNG)
    assert score_chart_metadata([]) == {}


def test_otf_tasks_show_plot_writes_the_chart(store, db_url, game, tmp_path, monkeypatch):
    task_id, _ = game
    monkeypatch.setenv("OTF_DATABASE_URL", db_url)
    _register()
    out = tmp_path / "score.png"
    result = CliRunner().invoke(cli, ["tasks", "show", task_id, "--plot", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes().startswith(PNG)
    assert "final: ORL 97 - BOS 124" in result.output and f"written to {out}" in result.output
    bad = CliRunner().invoke(
        cli, ["tasks", "show", task_id, "--plot", str(tmp_path / "no" / "x.png")]
    )
    assert (
        bad.exit_code == 1 and "cannot write --plot" in bad.output and "Traceback" not in bad.output
    )
