"""The feeds as they answer today: the NBA CDN's Referer rule (headers sent by default,
overridable; a 403 HTML page is FeedRefused, an outage), ESPN as the NBA's default feed, and
ESPN's college divisions (groups merged and de-duplicated, limit never above 500, the
25-event cap warned about). Real loopback servers: the simulator, and a small ESPN stand-in."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import date, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from otf_dagster.core.runner import TaskRunner
from otf_dagster.defs.resources import FeedResource
from otf_dagster.exceptions import ConfigError, FeedRefused, RetriableFeedError, UnknownGame
from otf_dagster.feeds import make_provider
from otf_dagster.feeds.leagues import default_leagues, load_leagues
from otf_dagster.feeds.providers import MAX_LIMIT, EspnProvider
from otf_dagster.handlers import HANDLERS
from otf_dagster.simulator import Simulator
from otf_dagster.vocab.tasks import TaskState
from otf_dagster_tests.helpers import VirtualClock, apply_test_types, load

BOX = "nba_cdn/boxscore/boxscore_0042200123_PHI-at-BKN_status3_final.json"
REFUSED = (
    "<HTML><HEAD><TITLE>Access Denied</TITLE></HEAD><BODY><H1>Access Denied</H1></BODY></HTML>"
)


class Recorder:
    """A loopback server answering every GET with ``answer(path, query)``, keeping headers."""

    def __init__(self, answer) -> None:
        self.answer = answer
        self.seen: list[tuple[str, dict[str, list[str]], dict[str, str]]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                parts = urlsplit(self.path)
                query = parse_qs(parts.query)
                outer.seen.append((parts.path, query, dict(self.headers)))
                status, doc = outer.answer(parts.path, query)
                body = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def nba_box() -> Iterator[Recorder]:
    doc = load(BOX)
    rec = Recorder(lambda path, query: (200, doc))
    yield rec
    rec.close()


# --- headers ---------------------------------------------------------------------------------


def test_the_nba_client_sends_the_cdn_headers_by_default(nba_box: Recorder, sim) -> None:
    make_provider("nba_cdn", base_url=nba_box.base_url).boxscore("0042200123")
    headers = nba_box.seen[-1][2]
    assert headers["Referer"] == "https://www.nba.com/"
    assert headers["Origin"] == "https://www.nba.com"
    # and the simulator, which refuses liveData without it, answers the client
    box = make_provider("nba_cdn", base_url=sim.base_url).boxscore(sim.games[0].nba_id)
    assert box.home.tricode == "BOS"


def test_a_league_line_and_a_task_type_replace_the_feed_headers(
    nba_box: Recorder, tmp_path: Path
) -> None:
    user = tmp_path / "leagues.yaml"
    user.write_text(
        "leagues:\n"
        "  - {alias: nba, path: basketball/nba, name: NBA, task_prefix: ESPN, team_codes: nba,\n"
        "     headers: {nba_cdn: {Referer: 'https://www.nba.com/games', Origin: null}}}\n"
    )
    leagues = load_leagues(user)
    make_provider("nba_cdn", base_url=nba_box.base_url, leagues=leagues).boxscore("0042200123")
    headers = nba_box.seen[-1][2]
    assert headers["Referer"] == "https://www.nba.com/games" and "Origin" not in headers
    make_provider(
        "nba_cdn", base_url=nba_box.base_url, leagues=leagues, headers={"Referer": "https://x/"}
    ).boxscore("0042200123")
    assert nba_box.seen[-1][2]["Referer"] == "https://x/"


# --- a refusal is an outage ------------------------------------------------------------------


def test_a_403_html_page_is_feed_refused(sim: Simulator) -> None:
    sim.inject("todaysScoreboard", "error", count=1, status=403, body=REFUSED)
    with pytest.raises(FeedRefused, match=r"refused this client \(HTTP 403, HTML body") as info:
        make_provider("nba_cdn", base_url=sim.base_url, total_retries=0).schedule(sim.today())
    assert isinstance(info.value, RetriableFeedError) and not isinstance(info.value, UnknownGame)
    assert "check the game id" not in str(info.value)


@pytest.fixture
def sim_clock():
    clock = VirtualClock()
    with Simulator(speed=60, games=1, first_start=10, spacing=30, clock=clock.time) as sim:
        yield sim, clock


def _start(store, task_type: str, key: str, at) -> str:
    task_id, _ = store.schedule_task(task_type, key, at)
    store.claim_ready(now=at + timedelta(days=1))
    return task_id


def test_a_refused_box_score_is_counted_as_an_outage_never_an_unknown_game(store, sim_clock):
    """Five refusals in a row at the start (the game never served yet): a passing error each
    time, and the game is then tracked to its end (an unknown game would fail after 3)."""
    sim, clock = sim_clock
    apply_test_types(store, poll=1.0)
    task_id = _start(store, "NBA_GAME_BOXSCORE", sim.games[0].nba_id, clock.now())
    sim.inject("boxscore_", "error", count=5, status=403, body=REFUSED)
    errors: list[str] = []
    outcome = TaskRunner(
        store,
        task_id,
        1,
        "run-1",
        handlers=HANDLERS,
        feed_base_url=sim.base_url,
        clock=clock,
        on_poll=lambda r: r.error and errors.append(r.error),
    ).run()
    assert outcome.state == TaskState.FINISHED, outcome.reason
    assert len(errors) == 5
    assert all("retriable error" in e and "refused this client" in e for e in errors)
    assert store.task_events(task_id)[-1]["kind"] == "game_final"


def test_the_default_nba_feed_gets_the_game_while_the_cdn_refuses(store, sim_clock):
    """ESPN is the NBA's default: with every NBA CDN request refused, the day's schedule and the
    game's box score still come (from ESPN), to the final."""
    sim, clock = sim_clock
    sim.inject("liveData", "error", count=None, status=403, body=REFUSED)
    feeds = FeedResource(base_url=sim.base_url)
    nba = default_leagues().get("nba")
    provider = feeds.provider_for_league(nba)
    [entry] = provider.schedule(sim.today())
    task_type = feeds.schedule_task_type(nba)
    assert (provider.name, task_type, entry.game_id) == (
        "espn",
        "ESPN_GAME_BOXSCORE",
        sim.games[0].espn_id,
    )
    apply_test_types(store, poll=1.0)
    task_id = _start(store, task_type, entry.game_id, clock.now())
    outcome = TaskRunner(
        store, task_id, 1, "run-1", handlers=HANDLERS, feed_base_url=sim.base_url, clock=clock
    ).run()
    assert outcome.state == TaskState.FINISHED, outcome.reason
    assert store.task_events(task_id)[-1]["payload"]["home_score"] == 124


# --- ESPN's college divisions ----------------------------------------------------------------

DAY = date.today() - timedelta(days=1)  # within the schedule's partitions


def _event(event_id: str, home: str, away: str) -> dict[str, Any]:
    return {
        "id": event_id,
        "date": f"{DAY + timedelta(days=1)}T00:00Z",  # 19:00 US Eastern on DAY
        "status": {"type": {"state": "pre", "completed": False, "name": "STATUS_SCHEDULED"}},
        "competitions": [
            {
                "competitors": [
                    {"homeAway": "home", "team": {"abbreviation": home}, "score": "0"},
                    {"homeAway": "away", "team": {"abbreviation": away}, "score": "0"},
                ]
            }
        ],
    }


class CollegeBoard:
    """ESPN's college scoreboard as it answers: a featured 10 without ``groups``, the whole
    division with it, and 25 events when ``limit`` is above 500."""

    def __init__(self, divisions: dict[str, list[dict[str, Any]]], slug: str) -> None:
        self.divisions = divisions
        self.slug = slug

    def __call__(self, path: str, query: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        everything = list({e["id"]: e for d in self.divisions.values() for e in d}.values())
        group = (query.get("groups") or [None])[0]
        events = self.divisions.get(group, []) if group else everything[:10]
        limit = int((query.get("limit") or ["0"])[0])
        if limit > 500:
            events = everything[:25]
        elif limit:
            events = events[:limit]
        return 200, {"leagues": [{"slug": self.slug}], "events": events}


def _games(prefix: str, n: int) -> list[dict[str, Any]]:
    return [_event(f"{prefix}{i:04d}", f"H{prefix}{i}", f"A{prefix}{i}") for i in range(n)]


@pytest.fixture
def college() -> Iterator[Recorder]:
    cross = _event("4019999999", "FBS1", "FCS1")  # an FBS team hosting an FCS one: in both
    board = CollegeBoard(
        {
            "50": _games("40150", 82),
            "80": _games("40180", 60) + [cross],
            "81": _games("40181", 30) + [cross],
        },
        slug="college-football",
    )
    rec = Recorder(board)
    yield rec
    rec.close()


def _limits(rec: Recorder) -> list[int]:
    return [int(q["limit"][0]) for _, q, _ in rec.seen if "limit" in q]


def test_college_basketball_asks_for_division_one_by_default(college: Recorder) -> None:
    college.answer.slug = "mens-college-basketball"
    games = make_provider("espn", base_url=college.base_url, league="ncaam").schedule(DAY)
    assert len(games) == 82
    [(_, query, _)] = college.seen
    assert query["groups"] == ["50"] and query["dates"] == [DAY.strftime("%Y%m%d")]
    assert all(limit <= MAX_LIMIT for limit in _limits(college))


@pytest.mark.parametrize("limit", [501, 0, "500", True])
def test_a_scoreboard_limit_espn_would_cut_is_refused_in_one_line(college: Recorder, limit):
    client = make_provider("espn", base_url=college.base_url, league="ncaam").client
    with pytest.raises(ConfigError) as refused:
        EspnProvider(client, default_leagues().get("ncaam"), limit=limit)
    message = str(refused.value)
    assert "\n" not in message and repr(limit) in message and "at most 500" in message
    college.answer.slug = "mens-college-basketball"
    EspnProvider(client, default_leagues().get("ncaam"), limit=40).schedule(DAY)
    assert _limits(college) == [40]  # what it asks for is the checked limit


def test_two_football_divisions_are_merged_and_de_duplicated(
    college: Recorder, tmp_path: Path
) -> None:
    user = tmp_path / "leagues.yaml"
    user.write_text(
        "leagues:\n"
        "  - {alias: ncaaf, path: football/college-football, name: NCAA Football, groups: [80, 81]}\n"
    )
    league = load_leagues(user).get("ncaaf")
    assert league.groups == ("80", "81")
    assert default_leagues().get("ncaaf").groups == ("80",)
    games = make_provider("espn", base_url=college.base_url, league=league).schedule(DAY)
    ids = [g.game_id for g in games]
    assert len(ids) == 60 + 30 + 1 == len(set(ids))
    assert sorted(q["groups"][0] for _, q, _ in college.seen) == ["80", "81"]
    assert _limits(college) and all(limit <= MAX_LIMIT for limit in _limits(college))


def test_a_response_of_exactly_25_events_is_warned_about(college: Recorder) -> None:
    college.answer.divisions["80"] = _games("40180", 25)
    provider = make_provider("espn", base_url=college.base_url, league="ncaaf")
    assert len(provider.schedule(DAY)) == 25
    [warning] = provider.warnings
    assert "exactly 25 events" in warning and "groups" in warning
    college.answer.divisions["80"] = _games("40180", 26)
    provider.schedule(DAY)
    assert provider.warnings == []


def test_the_game_schedule_warns_of_25_events_in_its_metadata(college: Recorder, db_url, store):
    import dagster as dg

    from otf_dagster.defs.game_schedule import build_game_schedule
    from otf_dagster.defs.partitions import game_schedule_partitions, schedule_partition_key
    from otf_dagster.defs.resources import TaskStoreResource

    college.answer.divisions["80"] = _games("40180", 25)
    grid = game_schedule_partitions(["ncaaf"], "America/New_York")
    result = dg.materialize(
        [build_game_schedule(grid)],
        partition_key=str(schedule_partition_key(DAY, "ncaaf")),
        resources={
            "task_store": TaskStoreResource(database_url=db_url),
            "feeds": FeedResource(base_url=college.base_url),
        },
    )
    [mat] = result.asset_materializations_for_node("game_schedule")
    assert mat.metadata["game_count"].value == 25
    assert "exactly 25 events" in mat.metadata["warnings"].value
    college.answer.divisions["80"] = _games("40180", 30)
    result = dg.materialize(
        [build_game_schedule(grid)],
        partition_key=str(schedule_partition_key(DAY, "ncaaf")),
        resources={
            "task_store": TaskStoreResource(database_url=db_url),
            "feeds": FeedResource(base_url=college.base_url),
        },
    )
    [mat] = result.asset_materializations_for_node("game_schedule")
    assert mat.metadata["warnings"].value == "_none_"


def test_pooled_sessions_to_a_feed_host_carry_its_headers_under_a_types_own(
    nba_box: Recorder,
) -> None:
    """``Clients`` (the runners' pooled sessions): a session to the NBA CDN's host sends its
    Referer and Origin; an http.json type's own headers replace them by name."""
    from urllib.parse import urlsplit

    from otf_dagster.feeds.clients import Clients, PollClient, feed_hosts

    assert feed_hosts()["cdn.nba.com"] == "nba_cdn"
    with Clients(hosts={urlsplit(nba_box.base_url).netloc: "nba_cdn"}) as clients:
        poll = PollClient(clients.for_base(nba_box.base_url))
        poll.get_json("/static/json/liveData/boxscore/boxscore_0042200123.json")
        assert nba_box.seen[-1][2]["Referer"] == "https://www.nba.com/"
        poll.get_json("/x.json", headers={"Referer": "https://mine.example/"})
        headers = nba_box.seen[-1][2]
        assert headers["Referer"] == "https://mine.example/"
        assert headers["Origin"] == "https://www.nba.com"
    with Clients(hosts={}) as clients:
        clients.for_base(nba_box.base_url).get_json("/x.json")
        assert "Referer" not in nba_box.seen[-1][2]
