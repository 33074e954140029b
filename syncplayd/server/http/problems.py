"""RFC 9457 problem details: the one error shape of the HTTP API."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import msgspec
from quart import Response

from syncplayd.service.errors import FieldError, ServiceError

PROBLEM_TYPE_PREFIX = "urn:syncplayd:problem:"
PROBLEM_CONTENT_TYPE = "application/problem+json"


def problem(
    status: int,
    code: str,
    detail: str,
    *,
    errors: list[FieldError] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """Build a problem+json response; ``code`` is the stable machine-readable reason."""
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_PREFIX + code,
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "code": code,
    }
    if errors:
        body["errors"] = [{"field": e.field, "message": e.message} for e in errors]
    return Response(
        msgspec.json.encode(body),
        status=status,
        content_type=PROBLEM_CONTENT_TYPE,
        headers=headers,
    )


def from_service_error(error: ServiceError) -> Response:
    headers = {"Retry-After": str(error.retry_after)} if error.retry_after is not None else None
    return problem(error.status, error.code, error.detail, errors=error.errors, headers=headers)


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        msgspec.json.encode(body), status=status, content_type="application/json", headers=headers
    )
