"""The reports API: an outside service, in any language, reports its progress on a task over
HTTP, through the same Task Manager path as ``otf report`` (``services.report``, i.e. the SQL
function ``otf_report``), authenticated by a per-owner bearer token (only its hash is stored).

Starlette on uvicorn: a small ASGI toolkit with no model layer of its own, enough for two routes;
the store is blocking psycopg code, run in Starlette's threadpool so the event loop never waits
on the database.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from otf_dagster.api.openapi import OPENAPI
from otf_dagster.core import services
from otf_dagster.core.store import TaskStore, tokens
from otf_dagster.exceptions import DatabaseUnavailable, InvalidReport, UnknownTask

MAX_BODY_BYTES = 64 * 1024
STATES = ("STARTED", "FINISHED", "FAILED")


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def create_app(task_url: str, *, pool_size: int = 4) -> Starlette:
    store = TaskStore.pooled(task_url, size=pool_size, application_name="otf-api")

    async def owner_of(request: Request) -> str | None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        return await run_in_threadpool(tokens.authenticate, store, token.strip())

    async def post_report(request: Request) -> JSONResponse:
        owner = await owner_of(request)
        if owner is None:
            return _error(401, "missing, unknown or revoked token: send Authorization: Bearer TOKEN "
                               "(make one with `otf services token create OWNER`)")  # fmt: skip
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            return _error(413, f"report body over {MAX_BODY_BYTES} bytes; send a smaller detail")
        try:
            data = json.loads(body)
        except ValueError as exc:
            return _error(400, f"the body is not valid JSON ({exc}); send a JSON object")
        if not isinstance(data, dict):
            return _error(400, "the body must be a JSON object with service, state and detail")
        service, state = data.get("service"), data.get("state")
        if not isinstance(service, str) or not isinstance(state, str):
            return _error(400, 'the body needs "service" and "state" strings, e.g. '
                               '{"service": "photo", "state": "FINISHED"}')  # fmt: skip
        if service.strip().lower() != owner.lower():
            return _error(403, f"this token reports for {owner!r} only, not {service!r}")
        detail = data.get("detail")
        task_id = request.path_params["task_id"]
        try:
            result = await run_in_threadpool(
                services.report, store, task_id, service, state, detail
            )
        except UnknownTask as exc:
            return _error(404, str(exc))
        except InvalidReport as exc:
            return _error(409, str(exc))
        except DatabaseUnavailable as exc:
            return _error(503, str(exc))
        return JSONResponse(_jsonable(result.to_dict()))

    async def get_task(request: Request) -> JSONResponse:
        if await owner_of(request) is None:
            return _error(
                401, "missing, unknown or revoked token: send Authorization: Bearer TOKEN"
            )
        task_id = request.path_params["task_id"]

        def read() -> dict[str, Any]:
            task = store.get_task(task_id)
            return {
                "task_id": task.task_id,
                "task_type": task.task_type,
                "key": task.external_key,
                "state": str(task.state),
                "attempt": task.attempt,
                "scheduled_at": task.scheduled_at,
                "finished_at": task.finished_at,
                "services": store.service_states(task_id),
            }

        try:
            return JSONResponse(_jsonable(await run_in_threadpool(read)))
        except UnknownTask as exc:
            return _error(404, str(exc))
        except DatabaseUnavailable as exc:
            return _error(503, str(exc))

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        yield
        store.close()

    async def openapi(_request: Request) -> JSONResponse:
        return JSONResponse(OPENAPI)

    return Starlette(
        routes=[
            Route("/v1/tasks/{task_id}/reports", post_report, methods=["POST"]),
            Route("/v1/tasks/{task_id}", get_task, methods=["GET"]),
            Route("/openapi.json", openapi, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
