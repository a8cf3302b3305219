"""Replay a recorded play-by-play: the game's state at any game-clock time since tip-off.

Each action is placed on a timeline of game seconds (periods of 12/5 minutes plus breaks);
the state at time t is the prefix of actions up to t, read the way a box score reads it.
"""

from __future__ import annotations

import bisect
import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

DATA = Path(__file__).with_name("data")
RECORDED_GAME_ID = "0022000180"
REGULAR_PERIOD = 720.0
OVERTIME_PERIOD = 300.0
PERIOD_BREAK = 120.0  # game seconds between quarters (scaled by speed like play)
HALFTIME_BREAK = 300.0
CORRECTION_AFTER = 600.0  # game seconds after the final whistle the stats get corrected


def period_length(period: int) -> float:
    return REGULAR_PERIOD if period <= 4 else OVERTIME_PERIOD


def break_after(period: int) -> float:
    return HALFTIME_BREAK if period == 2 else PERIOD_BREAK


def period_start(period: int) -> float:
    """Game-timeline second at which ``period`` tips off."""
    t = 0.0
    for p in range(1, period):
        t += period_length(p) + break_after(p)
    return t


def clock_seconds(text: Any) -> float:
    """``PT07M15.00S`` -> 435.0 (the recorded file is regular; 0.0 when odd)."""
    if not isinstance(text, str) or not text.startswith("PT"):
        return 0.0
    body = text[2:]
    minutes, _, rest = body.partition("M")
    try:
        return float(minutes) * 60 + float(rest.rstrip("S") or 0)
    except ValueError:
        return 0.0


def iso_clock(seconds: float) -> str:
    seconds = max(0.0, seconds)
    minutes = int(seconds // 60)
    return f"PT{minutes:02d}M{seconds - minutes * 60:05.2f}S"


@dataclass
class PlayerState:
    person_id: int
    team: str  # the recorded tricode (BOS / ORL)
    name: str
    stats: dict[str, int] = field(default_factory=dict)


@dataclass
class ReplayState:
    """What a box score shows at one moment; tricodes are the recorded ones (BOS home)."""

    status: int  # NBA gameStatus: 1 scheduled, 2 live, 3 final
    period: int  # 0 before tip-off
    clock: float  # seconds left in period
    in_break: bool
    home_score: int
    away_score: int
    home_periods: list[int]
    away_periods: list[int]
    actions: int  # how many actions have happened
    corrected: bool = False


class Replay:
    """The recorded game, placed on a timeline of game seconds."""

    def __init__(self, doc: dict[str, Any]) -> None:
        actions = sorted(doc["game"]["actions"], key=lambda a: a["orderNumber"])
        self.game_id = str(doc["game"]["gameId"])
        self.actions = actions
        self.home = "BOS"
        self.away = "ORL"
        times: list[float] = []
        last = 0.0
        self.end_index = len(actions)
        for i, action in enumerate(actions):
            period = int(action["period"])
            t = period_start(period) + period_length(period) - clock_seconds(action["clock"])
            last = max(last, t)  # keep the timeline monotone in orderNumber order
            times.append(last)
            if action["actionType"] == "game" and action.get("subType") == "end":
                self.end_index = min(self.end_index, i + 1)
        self.times = times
        self.final_time = times[self.end_index - 1] if actions else 0.0
        self.roster = self._roster()

    def _roster(self) -> dict[int, PlayerState]:
        roster: dict[int, PlayerState] = {}
        for a in self.actions:
            pid, team = a.get("personId"), a.get("teamTricode")
            if pid and team and a.get("playerNameI") and pid not in roster:
                roster[pid] = PlayerState(pid, team, a["playerNameI"])
        return roster

    def state_at(self, t: float) -> ReplayState:
        """The state ``t`` game seconds after tip-off (negative: not started)."""
        if t < 0 or not self.actions:
            return ReplayState(1, 0, REGULAR_PERIOD, False, 0, 0, [], [], 0)
        n = bisect.bisect_right(self.times, t)
        home_periods: list[int] = []
        away_periods: list[int] = []
        base_home = base_away = 0
        home = away = 0
        period = 1
        ended = False
        for a in self.actions[:n]:
            p = int(a["period"])
            if p != period:
                base_home, base_away, period = home, away, p
            while len(home_periods) < p:
                home_periods.append(0)
                away_periods.append(0)
            home, away = int(a["scoreHome"]), int(a["scoreAway"])
            home_periods[p - 1] = home - base_home
            away_periods[p - 1] = away - base_away
            ended = a["actionType"] == "period" and a.get("subType") == "end"
        if not home_periods:
            home_periods, away_periods = [0], [0]
        final = n >= self.end_index
        clock = max(0.0, period_start(period) + period_length(period) - t)
        if ended or final:
            clock = 0.0
        return ReplayState(
            status=3 if final else 2,
            period=period,
            clock=min(clock, period_length(period)),
            in_break=ended and not final,
            home_score=home,
            away_score=away,
            home_periods=home_periods,
            away_periods=away_periods,
            actions=n,
            corrected=final and t >= self.final_time + CORRECTION_AFTER,
        )

    def player_stats(self, n: int, corrected: bool = False) -> dict[int, PlayerState]:
        """Box-score lines of the roster after the first ``n`` actions."""
        players = {
            pid: PlayerState(p.person_id, p.team, p.name, _zero_stats())
            for pid, p in self.roster.items()
        }
        for a in self.actions[:n]:
            kind = a["actionType"]
            player = players.get(a.get("personId"))
            if player is None:
                continue
            s = player.stats
            made = a.get("shotResult") == "Made"
            if "pointsTotal" in a:
                s["points"] = int(a["pointsTotal"])
            if kind in ("2pt", "3pt"):
                s["fieldGoalsAttempted"] += 1
                s["fieldGoalsMade"] += made
                if kind == "3pt":
                    s["threePointersAttempted"] += 1
                    s["threePointersMade"] += made
            elif kind == "freethrow":
                s["freeThrowsAttempted"] += 1
                s["freeThrowsMade"] += made
            elif kind == "rebound" and "reboundTotal" in a:
                s["reboundsTotal"] = int(a["reboundTotal"])
                s["reboundsOffensive"] = int(a.get("reboundOffensiveTotal") or 0)
                s["reboundsDefensive"] = int(a.get("reboundDefensiveTotal") or 0)
            elif kind == "foul" and "foulPersonalTotal" in a:
                s["foulsPersonal"] = int(a["foulPersonalTotal"])
            elif kind == "turnover" and "turnoverTotal" in a:
                s["turnovers"] = int(a["turnoverTotal"])
            if a.get("assistPersonId") in players and "assistTotal" in a:
                players[a["assistPersonId"]].stats["assists"] = int(a["assistTotal"])
            if a.get("stealPersonId") in players:
                players[a["stealPersonId"]].stats["steals"] += 1
            if a.get("blockPersonId") in players:
                players[a["blockPersonId"]].stats["blocks"] += 1
        if corrected and players:
            # the statisticians' after-the-fact correction: one more assist to one home player
            first = min(players.values(), key=lambda p: (p.team != self.home, p.person_id))
            first.stats["assists"] += 1
        return players

    def players_by_side(self, state: ReplayState) -> dict[str, list[PlayerState]]:
        """The box-score lines at ``state``, home and away, in person id order (both feeds
        list the same players)."""
        out: dict[str, list[PlayerState]] = {"home": [], "away": []}
        players = self.player_stats(state.actions, state.corrected)
        for player in sorted(players.values(), key=lambda p: p.person_id):
            out["home" if player.team == self.home else "away"].append(player)
        return out


def _zero_stats() -> dict[str, int]:
    return {
        k: 0
        for k in (
            "points",
            "reboundsTotal",
            "reboundsOffensive",
            "reboundsDefensive",
            "assists",
            "steals",
            "blocks",
            "turnovers",
            "foulsPersonal",
            "fieldGoalsMade",
            "fieldGoalsAttempted",
            "threePointersMade",
            "threePointersAttempted",
            "freeThrowsMade",
            "freeThrowsAttempted",
        )
    }


@cache
def load_json(name: str) -> Any:
    return json.loads((DATA / name).read_text())


@cache
def recorded_replay() -> Replay:
    return Replay(load_json(f"playbyplay_{RECORDED_GAME_ID}.json"))
