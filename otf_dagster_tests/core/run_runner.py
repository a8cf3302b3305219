"""Run one TaskRunner in its own process (so a test can SIGKILL it), on a shared file clock."""

from __future__ import annotations

import argparse
from pathlib import Path

from otf_dagster.core.runner import TaskRunner
from otf_dagster.core.store import TaskStore
from otf_dagster.handlers import HANDLERS
from otf_dagster_tests.helpers import FileClock


def main() -> None:
    p = argparse.ArgumentParser()
    for name in ("db", "base-url", "task-id", "run-id", "clock"):
        p.add_argument(f"--{name}", required=True)
    p.add_argument("--attempt", type=int, required=True)
    a = p.parse_args()
    with TaskStore(a.db, application_name=f"runner-{a.run_id}") as store:
        outcome = TaskRunner(
            store,
            a.task_id,
            a.attempt,
            a.run_id,
            handlers=HANDLERS,
            feed_base_url=a.base_url,
            clock=FileClock(Path(a.clock)),
        ).run()
    print(f"{outcome.state} polls={outcome.polls} events={outcome.events}")


if __name__ == "__main__":
    main()
