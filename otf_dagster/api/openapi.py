"""The API's OpenAPI 3.1 document (served at /openapi.json; a test holds it to the routes)."""

from __future__ import annotations

_ERROR = {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]}
_TASK_ID = {"name": "task_id", "in": "path", "required": True, "schema": {"type": "string"}}


def _errors(*codes: int) -> dict:
    text = {400: "malformed body", 401: "missing, unknown or revoked token",
            403: "the token's owner is not the reporting service", 404: "no such task",
            409: "the Task Manager refused the report", 413: "body too large",
            503: "task database unavailable"}  # fmt: skip
    return {
        str(c): {"description": text[c], "content": {"application/json": {"schema": _ERROR}}}
        for c in codes
    }


OPENAPI = {
    "openapi": "3.1.0",
    "info": {"title": "otf-dagster reports API", "version": "1"},
    "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    "security": [{"bearer": []}],
    "paths": {
        "/v1/tasks/{task_id}/reports": {
            "post": {
                "summary": "A service reports its progress on a task (as `otf report` does)",
                "parameters": [_TASK_ID],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["service", "state"],
                                "properties": {
                                    "service": {
                                        "type": "string",
                                        "description": "the token's owner",
                                    },
                                    "state": {"enum": ["STARTED", "FINISHED", "FAILED"]},
                                    "detail": {"type": "object"},
                                },
                            }
                        }
                    },
                },  # fmt: skip
                "responses": {
                    "200": {
                        "description": "applied (or an idempotent repeat)",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {
                                        "task_id": {"type": "string"},
                                        "service": {"type": "string"},
                                        "state": {"type": "string"},
                                        "overall": {"type": "string"},
                                        "outcome": {"type": "string"},
                                        "reason": {"type": ["string", "null"]},
                                        "previous": {"type": ["string", "null"]},
                                    },
                                }
                            }
                        },
                    },  # fmt: skip
                    **_errors(400, 401, 403, 404, 409, 413, 503),
                },
            }
        },
        "/v1/tasks/{task_id}": {
            "get": {
                "summary": "The task's state, attempt and each service's state",
                "parameters": [_TASK_ID],
                "responses": {
                    "200": {
                        "description": "the task",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {
                                        "task_id": {"type": "string"},
                                        "task_type": {"type": "string"},
                                        "key": {"type": "string"},
                                        "state": {"type": "string"},
                                        "attempt": {"type": "integer"},
                                        "services": {"type": "array", "items": {"type": "object"}},
                                    },
                                }
                            }
                        },
                    },  # fmt: skip
                    **_errors(401, 404, 503),
                },
            }
        },
    },
}
