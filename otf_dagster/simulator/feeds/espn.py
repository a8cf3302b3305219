"""ESPN's site API (site.api.espn.com) as the simulator serves it, for every league of its
slate, the NBA included: ``/apis/site/v2/sports/{sport}/{league}/scoreboard`` and ``summary``
(the paths of ``otf_dagster.feeds.leagues``), and ESPN's own 404 body for an unknown event.

The shapes mirror the recorded fixtures (a subset of their fields). The NBA's come from the
replayed play-by-play: string scores, growing ``linescores[]``, ``keys``-mapped player stats (in
a column order different from the recorded one, so a positional parser would be caught). NFL,
MLB and NHL come from their sport replays (``espn_replay``): linescores that grow as periods
start (baseball's home side once its half begins), ``format.regulation``, football's
``situation.possession`` (scoreboard) and current drive (summary), its ``scoringPlays``;
hockey's ``plays`` (goals, penalties). Teams are the slate's. College scoreboards are answered
as ESPN answers them: a featured handful without ``groups``, the whole division with it, and 25
events when ``limit`` is above 500 (ESPN's silent cap); the simulator replays no college game,
so a college day lists ``college_games`` synthesized scheduled games (labelled synthesized),
enough to test how a client asks. A league with no recorded game has empty days.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from otf_dagster.feeds import leagues as real
from otf_dagster.simulator.espn_replay import SportState, recorded
from otf_dagster.simulator.replay import PlayerState, ReplayState, load_json
from otf_dagster.simulator.routing import (
    Handler,
    Request,
    Response,
    Route,
    first_match,
    json_response,
)
from otf_dagster.simulator.slate import (
    SIM_LEAGUES,
    SimGame,
    espn_teams,
    replay,
    side_of,
    sport_state_of,
    state_of,
    team_info,
)


def _date(game: SimGame) -> str:
    return game.start_time.strftime("%Y-%m-%dT%H:%MZ")


# --- the NBA, from the replayed play-by-play ---------------------------------------------------


NBA_KEYS = [
    "minutes",
    "points",
    "fieldGoalsMade-fieldGoalsAttempted",
    "threePointFieldGoalsMade-threePointFieldGoalsAttempted",
    "freeThrowsMade-freeThrowsAttempted",
    "rebounds",
    "assists",
    "turnovers",
    "steals",
    "blocks",
    "offensiveRebounds",
    "defensiveRebounds",
    "fouls",
]
NBA_LABELS = [
    "MIN",
    "PTS",
    "FG",
    "3PT",
    "FT",
    "REB",
    "AST",
    "TO",
    "STL",
    "BLK",
    "OREB",
    "DREB",
    "PF",
]


def _nba_status(state: ReplayState) -> dict[str, Any]:
    if state.status == 1:
        kind = ("1", "STATUS_SCHEDULED", "pre", False, "Scheduled")
    elif state.status == 3:
        kind = ("3", "STATUS_FINAL", "post", True, "Final")
    elif state.in_break:
        name = "STATUS_HALFTIME" if state.period == 2 else "STATUS_END_PERIOD"
        kind = ("23" if state.period == 2 else "22", name, "in", False, "In Progress")
    else:
        kind = ("2", "STATUS_IN_PROGRESS", "in", False, "In Progress")
    minutes, seconds = divmod(state.clock, 60)
    display = f"{int(minutes)}:{int(seconds):02d}" if state.clock >= 60 else f"{state.clock:.1f}"
    detail = f"{display} - {state.period}Q" if kind[2] == "in" else kind[4]
    return {
        "clock": 0.0 if state.status != 2 else round(state.clock, 1),
        "displayClock": "0.0" if state.status != 2 else display,
        "period": state.period,
        "type": {
            "id": kind[0],
            "name": kind[1],
            "state": kind[2],
            "completed": kind[3],
            "description": kind[4],
            "detail": detail,
            "shortDetail": detail,
        },
    }


def _nba_team(tricode: str) -> dict[str, Any]:
    info = team_info(tricode)["espn"]
    return {
        "id": info["id"],
        "abbreviation": info["abbreviation"],
        "location": info["location"],
        "name": info["name"],
        "displayName": info["displayName"],
    }


def _nba_competitors(game: SimGame, state: ReplayState, scoreboard: bool) -> list[dict]:
    out = []
    for side in ("home", "away"):
        tricode = game.home if side == "home" else game.away
        score = state.home_score if side == "home" else state.away_score
        periods = state.home_periods if side == "home" else state.away_periods
        comp: dict[str, Any] = {
            "id": team_info(tricode)["espn"]["id"],
            "homeAway": side,
            "team": _nba_team(tricode),
        }
        if state.status != 1 or scoreboard:
            comp["score"] = str(score)
        if state.status != 1:
            comp["linescores"] = [
                {"value": float(s), "displayValue": str(s), "period": i}
                for i, s in enumerate(periods, start=1)
            ]
        if state.status == 3:
            other = state.away_score if side == "home" else state.home_score
            comp["winner"] = score > other
        out.append(comp)
    return out


def _nba_event(game: SimGame, state: ReplayState) -> dict[str, Any]:
    status = _nba_status(state)
    home, away = _nba_team(game.home), _nba_team(game.away)
    return {
        "id": game.espn_id,
        "uid": f"s:40~l:46~e:{game.espn_id}",
        "date": _date(game),
        "name": f"{away['displayName']} at {home['displayName']}",
        "shortName": f"{away['abbreviation']} @ {home['abbreviation']}",
        "competitions": [
            {
                "id": game.espn_id,
                "date": _date(game),
                "competitors": _nba_competitors(game, state, scoreboard=True),
                "status": status,
            }
        ],
        "status": status,
        "_simulator": game.simulator_note,
    }


def nba_scoreboard(games: list[tuple[SimGame, ReplayState]], day: date) -> dict[str, Any]:
    return {
        "leagues": [{"id": "46", "abbreviation": "NBA", "name": "National Basketball Association"}],
        "day": {"date": day.isoformat()},
        "events": [_nba_event(game, state) for game, state in games],
    }


def _nba_row(p: PlayerState) -> list[str]:
    s = p.stats
    values = {
        "minutes": "--",
        "points": str(s["points"]),
        "fieldGoalsMade-fieldGoalsAttempted": f"{s['fieldGoalsMade']}-{s['fieldGoalsAttempted']}",
        "threePointFieldGoalsMade-threePointFieldGoalsAttempted": f"{s['threePointersMade']}-{s['threePointersAttempted']}",
        "freeThrowsMade-freeThrowsAttempted": f"{s['freeThrowsMade']}-{s['freeThrowsAttempted']}",
        "rebounds": str(s["reboundsTotal"]),
        "assists": str(s["assists"]),
        "turnovers": str(s["turnovers"]),
        "steals": str(s["steals"]),
        "blocks": str(s["blocks"]),
        "offensiveRebounds": str(s["reboundsOffensive"]),
        "defensiveRebounds": str(s["reboundsDefensive"]),
        "fouls": str(s["foulsPersonal"]),
    }
    return [values[k] for k in NBA_KEYS]


def nba_summary(game: SimGame, state: ReplayState) -> dict[str, Any]:
    status = _nba_status(state)
    by_side = replay().players_by_side(state)
    teams, players = [], []
    for side in ("away", "home"):
        tricode = game.home if side == "home" else game.away
        roster = by_side[side]
        team_stats = []
        if state.status != 1:
            total = sum(p.stats["reboundsTotal"] for p in roster)
            assists = sum(p.stats["assists"] for p in roster)
            team_stats = [
                {"name": "totalRebounds", "displayValue": str(total), "label": "Rebounds"},
                {"name": "assists", "displayValue": str(assists), "label": "Assists"},
            ]
            players.append(
                {
                    "team": _nba_team(tricode),
                    "statistics": [
                        {
                            "names": NBA_LABELS,
                            "keys": NBA_KEYS,
                            "labels": NBA_LABELS,
                            "athletes": [
                                {
                                    "active": True,
                                    "athlete": {
                                        "id": str(p.person_id),
                                        "displayName": p.name,
                                        "shortName": p.name,
                                    },
                                    "starter": i < 5,
                                    "didNotPlay": False,
                                    "stats": _nba_row(p),
                                }
                                for i, p in enumerate(roster)
                            ],
                        }
                    ],
                }
            )
        teams.append({"team": _nba_team(tricode), "statistics": team_stats})
    return {
        "boxscore": {"teams": teams, "players": players} if players else {"teams": teams},
        "format": {"regulation": {"periods": 4}},
        "header": {
            "id": game.espn_id,
            "uid": f"s:40~l:46~e:{game.espn_id}",
            "competitions": [
                {
                    "id": game.espn_id,
                    "date": _date(game),
                    "competitors": _nba_competitors(game, state, scoreboard=False),
                    "status": status,
                }
            ],
        },
        "meta": {"gameState": status["type"]["state"]},
        "_simulator": game.simulator_note,
    }


# --- NFL, MLB, NHL, from their sport replays ---------------------------------------------------


_ORDINAL = {1: "1st", 2: "2nd", 3: "3rd"}
_HALF_TEXT = {"Top": "Top", "Mid": "Mid", "Bottom": "Bot", "End": "End"}


def _ordinal(n: int) -> str:
    return _ORDINAL.get(n, f"{n}th")


def _team(game: SimGame, code: str) -> dict[str, Any]:
    info = espn_teams(game.league).get(code)
    if info is None:  # a recorded team missing from the scoreboards: its summary header
        rec = recorded(game.league)
        info = next(t for t in (rec["home"], rec["away"]) if t["abbreviation"] == code)
    return dict(info)


def _status(game: SimGame, s: SportState) -> dict[str, Any]:
    if s.state == "pre":
        detail = game.start_time.strftime("%-m/%-d - %H:%M UTC")
        kind = ("1", "STATUS_SCHEDULED", "pre", False, "Scheduled", detail)
    elif s.state == "post":
        kind = ("3", "STATUS_FINAL", "post", True, "Final", "Final")
    elif game.league == "mlb":
        text = f"{_HALF_TEXT[s.half or 'Top']} {_ordinal(s.period)}"
        kind = ("2", s.name, "in", False, "In Progress", text)
    elif s.name == "STATUS_HALFTIME":
        kind = ("23", s.name, "in", False, "Halftime", "Halftime")
    elif s.name == "STATUS_END_PERIOD":
        kind = ("22", s.name, "in", False, "End of Period", f"End of {_ordinal(s.period)}")
    else:
        minutes, seconds = divmod(int(s.clock), 60)
        kind = (
            "2",
            s.name,
            "in",
            False,
            "In Progress",
            f"{minutes}:{seconds:02d} - {_ordinal(s.period)}",
        )
    minutes, seconds = divmod(int(s.clock), 60)
    return {
        "clock": float(s.clock),
        "displayClock": f"{minutes}:{seconds:02d}",
        "period": s.period,
        "type": {
            "id": kind[0],
            "name": kind[1],
            "state": kind[2],
            "completed": kind[3],
            "description": kind[4],
            "detail": kind[5],
            "shortDetail": kind[5],
        },
    }


def _competitors(game: SimGame, s: SportState) -> list[dict[str, Any]]:
    out = []
    for side in ("home", "away"):
        code = game.home if side == "home" else game.away
        team = _team(game, code)
        score = s.home_score if side == "home" else s.away_score
        periods = s.home_periods if side == "home" else s.away_periods
        comp: dict[str, Any] = {
            "id": team["id"],
            "homeAway": side,
            "team": team,
            "score": str(score),
        }
        if s.state != "pre":
            comp["linescores"] = [
                {"value": float(v), "displayValue": str(v), "period": i}
                for i, v in enumerate(periods, start=1)
            ]
        if s.state == "post":
            other = s.away_score if side == "home" else s.home_score
            comp["winner"] = score > other
        out.append(comp)
    return out


def _format(game: SimGame) -> dict[str, Any]:
    return {"regulation": {"periods": recorded(game.league)["format"]["regulation"]["periods"]}}


def _uid(game: SimGame) -> str:
    league = recorded(game.league)["league"]
    return f"s:0~l:{league['id']}~e:{game.espn_id}"


def _event(game: SimGame, s: SportState) -> dict[str, Any]:
    home, away = _team(game, game.home), _team(game, game.away)
    competition: dict[str, Any] = {
        "id": game.espn_id,
        "date": _date(game),
        "format": _format(game),
        "competitors": _competitors(game, s),
        "status": _status(game, s),
    }
    if s.live and s.possession is not None:
        competition["situation"] = {"possession": _team(game, side_of(game, s.possession))["id"]}
    return {
        "id": game.espn_id,
        "uid": _uid(game),
        "date": _date(game),
        "name": f"{away['displayName']} at {home['displayName']}",
        "shortName": f"{away['abbreviation']} @ {home['abbreviation']}",
        "competitions": [competition],
        "status": competition["status"],
        "_simulator": game.simulator_note,
    }


def sport_scoreboard(
    league: str, games: list[tuple[SimGame, SportState]], day: date
) -> dict[str, Any]:
    info = recorded(league)["league"]
    return {
        "leagues": [{k: info[k] for k in ("id", "slug", "abbreviation", "name")}],
        "day": {"date": day.isoformat()},
        "events": [_event(game, s) for game, s in games],
    }


def _scoring_play(game: SimGame, play: dict[str, Any]) -> dict[str, Any]:
    team = _team(game, side_of(game, play["team"]))
    minutes, seconds = divmod(int(play["clock"]), 60)
    return {
        "id": play["id"],
        "type": {"text": play["type"]},
        "text": play["text"],
        "awayScore": play["awayScore"],
        "homeScore": play["homeScore"],
        "period": {"number": play["period"]},
        "clock": {"value": float(play["clock"]), "displayValue": f"{minutes}:{seconds:02d}"},
        "team": {k: team[k] for k in ("id", "abbreviation", "displayName")},
    }


def _hockey_play(game: SimGame, play: dict[str, Any]) -> dict[str, Any]:
    minutes, seconds = divmod(int(play["elapsed"]), 60)
    out: dict[str, Any] = {
        "id": play["id"],
        "type": {"text": play["type"]},
        "text": play["text"],
        "awayScore": play["awayScore"],
        "homeScore": play["homeScore"],
        "period": {"number": play["period"], "displayValue": _ordinal(play["period"])},
        "clock": {"displayValue": f"{minutes}:{seconds:02d}"},
        "scoringPlay": play["scoringPlay"],
    }
    if play.get("team"):
        out["team"] = {"id": _team(game, side_of(game, play["team"]))["id"]}
    return out


def sport_summary(game: SimGame, s: SportState) -> dict[str, Any]:
    event = _event(game, s)
    competition = dict(event["competitions"][0])
    competition.pop("situation", None)
    rec = recorded(game.league)
    body: dict[str, Any] = {
        "boxscore": {
            "teams": [{"team": c["team"], "statistics": []} for c in competition["competitors"]]
        },
        "format": rec["format"],
        "header": {
            "id": game.espn_id,
            "uid": event["uid"],
            "league": rec["league"],
            "competitions": [competition],
        },
        "meta": {"gameState": competition["status"]["type"]["state"]},
        "_simulator": game.simulator_note,
    }
    sport = real.league(game.league).sport
    if sport == "football":
        body["scoringPlays"] = [_scoring_play(game, p) for p in s.plays]
        if s.live and s.possession is not None:
            team = _team(game, side_of(game, s.possession))
            body["drives"] = {"current": {"team": {k: team[k] for k in ("id", "abbreviation")}}}
    elif sport == "hockey":
        body["plays"] = [_hockey_play(game, p) for p in s.plays]
    return body


# --- college: synthesized scheduled games ------------------------------------------------------


FEATURED = 10  # what ESPN listed bare on 2026-01-15 (82 games with groups=50)
CAPPED = 25
MAX_LIMIT = 500
TOP_DIVISION = {"basketball": "50", "football": "80"}  # 81 FCS, 90 all divisions (football)


def _college_event(event_id: str, day: date, n: int) -> dict[str, Any]:
    start = datetime.combine(day + timedelta(days=1), time(0), tzinfo=UTC)  # 19:00 US Eastern
    return {
        "id": event_id,
        "date": start.strftime("%Y-%m-%dT%H:%MZ"),
        "status": {"type": {"state": "pre", "completed": False, "name": "STATUS_SCHEDULED"}},
        "competitions": [
            {
                "id": event_id,
                "competitors": [
                    {"homeAway": "home", "team": {"abbreviation": f"H{n}"}, "score": "0"},
                    {"homeAway": "away", "team": {"abbreviation": f"A{n}"}, "score": "0"},
                ],
            }
        ],
        "_simulator": {"synthesized": True, "note": "SYNTHESIZED college game (not replayed)"},
    }


def college_scoreboard(
    slug: str, sport: str, day: date, games: int, query: dict[str, list[str]]
) -> dict[str, Any]:
    division = [_college_event(f"49{day:%m%d}{n:04d}", day, n) for n in range(games)]
    group = (query.get("groups") or [""])[0]
    if not group:
        events = division[:FEATURED]
    elif group in (TOP_DIVISION.get(sport), "90"):
        events = division
    else:
        events = []
    limit = (query.get("limit") or [""])[0]
    if limit.isdigit() and int(limit) > MAX_LIMIT:
        events = division[:CAPPED]
    elif limit.isdigit():
        events = events[: int(limit)]
    return {"leagues": [{"slug": slug}], "events": events}


# --- routes ------------------------------------------------------------------------------------


def _league(pair: str) -> real.League | None:
    return real.default_leagues().find(pair)


def _no_league(pair: str) -> Response:
    return json_response(404, {"code": 404, "message": f"no league {pair!r} at ESPN's paths"})


def _scoreboard(req: Request, pair: str) -> Response:
    league = _league(pair)
    if league is None:
        return _no_league(pair)
    raw = (req.query.get("dates") or [""])[0]
    try:
        day = datetime.strptime(raw, "%Y%m%d").date() if raw else req.sim.today()
    except ValueError:
        return json_response(400, {"code": 400, "message": f"Invalid dates parameter {raw!r}"})
    alias = league.alias
    if alias == "nba":
        return json_response(200, nba_scoreboard(req.sim.day_games(day), day))
    if league.groups and req.sim.college_games:
        doc = college_scoreboard(league.slug, league.sport, day, req.sim.college_games, req.query)
        return json_response(200, doc)
    if alias not in SIM_LEAGUES:  # a league with no recorded game: an empty day
        return json_response(200, {"leagues": [{"slug": league.slug}], "events": []})
    return json_response(200, sport_scoreboard(alias, req.sim.day_games(day, alias), day))


def _summary(req: Request, pair: str) -> Response:
    league = _league(pair)
    if league is None:
        return _no_league(pair)
    event = (req.query.get("event") or [""])[0]
    game = req.sim.game(event)
    if game is None or game.espn_id != event or game.league != league.alias:
        return not_found(req.path)
    if game.league == "nba":
        return json_response(200, nba_summary(game, state_of(game, req.now)))
    return json_response(200, sport_summary(game, sport_state_of(game, req.now)))


PAIR = {"pair": "[^/]+/[^/]+"}  # sport/league, e.g. basketball/nba
ROUTES = (
    Route(real.SCOREBOARD_PATH, _scoreboard, PAIR),
    Route(real.SUMMARY_PATH, _summary, PAIR),
)


def match(path: str) -> Handler | None:
    return first_match(ROUTES, path)


def not_found(path: str) -> Response:
    """ESPN's own 404 body, verbatim (``data/espn_error_404.json``)."""
    return json_response(404, load_json("espn_error_404.json"))
