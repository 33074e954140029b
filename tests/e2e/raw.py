"""A bare protocol client for tests that need to misbehave on purpose."""

from __future__ import annotations

import json
import socket
from collections import deque
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import trio
from trio_websocket import (
    ConnectionClosed,
    WebSocketConnection,
    open_websocket_url,
    wrap_client_stream,
)

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
        self._unpacked: deque[dict[str, Any]] = deque()

    async def send(self, message: dict[str, Any] | str | bytes) -> None:
        data = message if isinstance(message, str | bytes) else json.dumps(message)
        await self.ws.send_message(data)

    async def recv(self, limit: float = TIMEOUT) -> dict[str, Any]:
        """The next message; a ``presence_batch`` is given one presence at a time."""
        if self._unpacked:
            return self._unpacked.popleft()
        with trio.fail_after(limit):
            message: dict[str, Any] = json.loads(await self.ws.get_message())
        if message["type"] == "presence_batch":
            self._unpacked.extend(message["events"])
            return self._unpacked.popleft()
        return message

    async def expect(self, kind: str, limit: float = TIMEOUT, **fields: Any) -> dict[str, Any]:
        """The next message of type ``kind`` (matching ``fields``), skipping others."""
        with trio.fail_after(limit):
            while True:
                message = await self.recv(limit)
                if message["type"] == kind and all(message.get(k) == v for k, v in fields.items()):
                    return message

    async def heartbeats(self, interval: float = 0.5) -> None:
        """Send "I am at 0 s, paused" forever: keeps an idle test client alive."""
        assert self.joined is not None
        offset = self.joined["server_time"] - trio.current_time()
        while True:
            await self.send(
                {"type": "heartbeat", "position": 0.0, "version": 0,
                 "server_time": trio.current_time() + offset}
            )  # fmt: skip
            await trio.sleep(interval)

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
async def _tiny_buffer_websocket(
    daemon: DaemonProcess, queue: int
) -> AsyncIterator[WebSocketConnection]:
    """A websocket whose kernel receive buffer is tiny: a reader that stops stalls fast."""
    url = urlsplit(daemon.base_url)
    assert url.hostname is not None and url.port is not None
    stream = await trio.open_tcp_stream(url.hostname, url.port)
    stream.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    async with trio.open_nursery() as nursery:
        ws = await wrap_client_stream(
            nursery, stream, url.hostname, "/api/v1/syncplay/ws", message_queue_size=queue
        )
        try:
            yield ws
        finally:
            await ws.aclose()
            nursery.cancel_scope.cancel()


@asynccontextmanager
async def raw_client(
    daemon: DaemonProcess,
    principal: Principal | None = None,
    room_id: str | None = None,
    *,
    headers: list[tuple[bytes, bytes]] | None = None,
    queue: int = 64,
    tiny_buffer: bool = False,
    **join: Any,
) -> AsyncIterator[Raw]:
    """Connect (and, given a principal and a room, say hello and join)."""
    opened = (
        _tiny_buffer_websocket(daemon, queue)
        if tiny_buffer
        else open_websocket_url(ws_url(daemon), extra_headers=headers, message_queue_size=queue)
    )
    async with opened as ws:
        client = Raw(ws)
        if principal is not None:
            welcome = await client.hello(principal)
            assert welcome["type"] == "welcome", welcome
            if room_id is not None:
                await client.join(room_id, **join)
        yield client


@asynccontextmanager
async def raw_clients_in_room(
    daemon: DaemonProcess, room_id: str, *people: Principal
) -> AsyncIterator[list[Raw]]:
    """Raw clients, joined and heartbeating (at position 0) so that nobody idles out."""
    async with AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(raw_client(daemon, person, room_id))
            for person in people
        ]
        async with trio.open_nursery() as nursery:
            for client in clients:
                nursery.start_soon(_heartbeats, client)
            yield clients
            nursery.cancel_scope.cancel()


async def _heartbeats(client: Raw) -> None:
    """Until its socket is closed (the server may close it: a ban, a kick)."""
    with suppress(ConnectionClosed):
        await client.heartbeats()


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


async def read_until_closed(client: Raw, limit: float = 15.0) -> tuple[list[dict[str, Any]], int]:
    """Every message up to the close, and the close code."""
    seen: list[dict[str, Any]] = []
    with trio.fail_after(limit):
        while True:
            try:
                seen.append(await client.recv(limit))
            except ConnectionClosed as closed:
                return seen, closed.reason.code
