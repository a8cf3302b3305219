"""The NBA CDN (cdn.nba.com) as the simulator serves it: today's scoreboard, the season's
schedule, each game's box score and play-by-play, in the CDN's shapes (a subset of their
fields, mirroring the recorded fixtures: integers, ISO-duration clocks, zero-filled
``periods[]``), at the paths of ``otf_dagster.feeds.nba_cdn``.

Like the CDN since May 2026, liveData requests without an nba.com Referer get Akamai's HTML
"Access Denied" page; an unknown game gets the CDN's S3 ``NoSuchKey`` XML.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

from otf_dagster.feeds import nba_cdn as real
from otf_dagster.simulator.replay import REGULAR_PERIOD, PlayerState, ReplayState, iso_clock
from otf_dagster.simulator.routing import (
    Handler,
    Request,
    Response,
    Route,
    first_match,
    json_response,
    no_such_path,
)
from otf_dagster.simulator.slate import SimGame, replay, side_of, state_of, status_text, team_info

LIVE_PREFIX = "/static/json/liveData/"
REFERER = "https://www.nba.com"
REFUSED = (
    b"<HTML><HEAD>\n<TITLE>Access Denied</TITLE>\n</HEAD><BODY>\n<H1>Access Denied</H1>\n \n"
    b'You don\'t have permission to access "%s" on this server.<P>\n'
    b"Reference&#32;&#35;18&#46;otf&#46;simulator\n</BODY>\n</HTML>\n"
)
NO_SUCH_KEY = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>NoSuchKey</Code>'
    b"<Message>The specified key does not exist.</Message></Error>"
)


# --- documents ---------------------------------------------------------------------------------


def _iso(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")


def _meta(path: str, now: float) -> dict[str, Any]:
    return {
        "version": 1,
        "code": 200,
        "request": f"http://simulator{path}",
        "time": datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%d %H:%M:%S.%f"),
    }


def _periods(scores: list[int]) -> list[dict[str, Any]]:
    padded = scores + [0] * (4 - len(scores))
    return [
        {"period": i, "periodType": "REGULAR" if i <= 4 else "OVERTIME", "score": s}
        for i, s in enumerate(padded, start=1)
    ]


def _team(game: SimGame, state: ReplayState, side: str, players: list[PlayerState] | None):
    tricode = game.home if side == "home" else game.away
    info = team_info(tricode)["nba"]
    score = state.home_score if side == "home" else state.away_score
    periods = state.home_periods if side == "home" else state.away_periods
    team: dict[str, Any] = {
        "teamId": info["teamId"],
        "teamName": info["teamName"],
        "teamCity": info["teamCity"],
        "teamTricode": tricode,
        "score": score,
        "inBonus": "0",
        "timeoutsRemaining": 7 if state.status == 1 else 3,
        "periods": _periods(list(periods) if state.status != 1 else []),
    }
    if players is not None:
        team["players"] = [
            {
                "status": "ACTIVE",
                "order": order,
                "personId": p.person_id,
                "starter": "1" if order <= 5 else "0",
                "played": "1" if any(p.stats.values()) else "0",
                "statistics": dict(p.stats),
                "name": p.name,
                "nameI": p.name,
            }
            for order, p in enumerate(players, start=1)
        ]
        totals: dict[str, int] = {}
        for p in players:
            for k, v in p.stats.items():
                totals[k] = totals.get(k, 0) + v
        totals["points"] = score
        team["statistics"] = totals
    return team


def _game_fields(game: SimGame, state: ReplayState) -> dict[str, Any]:
    start = game.start_time
    return {
        "gameId": game.nba_id,
        "gameCode": f"{start:%Y%m%d}/{game.away}{game.home}",
        "gameStatus": state.status,
        "gameStatusText": status_text(state, game),
        "period": state.period,
        "gameClock": "" if state.status == 1 else iso_clock(state.clock),
        "gameTimeUTC": _iso(start),
        "gameEt": _iso(start),
        "regulationPeriods": 4,
    }


def boxscore(game: SimGame, state: ReplayState, path: str, now: float) -> dict[str, Any]:
    players = replay().players_by_side(state)
    body = _game_fields(game, state)
    body.update(
        {
            "duration": 0,
            "attendance": 0 if state.status == 1 else 19156,
            "sellout": "0",
            "arena": {
                "arenaName": "Simulated Arena",
                "arenaCity": team_info(game.home)["nba"]["teamCity"],
            },
            "officials": [],
            "homeTeam": _team(game, state, "home", players["home"]),
            "awayTeam": _team(game, state, "away", players["away"]),
            "_simulator": game.simulator_note,
        }
    )
    if state.status == 1:
        body["period"] = 0
        body["gameClock"] = iso_clock(REGULAR_PERIOD)  # meaningless before tip-off, like the CDN
    return {"meta": _meta(path, now), "game": body}


def scoreboard(
    games: list[tuple[SimGame, ReplayState]], day: date, path: str, now: float
) -> dict[str, Any]:
    entries = []
    for game, state in games:
        entry = _game_fields(game, state)
        entry["homeTeam"] = _team(game, state, "home", None)
        entry["awayTeam"] = _team(game, state, "away", None)
        entry["_simulator"] = game.simulator_note
        entries.append(entry)
    return {
        "meta": _meta(path, now),
        "scoreboard": {
            "gameDate": day.isoformat(),
            "leagueId": "00",
            "leagueName": "National Basketball Association",
            "games": entries,
        },
    }


def schedule(games: list[tuple[SimGame, ReplayState]], path: str, now: float) -> dict:
    by_day: dict[date, list[dict[str, Any]]] = {}
    for game, state in games:
        entry = _game_fields(game, state)
        del entry["gameClock"], entry["period"]
        entry.update(
            {
                "gameDateTimeUTC": _iso(game.start_time),
                "gameDateEst": f"{game.day.isoformat()}T00:00:00Z",
                "postponedStatus": "N",
                "homeTeam": {
                    k: v
                    for k, v in _team(game, state, "home", None).items()
                    if k in ("teamId", "teamName", "teamCity", "teamTricode", "score")
                },
                "awayTeam": {
                    k: v
                    for k, v in _team(game, state, "away", None).items()
                    if k in ("teamId", "teamName", "teamCity", "teamTricode", "score")
                },
                "_simulator": game.simulator_note,
            }
        )
        by_day.setdefault(game.day, []).append(entry)
    return {
        "meta": _meta(path, now),
        "leagueSchedule": {
            "seasonYear": "simulated",
            "leagueId": "00",
            "gameDates": [
                {"gameDate": f"{day:%m/%d/%Y} 00:00:00", "games": entries}
                for day, entries in sorted(by_day.items())
            ],
        },
    }


def playbyplay(game: SimGame, state: ReplayState, path: str, now: float) -> dict[str, Any]:
    actions = []
    for a in replay().actions[: state.actions]:
        a = dict(a)
        if a.get("teamTricode"):
            a["teamTricode"] = side_of(game, a["teamTricode"])
        actions.append(a)
    return {
        "meta": _meta(path, now),
        "game": {"gameId": game.nba_id, "actions": actions, "_simulator": game.simulator_note},
    }


# --- routes ------------------------------------------------------------------------------------


def _scoreboard(req: Request) -> Response:
    day = req.sim.today()
    return json_response(200, scoreboard(req.sim.day_games(day), day, req.target, req.now))


def _schedule(req: Request) -> Response:
    games = [(g, state_of(g, req.now)) for g in req.sim.games if g.league == "nba"]
    return json_response(200, schedule(games, req.target, req.now))


def _game_document(draw: Callable[[SimGame, ReplayState, str, float], dict[str, Any]]):
    """A game's document (box score, play-by-play); the CDN's 404 for an id it has not."""

    def serve(req: Request, game_id: str) -> Response:
        game = req.sim.game(game_id)
        if game is None or game.nba_id != game_id:
            return not_found(req.path)
        return json_response(200, draw(game, state_of(game, req.now), req.target, req.now))

    return serve


GAME_ID = {"game_id": "[^/]+"}
ROUTES = (
    Route(real.SCOREBOARD_PATH, _scoreboard),
    Route(real.SCHEDULE_PATH, _schedule),
    Route(real.BOXSCORE_PATH, _game_document(boxscore), GAME_ID),
    Route(real.PLAYBYPLAY_PATH, _game_document(playbyplay), GAME_ID),
)


def match(path: str) -> Handler | None:
    """The CDN's route for ``path``; under liveData, behind the Referer check (the edge refuses
    before it looks for the document, so an unknown liveData path is refused too)."""
    handler = first_match(ROUTES, path)
    if not path.startswith(LIVE_PREFIX):
        return handler

    def behind_the_edge(req: Request) -> Response:
        if not req.headers.get("referer", "").startswith(REFERER):
            return Response(403, REFUSED % req.path.encode(), "text/html")
        return handler(req) if handler is not None else no_such_path(req.path)

    return behind_the_edge


def not_found(path: str) -> Response:
    return Response(404, NO_SUCH_KEY, "application/xml")
