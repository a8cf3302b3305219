"""A timeline speaks each sport's periods: an MLB game's innings, an NHL game's periods, a
soccer match's halves; never a baseball "Q7"."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from otf_dagster.feeds.derive import derive_events
from otf_dagster.feeds.leagues import league
from otf_dagster.feeds.models import BoxScore, GameFormat, GameStatus, TeamLine
from otf_dagster.views.tables import period_label, timeline_rows

T0 = datetime(2026, 5, 1, 23, 0, tzinfo=UTC)


def box(alias: str, sport: str, period: int, home, away, **kw) -> BoxScore:
    lg = league(alias)
    return BoxScore(
        "g",
        "espn",
        kw.pop("status", GameStatus.LIVE),
        period,
        kw.pop("clock", None),
        TeamLine("HOM", sum(home), tuple(home)),
        TeamLine("AWY", sum(away), tuple(away)),
        league=alias,
        sport=sport,
        format=GameFormat(lg.periods, lg.period_name, lg.extra, lg.clock),
        **kw,
    )


def rows_of(snapshots: list[BoxScore]) -> list[str]:
    """The timeline's "what" column for the events the snapshots yield, in order."""
    entries, prev = [], None
    for i, new in enumerate(snapshots):
        for event in derive_events(prev, new):
            entries.append(
                {
                    "time": T0 + timedelta(minutes=i),
                    "type": "event",
                    "task_seq": len(entries) + 1,
                    "kind": event.kind,
                    "detail": event.payload,
                }
            )
        prev = new
    return [row[2] for row in timeline_rows(entries)]


def test_an_mlb_timeline_reads_in_innings():
    innings = [
        box("mlb", "baseball", k, [0] * k, [1] * k, status_detail=f"Top {k}th") for k in range(1, 8)
    ]
    what = rows_of(innings)
    assert not [w for w in what if "Q7" in w or "Q1" in w or " OT" in w], what
    assert "7th inning starts" in what, what
    assert any(w.startswith("Top 7th: AWY batting") for w in what), what
    assert any("AWY +1" in w and "(7th inning)" in w for w in what), what


def test_labels_per_sport():
    assert period_label(7, "mlb") == "7th inning"
    assert period_label(11, "mlb") == "11th inning"  # extra innings are innings
    assert period_label(2, "nhl") == "P2"
    assert period_label(4, "nhl") == "OT1"
    assert period_label(2, "epl") == "2nd half"
    assert period_label(3, "epl") == "extra time 1"
    assert period_label(5, "epl") == "penalties"
    assert period_label(2, "ncaam") == "2nd half"  # college basketball plays halves
    assert period_label(3, "nfl") == "Q3"
    assert period_label(5, "nba") == "OT1"
    assert period_label(5) == "OT1"  # the NBA CDN's events carry no league
    assert period_label(0, "mlb") == ""
