"""Tables people read in the Dagster UI and the CLI: a task's timeline, a game's score.

A timeline row says what happened in the game's own terms (the score after a basket, the
period and the clock, the leader), not the event's number; times carry their zone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, tzinfo
from functools import lru_cache
from typing import Any

from tabulate import tabulate

from otf_dagster.feeds import BoxScore
from otf_dagster.feeds.leagues import default_leagues
from otf_dagster.feeds.models import GameFormat


def period_label(period: int | None, league: str | None = None) -> str:
    """The period in the sport's own words: ``Q3``/``OT1`` (basketball, football), ``P2``
    (hockey), ``2nd half``/``extra time 1`` (soccer), ``7th inning`` (baseball). The league
    (every derived event carries it) picks the sport's rules from the leagues file; without
    one it reads as quarters. Empty before the game starts."""
    if not period:
        return ""
    fmt = _format_of(league)
    if fmt.extra == "extra_innings":
        return f"{_ordinal(period)} inning"
    label = fmt.label(period)
    if fmt.name == "half" and period <= fmt.regulation:
        return f"{_ordinal(period)} half"
    words = {"ET1": "extra time 1", "ET2": "extra time 2", "PEN": "penalties"}
    return words.get(label, label) if fmt.extra == "extra_time" else label


def half_inning_label(half: Any, inning: Any) -> str:
    """``Top 7th`` / ``Bottom 9th``; the inning alone when the half is unknown."""
    if not isinstance(inning, int) or inning < 1:
        return ""
    if half in ("top", "bottom"):
        return f"{str(half).capitalize()} {_ordinal(inning)}"
    return f"{_ordinal(inning)} inning"


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


@lru_cache(maxsize=64)
def _format_of(league: str | None) -> GameFormat:
    found = default_leagues().find(league) if league else None
    if found is None:
        return GameFormat()  # quarters then overtime: the NBA CDN's games carry no league
    return GameFormat(found.periods, found.period_name, found.extra, found.clock)


def clock_label(seconds: float | None) -> str:
    """Time left in the period as ``M:SS``; empty when unknown."""
    if seconds is None:
        return ""
    whole = max(0, int(round(float(seconds))))
    return f"{whole // 60}:{whole % 60:02d}"


def _when(period: Any, clock: Any, league: str | None = None) -> str:
    fmt = _format_of(league)
    shown = None if fmt.clock in ("innings", "minutes") else clock  # no countdown to show
    text = " ".join(p for p in (period_label(period, league), clock_label(shown)) if p)
    return f" ({text})" if text else ""


class _Teams:
    """Which tricode is home and which away, learnt from the events as they come."""

    def __init__(self) -> None:
        self.home = "home"
        self.away = "away"

    def learn(self, payload: Mapping[str, Any]) -> None:
        if isinstance(payload.get("home"), str):
            self.home = payload["home"]
        if isinstance(payload.get("away"), str):
            self.away = payload["away"]
        side, team = payload.get("side"), payload.get("team")
        if side in ("home", "away") and isinstance(team, str):
            setattr(self, side, team)

    def score(self, payload: Mapping[str, Any]) -> str:
        return f"{self.away} {payload.get('away_score')} - {self.home} {payload.get('home_score')}"


def _event_summary(kind: str, payload: Mapping[str, Any] | None, teams: _Teams) -> str:
    """One event in words: ``BOS +3: ORL 10 - BOS 12 (Q2 5:32)``."""
    p = payload or {}
    teams.learn(p)
    league = p.get("league") if isinstance(p.get("league"), str) else None
    if kind == "game_started":
        return f"tip-off: {teams.away} @ {teams.home}"
    if kind == "period_started":
        return f"{period_label(p.get('period'), league)} starts"
    if kind == "score_changed":
        return f"{p.get('team')} +{p.get('points')}: {teams.score(p)}" + _when(
            p.get("period"), p.get("clock_seconds"), league
        )
    if kind == "lead_changed":
        leader = p.get("leader")
        who = getattr(teams, leader, leader) if leader in ("home", "away") else leader or "tied"
        return f"lead: {who}, {teams.score(p)}"
    if kind == "period_ended":
        return (
            f"end of {period_label(p.get('period'), league)}: {teams.away} {p.get('away_points')}, "
            f"{teams.home} {p.get('home_points')} in the period"
        )
    if kind == "half_inning_started":
        return f"{half_inning_label(p.get('half'), p.get('inning'))}: {p.get('batting')} batting"
    if kind == "half_inning_ended":
        return (
            f"end of {half_inning_label(p.get('half'), p.get('inning'))}: "
            f"{p.get('batting')} {p.get('runs')} run(s)"
        )
    if kind == "game_final":
        return f"final: {teams.score(p)}"
    if kind == "stats_corrected":
        return "stats corrected: " + ", ".join(sorted((p.get("changes") or {}).keys()))
    if "status" in p:
        return f"{kind}: {p.get('previous_status')} -> {p.get('status')}"
    return kind.replace("_", " ")


def timeline_rows(entries: Iterable[Mapping[str, Any]], tz: tzinfo = UTC) -> list[list[str]]:
    """(time with zone, what, detail) for each timeline entry, events told as the game."""
    teams = _Teams()
    rows = []
    for e in entries:
        when: datetime = e["time"]
        stamp = when.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S %Z")
        if e["type"] == "event":
            what = f"#{e.get('task_seq')} {e.get('kind')}"
            rows.append([stamp, what, _event_summary(e["kind"], e.get("detail"), teams)])
        else:
            rows.append([stamp, e["type"].replace("_", " "), e["summary"]])
    return rows


def timeline_markdown(entries: list[dict], tz: tzinfo = UTC) -> str:
    """The task's timeline as a table: lifecycle states, services' reports, the game's events."""
    return tabulate(
        timeline_rows(entries, tz), headers=["time", "entry", "what"], tablefmt="github"
    )


def minute_stats_markdown(rows: list[dict]) -> str:
    """Per task type and minute: polls, failed polls, events, poll lateness (avg / max s)."""
    if not rows:
        return "_no polls or events in this window_"
    table = [
        [
            r["bucket"].strftime("%H:%M"),
            r["task_type"],
            r["polls"],
            r["errors"],
            r["events"],
            "" if r["lateness_avg_seconds"] is None else f"{r['lateness_avg_seconds']:.2f}",
            "" if r["lateness_max_seconds"] is None else f"{r['lateness_max_seconds']:.2f}",
        ]
        for r in rows
    ]
    headers = ["minute", "task type", "polls", "failed", "events", "late avg s", "late max s"]
    return tabulate(table, headers=headers, tablefmt="github")


def score_timeline_markdown(rows: list[dict]) -> str:
    """A game's score at the end of each time bucket, with the points scored in it."""
    table = [
        [
            r["bucket"].strftime("%H:%M"),
            r["events"],
            r["home_points"],
            r["away_points"],
            "" if r["home_score"] is None else f"{r['away_score']}-{r['home_score']}",
        ]
        for r in rows
    ]
    headers = ["minute", "events", "home pts", "away pts", "score (away-home)"]
    return tabulate(table, headers=headers, tablefmt="github")


def score_table(box: BoxScore) -> str:
    """The score by period, away team first, as a markdown table, the live period's clock in
    the header of its column. Built by hand, not with tabulate: a runner draws it on every
    poll (tabulate cost 0.3 ms, more than the parse)."""
    periods = max(len(box.home.periods), len(box.away.periods))
    header = ["team", *box.period_labels(), "total"]
    if str(box.status) == "live" and box.period and 0 < box.period <= periods:
        header[box.period] += f" ({box.display_clock or clock_label(box.clock_seconds)})"
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for team in (box.away, box.home):
        cells = [team.tricode, *(str(p) for p in team.periods)]
        cells += [""] * (periods - len(team.periods)) + [str(team.score)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
