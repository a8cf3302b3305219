"""The daily schedule: a day's games become tasks, idempotently, through the asset too."""

from __future__ import annotations

import copy
import json
from datetime import UTC, date, datetime

import dagster as dg
import pytest

from otf_dagster.core.ingest import ingest_day
from otf_dagster.core.models import TaskState
from otf_dagster.defs.game_schedule import build_game_schedule
from otf_dagster.defs.partitions import game_day_partitions
from otf_dagster.defs.resources import FeedResource, TaskStoreResource
from otf_dagster.feeds import make_provider
from otf_dagster.simulator.server import Simulator
from otf_dagster_tests.helpers import (
    FIXTURES,  # noqa: E402
    StaticFeed,
)

DAY = date(2026, 3, 1)
SCOREBOARD = "/apis/site/v2/sports/basketball/nba/scoreboard?dates=20260301"
T = "ESPN_GAME_BOXSCORE"


@pytest.fixture
def espn_day():
    doc = json.loads(
        (FIXTURES / "espn/scoreboard/scoreboard_2026-03-01_pre_11games.json").read_text()
    )
    with StaticFeed() as feed:
        feed.docs[SCOREBOARD] = doc
        yield feed, doc


def by_key(store):
    return {t.external_key: t for t in store.list_tasks(task_type=T)}


def test_a_day_of_games_becomes_tasks_idempotently(store, default_types, espn_day):
    feed, doc = espn_day
    provider = make_provider("espn", feed.base_url)
    report = ingest_day(store, provider, DAY, task_type=T, tz="America/New_York")
    assert report.count("created") == 11
    tasks = by_key(store)
    assert len(tasks) == 11
    assert tasks["401810723"].scheduled_at.isoformat() == "2026-03-01T18:00:00+00:00"
    assert tasks["401810723"].params == {
        "home": "NYK",
        "away": "SAS",
        "provider": "espn",
        "day": "2026-03-01",
    }
    assert (
        ingest_day(store, provider, DAY, task_type=T, tz="America/New_York").count("unchanged")
        == 11
    )

    # The feed changes: one game moved, one postponed, one gone, one already final.
    changed = copy.deepcopy(doc)
    events = {e["id"]: e for e in changed["events"]}
    events["401810724"]["date"] = "2026-03-01T22:00Z"
    events["401810725"]["status"]["type"].update(
        name="STATUS_POSTPONED", state="pre", description="Postponed"
    )
    final = events["401810727"]
    final["status"]["type"].update(name="STATUS_FINAL", state="post", completed=True)
    changed["events"] = [e for e in changed["events"] if e["id"] != "401810726"]
    feed.docs[SCOREBOARD] = changed
    report = ingest_day(store, provider, DAY, task_type=T, tz="America/New_York")
    assert report.outcomes["401810724"] == "moved"
    assert report.outcomes["401810725"] == "cancelled"
    assert report.outcomes["401810726"] == "cancelled"
    assert report.outcomes["401810727"] == "skipped: final"
    tasks = by_key(store)
    assert tasks["401810724"].scheduled_at.isoformat() == "2026-03-01T22:00:00+00:00"
    assert (
        tasks["401810725"].state == TaskState.CANCELLED
        and "postponed" in tasks["401810725"].last_error
    )
    assert (
        tasks["401810726"].state == TaskState.CANCELLED
        and "vanished" in tasks["401810726"].last_error
    )
    assert sum(t.state == TaskState.SCHEDULED for t in tasks.values()) == 9


def test_a_day_without_games_is_fine(store, default_types, espn_day):
    feed, _ = espn_day
    feed.docs["/apis/site/v2/sports/basketball/nba/scoreboard?dates=20260302"] = {"events": []}
    report = ingest_day(
        store,
        make_provider("espn", feed.base_url),
        date(2026, 3, 2),
        task_type=T,
        tz="America/New_York",
    )
    assert report.entries == [] and store.list_tasks() == []


def test_a_started_game_is_not_cancelled_when_it_vanishes(store, default_types, espn_day):
    feed, doc = espn_day
    provider = make_provider("espn", feed.base_url)
    ingest_day(store, provider, DAY, task_type=T, tz="America/New_York")
    store.claim_ready(1, now=datetime(2026, 3, 1, 18, 1, tzinfo=UTC))
    feed.docs[SCOREBOARD] = {**doc, "events": []}
    ingest_day(store, provider, DAY, task_type=T, tz="America/New_York")
    states = {k: t.state for k, t in by_key(store).items()}
    assert states["401810723"] == TaskState.STARTED
    assert list(states.values()).count(TaskState.CANCELLED) == 10


def test_the_game_schedule_asset_materializes_a_day_from_the_simulator(
    db_url, store, default_types
):
    with Simulator(speed=60, games=3, first_start=60, spacing=60) as sim:
        day = sim.today()
        days = game_day_partitions("America/New_York")
        result = dg.materialize(
            [build_game_schedule(days)],
            partition_key=day.isoformat(),
            resources={
                "task_store": TaskStoreResource(database_url=db_url),
                "feeds": FeedResource(provider="nba_cdn", base_url=sim.base_url),
            },
        )
        assert result.success
        [mat] = result.asset_materializations_for_node("game_schedule")
        assert mat.metadata["game_count"].value == 3 and mat.metadata["created"].value == 3
        table = mat.metadata["games"].value
        for game in sim.games:
            assert game.nba_id in table and game.home in table
        keys = {t.external_key for t in store.list_tasks(task_type="NBA_GAME_BOXSCORE")}
        assert keys == {g.nba_id for g in sim.games}


def test_a_second_fresh_slate_is_new_games_for_the_same_database(store, default_types):
    """`otf dev` restarted on the same day: its slate is new games, not finished ones."""
    keys = []
    for slate_id in (101, 102):
        with Simulator(speed=60, games=2, first_start=60, spacing=60, slate_id=slate_id) as sim:
            report = ingest_day(
                store,
                make_provider("nba_cdn", sim.base_url),
                sim.today(),
                task_type="NBA_GAME_BOXSCORE",
                tz="America/New_York",
            )
            assert report.count("created") == 2
            espn = make_provider("espn", sim.base_url).schedule(sim.today())
            assert sorted(e.game_id for e in espn) == sorted(g.espn_id for g in sim.games)
            assert all(len(g.nba_id) == 10 and len(g.espn_id) == 9 for g in sim.games)
            keys += [g.nba_id for g in sim.games]
    assert len(set(keys)) == 4 and len(store.list_tasks()) == 4
