"""The daily schedule: a day's games become tasks, idempotently, through the asset too."""

from __future__ import annotations

import copy
import json
from datetime import UTC, date, datetime

import dagster as dg
import pytest

from otf_dagster.core.ingest import ensure_task_types, ingest_day
from otf_dagster.definitions import build_definitions, defs
from otf_dagster.defs.game_schedule import build_game_schedule
from otf_dagster.defs.partitions import game_schedule_partitions, schedule_partition_key
from otf_dagster.defs.resources import FeedResource, TaskStoreResource
from otf_dagster.exceptions import ConfigError
from otf_dagster.feeds import make_provider
from otf_dagster.feeds.leagues import league
from otf_dagster.handlers import HANDLERS, task_types
from otf_dagster.simulator.server import Simulator
from otf_dagster.vocab.tasks import TaskState
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
        "league": "nba",
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
    # already a live task: a final listing leaves it (and its lane) alone; its runner sees the end
    assert report.outcomes["401810727"] == "unchanged" and report.backfill == set()
    assert by_key(store)["401810727"].lane == "live"
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
        grid = game_schedule_partitions(["nba"], "America/New_York")
        result = dg.materialize(
            [build_game_schedule(grid)],
            partition_key=str(schedule_partition_key(day, "nba")),
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


# --- several leagues -------------------------------------------------------------------------

MIXED = ("nba", "nfl", "mlb", "nhl")


def _noon(day) -> datetime:
    from zoneinfo import ZoneInfo

    return datetime.combine(day, datetime.min.time(), tzinfo=ZoneInfo("America/New_York")).replace(
        hour=12
    )


def test_the_daily_schedule_ingests_each_league_on_its_own(db_url, store, default_types):
    """One run per league's day on a real Dagster instance; a league whose feed fails fails
    alone, and its partition is ingested once the feed is back."""
    store.apply_task_type(
        task_types.validate({**league("mlb").task_type_specs()[0], "poll_interval_seconds": 99})
    )  # a user's own setting for the MLB type: ingest must keep it
    with Simulator(speed=60, games=2, first_start=600, spacing=60, leagues=MIXED) as sim:
        definitions = build_definitions(
            leagues=list(MIXED),
            task_store=TaskStoreResource(database_url=db_url),
            feeds=FeedResource(provider="nba_cdn", base_url=sim.base_url),
        )
        job = definitions.resolve_job_def("game_schedule_job")
        schedule = definitions.resolve_schedule_def("daily_game_schedule")
        day = sim.today()
        sim.inject("/sports/football/nfl/scoreboard", "malformed", count=None)
        with dg.instance_for_test() as instance:
            context = dg.build_schedule_context(
                instance=instance,
                scheduled_execution_time=_noon(day),
                repository_def=definitions.get_repository_def(),
            )
            requests = schedule.evaluate_tick(context).run_requests
            assert [str(r.partition_key) for r in requests] == [f"{day}|{lg}" for lg in MIXED]
            results = {
                r.tags["otf/league"]: job.execute_in_process(
                    instance=instance,
                    partition_key=str(r.partition_key),
                    tags=r.tags,
                    raise_on_error=False,
                )
                for r in requests
            }
            assert {lg: res.success for lg, res in results.items()} == {
                "nba": True,
                "nfl": False,
                "mlb": True,
                "nhl": True,
            }
            failure = next(
                e for e in results["nfl"].all_events if e.event_type_value == "STEP_FAILURE"
            )
            assert "football/nfl/scoreboard" in str(failure.event_specific_data.error)
            done = instance.get_materialized_partitions(dg.AssetKey("game_schedule"))
            assert done == {f"{day}|nba", f"{day}|mlb", f"{day}|nhl"}

            sim.clear_faults()
            retry = job.execute_in_process(instance=instance, partition_key=f"{day}|nfl")
            assert retry.success
            [mat] = retry.asset_materializations_for_node("game_schedule")
            assert (mat.metadata["league"].value, mat.metadata["created"].value) == ("nfl", 2)

        for alias, task_type, attr in (
            ("nba", "NBA_GAME_BOXSCORE", "nba_id"),
            ("nfl", "NFL_GAME_BOXSCORE", "espn_id"),
            ("mlb", "MLB_GAME_BOXSCORE", "espn_id"),
            ("nhl", "NHL_GAME_BOXSCORE", "espn_id"),
        ):
            tasks = store.list_tasks(task_type=task_type)
            assert sorted(t.external_key for t in tasks) == sorted(
                getattr(g, attr) for g in sim.games if g.league == alias
            )
            assert {t.params["league"] for t in tasks} == {alias}
        nhl = store.get_task_type("NHL_GAME_BOXSCORE")
        assert nhl.url_template == "/apis/site/v2/sports/hockey/nhl/summary?event={key}"
        assert nhl.params["follow_up_type"] == "NHL_GAME_CONFIRM"
        assert store.get_task_type("NHL_GAME_CONFIRM").handler == "espn.confirm"
        assert store.get_task_type("MLB_GAME_BOXSCORE").poll_interval_seconds == 99


def test_a_league_only_espn_serves_follows_the_nba_cdn_setting(store, default_types):
    with Simulator(speed=60, games=2, first_start=60, spacing=60, leagues=("nba", "mlb")) as sim:
        feeds = FeedResource(provider="nba_cdn", base_url=sim.base_url)
        mlb = feeds.league_registry().get("mlb")
        assert feeds.provider_for_league(mlb).name == "espn"
        assert feeds.schedule_task_type(mlb) == "MLB_GAME_BOXSCORE"
        assert feeds.schedule_task_type() == "NBA_GAME_BOXSCORE"
        espn = FeedResource(provider="espn", base_url=sim.base_url)
        assert espn.schedule_task_type(espn.league_registry().get("nba")) == "ESPN_GAME_BOXSCORE"
        assert ensure_task_types(store, mlb.task_type_specs(), HANDLERS) == [
            "MLB_GAME_BOXSCORE",
            "MLB_GAME_CONFIRM",
        ]
        assert ensure_task_types(store, mlb.task_type_specs(), HANDLERS) == []
        store.delete_task_type("MLB_GAME_BOXSCORE")
        assert (
            ensure_task_types(store, mlb.task_type_specs(), HANDLERS) == []
        )  # a user's delete stands
        report = ingest_day(
            store,
            feeds.provider_for_league(mlb),
            sim.today(),
            task_type="MLB_GAME_CONFIRM",
            tz="America/New_York",
        )
        assert report.count("created") == 2 and {e.league for e in report.entries} == {"mlb"}


def test_the_leagues_to_follow_come_from_the_environment(monkeypatch, tmp_path):
    def grid_leagues() -> list[str]:
        asset = defs().resolve_assets_def("game_schedule")
        league_dim = next(d for d in asset.partitions_def.partitions_defs if d.name == "league")
        return league_dim.partitions_def.get_partition_keys()

    monkeypatch.delenv("OTF_LEAGUES", raising=False)
    monkeypatch.delenv("OTF_LEAGUES_FILE", raising=False)
    assert grid_leagues() == ["nba"]
    monkeypatch.setenv("OTF_LEAGUES", "nba, football/nfl,mlb")
    assert grid_leagues() == ["nba", "nfl", "mlb"]
    follow = tmp_path / "follow.yaml"
    follow.write_text(
        "leagues:\n  - {alias: xfl, path: football/xfl, name: XFL}\nfollow: [xfl, nhl]\n"
    )
    monkeypatch.setenv("OTF_LEAGUES", str(follow))
    assert grid_leagues() == ["xfl", "nhl"]
    monkeypatch.setenv("OTF_LEAGUES", "nba,xfl")
    with pytest.raises(ConfigError) as err:
        defs()
    assert "OTF_LEAGUES='nba,xfl'" in str(err.value) and "nfl" in str(err.value)
    monkeypatch.setenv("OTF_LEAGUES_FILE", str(follow))
    assert grid_leagues() == ["nba", "xfl"]
