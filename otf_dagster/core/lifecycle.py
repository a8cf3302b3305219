"""A task's overall state from the states of the services its type requires (pure)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from otf_dagster.core.models import TaskState


def overall_state(
    required: Iterable[str], services: Mapping[str, TaskState | str]
) -> tuple[TaskState, str | None]:
    """(state, reason): any required service FAILED -> FAILED naming it; all FINISHED -> FINISHED;
    otherwise STARTED (still in progress). Services a type does not require never decide."""
    required = list(required)
    failed = [s for s in required if services.get(s) == TaskState.FAILED]
    if failed:
        return TaskState.FAILED, f"required service(s) failed: {', '.join(failed)}"
    if all(services.get(s) == TaskState.FINISHED for s in required):
        return TaskState.FINISHED, None
    return TaskState.STARTED, None
