"""Helpers every bench script uses: the machine, figures with their baselines, results.json.

A figure is one dict::

    {"name": "store.claim_ready", "value": 41000.0, "unit": "tasks/s",
     "baseline": "naive row-at-a-time claim", "baseline_value": 900.0, "ratio": 45.6, ...}

``ratio`` is always ``value / baseline_value`` (how many times the baseline's figure ours is).
``bench/results.json`` is a JSON list of such dicts; :func:`write_results` merges by name, so
each bench script replaces only its own figures.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import signal
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
RESULTS_PATH = BENCH_DIR / "results.json"


def _exit_on_sigterm(signum: int, frame: object) -> None:
    """SIGTERM (a killed bench, `timeout`, CI's cancel) ends the script like Ctrl-C does: by an
    exception, so every ``finally`` runs and the embedded PostgreSQL, nginx and child
    processes the script started are stopped, not left behind holding ports and folders."""
    raise SystemExit(128 + signum)


if threading.current_thread() is threading.main_thread():
    signal.signal(signal.SIGTERM, _exit_on_sigterm)


if str(ROOT) not in sys.path:  # `python bench/bench_x.py` from anywhere, without installing bench/
    sys.path.insert(0, str(ROOT))


# --- the machine -------------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        for line in (
            Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines()
        ):
            key, _, value = line.partition(":")
            if (
                key.strip() in ("model name", "Hardware", "cpu model", "Processor")
                and value.strip()
            ):
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _memory_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except (OSError, ValueError, IndexError):
        pass
    return None


def machine(conn: Any = None) -> dict[str, Any]:
    """Where the figures were taken; with a psycopg connection, also the server's version."""
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "memory_gb": _memory_gb(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
    }
    try:
        import psycopg

        info["psycopg"] = f"{psycopg.__version__} ({psycopg.pq.__impl__})"
    except ImportError:
        pass
    if conn is not None:
        row = conn.execute(
            "SELECT current_setting('server_version'), current_setting('synchronous_commit')"
        ).fetchone()
        values = list(row.values()) if isinstance(row, dict) else list(row)
        info["postgresql"] = values[0]
        info["synchronous_commit"] = values[1]
    return info


def machine_line(info: dict[str, Any]) -> str:
    parts = [f"{info.get('cpu', '?')} x{info.get('cpu_count', '?')}"]
    if info.get("memory_gb"):
        parts.append(f"{info['memory_gb']} GB")
    parts.append(str(info.get("platform", "?")))
    parts.append(f"Python {info.get('python', '?')}")
    if info.get("psycopg"):
        parts.append(f"psycopg {info['psycopg']}")
    if info.get("postgresql"):
        pg = f"PostgreSQL {info['postgresql']}"
        if info.get("synchronous_commit"):
            pg += f" (synchronous_commit={info['synchronous_commit']})"
        parts.append(pg)
    return ", ".join(parts)


# --- figures ------------------------------------------------------------------------------------


def median_of(repeats: int, fn: Callable[[int], float]) -> tuple[float, list[float]]:
    """Run ``fn(i)`` ``repeats`` times (each returns a figure); the median and every sample."""
    samples = [fn(i) for i in range(repeats)]
    return statistics.median(samples), samples


def timed(fn: Callable[[], Any]) -> float:
    """Seconds ``fn()`` took (time.perf_counter)."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def record(
    results: list[dict[str, Any]],
    name: str,
    value: float,
    unit: str,
    baseline_name: str | None = None,
    baseline_value: float | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Append a figure to ``results`` (and return it); ratio = value / baseline_value."""
    ratio = None
    if baseline_value not in (None, 0):
        ratio = value / baseline_value
    entry: dict[str, Any] = {
        "name": name,
        "value": value,
        "unit": unit,
        "baseline": baseline_name,
        "baseline_value": baseline_value,
        "ratio": ratio,
        "script": Path(sys.argv[0]).name if sys.argv and sys.argv[0] else None,
        "recorded_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    entry.update(extra)
    results.append(entry)
    return entry


def read_results(path: Path | str = RESULTS_PATH) -> list[dict[str, Any]]:
    """The figures in ``path`` (a JSON list, or {"results": [...]}); [] if absent or unreadable."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    if isinstance(data, dict):
        data = data.get("results", data.get("entries", []))
    return (
        [e for e in data if isinstance(e, dict) and "name" in e] if isinstance(data, list) else []
    )


def write_results(entries: Sequence[dict[str, Any]], path: Path | str = RESULTS_PATH) -> Path:
    """Merge ``entries`` into ``path``: same-name entries are replaced, others kept, order kept."""
    path = Path(path)
    existing = read_results(path)
    new_by_name = {e["name"]: e for e in entries}
    merged: list[dict[str, Any]] = []
    seen: set[str] = set()
    for e in existing:
        if e["name"] in new_by_name:
            if e["name"] not in seen:
                merged.append(new_by_name[e["name"]])
                seen.add(e["name"])
        else:
            merged.append(e)
    for e in entries:
        if e["name"] not in seen:
            merged.append(new_by_name[e["name"]])
            seen.add(e["name"])
    return save_results(merged, path)


def save_results(entries: Sequence[dict[str, Any]], path: Path | str = RESULTS_PATH) -> Path:
    """Write ``entries`` as the whole of ``path``, atomically."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(list(entries), indent=2, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)  # atomic: a concurrent reader never sees half a file
    return path


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if abs(v) >= 100:
            return f"{v:,.0f}"
        if abs(v) >= 1:
            return f"{v:,.2f}"
        return f"{v:.3g}"
    return str(v)


def print_table(entries: Sequence[dict[str, Any]], file=None) -> None:
    """A plain-text table of figures: name, value, unit, baseline, its value, ratio, goal."""
    file = file or sys.stdout
    header = ("figure", "value", "unit", "baseline", "baseline value", "ratio", "goal")
    rows = []
    for e in entries:
        ratio = e.get("ratio")
        goal = e.get("goal")
        if goal is not None and e.get("goal_met") is not None:
            goal = f"{goal} [{'met' if e['goal_met'] else 'MISSED'}]"
        rows.append(
            (
                str(e.get("name", "?")),
                _fmt(e.get("value")),
                str(e.get("unit") or ""),
                str(e.get("baseline") or e.get("baseline_name") or "-"),
                _fmt(e.get("baseline_value")),
                "-" if ratio is None else f"{ratio:.2f}x",
                "-" if goal is None else str(goal),
            )
        )
    widths = [
        max(len(header[i]), *(len(r[i]) for r in rows)) if rows else len(header[i])
        for i in range(len(header))
    ]
    right = {1, 4, 5}

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    print(line(header), file=file)
    print("  ".join("-" * w for w in widths), file=file)
    for r in rows:
        print(line(r), file=file)


# --- the database -------------------------------------------------------------------------------

BENCH_TEMPLATE = "otf_bench_template"


class BenchServer:
    """A PostgreSQL server for benchmarks and fresh, migrated databases on it.

    ``OTF_BENCH_ADMIN_URL`` (or ``OTF_TEST_ADMIN_URL``) names an existing server's admin
    database; otherwise the embedded server runs in ``.otf/bench-pgdata`` - its own folder, so a
    benchmark neither drops the test suite's template nor is stopped by ``make test``.
    """

    def __init__(self, admin_url: str, pgdata: Path | None, started_here: bool) -> None:
        self.admin_url = admin_url
        self.pgdata = pgdata
        self.started_here = started_here
        self._n = 0

    def url(self, database: str) -> str:
        from otf_dagster.local import embedded

        return embedded.database_url(self.admin_url, database)

    def create_database(self, name: str, template: str | None = BENCH_TEMPLATE) -> str:
        from otf_dagster.local import embedded

        return embedded.create_database(self.admin_url, name, template)

    def drop_database(self, name: str) -> None:
        from otf_dagster.local import embedded

        embedded.drop_database(self.admin_url, name)

    @contextlib.contextmanager
    def fresh_database(self) -> Iterator[str]:
        """A fresh database cloned from the migrated template; dropped afterwards."""
        self._n += 1
        name = f"otf_bench_{os.getpid()}_{self._n}"
        url = self.create_database(name)
        try:
            yield url
        finally:
            self.drop_database(name)

    def _admin(self):
        import psycopg

        return psycopg.connect(self.admin_url, autocommit=True)

    def server_version(self) -> str:
        with self._admin() as conn:
            return conn.execute("SHOW server_version").fetchone()[0]

    def machine(self) -> dict[str, Any]:
        with self._admin() as conn:
            return machine(conn)


@contextlib.contextmanager
def bench_server() -> Iterator[BenchServer]:
    """The benchmark server with a freshly migrated template; an embedded server this call
    started is stopped again at the end (one that was already running is left running)."""
    from otf_dagster import config
    from otf_dagster.core.store import migrations
    from otf_dagster.local import embedded

    admin = os.environ.get("OTF_BENCH_ADMIN_URL") or os.environ.get("OTF_TEST_ADMIN_URL")
    pgdata = None
    started_here = False
    if not admin:
        pgdata = (Path(config.state_dir()) / "bench-pgdata").resolve()
        started_here = not (pgdata / "postmaster.pid").exists()
        admin = embedded.start(pgdata).admin_url
    server = BenchServer(admin, pgdata, started_here)
    try:
        url = server.create_database(BENCH_TEMPLATE, template=None)
        migrations.migrate(url)
        yield server
    finally:
        if started_here and pgdata is not None:
            with contextlib.suppress(Exception):
                embedded.stop(pgdata)


def goal_check(value: float, goal: float) -> bool:
    return value >= goal
