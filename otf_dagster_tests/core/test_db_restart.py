"""A database server that restarts mid-game loses nothing: the runner waits for it."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

from otf_dagster.core.runner import TaskRunner
from otf_dagster.core.store import TaskStore, migrations
from otf_dagster.handlers import HANDLERS
from otf_dagster.local import embedded
from otf_dagster.simulator.server import Simulator
from otf_dagster.vocab.tasks import TaskState
from otf_dagster_tests.helpers import VirtualClock, apply_test_types


def test_a_runner_rides_out_a_database_restart(tmp_path):
    pgdata = tmp_path / "pgdata"
    server = embedded.start(pgdata)  # a server of its own: this test stops it
    try:
        url = embedded.create_database(server.admin_url, "otf_restart")
        migrations.migrate(url)
        clock = VirtualClock()
        restarts: list[float] = []
        with (
            Simulator(speed=60, games=1, first_start=10, clock=clock.time) as sim,
            TaskStore(url) as store,
        ):
            apply_test_types(store)
            store.schedule_task("NBA_GAME_BOXSCORE", sim.games[0].nba_id, clock.now())
            [claimed] = store.claim_ready(now=datetime.now(UTC))

            def on_poll(report):
                if report.poll == 3:  # down now, back in 1.5 s, while the runner goes on
                    embedded.stop(pgdata)
                    t0 = time.monotonic()

                    def back() -> None:
                        time.sleep(1.5)
                        embedded.start(pgdata)
                        restarts.append(time.monotonic() - t0)

                    threading.Thread(target=back, daemon=True).start()

            with TaskStore(url, application_name="runner") as runner_store:
                outcome = TaskRunner(
                    runner_store,
                    claimed.task.task_id,
                    1,
                    "run-1",
                    handlers=HANDLERS,
                    feed_base_url=sim.base_url,
                    clock=clock,
                    on_poll=on_poll,
                    db_retry_seconds=0.2,
                ).run()
            assert restarts and restarts[0] >= 1.5  # the server really was down
            assert outcome.state == TaskState.FINISHED
            with TaskStore(url) as after:  # the test's own connection died with the server
                events = after.task_events(claimed.task.task_id)
            assert [e["task_seq"] for e in events] == list(range(1, len(events) + 1))
            assert events[-1]["kind"] == "game_final"
            assert (events[-1]["payload"]["home_score"], events[-1]["payload"]["away_score"]) == (
                124,
                97,
            )
    finally:
        embedded.stop(pgdata)
