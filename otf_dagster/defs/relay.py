"""The relay as a Dagster job, kept alive by the Task Manager (``core/delivery/relay.py``).

A deployment needs no extra process to push events: while any endpoint is active, the
``task_manager`` sensor keeps one ``delivery_relay`` run of its deployment alive, launching one
when none is queued or running, and replacing a run whose relay stopped renewing its heartbeat
(a dead worker leaves its run STARTED in Dagster). The run page logs the endpoints it holds and
each endpoint's health; the health is also recorded, every ``report_every_seconds``, as an
observation of the ``delivery_endpoints`` asset (lag in events, last success, last failure,
state per endpoint), where Dagster users look. ``otf relay`` runs the same code without Dagster.
"""

import threading
import time
import uuid
from typing import Any

import dagster as dg

from otf_dagster import settings as S
from otf_dagster.core.delivery.relay import Relay, RelaySettings
from otf_dagster.core.store import TaskStore
from otf_dagster.core.store import delivery as dstore
from otf_dagster.defs.deployment import deployment_of
from otf_dagster.defs.resources import TaskStoreResource
from otf_dagster.exceptions import OtfError

RELAY_JOB = "delivery_relay"
HEALTH_ASSET = dg.AssetKey("delivery_endpoints")
TAG_ROLE = "otf/role"
STALE_AFTER_SECONDS = 120.0  # a relay run silent this long is replaced

delivery_endpoints_asset = dg.AssetSpec(
    HEALTH_ASSET,
    description=(
        "The endpoints services get events on (webhooks, NATS JetStream): observed by the "
        "delivery_relay run with each endpoint's state, lag in events, last success and failure."
    ),
    group_name="delivery",
)


class RelayConfig(dg.Config):
    report_every_seconds: float = 60.0
    max_seconds: float = 0.0  # 0: until the run is terminated (tests give a bound)


def health_table(rows: list[dict[str, Any]]) -> str:
    head = "| endpoint | owner | sink | target | state | lag | dead | last success | last failure |"
    lines = [head, "|---|---|---|---|---|---|---|---|---|"]
    for h in rows:
        lines.append(
            "| {endpoint_id} | {owner} | {sink} | {target} | {state} | {lag} | {dead} | {ok} | {bad} |".format(
                ok=h["last_success_at"] or "", bad=h["last_failure_at"] or "", **h
            )
        )
    return "\n".join(lines)


def health_observation(rows: list[dict[str, Any]]) -> dg.AssetObservation:
    metadata: dict[str, Any] = {
        "endpoints": dg.MetadataValue.md(health_table(rows)),
        "lag_events": sum(h["lag"] for h in rows),
        "dead_events": sum(h["dead"] for h in rows),
        "failing": sum(1 for h in rows if h["state"] in ("failing", "warning")),
        "disabled": sum(1 for h in rows if h["state"] == "disabled"),
    }
    for h in rows:
        metadata[f"endpoint_{h['endpoint_id']}_lag"] = h["lag"]
    return dg.AssetObservation(asset_key=HEALTH_ASSET, metadata=metadata)


@dg.op(description="Deliver events to every endpoint this relay leases, until terminated.")
def run_relay(
    context: dg.OpExecutionContext, config: RelayConfig, task_store: TaskStoreResource
) -> dg.Output:
    deployment = deployment_of(context.instance)
    settings = RelaySettings.from_env(nats_url=S.NATS_URL.read())
    relay = Relay(
        task_store.url(),
        settings=settings,
        holder=f"dagster:{context.run_id}:{uuid.uuid4().hex[:6]}",
        deployment_id=deployment.id,
        run_id=context.run_id,
    )
    stop = threading.Event()
    started = time.monotonic()
    last_report = [float("-inf")]
    held: list[int] = []

    def on_tick() -> None:
        now = time.monotonic()
        leased = relay.leased()
        if leased != held:
            context.log.info("relay holds endpoint(s): %s", ", ".join(map(str, leased)) or "none")
            held[:] = leased
        if now - last_report[0] >= config.report_every_seconds:
            last_report[0] = now
            try:
                rows = relay.health()
            except OtfError as exc:
                context.log.warning("relay: cannot read endpoint health: %s", exc)
            else:
                for h in rows:
                    log = (
                        context.log.warning
                        if h["state"] in ("warning", "disabled")
                        else context.log.info
                    )
                    log(
                        "endpoint %s (%s, %s): %s, lag %d event(s), %d dead%s",
                        h["endpoint_id"], h["owner"], h["sink"], h["state"], h["lag"], h["dead"],
                        f"; last error: {h['last_error']}" if h["last_error"] else "",
                    )  # fmt: skip
                context.log_event(health_observation(rows))
        if config.max_seconds and now - started >= config.max_seconds:
            stop.set()

    relay.run(stop, on_tick=on_tick)
    return dg.Output(
        {"delivered": relay.sent},
        metadata={"delivered": relay.sent, "failed_attempts": relay.failed},
    )


@dg.job(
    name=RELAY_JOB,
    executor_def=dg.in_process_executor,
    tags={TAG_ROLE: "relay"},
    description="Push task events to services' endpoints (kept alive by the Task Manager).",
)
def relay_job() -> None:
    run_relay()


ALIVE = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def relay_requests(
    instance: dg.DagsterInstance, store: TaskStore, *, now: float | None = None
) -> tuple[list[dg.RunRequest], list[tuple[str, str]]]:
    """What keeps one relay run of this deployment alive: a RunRequest when no relay run is
    queued or running (and an endpoint is active), and the runs to cancel whose relay went
    silent (they are replaced on the same tick)."""
    if dstore.active_endpoints(store) == 0:
        return [], []
    now = time.time() if now is None else now
    runs = instance.get_runs(filters=dg.RunsFilter(job_name=RELAY_JOB, statuses=ALIVE))
    stale: list[tuple[str, str]] = []
    alive = 0
    for run in runs:
        record = instance.get_run_record_by_id(run.run_id)
        begun = record.start_time if record and record.start_time else None
        if run.status != dg.DagsterRunStatus.STARTED or begun is None:
            alive += 1  # queued or starting: give it time
            continue
        age = dstore.relay_age(store, run.run_id)
        silent = (now - begun) if age is None else age
        if silent > STALE_AFTER_SECONDS:
            stale.append((run.run_id, f"its relay has not renewed for {silent:.0f} s"))
        else:
            alive += 1
    if alive:
        return [], stale
    return [
        dg.RunRequest(
            run_key=f"relay:{uuid.uuid4().hex}",  # run keys are forever: a new one each launch
            job_name=RELAY_JOB,
            tags={TAG_ROLE: "relay"},
        )
    ], stale
