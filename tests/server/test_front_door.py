"""The front door against a real daemon: which connections it serves, which it hands on.

A WebSocket upgrade to ``/api/v1/syncplay/ws`` that the app would accept is served by
the front door on a bare socket (``DirectRoute``); everything else goes to hypercorn
with the bytes already read put back. Both must look the same to clients, so most
tests here check that a request gets the answer it got before the front door existed.
Where it matters which side answered, the ``server`` header tells: hypercorn adds
it to every response, the front door's ``101`` has none.

Clients are plain sockets speaking bytes (requests by hand, frames through wsproto),
so that requests can be split, pipelined, or left unfinished, and so that the bytes
of a broadcast frame can be compared between members.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import trio
from wsproto.connection import Connection as WSConnection
from wsproto.connection import ConnectionType
from wsproto.events import CloseConnection, Event, Ping, TextMessage

from syncplayd.server.live.ws_frames import server_frame
from syncplayd.server.process.daemon import HTTP_IDLE_TIMEOUT_SECONDS
from tests.daemon_process import DaemonProcess, new_user, run_daemon
from tests.e2e.conftest import E2E_ENV
from tests.e2e.raw import new_room, raw_client, token
from tests.server.conftest import backend_daemon

LIMIT = 10.0
PING_INTERVAL = 0.2
WS_PATH = "/api/v1/syncplay/ws"
ENV = E2E_ENV | {
    "SYNCPLAY_ALLOWED_HOSTS": "media.example",
    "SYNCPLAY_WS_PING_INTERVAL_SECONDS": f"{PING_INTERVAL:g}",
}


@pytest.fixture(scope="module", params=[pytest.param("sqlite")])
def front(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DaemonProcess]:
    # The front door does not touch storage: one backend is enough.
    with backend_daemon(request, tmp_path_factory, "front", ENV) as process:
        yield process


def host_of(daemon: DaemonProcess) -> str:
    return urlsplit(daemon.base_url).netloc


def upgrade_request(
    host: str, target: str = WS_PATH, extra: list[tuple[str, str]] | None = None
) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        f"GET {target} HTTP/1.1",
        f"Host: {host}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
        *(f"{name}: {value}" for name, value in extra or []),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def get_request(host: str, target: str = "/healthz") -> bytes:
    return f"GET {target} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()


class Response:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        return json.loads(self.body)


def frames_in(data: bytes) -> list[bytes]:
    """Split server frames (unmasked) apart, byte for byte; a cut last frame is left out."""
    frames = []
    at = 0
    while at + 2 <= len(data):
        length, start = data[at + 1] & 0x7F, at + 2
        if length == 126:
            length, start = int.from_bytes(data[at + 2 : at + 4]), at + 4
        elif length == 127:
            length, start = int.from_bytes(data[at + 2 : at + 10]), at + 10
        if start + length > len(data):
            break
        frames.append(data[at : start + length])
        at = start + length
    return frames


class Wire:
    """A client on a plain socket: HTTP by hand, then WebSocket frames through wsproto.

    After the upgrade, every byte received is kept in ``raw`` (``frames_in`` splits it)
    and fed to a wsproto client connection, which must parse all of it.
    """

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.buffer = b""
        self.ws: WSConnection | None = None
        self.raw = b""
        self.events: list[Event] = []
        self.pings = 0

    async def send(self, data: bytes, *, piece: int | None = None) -> None:
        if piece is None:
            await self.stream.send_all(data)
            return
        for at in range(0, len(data), piece):
            await self.stream.send_all(data[at : at + piece])

    async def _more(self) -> bytes:
        data = await self.stream.receive_some(65536)
        assert data, "the server closed the connection"
        return data

    async def response(self) -> Response:
        """One HTTP response (with a ``content-length`` body, as all of this daemon's)."""
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += await self._more()
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(self.buffer) < length:
            self.buffer += await self._more()
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return Response(int(status_line.split()[1]), headers, body)

    async def upgrade(self, host: str, *, piece: int | None = None, **kwargs: Any) -> Response:
        """Send an upgrade; on ``101`` the connection speaks WebSocket from here on."""
        await self.send(upgrade_request(host, **kwargs), piece=piece)
        response = await self.response()
        if response.status == 101:
            self.accept()
        return response

    def accept(self) -> None:
        """WebSocket from here on (after a ``101``)."""
        self.ws = WSConnection(ConnectionType.CLIENT)
        self._received(self.buffer)
        self.buffer = b""

    def _received(self, data: bytes) -> None:
        assert self.ws is not None
        self.raw += data
        self.ws.receive_data(data)
        self.events.extend(self.ws.events())

    async def event(self) -> Event:
        while not self.events:
            self._received(await self._more())
        return self.events.pop(0)

    async def message(self) -> dict[str, Any]:
        """The next text message (the server does not fragment); pings are counted."""
        while True:
            event = await self.event()
            if isinstance(event, Ping):
                self.pings += 1
                continue
            assert isinstance(event, TextMessage) and event.message_finished, event
            message: dict[str, Any] = json.loads(event.data)
            return message

    async def expect(self, kind: str) -> dict[str, Any]:
        while (message := await self.message())["type"] != kind:
            pass
        return message

    async def send_event(self, event: Event) -> None:
        assert self.ws is not None
        await self.send(self.ws.send(event))

    async def send_json(self, message: dict[str, Any]) -> None:
        await self.send_event(TextMessage(data=json.dumps(message)))


@asynccontextmanager
async def wire(daemon: DaemonProcess) -> AsyncIterator[Wire]:
    url = urlsplit(daemon.base_url)
    assert url.hostname is not None and url.port is not None
    stream = await trio.open_tcp_stream(url.hostname, url.port)
    try:
        yield Wire(stream)
    finally:
        await stream.aclose()


async def hello_and_join(client: Wire, room_id: str, name: str) -> dict[str, Any]:
    user = new_user(name)
    await client.send_json({"type": "hello", "protocol": 1, "token": token(user)})
    welcome = await client.message()
    assert welcome["type"] == "welcome" and welcome["user_name"] == name, welcome
    await client.send_json({"type": "join", "room_id": room_id})
    return await client.expect("joined")


# -- WebSocket upgrades ---------------------------------------------------------------------------
@pytest.mark.parametrize("host", ["daemon", "media.example"])
async def test_the_upgrade_is_served_directly(front: DaemonProcess, host: str) -> None:
    room_id = await new_room(front, new_user("owner"))
    with trio.fail_after(LIMIT):
        async with wire(front) as client:
            response = await client.upgrade(host_of(front) if host == "daemon" else host)
            assert response.status == 101
            assert "server" not in response.headers  # answered by the front door
            joined = await hello_and_join(client, room_id, "Direct")
            assert joined["room"]["id"] == room_id
            assert [p["user_name"] for p in joined["participants"]] == ["Direct"]
            await client.send_json({"type": "ping", "id": 3, "t0": 1.5})
            pong = await client.expect("pong")
            assert (pong["id"], pong["t0"]) == (3, 1.5)


async def test_a_foreign_origin_gets_quarts_403_problem(front: DaemonProcess) -> None:
    with trio.fail_after(LIMIT):
        async with wire(front) as client:
            response = await client.upgrade(
                host_of(front), extra=[("Origin", "https://evil.example")]
            )
    assert response.status == 403
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "origin-not-allowed"
    assert "server" in response.headers  # the app's own answer, through hypercorn


async def test_an_allowed_origin_is_served_directly(front: DaemonProcess) -> None:
    with trio.fail_after(LIMIT):
        async with wire(front) as client:
            response = await client.upgrade(
                host_of(front), extra=[("Origin", "https://media.example")]
            )
            assert response.status == 101 and "server" not in response.headers
            await client.send_json({"type": "hello", "protocol": 1, "token": token(new_user())})
            assert (await client.message())["type"] == "welcome"


async def test_a_host_not_allowed_gets_421(front: DaemonProcess) -> None:
    with trio.fail_after(LIMIT):
        async with wire(front) as client:
            response = await client.upgrade("evil.example")
    assert response.status == 421
    assert response.json()["code"] == "host-not-allowed"


async def test_a_path_that_only_starts_like_the_websocket_goes_to_the_app(
    front: DaemonProcess,
) -> None:
    with trio.fail_after(LIMIT):
        async with wire(front) as client:
            response = await client.upgrade(host_of(front), target=WS_PATH + "x")
            assert response.status == 404
            assert response.json()["code"] == "not-found"
        async with wire(front) as client:
            await client.send(get_request(host_of(front), WS_PATH + "x"))
            assert (await client.response()).status == 404


async def test_the_websocket_path_with_a_query_is_served_directly(front: DaemonProcess) -> None:
    with trio.fail_after(LIMIT):
        async with wire(front) as client:
            response = await client.upgrade(host_of(front), target=WS_PATH + "?v=1")
            assert response.status == 101 and "server" not in response.headers
            await client.send_json({"type": "hello", "protocol": 1, "token": token(new_user())})
            assert (await client.message())["type"] == "welcome"


async def test_frames_in_the_same_write_as_the_upgrade_are_read(front: DaemonProcess) -> None:
    hello = {"type": "hello", "protocol": 1, "token": token(new_user())}
    ping = {"type": "ping", "id": 9, "t0": 2.0}
    masked = WSConnection(ConnectionType.CLIENT)
    frames = b"".join(masked.send(TextMessage(data=json.dumps(m))) for m in (hello, ping))
    with trio.fail_after(LIMIT):
        async with wire(front) as client:
            await client.send(upgrade_request(host_of(front)) + frames)
            response = await client.response()
            assert response.status == 101 and "server" not in response.headers
            client.accept()
            assert (await client.message())["type"] == "welcome"
            assert (await client.expect("pong"))["id"] == 9


@pytest.mark.parametrize(
    "head",
    [
        f"GET {WS_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",  # no upgrade
        f"GET {WS_PATH} HTTP/1.1\r\nno colon here\r\n\r\n",  # not HTTP
    ],
    ids=["plain-get", "malformed"],
)
async def test_requests_on_the_websocket_path_that_are_no_upgrade_get_400(
    front: DaemonProcess, head: str
) -> None:
    with trio.fail_after(LIMIT):
        async with wire(front) as client:
            await client.send(head.encode())
            response = await client.response()
    assert response.status == 400
    assert "server" in response.headers


async def test_an_upgrade_split_into_single_bytes_works(front: DaemonProcess) -> None:
    with trio.fail_after(LIMIT):
        async with wire(front) as client:
            response = await client.upgrade(host_of(front), piece=1)
            assert response.status == 101
            await client.send_json({"type": "hello", "protocol": 1, "token": token(new_user())})
            assert (await client.message())["type"] == "welcome"


async def test_an_upgrade_after_requests_on_a_kept_alive_connection_is_served_directly(
    front: DaemonProcess,
) -> None:
    """A reverse proxy reuses its connections to the daemon: hypercorn parses the later
    upgrade, and the app gives it back to the front door, which serves it as a first one
    (no ``server`` header; a broken frame is answered with a close frame, 1007 here,
    where hypercorn dropped the connection)."""
    room_id = await new_room(front, new_user("owner"))
    with trio.fail_after(LIMIT):
        async with wire(front) as client:
            for _ in range(2):
                await client.send(get_request(host_of(front)))
                first = await client.response()
                assert first.status == 200 and first.json() == {"status": "ok"}
                assert "server" in first.headers  # hypercorn's answers
            response = await client.upgrade(host_of(front))
            assert response.status == 101
            assert "server" not in response.headers  # answered by the front door
            joined = await hello_and_join(client, room_id, "KeptAlive")
            assert joined["room"]["id"] == room_id
            await client.send_json({"type": "ping", "id": 4, "t0": 2.5})
            pong = await client.expect("pong")
            assert (pong["id"], pong["t0"]) == (4, 2.5)
            # A text frame that is not UTF-8 (masked with a zero key: the payload as is).
            await client.send(bytes((0x81, 0x80 | 2)) + bytes(4) + b"\xff\xfe")
            while not isinstance(event := await client.event(), CloseConnection):
                pass
            assert event.code == 1007


@pytest.fixture
def own_daemon(tmp_path: Path) -> Iterator[DaemonProcess]:
    """A daemon of its own, for a test that may bring it down."""
    with run_daemon(f"sqlite:///{tmp_path / 'db.sqlite3'}", tmp_path / "state", ENV) as process:
        yield process


@pytest.mark.parametrize("way", ["kept-alive", "encoded-path"])
async def test_an_upgrade_with_a_frame_in_the_same_write_does_not_bring_the_daemon_down(
    own_daemon: DaemonProcess, way: str
) -> None:
    """Upgrades the front door hands to hypercorn, with a frame before the ``101``.

    A client should wait for the ``101``; one that does not may be refused, but
    the connection is its own: every other one, and the daemon, carry on.
    (hypercorn 0.18 answers 400, then fails on h11's state in the connection's
    task, and the error ended the whole process.)
    """
    host = host_of(own_daemon)
    hello = WSConnection(ConnectionType.CLIENT).send(
        TextMessage(data=json.dumps({"type": "hello", "protocol": 1, "token": token(new_user())}))
    )
    with trio.fail_after(LIMIT):
        async with wire(own_daemon) as client:
            if way == "kept-alive":
                await client.send(get_request(host))
                assert (await client.response()).status == 200
                await client.send(upgrade_request(host) + hello)
            else:
                # The app's route, in a spelling the front door leaves to hypercorn
                # (as it does a head whose first read is too short to tell).
                await client.send(upgrade_request(host, target="/api/v1/syncplay/%77s") + hello)
            with contextlib.suppress(AssertionError, trio.BrokenResourceError):
                await client.response()  # whatever the answer
            # Until the connection ends: by then its task is over, one way or the other.
            await client.stream.send_eof()
            with contextlib.suppress(trio.BrokenResourceError):
                while await client.stream.receive_some(65536):
                    pass
        try:
            async with wire(own_daemon) as other:
                await other.send(get_request(host))
                assert (await other.response()).status == 200
        except (AssertionError, OSError) as exc:
            log = "\n".join(own_daemon.log_lines[-20:])
            raise AssertionError(f"the daemon no longer answers ({exc}):\n{log}") from None
    assert own_daemon.process.poll() is None


# -- plain HTTP -----------------------------------------------------------------------------------
async def test_plain_http_requests_go_to_the_app(front: DaemonProcess) -> None:
    with trio.fail_after(LIMIT):
        async with wire(front) as client:
            await client.send(get_request(host_of(front)))
            response = await client.response()
            assert response.status == 200 and response.json() == {"status": "ok"}
            # And the connection stays usable.
            await client.send(get_request(host_of(front)))
            assert (await client.response()).status == 200


async def test_two_pipelined_requests_in_one_write(front: DaemonProcess) -> None:
    with trio.fail_after(LIMIT):
        async with wire(front) as client:
            await client.send(get_request(host_of(front)) + get_request(host_of(front), "/nope"))
            first, second = await client.response(), await client.response()
    assert (first.status, first.json()) == (200, {"status": "ok"})
    assert second.status == 404


async def test_a_request_head_split_into_single_bytes(front: DaemonProcess) -> None:
    with trio.fail_after(LIMIT):
        async with wire(front) as client:
            await client.send(get_request(host_of(front)), piece=1)
            response = await client.response()
    assert (response.status, response.json()) == (200, {"status": "ok"})


async def test_a_connection_that_sends_nothing_is_closed_after_the_head_timeout(
    front: DaemonProcess,
) -> None:
    with trio.fail_after(HTTP_IDLE_TIMEOUT_SECONDS + 3):
        async with wire(front) as client:
            start = trio.current_time()
            assert await client.stream.receive_some(1024) == b""
            assert trio.current_time() - start >= HTTP_IDLE_TIMEOUT_SECONDS - 0.5


# -- the broadcast path ---------------------------------------------------------------------------
async def test_members_get_the_same_bytes_of_a_broadcast(front: DaemonProcess) -> None:
    owner = new_user("owner")
    room_id = await new_room(front, owner)
    with trio.fail_after(LIMIT):
        async with (
            raw_client(front, owner, room_id) as boss,
            wire(front) as a,
            wire(front) as b,
        ):
            for member, name in ((a, "A"), (b, "B")):
                response = await member.upgrade(host_of(front))
                assert response.status == 101 and "server" not in response.headers  # direct
                await hello_and_join(member, room_id, name)
            await boss.send({"type": "play"})
            frames = []
            for member in (a, b):
                playback = await member.expect("playback")
                # The frame that carried it, byte for byte, from what the socket received.
                mine = [f for f in frames_in(member.raw) if _text(f) is not None]
                mine = [f for f in mine if json.loads(_text(f) or "")["type"] == "playback"]
                assert len(mine) == 1, mine
                assert json.loads(_text(mine[0]) or "") == playback
                frames.append(mine[0])
    assert frames[0] == frames[1]
    # One unfragmented, unmasked text frame, as the broadcast encodes it once.
    assert frames[0] == server_frame(_text(frames[0]) or "")


def _text(frame: bytes) -> str | None:
    """The text of one whole text frame, else ``None`` (pings)."""
    client = WSConnection(ConnectionType.CLIENT)
    client.receive_data(frame)
    events = list(client.events())
    if len(events) == 1 and isinstance(events[0], TextMessage) and events[0].message_finished:
        return events[0].data
    return None


# -- keep-alive -----------------------------------------------------------------------------------
async def test_idle_direct_sockets_are_pinged(front: DaemonProcess) -> None:
    with trio.fail_after(LIMIT):
        async with wire(front) as client:
            response = await client.upgrade(host_of(front))
            assert response.status == 101 and "server" not in response.headers  # direct
            await client.send_json({"type": "hello", "protocol": 1, "token": token(new_user())})
            assert (await client.message())["type"] == "welcome"
            start = trio.current_time()
            event = await client.event()  # nothing else is sent to a quiet member
            assert isinstance(event, Ping), event
            assert trio.current_time() - start < PING_INTERVAL * 10
            await client.send_event(event.response())
            # Pings keep coming, and the socket stays open (pongs are data).
            assert isinstance(await client.event(), Ping)


async def test_closing_the_direct_socket_is_answered(front: DaemonProcess) -> None:
    with trio.fail_after(LIMIT):
        async with wire(front) as client:
            assert (await client.upgrade(host_of(front))).status == 101
            await client.send_event(CloseConnection(code=1000))
            while not isinstance(event := await client.event(), CloseConnection):
                assert isinstance(event, Ping), event
            assert event.code == 1000
            # Then the server's FIN: the front door finished the socket.
            while await client.stream.receive_some(65536):
                pass


async def test_the_proxy_socket_serves_upgrades_directly_with_the_proxys_user(
    tmp_path: Path,
) -> None:
    # The recommended set-up (nginx on proxy.socket): its browsers' websockets take the
    # broadcast path too, and the identity headers count there, as on Quart's path.
    proxy_socket = tmp_path / "proxy" / "http.sock"
    env = ENV | {"SYNCPLAY_PROXY_SOCKET": str(proxy_socket)}
    with run_daemon(None, tmp_path / "state", env) as daemon:
        owner = new_user("owner")
        room_id = await new_room(daemon, owner)
        viewer = new_user("viewer")
        with trio.fail_after(LIMIT):
            stream = await trio.open_unix_socket(str(proxy_socket))
            try:
                client = Wire(stream)  # type: ignore[arg-type]
                response = await client.upgrade(
                    host_of(daemon),
                    extra=[
                        ("X-Remote-User-Id", str(viewer.user_id)),
                        ("X-Remote-User-Name", viewer.name),
                    ],
                )
                assert response.status == 101
                assert "server" not in response.headers  # the front door, not hypercorn
                await client.send_json({"type": "hello", "protocol": 1})  # no token
                welcome = await client.message()
                assert welcome["type"] == "welcome", welcome
                assert welcome["user_id"] == str(viewer.user_id)
                await client.send_json({"type": "join", "room_id": room_id})
                joined = await client.expect("joined")
                assert [p["user_name"] for p in joined["participants"]] == ["viewer"]
            finally:
                await stream.aclose()
