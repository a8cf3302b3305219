"""Cost of one poll's CPU work: decode + parse + diff of a full final box score, per provider
and, for ESPN, per sport (NFL, MLB, NHL summaries as recorded).

    python bench/bench_feeds.py

The baseline, measured in the same run, is ``json.loads`` of the same body: the part no parser
can avoid. Figures are merged into bench/results.json (entries with the same name replaced).
Goals: <= 5 ms per poll; for the other sports also <= 1.5x json.loads of the same bytes. When
orjson is installed the same polls are also measured decoding with ``orjson.loads`` (the
``*.orjson`` figures, still against ``json.loads``): the decoder, not the parser, is the cost.
"""

from __future__ import annotations

import importlib.util
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402  (sets sys.path for the project too)

from otf_dagster.feeds.derive import derive_events  # noqa: E402
from otf_dagster.feeds.espn import parse_espn_summary  # noqa: E402
from otf_dagster.feeds.leagues import league  # noqa: E402
from otf_dagster.feeds.nba_cdn import parse_nba_boxscore  # noqa: E402

ROOT = _common.ROOT
GOAL_MS = 5.0
GOAL_RATIO = 1.5  # x json.loads, for the sports beyond the NBA
FIXTURES = ROOT / "otf_dagster_tests" / "fixtures"
MS = "espn-multisport"
CASES = {
    "nba_cdn": (
        "nba_cdn/boxscore/boxscore_0042200123_PHI-at-BKN_status3_final.json",
        lambda doc: parse_nba_boxscore(doc),
    ),
    "espn": (
        "espn/summary/summary_401585135_BOS-at-IND_post.json",
        lambda doc: parse_espn_summary(doc, "401585135"),
    ),
    "espn_nfl": (
        f"{MS}/nfl/summary/summary_2023-09-17_post_GB-at-ATL_401547417.json",
        lambda doc: parse_espn_summary(doc, "401547417", league("nfl")),
    ),
    "espn_mlb": (
        f"{MS}/mlb/summary/summary_2023-07-19_post_CLE-at-PIT_401472463.json",
        lambda doc: parse_espn_summary(doc, "401472463", league("mlb")),
    ),
    "espn_nhl": (
        f"{MS}/nhl/summary/summary_2024-06-01_post_NYR-at-FLA_401672881.json",
        lambda doc: parse_espn_summary(doc, "401672881", league("nhl")),
    ),
}


def median_ms(fn: Callable[[], object], iterations: int) -> float:
    for _ in range(max(3, iterations // 20)):
        fn()  # warm-up
    samples = []
    for _ in range(iterations):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def run(iterations: int = 200) -> list[dict[str, object]]:
    info = _common.machine()
    results: list[dict[str, object]] = []
    for name, (relative, parse) in CASES.items():
        body = (FIXTURES / relative).read_bytes()
        previous = parse(json.loads(body))  # the checkpoint: same game, one poll earlier
        doc = json.loads(body)

        def poll(body=body, parse=parse, previous=previous) -> object:
            return derive_events(previous, parse(json.loads(body)))

        def parse_and_diff(doc=doc, parse=parse, previous=previous) -> object:
            return derive_events(previous, parse(doc))

        baseline = median_ms(lambda body=body: json.loads(body), iterations)
        sport = name.startswith("espn_")
        measured = [("poll_decode_parse_diff", poll), ("parse_diff_only", parse_and_diff)]
        if importlib.util.find_spec("orjson") is not None:
            import orjson

            def poll_orjson(body=body, parse=parse, previous=previous) -> object:
                return derive_events(previous, parse(orjson.loads(body)))

            measured.append(("poll_decode_parse_diff.orjson", poll_orjson))
        for metric, fn in measured:
            value = median_ms(fn, iterations)
            met = value <= GOAL_MS
            goal = f"<= {GOAL_MS} ms/poll"
            if sport and metric.startswith("poll_decode_parse_diff"):
                met = met and value <= GOAL_RATIO * baseline
                goal += f" and <= {GOAL_RATIO}x json.loads"
            _common.record(
                results,
                f"feeds.{name}.{metric}",
                round(value, 4),
                "ms/poll",
                baseline_name=f"feeds.{name}.json_loads",
                baseline_value=round(baseline, 4),
                machine=info,
                body_bytes=len(body),
                iterations=iterations,
                goal=goal,
                goal_met=met,
            )
    for entry in results:
        entry["baseline_name"] = entry["baseline"]  # the name the brief asks for, too
    return results


def main() -> None:
    info = _common.machine()
    print(f"machine: {_common.machine_line(info)}")
    results = run()
    _common.print_table(results)
    path = _common.write_results(results)
    print(f"merged into {path}")


if __name__ == "__main__":
    main()
