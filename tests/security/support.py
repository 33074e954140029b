"""Clients for the security tests: any token, any source address, every answer checked.

Per-address budgets need clients at distinct addresses. On Linux all of
127.0.0.0/8 is loopback, so each test binds its connections to fresh addresses
of 127.77.0.0/16 and its counters never meet another test's (nor 127.0.0.1,
which the other test modules use).
"""

from __future__ import annotations

import base64
import itertools
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

import httpx
import trio
from trio_websocket import ConnectionClosed, wrap_client_stream

from syncplayd.identity import Principal, encode_token
from syncplayd.service import RoomService
from tests.daemon_process import SECRET, DaemonProcess
from tests.e2e.raw import Raw
from tests.openapi_check import assert_response_conforms

PREFIX = "/api/v1/syncplay"
ADMIN_PREFIX = "/api/v1/admin"
WS_PATH = PREFIX + "/ws"
TIMEOUT = 10.0

_hosts = itertools.count(2)


def fresh_address() -> str:
    """A loopback address no other test has used in this process."""
    n = next(_hosts)
    return f"127.77.{n // 250}.{n % 250 + 2}"


def token_for(principal: Principal, *, secret: str = SECRET, age: timedelta | None = None) -> str:
    """A token for ``principal``; ``age`` moves its issue time into the past."""
    now = datetime.now(UTC) - (age or timedelta())
    return encode_token(principal, secret, ttl=timedelta(hours=1), now=now)


def _b64(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def alg_none_token(principal: Principal) -> str:
    """An unsigned token (``alg: none``), crafted by hand as an attacker would."""
    now = int(datetime.now(UTC).timestamp())
    claims: dict[str, Any] = {"sub": str(principal.user_id), "name": principal.name}
    claims |= {"role": "admin", "iat": now, "exp": now + 3600}
    return f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}."


class Http:
    """One caller, from one source address; every answer is checked against the contract."""

    def __init__(
        self,
        daemon: DaemonProcess,
        principal: Principal | None = None,
        *,
        token: str | None = None,
        address: str | None = None,
    ) -> None:
        self.principal = principal
        headers = {}
        if principal is not None and token is None:
            token = token_for(principal)
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        self.http = httpx.Client(
            base_url=daemon.base_url,
            headers=headers,
            timeout=TIMEOUT,
            transport=httpx.HTTPTransport(local_address=address or fresh_address()),
        )
        daemon.clients.append(self.http)  # closed with the daemon

    def call(
        self,
        method: str,
        template: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
        checked: bool = True,
        **path: Any,
    ) -> httpx.Response:
        """Call ``template`` (a spec path, or an admin path) and check the answer's shape."""
        url = template.format(**{k: str(v) for k, v in path.items()})
        admin = template.startswith(ADMIN_PREFIX)
        if not admin and template not in ("/healthz", "/readyz"):
            url = PREFIX + url
        response = self.http.request(
            method, url, json=json, params=params, content=content, headers=headers
        )
        assert response.status_code < 500, response.text
        if checked and not admin:
            assert_response_conforms(
                method,
                template,
                response.status_code,
                response.content or None,
                response.headers.get("content-type"),
                headers=response.headers,
            )
        return response

    def expect(
        self,
        method: str,
        template: str,
        status: int,
        problem: str | None = None,
        /,
        **kwargs: Any,
    ) -> httpx.Response:
        """Call, and require this status (and problem code)."""
        response = self.call(method, template, **kwargs)
        assert response.status_code == status, response.text
        if problem is not None:
            assert response.json()["code"] == problem, response.text
        return response

    def room(self, **fields: Any) -> dict[str, Any]:
        body = {"name": "Security", "content_type": "movie", "content_id": "tt1"} | fields
        room: dict[str, Any] = self.expect("POST", "/rooms", 201, json=body).json()
        return room

    def invite(self, room_id: str, **fields: Any) -> str:
        response = self.expect(
            "POST", "/rooms/{room_id}/invitations", 201, json=fields, room_id=room_id
        )
        code: str = response.json()["code"]
        return code


@asynccontextmanager
async def ws_from(
    daemon: DaemonProcess,
    address: str | None = None,
    *,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> AsyncIterator[Raw]:
    """A bare websocket from ``address`` (fresh if not given)."""
    url = urlsplit(daemon.base_url)
    assert url.hostname is not None and url.port is not None
    stream = await trio.open_tcp_stream(
        url.hostname, url.port, local_address=address or fresh_address()
    )
    try:
        async with trio.open_nursery() as nursery:
            ws = await wrap_client_stream(
                nursery,
                stream,
                f"{url.hostname}:{url.port}",
                WS_PATH,
                extra_headers=headers,
                message_queue_size=64,
            )
            try:
                yield Raw(ws)
            finally:
                await ws.aclose()
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        # A refused upgrade surfaces from the reader task, a failed assertion from the
        # body: either way one plain exception reads better than a group around it.
        if len(group.exceptions) == 1 and isinstance(group.exceptions[0], Exception):
            raise group.exceptions[0] from None
        raise
    finally:
        await stream.aclose()  # a refused upgrade leaves it open


async def hello(client: Raw, token: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"type": "hello", "protocol": 1}
    if token is not None:
        body["token"] = token
    await client.send(body)
    return await client.recv()


async def until_closed(client: Raw, limit: float = TIMEOUT) -> tuple[list[dict[str, Any]], int]:
    """Every message up to the close, and the close code."""
    seen: list[dict[str, Any]] = []
    with trio.fail_after(limit):
        while True:
            try:
                seen.append(await client.recv(limit))
            except ConnectionClosed as closed:
                return seen, closed.reason.code if closed.reason is not None else -1


async def in_thread(fn: Any, *args: Any) -> Any:
    """Run a blocking HTTP helper off the event loop."""
    return await trio.to_thread.run_sync(fn, *args)


async def service_room(
    service: RoomService, owner: Principal, *, password: str | None = None, public: bool = True
) -> UUID:
    """Create a room through the service itself (no daemon); return its id."""
    room = await service.create_room(
        owner,
        name="Security",
        content_type="movie",
        content_id="1",
        is_public=public,
        password=password,
        max_participants=None,
    )
    return room.id
