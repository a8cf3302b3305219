"""Tables people read in the Dagster UI and the CLI: a task's timeline, a game's score."""

from __future__ import annotations

from tabulate import tabulate

from otf_dagster.feeds import BoxScore


def timeline_markdown(entries: list[dict]) -> str:
    """The task's timeline as a table: lifecycle states, services' reports, events."""
    rows = [[e["time"].strftime("%H:%M:%S"), e["type"], e["summary"]] for e in entries]
    return tabulate(rows, headers=["time", "type", "what"], tablefmt="github")


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
    """The score by period, away team first, as a markdown table."""
    periods = max(len(box.home.periods), len(box.away.periods))
    header = ["team"] + [f"Q{i + 1}" if i < 4 else f"OT{i - 3}" for i in range(periods)] + ["total"]
    rows = []
    for team in (box.away, box.home):
        rows.append(
            [team.tricode]
            + [str(p) for p in team.periods]
            + [""] * (periods - len(team.periods))
            + [str(team.score)]
        )
    return tabulate(rows, headers=header, tablefmt="github")
