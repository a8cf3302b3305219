"""A task's partition page is the same whichever mode hosted it: the runner job's end
materialization and a pool's carry the same facts (the pool adds only its id)."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg

from otf_dagster.core.manager import launch_for
from otf_dagster.core.runner import TaskRunner
from otf_dagster.defs.pools import _Reporter
from otf_dagster.handlers import HANDLERS
from otf_dagster.simulator.server import Simulator
from otf_dagster_tests.defs.test_runner_job import T, run_job
from otf_dagster_tests.helpers import StepClock, apply_test_types


def test_run_mode_and_pool_mode_materialize_the_same_facts(db_url, store):
    apply_test_types(store, poll=1.0)
    with Simulator(speed=60, games=2, first_start=0, spacing=10, clock=StepClock(15.0)) as sim:
        for game in sim.games:
            store.schedule_task(T, game.nba_id, datetime.now(UTC))
        run_task, pool_task = store.claim_ready()

        launch = launch_for(
            run_task.task.task_id, run_task.task_type, run_task.task.attempt, "claimed"
        )
        result, _, _ = run_job(db_url, sim, run_task.task.task_id, launch.tags)
        assert result.success
        [run_mat] = result.asset_materializations_for_node("task_runs")

        outcome = TaskRunner(
            store, pool_task.task.task_id, pool_task.task.attempt, "pool-run", handlers=HANDLERS,
            feed_base_url=sim.base_url,
        ).run()  # fmt: skip

    @dg.op
    def report_end(context) -> None:  # the pool op's reporter, as is
        reporter = _Reporter(context, store, 0.0, "pool-1")
        reporter.on_end(pool_task.task.task_id, outcome)
        reporter.drain()

    with dg.instance_for_test() as instance:
        pool_result = (
            dg.GraphDefinition(name="pool", node_defs=[report_end])
            .to_job()
            .execute_in_process(instance=instance)
        )
    [pool_mat] = pool_result.asset_materializations_for_node("report_end")
    assert pool_mat.partition == pool_task.task.task_id
    assert pool_mat.asset_key == dg.AssetKey("task_runs")
    assert set(pool_mat.metadata) == set(run_mat.metadata) | {"pool"}
    for name in ("timeline", "score_timeline", "score_chart", "box_score"):
        assert pool_mat.metadata[name].value, name
