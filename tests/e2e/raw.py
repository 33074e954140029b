"""A bare protocol client for tests that need to misbehave on purpose."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import httpx
import trio
from trio_websocket import WebSocketConnection, open_websocket_url

from syncplayd.identity import Principal, encode_token
from tests.daemon_process import SECRET, DaemonProcess

TIMEOUT = 10.0


def token(principal: Principal) -> str:
    return encode_token(principal, SECRET, ttl=timedelta(hours=1))


def ws_url(daemon: DaemonProcess) -> str:
    return daemon.base_url.replace("http://", "ws://") + "/api/v1/syncplay/ws"


class Raw:
    """Send dicts or raw frames; receive parsed messages, with deadlines."""

    def __init__(self, ws: WebSocketConnection) -> None:
        self.ws = ws
        self.session_id: str | None = None
        self.joined: dict[str, Any] | None = None

    async def send(self, message: dict[str, Any] | str | bytes) -> None:
        data = message if isinstance(message, str | bytes) else json.dumps(message)
        await self.ws.send_message(data)

    async def recv(self, timeout: float = TIMEOUT) -> dict[str, Any]:
        with trio.fail_after(timeout):
            message: dict[str, Any] = json.loads(await self.ws.get_message())
            return message

    async def expect(self, kind: str, timeout: float = TIMEOUT, **fields: Any) -> dict[str, Any]:
        """The next message of type ``kind`` (matching ``fields``), skipping others."""
        with trio.fail_after(timeout):
            while True:
                message = await self.recv(timeout)
                if message["type"] == kind and all(message.get(k) == v for k, v in fields.items()):
                    return message

    async def hello(self, principal: Principal | None, **extra: Any) -> dict[str, Any]:
        body: dict[str, Any] = {"type": "hello", "protocol": 1} | extra
        if principal is not None:
            body["token"] = token(principal)
        await self.send(body)
        return await self.recv()

    async def join(self, room_id: str, **extra: Any) -> dict[str, Any]:
        await self.send({"type": "join", "room_id": room_id} | extra)
        joined = await self.expect("joined")
        self.session_id = joined["session_id"]
        self.joined = joined
        return joined


@asynccontextmanager
async def raw_client(
    daemon: DaemonProcess,
    principal: Principal | None = None,
    room_id: str | None = None,
    *,
    headers: list[tuple[bytes, bytes]] | None = None,
    queue: int = 64,
    **join: Any,
) -> AsyncIterator[Raw]:
    """Connect (and, given a principal and a room, say hello and join)."""
    async with open_websocket_url(
        ws_url(daemon), extra_headers=headers, message_queue_size=queue
    ) as ws:
        client = Raw(ws)
        if principal is not None:
            welcome = await client.hello(principal)
            assert welcome["type"] == "welcome", welcome
            if room_id is not None:
                await client.join(room_id, **join)
        yield client


def create_room(daemon: DaemonProcess, owner: Principal, **fields: Any) -> dict[str, Any]:
    body = {"name": "e2e", "content_type": "movie", "content_id": "1", "is_public": True} | fields
    with httpx.Client(
        base_url=daemon.base_url, headers={"Authorization": f"Bearer {token(owner)}"}
    ) as http:
        response = http.post("/api/v1/syncplay/rooms", json=body)
        assert response.status_code == 201, response.text
        room: dict[str, Any] = response.json()
        return room


def rest(daemon: DaemonProcess, principal: Principal) -> httpx.Client:
    return daemon.client(principal)


async def new_room(daemon: DaemonProcess, owner: Principal, **fields: Any) -> str:
    """Create a room over REST (off the event loop) and return its id."""
    room = await trio.to_thread.run_sync(lambda: create_room(daemon, owner, **fields))
    room_id: str = room["id"]
    return room_id
