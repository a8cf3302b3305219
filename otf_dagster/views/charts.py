"""Charts where people would rather look than read: a game's score over time, as a PNG.

Drawn with matplotlib's Agg canvas on a bare ``Figure`` (no pyplot, no display, no global
state), so it works headless in a run worker and in the CLI alike. The x axis is when each
score was seen (with its zone), which holds for every sport; periods are marked where they
started.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, tzinfo
from typing import Any

from otf_dagster.exceptions import NothingToPlot
from otf_dagster.views.tables import period_label


def _events(rows: Iterable[Mapping[str, Any]]) -> list[tuple[datetime, str, dict[str, Any]]]:
    """(time, kind, payload) from timeline entries (``detail``) or stored events (``payload``)."""
    out = []
    for row in rows:
        if row.get("type", "event") != "event":
            continue
        payload = row.get("payload", row.get("detail")) or {}
        out.append((row["time"], row["kind"], payload))
    return out


def score_chart_png(rows: Iterable[Mapping[str, Any]], tz: tzinfo = UTC, title: str = "") -> bytes:
    """The score of each side over time, from a task's timeline entries or events."""
    from matplotlib.dates import DateFormatter
    from matplotlib.figure import Figure

    events = _events(rows)
    scores = [(t, p) for t, kind, p in events if kind == "score_changed"]
    if not scores:
        raise NothingToPlot(
            "no score_changed event yet: nothing to plot; try again once the game is live"
        )
    home, away = "home", "away"
    for _, kind, p in events:
        if kind in ("game_started", "game_final"):
            home, away = p.get("home", home), p.get("away", away)
        elif kind == "score_changed" and p.get("side") in ("home", "away"):
            if p["side"] == "home":
                home = p.get("team", home)
            else:
                away = p.get("team", away)
    start = next((t for t, kind, _ in events if kind == "game_started"), scores[0][0])
    times = [start] + [t for t, _ in scores]
    fig = Figure(figsize=(9, 4), dpi=100)
    ax = fig.subplots()
    for side, name in (("away", away), ("home", home)):
        values = [0] + [int(p.get(f"{side}_score", 0)) for _, p in scores]
        ax.step(times, values, where="post", label=f"{name} ({side})", linewidth=2)
    for t, kind, p in events:
        if kind == "period_started":
            ax.axvline(t, color="0.8", linewidth=1, zorder=0)
            ax.annotate(period_label(p.get("period"), p.get("league")), (t, 0), xytext=(3, 3),
                        textcoords="offset points", color="0.45", fontsize=8)  # fmt: skip
    last = scores[-1][1]
    final = f"{away} {last.get('away_score')} - {home} {last.get('home_score')}"
    ax.set_title(title or f"{away} @ {home}: {final}")
    ax.set_ylabel("points")
    ax.set_xlabel(f"time ({start.astimezone(tz).tzname()})")
    short = (times[-1] - times[0]).total_seconds() < 600  # a replayed game: seconds matter
    ax.xaxis.set_major_formatter(DateFormatter("%H:%M:%S" if short else "%H:%M", tz=tz))
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
