"""Render the replay state in the real feeds' JSON shapes (a subset of their fields).

The shapes mirror the recorded fixtures: NBA integers and ISO-duration clocks, zero-filled
``periods[]``; ESPN string scores, growing ``linescores[]`` and ``keys``-mapped player stats
(in a column order different from the recorded one, so a positional parser would be caught).
"""

from __future__ import annotations

from datetime import date
from typing import Any

from otf_dagster.simulator.replay import PlayerState, ReplayState
from otf_dagster.simulator.slate import SimGame, replay, team_info

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
        "_simulator": game.simulator_note,
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
        "_simulator": game.simulator_note,
    }
