"""A closed connection is freed by reference counting: it leaves no reference cycles.

The daemon runs a tuned garbage collector (``cli/daemon.py``): full collections
are rare, because they pause every room. A WebSocket connection lives long
enough to reach the oldest generation, so whatever of it sits in a reference
cycle when it closes stays in memory until the next full collection. The soak
benchmark saw that as +10 MiB a minute under churn: about 340 objects per closed
connection (the handler's frames, tasks, channels, hypercorn's protocol objects),
held by cancellation exception groups that Quart re-raised from a local
variable, and by hypercorn's ``TCPServer`` and its protocol pointing at each
other. This test runs the daemon in this process (``server.daemon.run``), closes
connections in every way they end, and looks at what only the cycle collector
could free.
"""

from __future__ import annotations

import gc
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
import trio.testing
from trio_websocket import open_websocket_url, wrap_client_stream

from syncplayd.config import load_settings
from syncplayd.identity import Principal
from syncplayd.server.live.connection import BaseConnection
from syncplayd.server.process import daemon
from tests.daemon_process import SECRET, new_user
from tests.e2e.raw import Raw, token
from tests.security.support import until_closed

ROOMS = "/api/v1/syncplay/rooms"
CYCLES = 10
#: Garbage of these kinds means a closed connection (or a request) is in a cycle.
#: Plain functions, cells and containers are not counted: werkzeug's URL matcher
#: defines a recursive closure for every request (8 objects, freed young by the cheap
#: first-generation passes, since it dies within the request), and the test's own
#: REST client leaves a few.
SERVER_MODULES = ("syncplayd", "hypercorn", "quart", "quart_trio", "h11", "wsproto", "trio")
#: How long every task must stay blocked (trio's cushion) before the server counts as done
#: with the sockets the clients closed; loopback I/O arrives well within it.
QUIET = 0.05


class Daemon:
    """The daemon's ``run`` in this process, with a REST client.

    The REST client is httpx's blocking one, in a thread: its async connection
    pool leaves small cycles of its own (with ``trio.Event`` in them) that would
    blur what this test looks for.
    """

    def __init__(self, base_url: str, http: httpx.Client) -> None:
        self.http = http
        self.ws_url = base_url.replace("http://", "ws://") + "/api/v1/syncplay/ws"

    async def _request(self, method: str, path: str, user: Principal, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {token(user)}"}
        request = partial(self.http.request, method, path, headers=headers, **kwargs)
        return await trio.to_thread.run_sync(request)

    async def create_room(self, owner: Principal) -> str:
        body = {"name": "garbage", "content_type": "movie", "content_id": "1", "is_public": True}
        response = await self._request("POST", ROOMS, owner, json=body)
        assert response.status_code == 201, response.text
        room_id: str = response.json()["id"]
        return room_id

    async def end_room(self, owner: Principal, room_id: str) -> None:
        response = await self._request("DELETE", f"{ROOMS}/{room_id}", owner)
        assert response.status_code in (200, 204), response.text


@asynccontextmanager
async def _member(
    server: Daemon, user: Principal, *, kept_alive: bool = False
) -> AsyncIterator[Raw]:
    """A socket that has said hello as ``user``; ``kept_alive``: upgraded on a connection
    that first served a plain request (as a reverse proxy reuses its connections)."""
    if not kept_alive:
        async with open_websocket_url(server.ws_url) as ws:
            client = Raw(ws)
            assert (await client.hello(user))["type"] == "welcome"
            yield client
        return
    url = httpx.URL(server.ws_url)
    assert url.port is not None
    stream = await trio.open_tcp_stream(url.host, url.port)
    async with stream, trio.open_nursery() as nursery:
        await stream.send_all(
            f"GET /healthz HTTP/1.1\r\nHost: {url.netloc.decode()}\r\n\r\n".encode()
        )
        answer = b""
        while not answer.endswith(b'{"status":"ok"}'):
            answer += await stream.receive_some(65536)
        ws = await wrap_client_stream(nursery, stream, url.host, url.path)
        try:
            client = Raw(ws)
            assert (await client.hello(user))["type"] == "welcome"
            yield client
        finally:
            await ws.aclose()


async def _code(client: Raw) -> int:
    _, code = await until_closed(client)
    return code


# -- the ways a connection ends ----------------------------------------------------------
async def peer_closes(server: Daemon, room_id: str, owner: Principal) -> None:
    async with _member(server, new_user("closes")) as client:
        await client.join(room_id)


async def peer_leaves(server: Daemon, room_id: str, owner: Principal) -> None:
    async with _member(server, new_user("leaves")) as client:
        await client.join(room_id)
        await client.send({"type": "leave"})
        assert await _code(client) == 1000


async def peer_resumes(server: Daemon, room_id: str, owner: Principal) -> None:
    user = new_user("resumes")
    async with _member(server, user) as client:
        session = (await client.join(room_id))["session_id"]
    async with _member(server, user) as client:
        assert (await client.join(room_id, resume=session))["session_id"] == session


async def kept_alive_peer_closes(server: Daemon, room_id: str, owner: Principal) -> None:
    async with _member(server, new_user("kept"), kept_alive=True) as client:
        await client.join(room_id)


async def session_replaced(server: Daemon, room_id: str, owner: Principal) -> None:
    user = new_user("replaced")
    async with _member(server, user) as first:
        session = (await first.join(room_id))["session_id"]
        async with _member(server, user) as second:
            await second.join(room_id, resume=session)
            assert await _code(first) == 4003


async def room_ends(server: Daemon, room_id: str, owner: Principal) -> None:
    # A room of its own, so that the shared one stays live.
    ending = await server.create_room(owner)
    async with _member(server, new_user("ended")) as client:
        await client.join(ending)
        await server.end_room(owner, ending)
        assert await _code(client) == 4001


Ending = Callable[[Daemon, str, Principal], Awaitable[None]]


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Daemon]:
    env = {
        "SYNCPLAY_LISTEN": "127.0.0.1:0",
        "SYNCPLAY_STATE_DIR": str(tmp_path),
        "SYNCPLAY_AUTH_JWT_SECRET": SECRET,
        "SYNCPLAY_LOGGING_LEVEL": "warning",
    }
    async with trio.open_nursery() as nursery:
        binds: list[str] = await nursery.start(daemon.run, load_settings(None, env))
        with httpx.Client(base_url=binds[0], timeout=10) as http:
            yield Daemon(binds[0], http)
        nursery.cancel_scope.cancel()


def _describe(obj: object) -> str:
    kind = type(obj)
    if kind.__name__ == "frame":
        return f"frame {obj.f_code.co_qualname}"  # type: ignore[attr-defined]
    return f"{kind.__module__}.{kind.__qualname__}"


def _cyclic_garbage() -> list[object]:
    """Everything only the cycle collector can free, as it stands (then freed)."""
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        gc.collect()
        return list(gc.garbage)
    finally:
        gc.garbage.clear()
        gc.set_debug(0)


def _from_the_server(obj: object) -> bool:
    kind = type(obj)
    if kind.__name__ in ("frame", "coroutine", "traceback") or isinstance(obj, BaseException):
        return True
    return kind.__module__.split(".")[0] in SERVER_MODULES


@pytest.mark.parametrize(
    "ending",
    [peer_closes, peer_leaves, peer_resumes, kept_alive_peer_closes, session_replaced, room_ends],
    ids=lambda ending: ending.__name__,
)
async def test_closed_connections_leave_no_cycles(server: Daemon, ending: Ending) -> None:
    owner = new_user("owner")
    room_id = await server.create_room(owner)
    async with _member(server, owner) as keeper:  # the room stays live throughout
        await keeper.join(room_id)
        await ending(server, room_id, owner)  # warm-up: first-use caches are not garbage
        await trio.testing.wait_all_tasks_blocked(QUIET)
        gc.collect()
        gc.disable()
        try:
            for _ in range(CYCLES):
                await ending(server, room_id, owner)
            # The server lets go of a socket after the client is done with it.
            await trio.testing.wait_all_tasks_blocked(QUIET)
            garbage = _cyclic_garbage()
        finally:
            gc.enable()
        live_connections = sum(isinstance(o, BaseConnection) for o in gc.get_objects())

    from_server = Counter(_describe(o) for o in garbage if _from_the_server(o))
    assert not from_server, f"closed connections left cycles: {from_server.most_common(20)}"
    assert live_connections == 1, "only the keeper's connection may still be alive"


def _server_tasks() -> int:
    """The tasks of this process, but for the test's own WebSocket clients'."""
    count = 0
    stack = [trio.lowlevel.current_root_task()]
    while stack:
        task = stack.pop()
        count += not task.name.startswith("trio_websocket")
        for nursery in task.child_nurseries:
            stack.extend(nursery.child_tasks)
    return count


@pytest.mark.parametrize("kept_alive", [False, True], ids=["first-request", "kept-alive"])
async def test_a_joined_member_costs_the_server_one_task(server: Daemon, kept_alive: bool) -> None:
    """Its reader, in the live room: the handshake's task ends once the room has the socket
    (memory per member, docs/benchmarks.md), and nothing is left once it has closed. The
    same for a socket upgraded after a plain request on its connection: the front door
    takes it back from hypercorn (whose connection task ends) and serves it alike."""
    owner = new_user("owner")
    room_id = await server.create_room(owner)
    async with _member(server, owner) as keeper:  # the room stays live throughout
        await keeper.join(room_id)
        await trio.testing.wait_all_tasks_blocked(QUIET)
        before = _server_tasks()
        async with AsyncExitStack() as members:
            for i in range(5):
                member = _member(server, new_user(f"m{i}"), kept_alive=kept_alive)
                client = await members.enter_async_context(member)
                await client.join(room_id)
            await trio.testing.wait_all_tasks_blocked(QUIET)
            assert _server_tasks() - before == 5
        await trio.testing.wait_all_tasks_blocked(QUIET)
        assert _server_tasks() == before
