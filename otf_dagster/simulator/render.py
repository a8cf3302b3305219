"""Render the replay state in the real feeds' JSON shapes (a subset of their fields).

The shapes mirror the recorded fixtures: NBA integers and ISO-duration clocks, zero-filled
``periods[]``; ESPN string scores, growing ``linescores[]`` and ``keys``-mapped player stats
(in a column order different from the recorded one, so a positional parser would be caught).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from otf_dagster.simulator.replay import (
    REGULAR_PERIOD,
    PlayerState,
    ReplayState,
    iso_clock,
)
from otf_dagster.simulator.slate import SimGame, replay, side_of, status_text, team_info

ESPN_KEYS = [
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
ESPN_LABELS = [
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


def _iso(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")


def _meta(path: str, now: float) -> dict[str, Any]:
    return {
        "version": 1,
        "code": 200,
        "request": f"http://simulator{path}",
        "time": datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%d %H:%M:%S.%f"),
    }


def _sim_note(game: SimGame) -> dict[str, Any]:
    return {"synthesized": game.synthesized, "note": game.note}


# --- NBA CDN -----------------------------------------------------------------------------------


def _nba_periods(scores: list[int]) -> list[dict[str, Any]]:
    padded = scores + [0] * (4 - len(scores))
    return [
        {"period": i, "periodType": "REGULAR" if i <= 4 else "OVERTIME", "score": s}
        for i, s in enumerate(padded, start=1)
    ]


def _players_by_side(game: SimGame, state: ReplayState) -> dict[str, list[PlayerState]]:
    out: dict[str, list[PlayerState]] = {"home": [], "away": []}
    players = replay().player_stats(state.actions, state.corrected)
    for player in sorted(players.values(), key=lambda p: p.person_id):
        out["home" if player.team == replay().home else "away"].append(player)
    return out


def _nba_team(game: SimGame, state: ReplayState, side: str, players: list[PlayerState] | None):
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
        "periods": _nba_periods(list(periods) if state.status != 1 else []),
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


def _nba_game_fields(game: SimGame, state: ReplayState) -> dict[str, Any]:
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


def nba_boxscore(game: SimGame, state: ReplayState, path: str, now: float) -> dict[str, Any]:
    players = _players_by_side(game, state)
    body = _nba_game_fields(game, state)
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
            "homeTeam": _nba_team(game, state, "home", players["home"]),
            "awayTeam": _nba_team(game, state, "away", players["away"]),
            "_simulator": _sim_note(game),
        }
    )
    if state.status == 1:
        body["period"] = 0
        body["gameClock"] = iso_clock(REGULAR_PERIOD)  # meaningless before tip-off, like the CDN
    return {"meta": _meta(path, now), "game": body}


def nba_scoreboard(
    games: list[tuple[SimGame, ReplayState]], day: date, path: str, now: float
) -> dict[str, Any]:
    entries = []
    for game, state in games:
        entry = _nba_game_fields(game, state)
        entry["homeTeam"] = _nba_team(game, state, "home", None)
        entry["awayTeam"] = _nba_team(game, state, "away", None)
        entry["_simulator"] = _sim_note(game)
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


def nba_schedule(games: list[tuple[SimGame, ReplayState]], path: str, now: float) -> dict:
    by_day: dict[date, list[dict[str, Any]]] = {}
    for game, state in games:
        entry = _nba_game_fields(game, state)
        del entry["gameClock"], entry["period"]
        entry.update(
            {
                "gameDateTimeUTC": _iso(game.start_time),
                "gameDateEst": f"{game.day.isoformat()}T00:00:00Z",
                "postponedStatus": "N",
                "homeTeam": {
                    k: v
                    for k, v in _nba_team(game, state, "home", None).items()
                    if k in ("teamId", "teamName", "teamCity", "teamTricode", "score")
                },
                "awayTeam": {
                    k: v
                    for k, v in _nba_team(game, state, "away", None).items()
                    if k in ("teamId", "teamName", "teamCity", "teamTricode", "score")
                },
                "_simulator": _sim_note(game),
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


def nba_playbyplay(game: SimGame, state: ReplayState, path: str, now: float) -> dict[str, Any]:
    actions = []
    for a in replay().actions[: state.actions]:
        a = dict(a)
        if a.get("teamTricode"):
            a["teamTricode"] = side_of(game, a["teamTricode"])
        actions.append(a)
    return {
        "meta": _meta(path, now),
        "game": {"gameId": game.nba_id, "actions": actions, "_simulator": _sim_note(game)},
    }


# --- ESPN -------------------------------------------------------------------------------------


def _espn_state(state: ReplayState) -> dict[str, Any]:
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


def _espn_team(tricode: str) -> dict[str, Any]:
    info = team_info(tricode)["espn"]
    return {
        "id": info["id"],
        "abbreviation": info["abbreviation"],
        "location": info["location"],
        "name": info["name"],
        "displayName": info["displayName"],
    }


def _espn_competitors(game: SimGame, state: ReplayState, scoreboard: bool) -> list[dict]:
    out = []
    for side in ("home", "away"):
        tricode = game.home if side == "home" else game.away
        score = state.home_score if side == "home" else state.away_score
        periods = state.home_periods if side == "home" else state.away_periods
        comp: dict[str, Any] = {
            "id": team_info(tricode)["espn"]["id"],
            "homeAway": side,
            "team": _espn_team(tricode),
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


def _espn_date(game: SimGame) -> str:
    return game.start_time.strftime("%Y-%m-%dT%H:%MZ")


def espn_event(game: SimGame, state: ReplayState) -> dict[str, Any]:
    status = _espn_state(state)
    home, away = _espn_team(game.home), _espn_team(game.away)
    return {
        "id": game.espn_id,
        "uid": f"s:40~l:46~e:{game.espn_id}",
        "date": _espn_date(game),
        "name": f"{away['displayName']} at {home['displayName']}",
        "shortName": f"{away['abbreviation']} @ {home['abbreviation']}",
        "competitions": [
            {
                "id": game.espn_id,
                "date": _espn_date(game),
                "competitors": _espn_competitors(game, state, scoreboard=True),
                "status": status,
            }
        ],
        "status": status,
        "_simulator": _sim_note(game),
    }


def espn_scoreboard(games: list[tuple[SimGame, ReplayState]], day: date) -> dict[str, Any]:
    return {
        "leagues": [{"id": "46", "abbreviation": "NBA", "name": "National Basketball Association"}],
        "day": {"date": day.isoformat()},
        "events": [espn_event(game, state) for game, state in games],
    }


def _espn_row(p: PlayerState) -> list[str]:
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
    return [values[k] for k in ESPN_KEYS]


def espn_summary(game: SimGame, state: ReplayState) -> dict[str, Any]:
    status = _espn_state(state)
    by_side = _players_by_side(game, state)
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
                    "team": _espn_team(tricode),
                    "statistics": [
                        {
                            "names": ESPN_LABELS,
                            "keys": ESPN_KEYS,
                            "labels": ESPN_LABELS,
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
                                    "stats": _espn_row(p),
                                }
                                for i, p in enumerate(roster)
                            ],
                        }
                    ],
                }
            )
        teams.append({"team": _espn_team(tricode), "statistics": team_stats})
    return {
        "boxscore": {"teams": teams, "players": players} if players else {"teams": teams},
        "format": {"regulation": {"periods": 4}},
        "header": {
            "id": game.espn_id,
            "uid": f"s:40~l:46~e:{game.espn_id}",
            "competitions": [
                {
                    "id": game.espn_id,
                    "date": _espn_date(game),
                    "competitors": _espn_competitors(game, state, scoreboard=False),
                    "status": status,
                }
            ],
        },
        "meta": {"gameState": status["type"]["state"]},
        "_simulator": _sim_note(game),
    }
