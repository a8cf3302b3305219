"""Services talk to the Task Manager: progress reports, and subscriptions to task types.

A report is applied by the SQL function ``otf_report`` (sql/0004_services.sql), the one place
where reports are validated and a task's overall state is derived from its required services;
this module only calls it and turns its refusals into :class:`UnknownTask` /
:class:`InvalidReport`. The same function serves ``psql`` callers holding only the
``otf_reporter`` role.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

from otf_dagster.core.store import TaskStore
from otf_dagster.core.store import services as statements
from otf_dagster.exceptions import InvalidReport, StoreError
from otf_dagster.vocab.tasks import TaskState

REPORTER_ROLE = "otf_reporter"
_OWNER_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,100}$")


@dataclass(frozen=True)
class ReportResult:
    """What the Task Manager made of a report: the task's overall state after it, whether the
    report was applied or an idempotent repeat, a FAILED task's reason, the service's previous
    state."""

    task_id: str
    service: str
    state: TaskState
    overall: TaskState
    outcome: str
    reason: str | None = None
    previous: TaskState | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@contextlib.contextmanager
def using_store(store_or_url: TaskStore | str) -> Iterator[TaskStore]:
    """The given store, or a short-lived one on the given URL."""
    if isinstance(store_or_url, TaskStore):
        yield store_or_url
        return
    with TaskStore(store_or_url, application_name="otf-services") as store:
        yield store


def report(
    store_or_url: TaskStore | str,
    task_id: str,
    service: str,
    state: TaskState | str,
    detail: dict[str, Any] | None = None,
) -> ReportResult:
    """A service reports its progress on a task; the Task Manager (``otf_report``) validates it,
    records it and re-derives the task's overall state, all in one transaction."""
    if detail is not None and not isinstance(detail, dict):
        raise InvalidReport(
            f"report refused: detail must be a JSON object (a dict), not {type(detail).__name__}"
        )

    with using_store(store_or_url) as store:
        row = store.run(
            f"report {service!r} on task {task_id!r}",
            lambda c: statements.report(c, task_id, service, str(state), detail),
        )
    return ReportResult(
        task_id=task_id,
        service=service.strip().lower(),
        state=TaskState(str(state).strip().upper()),
        overall=TaskState(row["overall"]),
        outcome=row["outcome"],
        reason=row["reason"],
        previous=TaskState(row["previous"]) if row["previous"] else None,
    )


# --- subscriptions -------------------------------------------------------------------------------


def _check_owner(owner: str) -> None:
    if not isinstance(owner, str) or not _OWNER_RE.fullmatch(owner):
        raise StoreError(
            f"bad subscriber name {owner!r}: use 1 to 100 characters from letters, digits, _ . : -"
        )


def subscribe(store_or_url: TaskStore | str, owner: str, task_type: str) -> str:
    """Subscribe ``owner`` (a consumer) to a live task type: 'created', 'revived' (it had been
    removed) or 'unchanged'. Its consumer then receives that type's events from its cursor on."""
    _check_owner(owner)
    with using_store(store_or_url) as store:
        return store.run(
            f"subscribe {owner!r} to {task_type!r}",
            lambda c: statements.subscribe(c, owner, task_type),
        )


def unsubscribe(store_or_url: TaskStore | str, owner: str, task_type: str) -> bool:
    """Soft-delete a subscription (kept for history); False if there was no live one."""
    with using_store(store_or_url) as store:
        return store.run(
            f"unsubscribe {owner!r} from {task_type!r}",
            lambda c: statements.unsubscribe(c, owner, task_type),
        )


def list_subscriptions(
    store_or_url: TaskStore | str, owner: str | None = None, *, include_deleted: bool = False
) -> list[dict[str, Any]]:
    with using_store(store_or_url) as store:
        return store.run(
            "list subscriptions", lambda c: statements.subscriptions(c, owner, include_deleted)
        )
