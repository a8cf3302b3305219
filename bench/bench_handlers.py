"""Cost of one poll's CPU work in the handlers, beside baselines measured in the same run.

    python bench/bench_handlers.py [--quick]

- ``handlers.http_json.poll_50kb_10_tracked``: the generic handler (http.json) on a 50 KB
  document (a real ESPN scoreboard, cut to about 50 KB) with 10 tracked JMESPath expressions
  and done_when/fail_when, decoding included; baseline ``json.loads`` of the same bytes.
  Goal: <= 3x json.loads.
- ``handlers.boxscore.<provider>.poll``: the box-score handler's poll (decode, parse, diff,
  display) on a final box score; baseline: the runner's per-poll work before the handler seam
  (decode + parse + diff + checkpoint dict, the code path the pre-seam runner ran). Goal: no
  regression beyond noise (<= 1.10x).

The HTTP round trip is left out on purpose (a client that decodes bytes in memory): it is the
same before and after, and it is what a loopback benchmark of the pool measures.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402  (sets sys.path for the project too)

from otf_dagster.feeds import BoxScore  # noqa: E402
from otf_dagster.feeds.derive import derive_events  # noqa: E402
from otf_dagster.feeds.espn import parse_espn_summary  # noqa: E402
from otf_dagster.feeds.nba_cdn import parse_nba_boxscore  # noqa: E402
from otf_dagster.handlers import (  # noqa: E402
    PollContext,
    get,
    task_types,  # noqa: E402
)
from otf_dagster.vocab.tasks import Task, TaskState  # noqa: E402

FIXTURES = _common.ROOT / "otf_dagster_tests" / "fixtures"
SCOREBOARD = FIXTURES / "espn/scoreboard/scoreboard_2026-03-01_pre_11games.json"
TRACKED = {
    "games": "length(events)",
    "first_id": "events[0].id",
    "first_state": "events[0].status.type.state",
    "ids": "events[*].id",
    "scores": "events[0].competitions[0].competitors[*].score",
    "venue": "events[0].competitions[0].venue.fullName",
    "league": "leagues[0].abbreviation",
    "start": "events[0].date",
    "records": "events[0].competitions[0].competitors[*].records[0].summary",
    "live": "length(events[?status.type.state == 'in'])",
}
BOXSCORES = {
    "nba_cdn": (
        "nba_cdn/boxscore/boxscore_0042200123_PHI-at-BKN_status3_final.json",
        "0042200123",
        "/static/json/liveData/boxscore/boxscore_{key}.json",
        lambda doc, key: parse_nba_boxscore(doc),
    ),
    "espn": (
        "espn/summary/summary_401585135_BOS-at-IND_post.json",
        "401585135",
        "/apis/site/v2/sports/basketball/nba/summary?event={key}",
        lambda doc, key: parse_espn_summary(doc, key),
    ),
}


class BytesClient:
    """A FeedClient face that decodes the same bytes for every request (no network)."""

    base_url = "http://bench.invalid"

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.documents: list[Any] = []

    def url_for(self, url: str, params: dict | None = None) -> str:
        return url if url.startswith("http") else self.base_url + url

    def get_json(self, url: str, params: dict | None = None, headers: dict | None = None) -> Any:
        return json.loads(self.body)


def fifty_kb() -> bytes:
    doc = json.loads(SCOREBOARD.read_bytes())
    events = doc["events"]
    for n in range(1, len(events) + 1):
        doc["events"] = events[:n]
        body = json.dumps(doc).encode()
        if len(body) >= 50_000:
            return body
    return body


def paired_ms(
    fn_a: Callable[[], object], fn_b: Callable[[], object], iterations: int
) -> tuple[float, float]:
    """Medians of two functions timed in alternation, so load from elsewhere on a shared
    machine falls on both alike."""
    for _ in range(max(3, iterations // 20)):
        fn_a()
        fn_b()
    a, b = [], []
    for _ in range(iterations):
        for fn, samples in ((fn_a, a), (fn_b, b)):
            started = time.perf_counter()
            fn()
            samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(a), statistics.median(b)


def context(tt, key: str, client: BytesClient, state: Any) -> PollContext:
    task = Task(tt.name.lower() + ":" + key, tt.name, key, datetime.now(UTC), TaskState.STARTED, 1)
    return PollContext(
        task=task,
        task_type=tt,
        state=state,
        url=client.url_for(tt.url_template.replace("{key}", key)),
        client=client,
        now=datetime.now(UTC),
        polls=2,
        consecutive_errors=0,
    )


def run(iterations: int) -> list[dict[str, Any]]:
    info = _common.machine()
    results: list[dict[str, Any]] = []

    body = fifty_kb()
    tt = task_types.validate(
        {
            "name": "BENCH_BOARD",
            "handler": "http.json",
            "base_url": "http://bench.invalid",
            "url_template": "/board/{key}",
            "poll_interval_seconds": 10,
            "params": {
                "done_when": "length(events[?status.type.completed != `true`]) == `0`",
                "fail_when": "length(events) == `0`",
                "track": TRACKED,
            },
        }
    )
    handler = get("http.json")
    client = BytesClient(body)
    state = handler.poll(context(tt, "d", client, None)).state
    baseline, value = paired_ms(
        lambda: json.loads(body), lambda: handler.poll(context(tt, "d", client, state)), iterations
    )
    _common.record(
        results,
        "handlers.http_json.poll_50kb_10_tracked",
        round(value, 4),
        "ms/poll",
        baseline_name="handlers.http_json.json_loads_50kb",
        baseline_value=round(baseline, 4),
        machine=info,
        body_bytes=len(body),
        tracked=len(TRACKED),
        iterations=iterations,
        goal="<= 3x json.loads",
        goal_met=value <= 3 * baseline,
    )

    for provider, (relative, key, template, parse) in BOXSCORES.items():
        body = (FIXTURES / relative).read_bytes()
        previous = parse(json.loads(body), key)

        state = previous.to_dict()

        def before(body=body, key=key, parse=parse, state=state) -> object:
            # the pre-seam runner's _poll: checkpoint -> BoxScore, fetch + parse, diff, dump
            snapshot = parse(json.loads(body), key)
            derive_events(BoxScore.from_dict(state), snapshot)
            return snapshot.to_dict()

        tt = task_types.validate(
            {
                "name": f"BENCH_{provider.upper()}",
                "handler": f"{provider}.boxscore",
                "url_template": template,
                "poll_interval_seconds": 10,
            }
        )
        handler = get(tt.handler)
        client = BytesClient(body)
        state = previous.to_dict()

        def after(handler=handler, tt=tt, key=key, client=client, state=state) -> object:
            return handler.poll(context(tt, key, client, state))

        old, new = paired_ms(before, after, iterations)
        _common.record(
            results,
            f"handlers.boxscore.{provider}.poll",
            round(new, 4),
            "ms/poll",
            baseline_name=f"handlers.boxscore.{provider}.before_the_seam",
            baseline_value=round(old, 4),
            machine=info,
            body_bytes=len(body),
            iterations=iterations,
            goal="<= 1.10x the pre-seam poll",
            goal_met=new <= 1.10 * old,
        )
    return results


def main() -> None:
    quick = "--quick" in sys.argv
    info = _common.machine()
    print(f"machine: {_common.machine_line(info)}")
    results = run(30 if quick else 300)
    _common.print_table(results)
    print(f"merged into {_common.write_results(results)}")


if __name__ == "__main__":
    main()
