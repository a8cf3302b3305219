"""Replays of one recorded game per sport beyond the NBA, in ESPN's terms.

NFL GB at ATL from its scoring plays and drives, NHL NYR at FLA from its goals, penalties and
period marks (each placed at its period and clock), MLB CLE at PIT from its inning marks and
at-bat results (baseball has no clock: each result takes ``PLAY_SECONDS`` of game time). The
state at game time t is what ESPN's scoreboard and summary show at that moment; teams are the
recorded ones (home / away), the slate renames them.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from otf_dagster.simulator.replay import load_json

PLAY_SECONDS = 80.0  # game seconds per recorded baseball result
HALF_BREAK = 120.0  # between baseball half-innings


@dataclass
class SportState:
    """What an ESPN feed shows of a game at one moment."""

    state: str  # pre / in / post
    name: str  # STATUS_SCHEDULED, STATUS_IN_PROGRESS, STATUS_END_PERIOD, STATUS_HALFTIME, ...
    period: int  # 0 before the start
    clock: float  # seconds left (countdown sports); 0 for baseball
    home_score: int
    away_score: int
    home_periods: list[int]
    away_periods: list[int]
    half: str | None = None  # baseball: Top / Mid / Bottom / End
    plays: list[dict[str, Any]] = field(default_factory=list)  # recorded plays so far
    possession: str | None = None  # recorded team abbreviation (football)

    @property
    def live(self) -> bool:
        return self.state == "in"


def _pre(period: int = 0) -> SportState:
    return SportState("pre", "STATUS_SCHEDULED", period, 0.0, 0, 0, [], [])


class CountdownReplay:
    """NFL and NHL: periods of ``length`` seconds counting down, breaks between them."""

    def __init__(self, doc: dict[str, Any], length: float, breaks: dict[int, float]) -> None:
        self.doc = doc
        self.length = length
        self.breaks = breaks
        self.periods = int(doc["format"]["regulation"]["periods"])
        self.final_time = self.period_start(self.periods) + length
        # (time, period, home score, away score, play or None): score marks in time order
        marks = []
        for play in self._plays():
            t = self.period_start(play["period"]) + self._into_period(play)
            marks.append((t, play))
        marks.sort(key=lambda m: m[0])
        self.times = [t for t, _ in marks]
        self.marks = [p for _, p in marks]

    def period_start(self, period: int) -> float:
        t = 0.0
        for p in range(1, period):
            t += self.length + self.breaks.get(p, 0.0)
        return t

    def _plays(self) -> list[dict[str, Any]]:
        return self.doc.get("scoring_plays") or [
            p for p in self.doc["plays"] if p["type"] in ("Goal", "Penalty")
        ]

    def _into_period(self, play: dict[str, Any]) -> float:
        """Seconds into its period: scoring plays carry the clock left, hockey plays the clock run."""
        if "elapsed" in play:
            return float(play["elapsed"])
        return self.length - float(play["clock"])

    def _period_at(self, t: float) -> tuple[int, float, bool]:
        """(period, clock left, in the break after it) at game time t (not after the end)."""
        for period in range(1, self.periods + 1):
            start = self.period_start(period)
            end = start + self.length
            if t < end:
                return period, end - t, False
            if t < end + self.breaks.get(period, 0.0) and period < self.periods:
                return period, 0.0, True
        return self.periods, 0.0, True

    def state_at(self, t: float) -> SportState:
        if t < 0:
            return _pre()
        n = bisect.bisect_right(self.times, t)
        done = self.marks[:n]
        final = t >= self.final_time
        period, clock, in_break = (self.periods, 0.0, False) if final else self._period_at(t)
        home_periods = [0] * period
        away_periods = [0] * period
        home = away = 0
        for play in done:
            if int(play["homeScore"]) != home:
                home_periods[play["period"] - 1] += int(play["homeScore"]) - home
            if int(play["awayScore"]) != away:
                away_periods[play["period"] - 1] += int(play["awayScore"]) - away
            home, away = int(play["homeScore"]), int(play["awayScore"])
        if final:
            name, state = "STATUS_FINAL", "post"
        elif in_break:
            name = "STATUS_HALFTIME" if period * 2 == self.periods else "STATUS_END_PERIOD"
            state = "in"
        else:
            name, state = "STATUS_IN_PROGRESS", "in"
        return SportState(
            state=state,
            name=name,
            period=period,
            clock=clock,
            home_score=home,
            away_score=away,
            home_periods=home_periods,
            away_periods=away_periods,
            plays=list(done),
            possession=None if final or in_break else self._possession(t),
        )

    def _possession(self, t: float) -> str | None:
        for drive in self.doc.get("drives", ()):
            start = self.period_start(drive["start"][0]) + self.length - drive["start"][1]
            end = self.period_start(drive["end"][0]) + self.length - drive["end"][1]
            if start <= t < end:
                return drive["team"]
        return None


class BaseballReplay:
    """MLB: inning marks and at-bat results in order, ``PLAY_SECONDS`` each."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        self.plays = doc["plays"]
        times, t = [], 0.0
        for play in self.plays:
            t += HALF_BREAK if play["kind"] == "start-inning" and times else PLAY_SECONDS
            times.append(t)
        self.times = times
        self.final_time = t + PLAY_SECONDS

    def state_at(self, t: float) -> SportState:
        if t < 0:
            return _pre(1)  # ESPN's scheduled baseball games show period 1
        n = bisect.bisect_right(self.times, t)
        final = t >= self.final_time
        home_periods: list[int] = []
        away_periods: list[int] = []
        home = away = 0
        inning, half = 1, "Top"
        for play in self.plays[:n]:
            inning, half = int(play["inning"]), play["half"]
            while len(away_periods) < inning:
                away_periods.append(0)
            if half in ("Bottom", "End"):
                while len(home_periods) < inning:
                    home_periods.append(0)
            away_periods[inning - 1] += int(play["awayScore"]) - away
            if int(play["homeScore"]) != home:
                home_periods[inning - 1] += int(play["homeScore"]) - home
            home, away = int(play["homeScore"]), int(play["awayScore"])
        if not away_periods:
            away_periods = [0]
        return SportState(
            state="post" if final else "in",
            name="STATUS_FINAL" if final else "STATUS_IN_PROGRESS",
            period=inning,
            clock=0.0,
            home_score=home,
            away_score=away,
            home_periods=home_periods,
            away_periods=away_periods,
            half=None if final else half,
        )


# NFL: 2 minutes between quarters, 13 at halftime; NHL: 18-minute intermissions.
@cache
def sport_replay(league: str) -> CountdownReplay | BaseballReplay:
    doc = load_json(f"replay_{league}.json")
    if league == "nfl":
        return CountdownReplay(doc, 900.0, {1: 120.0, 2: 780.0, 3: 120.0})
    if league == "nhl":
        return CountdownReplay(doc, 1200.0, {1: 1080.0, 2: 1080.0})
    if league == "mlb":
        return BaseballReplay(doc)
    raise KeyError(league)


def recorded(league: str) -> dict[str, Any]:
    """The recorded game's header: event id, date, teams, final score, format."""
    return load_json(f"replay_{league}.json")
