"""Cost of one poll's CPU work: decode + parse + diff of a full final box score, per provider
and, for ESPN, per sport (NFL, MLB, NHL summaries as recorded); and the CPU of one GET.

    python bench/bench_feeds.py [--quick] [--http-only] [--no-write] [--old-client FILE]

The baseline, measured in the same run, is ``json.loads`` of the same body: the part no parser
can avoid. Figures are merged into bench/results.json (entries with the same name replaced).
Goals: <= 5 ms per poll; for the other sports also <= 1.5x json.loads of the same bytes. When
orjson is installed the same polls are also measured decoding with ``orjson.loads`` (the
``*.orjson`` figures, still against ``json.loads``): the decoder, not the parser, is the cost.

The GET (``feeds.get_json.vs_bare_urllib3``): CPU-ms of this thread per ``FeedClient.get_json``
of a small JSON document (the counter document, ~60 bytes) on a loopback keep-alive server that
is not this process (nginx via ``_static_feed`` when installed, else ``python -m http.server`` in
a process of its own), against a bare urllib3 GET + ``json.loads`` of the same URL measured in
the same run (one ``PoolManager``, no retries object, nothing else). A bare ``requests.Session``
GET is measured too (``feeds.get_json.requests_session.vs_bare_urllib3``). ``--old-client FILE`` also measures
the FeedClient of another version of ``otf_dagster/feeds/http.py`` (``git show
main:otf_dagster/feeds/http.py > /tmp/old_http.py``) as ``feeds.get_json.old_client``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
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
GOAL_GET = 1.5  # FeedClient.get_json's CPU per GET, x a bare urllib3 GET of the same document
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


# --- the CPU of one GET ---------------------------------------------------------------------


class _PythonServer:
    """``python -m http.server`` in a process of its own (when nginx is not installed), serving
    the same counter document from a folder of its own."""

    def __enter__(self) -> _PythonServer:
        self.root = Path(tempfile.mkdtemp(prefix="otf-bench-get-"))
        (self.root / "demo" / "count").mkdir(parents=True)
        doc = {"key": "static", "count": 0, "steps": 10**9, "done": False}
        (self.root / "demo" / "count" / "get.json").write_text(json.dumps(doc))
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        code = (
            "import functools, http.server as h; h.SimpleHTTPRequestHandler.protocol_version = "
            "'HTTP/1.1'; h.SimpleHTTPRequestHandler.log_message = lambda *a: None; "
            f"h.ThreadingHTTPServer(('127.0.0.1', {port}), functools.partial("
            f"h.SimpleHTTPRequestHandler, directory={str(self.root)!r})).serve_forever()"
        )
        self.proc = subprocess.Popen([sys.executable, "-c", code])
        self.base_url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return self
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        shutil.rmtree(self.root, ignore_errors=True)


def _feed_server():
    from _static_feed import StaticFeed, nginx_binary

    if nginx_binary() is not None:
        return StaticFeed(every=3600.0), "nginx"
    return _PythonServer(), "python http.server"


def cpu_ms_per_call(fn: Callable[[], object], calls: int, repeats: int) -> float:
    """The median over ``repeats`` rounds of this thread's CPU-ms per call of ``fn``."""
    for _ in range(max(20, calls // 10)):
        fn()  # warm-up: the connection, the caches

    def one_round(_: int) -> float:
        started = time.thread_time()
        for _ in range(calls):
            fn()
        return 1000 * (time.thread_time() - started) / calls

    return _common.median_of(repeats, one_round)[0]


def _load_client(path: str) -> type:
    spec = importlib.util.spec_from_file_location("otf_dagster.feeds._bench_old_http", path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.FeedClient


FIGURES = {
    "get_json": "feeds.get_json.vs_bare_urllib3",
    "old_client": "feeds.get_json.old_client.vs_bare_urllib3",
    "requests_session": "feeds.get_json.requests_session.vs_bare_urllib3",
}


def run_get(
    calls: int = 2000, repeats: int = 5, old_client: str | None = None
) -> list[dict[str, object]]:
    import requests
    import urllib3

    from otf_dagster.feeds.http import FeedClient

    info = _common.machine()
    results: list[dict[str, object]] = []
    server, kind = _feed_server()
    with server:
        path = "/demo/count/get.json"
        url = f"{server.base_url}{path}"
        bare = urllib3.PoolManager()
        session = requests.Session()
        session.trust_env = False
        clients = {"get_json": FeedClient(server.base_url)}
        if old_client:
            clients["old_client"] = _load_client(old_client)(server.base_url)
        body = bare.request("GET", url).data
        doc = json.loads(body)
        for client in clients.values():
            assert client.get_json(path) == doc
        measured: dict[str, Callable[[], object]] = {
            name: (lambda client=client: client.get_json(path)) for name, client in clients.items()
        }
        measured["requests_session"] = lambda: json.loads(session.get(url, timeout=10).content)
        baseline = cpu_ms_per_call(
            lambda: json.loads(bare.request("GET", url).data), calls, repeats
        )
        for name, fn in measured.items():
            value = cpu_ms_per_call(fn, calls, repeats)
            figure = FIGURES[name]
            _common.record(
                results,
                figure,
                round(value, 4),
                "CPU-ms/GET",
                baseline_name="bare urllib3 PoolManager GET + json.loads",
                baseline_value=round(baseline, 4),
                machine=info,
                server=kind,
                body_bytes=len(body),
                calls=calls,
                repeats=repeats,
                client=(old_client or "") if name == "old_client" else name,
                **(
                    {
                        "goal": f"<= {GOAL_GET}x bare urllib3",
                        "goal_met": value <= GOAL_GET * baseline,
                    }
                    if name == "get_json"
                    else {}
                ),
            )
        for client in clients.values():
            client.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations (a smoke run)")
    parser.add_argument("--http-only", action="store_true", help="only the GET figures")
    parser.add_argument("--no-write", action="store_true", help="do not touch results.json")
    parser.add_argument("--old-client", metavar="FILE", help="another feeds/http.py to measure")
    args = parser.parse_args()
    info = _common.machine()
    print(f"machine: {_common.machine_line(info)}")
    results = [] if args.http_only else run(20 if args.quick else 200)
    results += run_get(200 if args.quick else 2000, 3 if args.quick else 5, args.old_client)
    _common.print_table(results)
    if not args.no_write:
        path = _common.write_results(results)
        print(f"merged into {path}")


if __name__ == "__main__":
    main()
