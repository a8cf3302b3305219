"""Cost of one poll's CPU work: decode + parse + diff of a full final box score, per provider.

    python bench/bench_feeds.py

The baseline, measured in the same run, is ``json.loads`` of the same body: the part no parser
can avoid. Figures are merged into bench/results.json (entries with the same name replaced).
Goal: <= 5 ms per poll.
"""

from __future__ import annotations

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
from otf_dagster.feeds.nba_cdn import parse_nba_boxscore  # noqa: E402

ROOT = _common.ROOT
GOAL_MS = 5.0
FIXTURES = ROOT / "otf_dagster_tests" / "fixtures"
CASES = {
    "nba_cdn": (
        "nba_cdn/boxscore/boxscore_0042200123_PHI-at-BKN_status3_final.json",
        lambda doc: parse_nba_boxscore(doc),
    ),
    "espn": (
        "espn/summary/summary_401585135_BOS-at-IND_post.json",
        lambda doc: parse_espn_summary(doc, "401585135"),
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
        for metric, fn in (("poll_decode_parse_diff", poll), ("parse_diff_only", parse_and_diff)):
            value = median_ms(fn, iterations)
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
                goal=f"<= {GOAL_MS} ms/poll",
                goal_met=value <= GOAL_MS,
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
