"""Mutation testing for the claim and transition SQL (mutmut mutates Python only).

Each mutant drops one guard of a named query in ``otf_dagster/core/store/queries/tasks.sql``
(or weakens one of its writes), the tests that exercise the store, the Task Manager and the
runner run against it on the real server, and the mutant is *killed* when they fail. The
mutants are written into a copy of the project (``.otf/sql-mutants``, whose tests start a
server of their own there), so the checkout is never changed.

    .venv/bin/python -m otf_dagster_tests.sql_mutations [--only NAME]    (make mutmut runs it)
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QUERIES = Path("otf_dagster/core/store/queries/tasks.sql")
TIMEOUT = 300  # seconds; the unmutated tests take about 60
COPIED = [
    "otf_dagster",
    "otf_dagster_tests",
    "sql",
    "pyproject.toml",
    "dagster.yaml",
    "workspace.yaml",
]
TESTS = [
    "otf_dagster_tests/core/store/",
    "otf_dagster_tests/core/test_manager_records.py",
    "otf_dagster_tests/core/test_runner.py",
    "otf_dagster_tests/core/test_fence_guards.py",
    "otf_dagster_tests/core/test_reports.py",
    "otf_dagster_tests/defs/test_sensor.py",
]


@dataclass(frozen=True)
class Mutant:
    query: str
    what: str
    old: str
    new: str


MUTANTS = [
    Mutant("claim_ready", "claims tasks of a deleted type", " AND tt.deleted_at IS NULL", ""),
    Mutant("claim_ready", "claims tasks in any state", "WHERE t.state = 'SCHEDULED' AND ", "WHERE "),
    Mutant("claim_ready", "claims tasks before they are due", " AND t.scheduled_at <= %(now)s", ""),
    Mutant("claim_ready", "waits on rows others hold", "FOR UPDATE OF t SKIP LOCKED", "FOR UPDATE OF t"),
    Mutant("claim_ready", "locks nothing", "    FOR UPDATE OF t SKIP LOCKED\n", ""),
    Mutant("claim_ready", "ignores the limit", "    LIMIT %(limit)s\n", ""),
    Mutant("claim_ready", "keeps the attempt", "attempt = t.attempt + 1, started_at", "attempt = t.attempt, started_at"),
    Mutant("claim_ready", "keeps an old run id", "run_id = NULL, last_error = NULL,", "last_error = NULL,"),
    Mutant("claim_ready", "writes no history", "), history AS (\n    INSERT INTO task_states", "), history AS (\n    SELECT 1 WHERE false AND EXISTS (SELECT 1 FROM task_states"),
    Mutant("transition", "ignores the expected state", " AND state = %(from_state)s", ""),
    Mutant("transition", "ignores the attempt", " AND attempt = %(attempt)s", ""),
    Mutant("transition", "never sets finished_at", "THEN clock_timestamp() ELSE finished_at END", "THEN finished_at ELSE finished_at END"),
    Mutant("transition", "keeps the old error", "last_error = %(error)s,", ""),
    Mutant("relaunch", "re-launches a task in any state", " AND t.state = 'STARTED' AND t.attempt = %(attempt)s", " AND t.attempt = %(attempt)s"),
    Mutant("relaunch", "ignores the attempt", " AND t.state = 'STARTED' AND t.attempt = %(attempt)s", " AND t.state = 'STARTED'"),
    Mutant("relaunch", "re-launches a runner that reported its end", "\n  AND NOT EXISTS (SELECT 1 FROM task_service_states ss\n                  WHERE ss.task_id = t.task_id AND ss.service = 'runner'\n                    AND ss.attempt = t.attempt AND ss.state <> 'STARTED')", ""),
    Mutant("relaunch", "keeps the attempt", "SET attempt = t.attempt + 1, run_id = NULL", "SET attempt = t.attempt, run_id = NULL"),
    Mutant("relaunch", "keeps the old run id", "SET attempt = t.attempt + 1, run_id = NULL,", "SET attempt = t.attempt + 1,"),
    Mutant("adopt", "adopts a task of a deleted type", " AND tt.deleted_at IS NULL\n  AND (t.state", "\n  AND (t.state"),
    Mutant("adopt", "adopts a task in any state", "  AND (t.state = 'SCHEDULED'\n       OR (t.state = 'STARTED' AND NOT EXISTS (", "  AND (true\n       OR (t.state = 'STARTED' AND NOT EXISTS ("),
    Mutant("adopt", "cannot adopt a SCHEDULED task", "  AND (t.state = 'SCHEDULED'\n       OR", "  AND (false\n       OR"),
    Mutant("adopt", "adopts a STARTED task whose runner ended", "(t.state = 'STARTED' AND NOT EXISTS (", "(t.state = 'STARTED' AND true OR EXISTS ("),
    Mutant("adopt", "keeps the attempt", "SET state = 'STARTED', attempt = t.attempt + 1, run_id = %(run_id)s", "SET state = 'STARTED', attempt = t.attempt, run_id = %(run_id)s"),
    Mutant("set_run_id", "ignores the attempt", " AND attempt = %(attempt)s", ""),
    Mutant("set_run_id", "sets it on an ended task", " AND state = 'STARTED'", ""),
    Mutant("heartbeat", "ignores the attempt", " AND attempt = %(attempt)s", ""),
    Mutant("heartbeat", "ignores the runner", "run_id IS NULL OR run_id = %(run_id)s::text", "true"),
]  # fmt: skip


def section(text: str, name: str) -> tuple[int, int]:
    """Where the named query's text is in the file."""
    start = text.index(f"-- name: {name}\n")
    end = text.find("-- name: ", start + 1)
    return start, len(text) if end < 0 else end


def apply(text: str, m: Mutant) -> str:
    start, end = section(text, m.query)
    body = text[start:end]
    if body.count(m.old) != 1:
        raise SystemExit(
            f"mutant {m.query}: {m.what}: its text is not in the query once; update it"
        )
    return text[:start] + body.replace(m.old, m.new) + text[end:]


def copy_project(work: Path) -> None:
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    skip = shutil.ignore_patterns("__pycache__", ".otf", "mutants")
    for name in COPIED:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, work / name, ignore=skip)
        else:
            shutil.copy2(src, work / name)


def verdict(work: Path, tests: list[str]) -> str:
    """Run the tests in the copy (its package first on the path): 'killed' when they fail or
    hang (a mutant can make a claim loop never end), else 'SURVIVED'."""
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-m", "not e2e"]
    env = {**os.environ, "PYTHONPATH": str(work)}
    env.pop("OTF_STATE_DIR", None)  # the copy's own .otf
    try:
        proc = subprocess.run(
            [*cmd, *tests], cwd=work, env=env, capture_output=True, check=False, timeout=TIMEOUT
        )
    except subprocess.TimeoutExpired:
        return "killed (timed out)"
    return "killed" if proc.returncode != 0 else "SURVIVED"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", default=None, help="Only the mutants of this query.")
    p.add_argument(
        "--mutant",
        action="append",
        default=[],
        help="Only this mutant ('QUERY: WHAT'; repeatable).",
    )
    args = p.parse_args()
    work = ROOT / ".otf" / "sql-mutants"
    copy_project(work)
    original = (ROOT / QUERIES).read_text()
    chosen = [
        m
        for m in MUTANTS
        if args.only in (None, m.query)
        and (not args.mutant or f"{m.query}: {m.what}" in args.mutant)
    ]
    survivors = []
    try:
        if verdict(work, TESTS) != "SURVIVED":
            raise SystemExit("the tests fail on the unmutated SQL; fix them first")
        for m in chosen:
            (work / QUERIES).write_text(apply(original, m))
            outcome = verdict(work, TESTS)
            print(f"{outcome:18}  {m.query}: {m.what}", flush=True)
            if outcome == "SURVIVED":
                survivors.append(m)
    finally:
        from otf_dagster.local import embedded

        embedded.stop(work / ".otf" / "test-pgdata")
    print(f"{len(chosen) - len(survivors)} killed, {len(survivors)} survived of {len(chosen)}")
    sys.exit(1 if survivors else 0)


if __name__ == "__main__":
    main()
