"""The Python client names its room in the URL and follows ``moved`` (close code 4008).

A deployment of several daemons routes by the URL's ``?room=``; a node that does not
run the room closes with ``moved`` and a ``retry_after``, and the client comes back
through the same URL after it, resuming, as after ``server-restarting`` (1012).

The pure parts are checked alone; the reconnects against a scripted node: a
trio-websocket server on 127.0.0.1 that answers each connection as its script says,
and notes what the client sent and when. Times there are the real clock's: only lower
bounds are asserted (a wait is never shorter than the hint), never how fast a loaded
machine is.
"""

from __future__ import annotations

import contextlib
import json
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import msgspec
import pytest
import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, WebSocketRequest, serve_websocket

from syncplayd.client import (
    MAX_RETRY_AFTER,
    TRANSIENT_REFUSALS,
    ClientOptions,
    SyncClient,
    SyncRefused,
    open_sync_client,
    retry_delay,
)
from syncplayd.client._client import room_url
from syncplayd.core.protocol import Closing, Joined, Welcome, decode_server, encode
from tests.client.test_player import joined_snapshot

ROOM = "0b7e9c4e-5d1a-4f3e-8a2b-1c9d8e7f6a50"
LIMIT = 10.0
#: Reconnect backoff this short, so that a wait as long as a hint can only be the hint.
QUICK = ClientOptions(
    fast_ping_interval=0.05,
    reconnect_initial_delay=0.01,
    reconnect_max_delay=0.02,
    reconnect_attempts=3,
    request_timeout=LIMIT,
)


# -- the URL ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("url", "room_id", "expected"),
    [
        ("ws://h/api/v1/syncplay/ws", ROOM, f"ws://h/api/v1/syncplay/ws?room={ROOM}"),
        ("wss://h:8/ws?v=1&x", ROOM, f"wss://h:8/ws?v=1&x&room={ROOM}"),
        # One spelling: the proxy hashes the text, and the server refuses any other.
        ("ws://h/ws", ROOM.upper(), f"ws://h/ws?room={ROOM}"),
        ("ws://h/ws", ROOM.replace("-", ""), f"ws://h/ws?room={ROOM}"),
        # A room already named is replaced, whatever the case of its name.
        ("ws://h/ws?Room=other&v=%20", ROOM, f"ws://h/ws?v=%20&room={ROOM}"),
        # No UUID: the join's refusal will say why; the URL is left alone.
        ("ws://h/ws?v=1", "not-a-room", "ws://h/ws?v=1"),
    ],
)
def test_the_url_names_the_room(url: str, room_id: str, expected: str) -> None:
    assert room_url(url, room_id) == expected


def test_the_client_connects_to_the_url_with_its_room() -> None:
    client = SyncClient("ws://h/api/v1/syncplay/ws", "jwt", room_id=ROOM)
    assert client.url == f"ws://h/api/v1/syncplay/ws?room={ROOM}"


# -- the delay -------------------------------------------------------------------------------
@pytest.mark.parametrize("hint", [0.0, 0.05, 1.5, 30.0])
def test_a_hinted_delay_is_the_hint_plus_a_little_jitter(hint: float) -> None:
    options = ClientOptions()
    rng = random.Random(7)
    delays = [retry_delay(hint, options, rng) for _ in range(200)]
    jitter = max(options.reconnect_initial_delay, hint / 10)
    assert all(hint <= d <= hint + jitter for d in delays)
    # Spread out, not one instant for a whole room.
    assert max(delays) - min(delays) > jitter / 2


@pytest.mark.parametrize("hint", [-5.0, 3600.0])
def test_a_hint_out_of_reason_is_bounded(hint: float) -> None:
    delay = retry_delay(hint, ClientOptions(), random.Random(1))
    assert 0.0 <= delay <= MAX_RETRY_AFTER * 1.1


def test_the_hint_of_the_last_closing_is_waited_once_then_the_backoff() -> None:
    client = SyncClient("ws://h/ws", "jwt", room_id=ROOM, options=QUICK)
    client._dispatch(Closing("moved", "elsewhere", retry_after=2.0))
    assert 2.0 <= client._reconnect_delay(0) <= 2.0 + 0.2
    assert client._reconnect_delay(0) <= QUICK.reconnect_initial_delay  # used up
    # A closing without a hint forgets an older one.
    client._dispatch(Closing("moved", "elsewhere", retry_after=2.0))
    client._dispatch(Closing("too-slow", "read faster"))
    assert client._reconnect_delay(0) <= QUICK.reconnect_initial_delay


def test_moved_is_not_now_not_here_rather_than_no() -> None:
    assert "moved" in TRANSIENT_REFUSALS


def test_a_closing_of_an_older_server_still_decodes_and_none_is_not_sent() -> None:
    old = decode_server('{"type": "closing", "reason": "kicked", "message": "bye"}')
    assert old == Closing("kicked", "bye", retry_after=None)
    # Single-node closings are the frames they were: no ``retry_after`` key at all.
    assert json.loads(encode(Closing("kicked", "bye"))) == {
        "type": "closing",
        "reason": "kicked",
        "message": "bye",
    }
    moved = json.loads(encode(Closing("moved", "elsewhere", retry_after=1.5)))
    assert moved["retry_after"] == 1.5
    assert decode_server(json.dumps(moved)) == Closing("moved", "elsewhere", 1.5)


# -- against a scripted node ------------------------------------------------------------------
@dataclass
class Seen:
    """One connection, as the node saw it."""

    path: str
    opened_at: float
    join: dict[str, Any] | None = None
    closed_at: float | None = None


Script = Callable[[WebSocketConnection, Seen], Awaitable[None]]


@dataclass
class Node:
    """Answers the n-th connection with ``scripts[n]`` (the last one for the rest)."""

    scripts: list[Script]
    seen: list[Seen] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: WebSocketRequest) -> None:
        ws = await request.accept()
        seen = Seen(request.path, trio.current_time())
        self.seen.append(seen)
        script = self.scripts[min(len(self.seen), len(self.scripts)) - 1]
        # The client going away ends a script: the test is over, or the client moves on.
        with contextlib.suppress(ConnectionClosed):
            await script(ws, seen)


@asynccontextmanager
async def running(*scripts: Script) -> AsyncIterator[Node]:
    node = Node(list(scripts))
    async with trio.open_nursery() as nursery:
        server = await nursery.start(serve_websocket, node.handle, "127.0.0.1", 0, None)
        node.url = f"ws://127.0.0.1:{server.port}/api/v1/syncplay/ws"
        yield node
        nursery.cancel_scope.cancel()


async def _next(ws: WebSocketConnection) -> dict[str, Any]:
    """The client's next message but pings and heartbeats (nobody answers them here)."""
    while True:
        message: dict[str, Any] = json.loads(await ws.get_message())
        if message["type"] not in ("ping", "heartbeat"):
            return message


async def _handshake(ws: WebSocketConnection, seen: Seen) -> None:
    assert (await _next(ws))["type"] == "hello"
    welcome = Welcome(protocol=1, server_time=1000.0, user_id="u1", user_name="Ada", is_admin=False)
    await ws.send_message(encode(welcome))
    seen.join = await _next(ws)
    assert seen.join["type"] == "join"


async def _close(ws: WebSocketConnection, seen: Seen, closing: Closing, code: int) -> None:
    await ws.send_message(encode(closing))
    seen.closed_at = trio.current_time()
    await ws.aclose(code, closing.reason)


def joins(session_id: str = "s1") -> Script:
    """Join, then stay until the client goes."""

    async def script(ws: WebSocketConnection, seen: Seen) -> None:
        await _handshake(ws, seen)
        await ws.send_message(
            encode(msgspec.structs.replace(joined_snapshot(), session_id=session_id))
        )
        while True:
            await ws.get_message()

    return script


def joins_then(closing: Closing, code: int) -> Script:
    """Join, then close the room's socket with ``closing``."""

    async def script(ws: WebSocketConnection, seen: Seen) -> None:
        await _handshake(ws, seen)
        await ws.send_message(encode(joined_snapshot()))
        await _close(ws, seen, closing, code)

    return script


def refuses(closing: Closing, code: int) -> Script:
    """Close at ``join`` (a node that does not run the room)."""

    async def script(ws: WebSocketConnection, seen: Seen) -> None:
        await _handshake(ws, seen)
        await _close(ws, seen, closing, code)

    return script


def gap(node: Node, n: int) -> float:
    """Seconds from the close of connection ``n`` to the opening of the next one."""
    closed = node.seen[n].closed_at
    assert closed is not None
    return node.seen[n + 1].opened_at - closed


@pytest.mark.parametrize(("reason", "code"), [("moved", 4008), ("server-restarting", 1012)])
async def test_a_room_moved_away_is_followed_after_the_hint_resuming(
    reason: str, code: int
) -> None:
    hint = 0.3  # far longer than QUICK's backoff: a wait this long is the hint
    closing = Closing(reason, "the room runs on another node", retry_after=hint)  # type: ignore[arg-type]
    async with running(joins_then(closing, code), joins()) as node:
        with trio.fail_after(LIMIT):
            async with open_sync_client(node.url, "jwt", room_id=ROOM, options=QUICK) as client:
                mark = client.received_count
                await client.wait_for(lambda m: isinstance(m, Joined), LIMIT, since=mark)
                assert (client.reconnects, client.session_id) == (1, "s1")
    first, second = node.seen[0], node.seen[1]
    # The same URL, naming the room, both times: the proxy routes the comeback by it.
    assert first.path == second.path == f"/api/v1/syncplay/ws?room={ROOM}"
    assert first.join is not None and first.join.get("resume") is None
    assert second.join is not None and second.join["resume"] == "s1"
    assert gap(node, 0) >= hint
    assert client.close_reason == reason


async def test_a_move_before_the_first_join_is_followed_too() -> None:
    hint = 0.3
    moved = Closing("moved", "the room runs on another node", retry_after=hint)
    async with running(refuses(moved, 4008), joins("s7")) as node:
        with trio.fail_after(LIMIT):
            async with open_sync_client(node.url, "jwt", room_id=ROOM, options=QUICK) as client:
                assert client.session_id == "s7"
                assert client.reconnects == 0  # the first join, late: not a comeback
    assert len(node.seen) == 2
    # No session yet to resume: both joins are first joins.
    assert all(s.join is not None and s.join.get("resume") is None for s in node.seen)
    assert gap(node, 0) >= hint


async def test_a_move_without_a_hint_waits_the_usual_backoff() -> None:
    moved = Closing("moved", "the room runs on another node")
    async with running(refuses(moved, 4008), refuses(moved, 4008), joins()) as node:
        with trio.fail_after(LIMIT):
            async with open_sync_client(node.url, "jwt", room_id=ROOM, options=QUICK) as client:
                assert client.joined is not None
    assert len(node.seen) == 3


async def test_moves_without_end_give_up_after_the_attempts() -> None:
    moved = Closing("moved", "the room runs on another node", retry_after=0.0)
    async with running(refuses(moved, 4008)) as node:
        with trio.fail_after(LIMIT), pytest.raises(SyncRefused) as refused:
            async with open_sync_client(node.url, "jwt", room_id=ROOM, options=QUICK):
                pytest.fail("joined a room that no node runs")
    assert refused.value.code == "moved"
    assert len(node.seen) == 1 + QUICK.reconnect_attempts


async def test_a_rejoin_answered_moved_tries_again_still_resuming() -> None:
    # The room moved, and the node the proxy sent the comeback to does not have it yet.
    hint = 0.2
    moved = Closing("moved", "the room runs on another node", retry_after=hint)
    async with running(joins_then(moved, 4008), refuses(moved, 4008), joins()) as node:
        with trio.fail_after(LIMIT):
            async with open_sync_client(node.url, "jwt", room_id=ROOM, options=QUICK) as client:
                mark = client.received_count
                await client.wait_for(lambda m: isinstance(m, Joined), LIMIT, since=mark)
                assert (client.reconnects, client.session_id) == (1, "s1")
    assert [s.join and s.join.get("resume") for s in node.seen] == [None, "s1", "s1"]
    assert gap(node, 0) >= hint and gap(node, 1) >= hint
