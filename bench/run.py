"""Run every bench/bench_*.py in name order, then print the combined table of bench/results.json.

    python bench/run.py [--quick]

Each script runs as its own subprocess (``--quick`` is passed on) and prints its own figures;
the exit status is non-zero when any script failed (the others still run).

A full run of every script (no ``--quick``, no names) leaves ``bench/results.json`` holding only
its own figures: one taken before the run started (an older run's, another machine's, a figure no
script takes any more) is dropped at the end and named, so the file is one run on one machine.
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="pass --quick to every script (smoke sizes)"
    )
    parser.add_argument("only", nargs="*", help="run only scripts whose name contains one of these")
    args = parser.parse_args(argv)

    scripts = sorted(_common.BENCH_DIR.glob("bench_*.py"))
    if args.only:
        scripts = [s for s in scripts if any(o in s.name for o in args.only)]
    if not scripts:
        print("no bench/bench_*.py scripts found", file=sys.stderr)
        return 1

    whole_run = not args.quick and not args.only
    started = datetime.now(UTC).replace(microsecond=0)
    run_start = time.perf_counter()
    outcomes: list[tuple[str, int, float]] = []
    for script in scripts:
        cmd = [sys.executable, str(script)] + (["--quick"] if args.quick else [])
        print(f"\n===== {script.name} =====", flush=True)
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=_common.ROOT)
        try:
            rc = proc.wait()
        except (KeyboardInterrupt, SystemExit) as stop:
            # Ctrl-C reaches the script too (same process group); a SIGTERM sent to run.py
            # alone is passed on, and the script is given time to stop what it started
            # (subprocess.run would SIGKILL it and leave its PostgreSQL and nginx running).
            proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=60)
            print(f"\ninterrupted during {script.name}", file=sys.stderr)
            return 130 if isinstance(stop, KeyboardInterrupt) else 143
        outcomes.append((script.name, rc, time.perf_counter() - start))

    print("\n===== summary =====")
    if whole_run:
        dropped = drop_older(started)
        if dropped:
            print(f"dropped {len(dropped)} figures not taken by this run: {', '.join(dropped)}")
    entries = _common.read_results()
    machines = sorted({e["machine"] for e in entries if isinstance(e.get("machine"), str)})
    print(f"machine: {_common.machine_line(_common.machine())}")
    for m in machines:
        print(f"  figures taken on: {m}")
    if entries:
        _common.print_table(entries)
    else:
        print(f"(no figures in {_common.RESULTS_PATH})")
    print()
    for name, rc, seconds in outcomes:
        print(f"{name:32s} {'ok' if rc == 0 else f'FAILED (exit {rc})':18s} {seconds:7.1f} s")
    print(f"{'all':32s} {'':18s} {time.perf_counter() - run_start:7.1f} s")
    failed = [name for name, rc, _ in outcomes if rc != 0]
    missed = [e["name"] for e in entries if e.get("goal_met") is False]
    if missed:
        print(f"goals missed: {', '.join(missed)}")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def drop_older(started: datetime, path: Path = _common.RESULTS_PATH) -> list[str]:
    """Remove from ``path`` every figure recorded before ``started``; their names."""
    entries = _common.read_results(path)
    keep, dropped = [], []
    for e in entries:
        try:
            at = datetime.fromisoformat(str(e.get("recorded_at")))
        except ValueError:
            at = None
        (keep if at is not None and at.tzinfo and at >= started else dropped).append(e)
    if dropped:
        _common.save_results(keep, path)
    return [e["name"] for e in dropped]


if __name__ == "__main__":
    sys.exit(main())
