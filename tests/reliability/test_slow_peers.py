"""Slow and dead peers (issue 6, point 3): dropped by their deadlines, nobody else delayed.

Against a real daemon process with short deadlines, a room of healthy members gets a
steady stream of broadcasts: one member seeks 20 times a second (each ``seek`` is
broadcast as ``playback`` to every member, with the position as the command's number),
and everyone heartbeats. Then a bad peer comes along:

(a) it joins and stops reading (a 4 KiB receive buffer that is never read: its TCP
    receive window closes), while it keeps trying to send heartbeats;
(b) it joins and stops sending (no heartbeats);
(c) it joins and half-closes its socket (``shutdown(SHUT_WR)``);
(d) it completes the websocket upgrade and never says ``hello``;
(e) it never completes the HTTP upgrade (slowloris: a partial request, trickled).

For each, the test asserts how the peer is dropped (close code, ``closing`` reason, or the
connection closed under it) and that it happens within its deadline plus a margin, and it
compares the healthy members' fan-out delay during the episode with a baseline taken just
before. Fan-out delay = a member's task has the ``playback`` frame minus just before the
sender's ``send``, both ``time.monotonic()`` in this process.

The bound on the delay during an episode is ``max(50 ms, 3 x baseline p99 + 20 ms)``.
A room that waited for a bad peer would be late by the scale of that peer's deadline
(seconds); the normal p99 on loopback is a few milliseconds. 50 ms is an order of
magnitude below the smallest deadline here and well above a healthy p99, and the
relative term keeps a loaded machine (other tests, other engineers' work on the same two
cores) from failing the test for noise that the baseline shows too.

The last tests check the connection's own mechanisms in memory, in virtual time.
"""

from __future__ import annotations

import json
import socket
import time
from collections import deque
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import trio
import trio.testing
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    CloseConnection,
    Event,
    Ping,
    RejectConnection,
    Request,
    TextMessage,
)

from syncplayd.core import protocol
from syncplayd.identity import Principal
from syncplayd.server.live.connection import CLOSE_CODES, Connection
from syncplayd.server.live.websocket import HELLO_TIMEOUT_SECONDS
from syncplayd.server.process.daemon import HTTP_IDLE_TIMEOUT_SECONDS
from tests.daemon_process import DaemonProcess, new_user, run_daemon
from tests.e2e.raw import Raw, new_room, raw_client, token
from tests.reliability.conftest import tracebacks

pytestmark = pytest.mark.slow

HEARTBEAT_SECONDS = 0.5
DISCONNECT_TIMEOUT = 3.0
PING_INTERVAL = 1.0  # hypercorn's websocket pings; it holds a closed socket up to this long
ENV = {
    "SYNCPLAY_HEARTBEAT_INTERVAL_SECONDS": f"{HEARTBEAT_SECONDS:g}",
    "SYNCPLAY_DISCONNECT_TIMEOUT_SECONDS": f"{DISCONNECT_TIMEOUT:g}",
    "SYNCPLAY_WS_PING_INTERVAL_SECONDS": f"{PING_INTERVAL:g}",
    "SYNCPLAY_WS_MAX_MESSAGES_PER_SECOND": "100",
}

HEALTHY_MEMBERS = 5  # the sender and four listeners
COMMANDS_PER_SECOND = 20
WARMUP_SECONDS = 0.5
BASELINE_SECONDS = 2.0
MIN_WINDOW_SECONDS = 1.0
# A deadline is met when the drop comes no earlier than this before it, and no later than
# MARGIN after it (a loaded two-core machine; every deadline here is seconds long).
EARLY = 0.1
MARGIN = 1.0
# (a): the broadcasts (20 frames of ~190 bytes a second, ~3.8 KB/s) fill a 4 KiB
# receive buffer (about 9 KB once the kernel has doubled it) in about 2.5 s; only then
# is the peer behind. This is the allowance for that, on top of the deadline.
FILL_ALLOWANCE = 5.0


def p99_bound(baseline_p99: float) -> float:
    return max(0.050, 3 * baseline_p99 + 0.020)


def p99(samples: list[float]) -> float:
    assert samples, "no fan-out samples in the window"
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(0.99 * len(ordered)) - 1))]


# -- the daemon ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    folder = tmp_path_factory.mktemp("slow-peers")
    with run_daemon(f"sqlite:///{folder / 'db.sqlite3'}", folder / "state", ENV) as process:
        yield process
        assert process.process.poll() is None, "the daemon died during the tests"
        assert not tracebacks(process), "\n".join(process.log_lines)


def address(daemon: DaemonProcess) -> tuple[str, int]:
    url = urlsplit(daemon.base_url)
    assert url.hostname is not None and url.port is not None
    return url.hostname, url.port


# -- a websocket client on a plain socket, that reads only when told to ---------------------------
class WirePeer:
    """wsproto over a trio socket: nothing is read unless a method reads.

    (trio-websocket reads in a background task, so it cannot stop reading for real.)
    ``close_code`` is the code of the close frame that ended the connection, or 1006 when
    the socket ended without one.
    """

    def __init__(self, stream: trio.SocketStream, host: str) -> None:
        self.stream = stream
        self.host = host
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.events: deque[Event] = deque()
        self.text = ""
        self.close_code: int | None = None
        self.offset = 0.0  # server clock minus trio.current_time(), from joined

    async def _next(self) -> Event:
        while not self.events:
            data = await self.stream.receive_some(65536)
            self.ws.receive_data(data or None)
            for event in self.ws.events():
                if isinstance(event, Ping):  # answered only when reading, like a real client
                    await self.stream.send_all(self.ws.send(event.response()))
                else:
                    self.events.append(event)
        return self.events.popleft()

    async def upgrade(self) -> None:
        request = Request(host=self.host, target="/api/v1/syncplay/ws")
        await self.stream.send_all(self.ws.send(request))
        event = await self._next()
        if isinstance(event, RejectConnection):
            raise AssertionError(f"upgrade refused: {event.status_code}")
        assert isinstance(event, AcceptConnection), event

    async def send(self, message: dict[str, Any]) -> None:
        await self.stream.send_all(self.ws.send(TextMessage(json.dumps(message))))

    async def recv(self) -> dict[str, Any] | None:
        """The next message; ``None`` once the connection has ended (see ``close_code``)."""
        while self.close_code is None:
            event = await self._next()
            if isinstance(event, TextMessage):
                self.text += event.data
                if event.message_finished:
                    text, self.text = self.text, ""
                    message: dict[str, Any] = json.loads(text)
                    return message
            elif isinstance(event, CloseConnection):
                self.close_code = event.code
        return None

    async def read_until_closed(self) -> list[dict[str, Any]]:
        seen = []
        while (message := await self.recv()) is not None:
            seen.append(message)
        return seen

    async def join(self, user: Principal, room_id: str) -> None:
        await self.send({"type": "hello", "protocol": 1, "token": token(user)})
        welcome = await self.recv()
        assert welcome is not None and welcome["type"] == "welcome", welcome
        await self.send({"type": "join", "room_id": room_id})
        while (message := await self.recv()) is not None and message["type"] != "joined":
            pass
        assert message is not None, f"closed while joining ({self.close_code})"
        self.offset = message["server_time"] - trio.current_time()

    async def heartbeats(self) -> None:
        """Heartbeat forever ("at 0 s, version 0"); raises once the socket is gone."""
        while True:
            beat = {"type": "heartbeat", "position": 0.0, "version": 0,
                    "server_time": trio.current_time() + self.offset}  # fmt: skip
            await self.send(beat)
            await trio.sleep(HEARTBEAT_SECONDS)


@asynccontextmanager
async def wire_peer(
    daemon: DaemonProcess, *, receive_buffer: int | None = None, upgrade: bool = True
) -> AsyncIterator[WirePeer]:
    host, port = address(daemon)
    stream = await trio.open_tcp_stream(host, port)
    if receive_buffer is not None:
        stream.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    async with stream:
        peer = WirePeer(stream, host)
        if upgrade:
            await peer.upgrade()
        yield peer


async def closing_counts(daemon: DaemonProcess) -> dict[str, float]:
    """``syncplayd_errors_total`` of the closing reasons that drop a peer, from /metrics."""
    async with httpx.AsyncClient(base_url=daemon.base_url) as http:
        text = (await http.get("/metrics")).text
    counts = {"too-slow": 0.0, "idle-timeout": 0.0}
    for line in text.splitlines():
        for code in counts:
            if line.startswith(f'syncplayd_errors_total{{code="{code}"}} '):
                counts[code] = float(line.split()[-1])
    return counts


# -- the healthy room ------------------------------------------------------------------------------
@dataclass
class Presence:
    at: float
    event: str
    name: str


@dataclass
class HealthyRoom:
    """A room with healthy members under a steady stream of broadcasts, measured."""

    room_id: str
    started: float = 0.0
    sent: dict[int, float] = field(default_factory=dict)  # command number -> time.monotonic()
    # (member, command, delay) for every playback a healthy member received
    receipts: list[tuple[int, int, float]] = field(default_factory=list)
    presence: list[Presence] = field(default_factory=list)
    closed: list[str] = field(default_factory=list)
    _news: trio.Event = field(default_factory=trio.Event)

    async def listen(self, member: int, client: Raw) -> None:
        while True:
            message = await client.recv(limit=600)
            now = time.monotonic()
            if message["type"] == "playback":
                number = round(message["playback"]["position"])
                if number in self.sent:
                    self.receipts.append((member, number, now - self.sent[number]))
            elif message["type"] == "presence" and member == 1:
                self.presence.append(
                    Presence(now, message["event"], message["member"]["user_name"])
                )
                self._news.set()
                self._news = trio.Event()
            elif message["type"] == "closing":
                self.closed.append(f"member {member}: {message['reason']}")

    async def seek_stream(self, sender: Raw) -> None:
        """Seek to 1, 2, 3, ... on a fixed schedule (open loop: no waiting for answers)."""
        number = 0
        next_at = trio.current_time()
        while True:
            number += 1
            self.sent[number] = time.monotonic()
            await sender.send({"type": "seek", "position": float(number)})
            next_at += 1 / COMMANDS_PER_SECOND
            await trio.sleep_until(next_at)

    async def wait_presence(self, name: str, event: str, limit: float) -> float:
        """When a healthy member learned that ``name`` had ``event``."""
        with trio.fail_after(limit):
            while True:
                for seen in self.presence:
                    if seen.name == name and seen.event == event:
                        return seen.at
                await self._news.wait()

    def delays(self, start: float, end: float) -> list[float]:
        return [d for _, n, d in self.receipts if start <= self.sent[n] < end]

    def missing(self, start: float, end: float) -> int:
        """Receipts that never came, for the commands sent in ``[start, end)``."""
        numbers = {n for n, at in self.sent.items() if start <= at < end}
        got = {(m, n) for m, n, _ in self.receipts if n in numbers}
        return HEALTHY_MEMBERS * len(numbers) - len(got)


@asynccontextmanager
async def healthy_room(daemon: DaemonProcess) -> AsyncIterator[HealthyRoom]:
    users = [new_user(f"healthy{i}") for i in range(HEALTHY_MEMBERS)]
    room = HealthyRoom(await new_room(daemon, users[0]))
    async with AsyncExitStack() as stack:
        members = [
            await stack.enter_async_context(raw_client(daemon, user, room.room_id, queue=256))
            for user in users
        ]
        nursery = await stack.enter_async_context(trio.open_nursery())
        for i, member in enumerate(members):
            nursery.start_soon(member.heartbeats, HEARTBEAT_SECONDS)
            nursery.start_soon(room.listen, i, member)
        room.started = time.monotonic()
        nursery.start_soon(room.seek_stream, members[0])
        yield room
        nursery.cancel_scope.cancel()


@dataclass
class Episode:
    """The baseline window, then the episode's: where the fan-out is compared."""

    name: str
    room: HealthyRoom
    baseline: tuple[float, float] = (0.0, 0.0)
    start: float = 0.0

    async def begin(self) -> None:
        """Let the stream run for the warm-up and the baseline; the episode starts now."""
        baseline_start = self.room.started + WARMUP_SECONDS
        await trio.sleep_until(trio.current_time() + baseline_start - time.monotonic())
        await trio.sleep(BASELINE_SECONDS)  # the baseline window: time passing is the point
        self.baseline = (baseline_start, time.monotonic())
        self.start = time.monotonic()

    async def check(self, end: float, **facts: float | str) -> None:
        """The healthy members got everything, and not later than the bound; report."""
        # A drop that takes no time still gets a window of a second (20 commands).
        end = max(end, self.start + MIN_WINDOW_SECONDS)
        # Commands sent up to the end of the episode: give the last ones a moment to arrive.
        await trio.sleep_until(trio.current_time() + end + 0.5 - time.monotonic())
        before = self.room.delays(*self.baseline)
        during = self.room.delays(self.start, end)
        bound = p99_bound(p99(before))
        report = {
            "episode": self.name,
            "baseline_p99_ms": round(p99(before) * 1000, 2),
            "during_p99_ms": round(p99(during) * 1000, 2),
            "during_max_ms": round(max(during) * 1000, 2),
            "during_samples": len(during),
            "bound_ms": round(bound * 1000, 1),
        } | {k: round(v, 3) if isinstance(v, float) else v for k, v in facts.items()}
        print("\nslow-peers:", json.dumps(report))
        assert not self.room.closed, self.room.closed
        assert self.room.missing(self.baseline[0], end) == 0
        assert p99(during) <= bound, report


# -- (a) stops reading
async def test_members_that_stop_reading_are_dropped_and_their_sockets_freed(
    daemon: DaemonProcess,
) -> None:
    names = ("stops-reading-1", "stops-reading-2")
    async with healthy_room(daemon) as room:
        episode = Episode("stops reading", room)
        await episode.begin()
        closes_before = await closing_counts(daemon)
        async with AsyncExitStack() as stack:
            peers = [
                await stack.enter_async_context(wire_peer(daemon, receive_buffer=4096))
                for _ in names
            ]
            for peer, name in zip(peers, names, strict=True):
                await peer.join(new_user(name), room.room_id)
            stopped = time.monotonic()
            # They never read again, and keep trying to heartbeat. Their sockets are freed
            # when a heartbeat meets a reset: the daemon's side of the socket is gone.
            freed: list[float] = []
            all_freed = trio.Event()

            async def heartbeat_until_freed(peer: WirePeer) -> None:
                try:
                    await peer.heartbeats()
                except (trio.BrokenResourceError, OSError):
                    freed.append(time.monotonic())
                    if len(freed) == len(peers):
                        all_freed.set()

            nursery = await stack.enter_async_context(trio.open_nursery())
            for peer in peers:
                nursery.start_soon(heartbeat_until_freed, peer)
            limit = DISCONNECT_TIMEOUT + FILL_ALLOWANCE + MARGIN
            dropped = [await room.wait_presence(name, "disconnected", limit) for name in names]
            # Even though the peers keep their connections open, the daemon frees them: a
            # write stuck behind a closed window is aborted by the kernel (TCP_USER_TIMEOUT,
            # twice the disconnect timeout); a socket closed with unread data is reset.
            with trio.fail_after(2 * DISCONNECT_TIMEOUT + FILL_ALLOWANCE + MARGIN):
                await all_freed.wait()
        # Why: its writes were stuck for the disconnect timeout (too-slow), or its heartbeats
        # stopped getting through once its receive buffer was full (idle-timeout). The
        # reason cannot reach a peer that does not read: the daemon's counters tell.
        closes = await closing_counts(daemon)
        reasons = {k: closes[k] - closes_before[k] for k in closes if closes[k] > closes_before[k]}
        assert set(reasons) <= {"too-slow", "idle-timeout"}, reasons
        assert sum(reasons.values()) == len(names), reasons
        await episode.check(
            max(dropped),
            reasons=",".join(f"{k}:{v:g}" for k, v in sorted(reasons.items())),
            dropped_after_s=max(dropped) - stopped,
            sockets_freed_after_s=max(freed) - stopped,
        )


# -- (b) stops sending
async def test_a_member_that_stops_sending_is_dropped_at_the_disconnect_timeout(
    daemon: DaemonProcess,
) -> None:
    async with healthy_room(daemon) as room:
        episode = Episode("stops sending", room)
        await episode.begin()
        async with wire_peer(daemon) as silent:
            await silent.join(new_user("stops-sending"), room.room_id)
            joined = time.monotonic()
            with trio.fail_after(DISCONNECT_TIMEOUT + MARGIN):
                seen = await silent.read_until_closed()  # it reads; it never sends
            closed = time.monotonic() - joined
        assert [m["reason"] for m in seen if m["type"] == "closing"] == ["idle-timeout"]
        assert silent.close_code == CLOSE_CODES["idle-timeout"]
        assert closed >= DISCONNECT_TIMEOUT - EARLY
        dropped = await room.wait_presence("stops-sending", "disconnected", MARGIN)
        await episode.check(dropped, closed_after_s=closed)


# -- (c) half-closed
async def test_a_half_closed_member_is_dropped_at_once(daemon: DaemonProcess) -> None:
    async with healthy_room(daemon) as room:
        episode = Episode("half-closed", room)
        await episode.begin()
        async with wire_peer(daemon) as half:
            await half.join(new_user("half-closed"), room.room_id)
            half.stream.socket.shutdown(socket.SHUT_WR)
            shut = time.monotonic()
            dropped = await room.wait_presence("half-closed", "disconnected", MARGIN)
            # The daemon closes its side too: no close frame (the peer has gone), an EOF.
            # hypercorn holds the socket until its ping task next wakes up.
            with trio.fail_after(PING_INTERVAL + MARGIN):
                await half.read_until_closed()
            closed = time.monotonic() - shut
        assert half.close_code == 1006
        await episode.check(
            time.monotonic(), dropped_after_s=dropped - shut, socket_closed_after_s=closed
        )


# -- (d) upgrade, then silence --------------------------------------------------------------------
async def test_a_socket_that_never_says_hello_is_closed_at_the_hello_deadline(
    daemon: DaemonProcess,
) -> None:
    async with healthy_room(daemon) as room:
        episode = Episode("never says hello", room)
        await episode.begin()
        async with wire_peer(daemon, upgrade=False) as mute:
            await mute.upgrade()
            upgraded = time.monotonic()
            with trio.fail_after(HELLO_TIMEOUT_SECONDS + MARGIN):
                seen = await mute.read_until_closed()
            closed = time.monotonic() - upgraded
        assert [m["type"] for m in seen] == ["closing"]
        assert seen[0]["reason"] == "idle-timeout"
        assert mute.close_code == CLOSE_CODES["idle-timeout"]
        assert closed >= HELLO_TIMEOUT_SECONDS - EARLY
        await episode.check(time.monotonic(), closed_after_s=closed)


# -- (e) slowloris
async def test_an_upgrade_that_never_completes_is_closed_by_the_http_idle_timeout(
    daemon: DaemonProcess,
) -> None:
    host, port = address(daemon)
    async with healthy_room(daemon) as room:
        episode = Episode("slowloris upgrade", room)
        await episode.begin()
        async with await trio.open_tcp_stream(host, port) as stream, trio.open_nursery() as nursery:
            connected = time.monotonic()
            await stream.send_all(
                b"GET /api/v1/syncplay/ws HTTP/1.1\r\nHost: " + host.encode() + b"\r\n"
                b"Upgrade: websocket\r\nConnection: Upgrade\r\nX-Slow: "
            )

            async def trickle() -> None:
                """One more byte of a header that never ends, twice a second."""
                try:
                    while True:
                        await trio.sleep(0.5)
                        await stream.send_all(b"x")
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    pass

            nursery.start_soon(trickle)
            with trio.fail_after(HTTP_IDLE_TIMEOUT_SECONDS + MARGIN):
                try:
                    data = await stream.receive_some(65536)
                except trio.BrokenResourceError:  # a reset is a close too
                    data = b""
            closed = time.monotonic() - connected
            nursery.cancel_scope.cancel()
        assert data == b""  # closed without an answer
        assert closed >= HTTP_IDLE_TIMEOUT_SECONDS - EARLY
        await episode.check(time.monotonic(), closed_after_s=closed)


# -- the connection's mechanisms, in memory and in virtual time ----------------------------------
class StuckSocket:
    """A server-side websocket whose writes can block the way hypercorn's do.

    From write number ``block_from`` on, a write waits (shielded, as hypercorn shields its
    socket writes) until ``release`` is set: a peer that stopped reading. Frames from the
    peer are offered through an unbuffered channel, so offering one blocks until it is read.
    """

    def __init__(self, block_from: int | None = None, write_seconds: float = 0.0) -> None:
        self.block_from = block_from
        self.write_seconds = write_seconds
        self.release = trio.Event()
        self.sent: list[str] = []
        self.close_code: int | None = None
        self.offer, self._frames = trio.open_memory_channel[str](0)

    async def send(self, data: str) -> None:
        if self.block_from is not None and len(self.sent) >= self.block_from:
            with trio.CancelScope(shield=True):
                await self.release.wait()
        await trio.sleep(self.write_seconds)
        self.sent.append(data)

    async def receive(self) -> str | bytes:
        return await self._frames.receive()

    async def close(self, code: int, reason: str = "") -> None:
        self.close_code = code


async def _ignore(connection: Connection, data: str | bytes) -> None:
    pass


async def test_a_write_stuck_for_the_send_timeout_closes_as_too_slow_and_drains(
    autojump_clock: trio.testing.MockClock,
) -> None:
    ws = StuckSocket(block_from=1)
    connection = Connection(ws, new_user(), trio.current_time, send_timeout=3.0)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(connection.run_writer)
        nursery.start_soon(connection.serve_reader, _ignore)
        connection.send('{"type":"first"}')
        connection.send('{"type":"second"}')  # this write never completes
        start = trio.current_time()
        await connection.done.wait()  # the room lets go of it
        assert trio.current_time() - start == pytest.approx(3.0)
        assert connection.closing is not None and connection.closing[0] == "too-slow"
        # The peer still sends: its frames are read (and dropped), so the web server never
        # stops reading the socket and would see its end.
        with trio.fail_after(1):
            for i in range(50):
                await ws.offer.send(f'{{"type":"heartbeat","n":{i}}}')
        ws.release.set()  # the socket ends (or the peer reads again): the writer says why
    assert protocol.decode_server(ws.sent[-1]) == protocol.Closing(
        reason="too-slow", message="the peer has not taken a message for 3 s"
    )
    assert ws.close_code == CLOSE_CODES["too-slow"]


async def test_writes_that_go_through_never_trip_the_send_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Each write takes two thirds of the timeout; together, far more than it.
    ws = StuckSocket(write_seconds=2.0)
    connection = Connection(ws, new_user(), trio.current_time, send_timeout=3.0)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(connection.run_writer)
        for i in range(20):
            assert connection.send(f'{{"type":"n{i}"}}')
        connection.finish()
    assert connection.closing is None
    assert len(ws.sent) == 20
    assert trio.current_time() == pytest.approx(40.0)
