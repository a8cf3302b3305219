"""What the Dagster UI shows beside the data: pictures as metadata (no Dagster in views/)."""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from typing import Any

import dagster as dg

from otf_dagster.exceptions import NothingToPlot
from otf_dagster.views.charts import score_chart_png


def score_chart_metadata(entries: Iterable[Mapping[str, Any]]) -> dict[str, dg.MetadataValue]:
    """``{"score_chart": <markdown image>}`` for a materialization, from the task's timeline
    entries or events; empty while there is no score to draw. The PNG is inlined as a data
    URI, which Dagster's markdown metadata renders on the asset and partition pages."""
    try:
        png = score_chart_png(list(entries))
    except NothingToPlot:
        return {}
    encoded = base64.b64encode(png).decode("ascii")
    return {
        "score_chart": dg.MetadataValue.md(f"![score over time](data:image/png;base64,{encoded})")
    }
