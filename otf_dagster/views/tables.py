"""Tables people read in the Dagster UI and the CLI: a task's timeline, a game's score."""

from __future__ import annotations

from tabulate import tabulate

from otf_dagster.feeds import BoxScore


def timeline_markdown(entries: list[dict]) -> str:
    """The task's timeline as a table: lifecycle states, services' reports, events."""
    rows = [[e["time"].strftime("%H:%M:%S"), e["type"], e["summary"]] for e in entries]
    return tabulate(rows, headers=["time", "type", "what"], tablefmt="github")


def score_table(box: BoxScore) -> str:
    """The score by period, away team first, as a markdown table. Built by hand, not with
    tabulate: a runner draws it on every poll (tabulate cost 0.3 ms, more than the parse)."""
    periods = max(len(box.home.periods), len(box.away.periods))
    header = ["team", *box.period_labels(), "total"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for team in (box.away, box.home):
        cells = [team.tricode, *(str(p) for p in team.periods)]
        cells += [""] * (periods - len(team.periods)) + [str(team.score)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
