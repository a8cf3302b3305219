"""Tables people read in the Dagster UI and the CLI: a task's timeline, a game's score.

A timeline row says what happened in the game's own terms (the score after a basket, the
period and the clock, the leader), not the event's number; times carry their zone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, tzinfo
from typing import Any

from tabulate import tabulate

from otf_dagster.feeds import BoxScore


def period_label(period: int | None) -> str:
    """``Q1``..``Q4``, then ``OT1``...; empty before tip-off."""
    if not period:
        return ""
    return f"Q{period}" if period <= 4 else f"OT{period - 4}"


def clock_label(seconds: float | None) -> str:
    """Time left in the period as ``M:SS``; empty when unknown."""
    if seconds is None:
        return ""
    whole = max(0, int(round(float(seconds))))
    return f"{whole // 60}:{whole % 60:02d}"


def _when(period: Any, clock: Any) -> str:
    text = " ".join(p for p in (period_label(period), clock_label(clock)) if p)
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
    if kind == "game_started":
        return f"tip-off: {teams.away} @ {teams.home}"
    if kind == "period_started":
        return f"{period_label(p.get('period'))} starts"
    if kind == "score_changed":
        return f"{p.get('team')} +{p.get('points')}: {teams.score(p)}" + _when(
            p.get("period"), p.get("clock_seconds")
        )
    if kind == "lead_changed":
        leader = p.get("leader")
        who = getattr(teams, leader, leader) if leader in ("home", "away") else leader or "tied"
        return f"lead: {who}, {teams.score(p)}"
    if kind == "period_ended":
        return (
            f"end of {period_label(p.get('period'))}: {teams.away} {p.get('away_points')}, "
            f"{teams.home} {p.get('home_points')} in the period"
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
