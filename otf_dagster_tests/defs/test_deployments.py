"""Two deployments (two Dagster instances, each its own storage) on one task database: each
reconciles its own tasks only, and takes over the other's once that one's lease expired."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg
import psycopg

from otf_dagster.core import manager
from otf_dagster.definitions import build_definitions
from otf_dagster.defs.deployment import deployment_of
from otf_dagster.defs.resources import TaskStoreResource
from otf_dagster.vocab.tasks import TaskState
from otf_dagster_tests.core.store.test_claim_race import seed_ready_tasks

T = "NBA_GAME_BOXSCORE"


def tick(instance: dg.DagsterInstance, db_url: str, **kw) -> dg.SensorResult:
    resource = TaskStoreResource(database_url=db_url)
    defs = build_definitions(task_store=resource, **kw)
    context = dg.build_sensor_context(
        instance=instance,
        resources={"task_store": resource},
        repository_def=defs.get_repository_def(),
        instance_ref=instance.get_ref(),
    )
    return defs.get_sensor_def("task_manager").evaluate_tick(context)


def age(db_url: str, seconds: int, where: str = "true") -> None:
    with psycopg.connect(db_url) as conn:
        conn.execute(
            f"UPDATE tasks SET heartbeat_at = now() - make_interval(secs => %s) WHERE {where}",
            (seconds,),
        )


def expire_lease(db_url: str, deployment: str) -> None:
    with psycopg.connect(db_url) as conn:
        conn.execute(
            "UPDATE deployments SET lease_expires_at = now() - interval '1 second' "
            "WHERE deployment_id = %s",
            (deployment,),
        )


def test_a_deployment_leaves_the_other_ones_tasks_alone_while_its_lease_holds(
    db_url, store, default_types
):
    seed_ready_tasks(db_url, 40)
    with dg.instance_for_test() as a, dg.instance_for_test() as b:
        dep_a, dep_b = deployment_of(a), deployment_of(b)
        assert dep_a.id != dep_b.id and deployment_of(a).id == dep_a.id  # stable
        claimed_a = tick(a, db_url, claim_limit=20).run_requests
        claimed_b = tick(b, db_url, claim_limit=20).run_requests
        assert len(claimed_a) == len(claimed_b) == 20
        owners = {t.task_id: t.deployment_id for t in store.list_tasks(state="STARTED")}
        assert set(owners.values()) == {dep_a.id, dep_b.id}
        # Long past the grace period, and neither storage holds the other's runs: each
        # deployment re-launches only its own tasks (their runs never appeared there).
        age(db_url, 90)
        again_a = tick(a, db_url, claim_limit=20).run_requests
        assert {r.tags[manager.TAG_TASK_ID] for r in again_a} == {
            t for t, d in owners.items() if d == dep_a.id
        }
        assert all(r.tags[manager.TAG_ATTEMPT] == "2" for r in again_a)
        b_tasks = [t for t, d in owners.items() if d == dep_b.id]
        assert {store.get_task(t).attempt for t in b_tasks} == {1}
        assert "never appeared" not in " ".join(store.get_task(t).last_error or "" for t in b_tasks)


def test_the_other_deployments_tasks_are_taken_over_once_its_lease_expired(
    db_url, store, default_types
):
    seed_ready_tasks(db_url, 10)
    with dg.instance_for_test() as a, dg.instance_for_test() as b:
        dep_b = deployment_of(b)
        assert len(tick(b, db_url).run_requests) == 10  # B claims them all
        age(db_url, 30)  # B's runners went quiet, but not stale yet (stale_after is 120)
        expire_lease(db_url, dep_b.id)
        assert tick(a, db_url).run_requests == []  # quiet is not lost: leave them
        age(db_url, 600)  # now their heartbeats are stale: B is gone, A takes over
        taken = tick(a, db_url).run_requests
        assert len(taken) == 10 and {r.tags[manager.TAG_ATTEMPT] for r in taken} == {"2"}
        dep_a = deployment_of(a)
        tasks = store.list_tasks(state="STARTED")
        assert {t.deployment_id for t in tasks} == {dep_a.id}
        assert all("lease expired" in (t.last_error or "") for t in tasks)
        # B, alive again, renews its lease but no longer owns them: its runners are fenced
        tick(b, db_url)
        assert {t.attempt for t in store.list_tasks(state="STARTED")} == {2}
        assert {t.state for t in store.list_tasks()} == {TaskState.STARTED}


def test_leases_are_renewed_every_tick_and_listed(db_url, store, default_types):
    with dg.instance_for_test() as a:
        tick(a, db_url, lease_seconds=300)
        [row] = store.list_deployments()
        assert row["deployment_id"] == deployment_of(a).id and row["alive"]
        assert (row["lease_expires_at"] - datetime.now(UTC)).total_seconds() > 200
