"""A test client that checks every response against the OpenAPI contract."""

from __future__ import annotations

from typing import Any

import httpx

from syncplayd.identity import Principal
from tests.daemon_process import DaemonProcess, new_user
from tests.openapi_check import assert_response_conforms

PREFIX = "/api/v1/syncplay"
ROOT_PATHS = ("/healthz", "/readyz")

# Every (method, path template) that a test called: lets one test prove the
# whole contract was exercised.
CALLED: set[tuple[str, str]] = set()


class Api:
    """Calls the daemon as one user (or anonymously) and validates each answer."""

    def __init__(
        self, daemon: DaemonProcess, principal: Principal | None = None, *, token: str | None = None
    ):
        self.principal = principal
        self.http = daemon.client(principal, token=token)

    def call(
        self,
        method: str,
        template: str,
        expect: int | None = None,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
        **path: Any,
    ) -> httpx.Response:
        url = template.format(**{k: str(v) for k, v in path.items()})
        if template not in ROOT_PATHS:
            url = PREFIX + url
        response = self.http.request(
            method, url, json=json, params=params, content=content, headers=headers
        )
        if expect is None or expect < 500:
            assert response.status_code < 500, response.text
        body = response.content or None
        assert_response_conforms(
            method, template, response.status_code, body, response.headers.get("content-type")
        )
        CALLED.add((method.lower(), template))
        if expect is not None:
            assert response.status_code == expect, response.text
        return response

    def problem(
        self, method: str, template: str, status: int, problem_code: str, /, **kwargs: Any
    ) -> dict[str, Any]:
        """Call, expect a problem with this status and code, and return its body."""
        response = self.call(method, template, status, **kwargs)
        body: dict[str, Any] = response.json()
        assert response.headers["content-type"].startswith("application/problem+json")
        assert body["code"] == problem_code, body
        assert body["status"] == status
        return body

    def create_room(self, **fields: Any) -> dict[str, Any]:
        body = {"name": "Movie night", "content_type": "movie", "content_id": "tt0133093"} | fields
        room: dict[str, Any] = self.call("POST", "/rooms", 201, json=body).json()
        return room


def api(daemon: DaemonProcess, name: str = "user", *, admin: bool = False) -> Api:
    """A client acting as a new user called ``name``."""
    return Api(daemon, new_user(name, admin=admin))


def uid(caller: Api) -> str:
    """The id of the user ``caller`` acts as."""
    assert caller.principal is not None
    return str(caller.principal.user_id)
