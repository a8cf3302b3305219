"""A run's label (``otf/matchup``) is its task's handler's, from the task's params: a game's
"AWAY @ HOME", a spawned task's ``matchup``, nothing for a task whose params name nothing.
The claim reads no params (no sport's words in the store's SQL: test_layers)."""

from __future__ import annotations

from datetime import UTC, datetime

from otf_dagster.core import manager
from otf_dagster.handlers import HANDLERS, task_types

DUE = datetime(2026, 1, 1, tzinfo=UTC)


def test_each_run_is_labelled_by_its_tasks_handler(store, default_types):
    store.apply_task_types(task_types.load_file(task_types.EXAMPLES_FILE))
    store.schedule_task(
        "NBA_GAME_BOXSCORE", "0022400001", DUE, params={"away": "ORL", "home": "BOS"}
    )
    store.schedule_task("ESPN_GAME_BOXSCORE", "401", DUE, params={"matchup": "GB @ ATL"})
    store.schedule_task("GAME_PERIOD_SCORE_TASK", "402", DUE, params={"matchup": "NYR @ FLA"})
    store.schedule_task("DEMO_COUNTER", "c1", DUE, params={"start": 0, "steps": 2, "every": 1})
    store.schedule_task("ESPN_GAME_CONFIRM", "403", DUE, params={"away": "CLE"})  # half a game

    launches = manager.claim(store, 10, source="test")
    manager.label_launches(store, launches, HANDLERS)

    labels = {x.task_type: x.tags.get(manager.TAG_MATCHUP) for x in launches}
    assert labels == {
        "NBA_GAME_BOXSCORE": "ORL @ BOS",
        "ESPN_GAME_BOXSCORE": "GB @ ATL",
        "GAME_PERIOD_SCORE_TASK": "NYR @ FLA",
        "DEMO_COUNTER": None,
        "ESPN_GAME_CONFIRM": None,
    }


def test_an_unknown_handler_or_odd_params_label_nothing():
    assert HANDLERS.label("no.such", {"away": "A", "home": "B"}) is None
    assert HANDLERS.label("nba_cdn.boxscore", {"away": 1, "home": "B"}) is None
    assert HANDLERS.label("http.json", {"matchup": ["A", "B"]}) is None
    assert HANDLERS.label("espn.boxscore", {"away": "A", "home": "B"}) == "A @ B"
    assert len(HANDLERS.label("http.json", {"matchup": "x" * 500})) == 200
