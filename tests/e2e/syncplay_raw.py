"""A bare Syncplay line-protocol client, for tests of the daemon's Syncplay listener.

It speaks what Syncplay 1.6.9's ``SyncClientProtocol`` speaks (one JSON object per CRLF
line over TCP, STARTTLS before Hello), but sends exactly what a test tells it to, so that
a test can also misbehave: raw bytes, oversized or broken lines, silence.

The one piece of Syncplay's client logic it carries is the part the server depends on to
apply a client's changes at all: the ``ignoringOnTheFly`` echo counters and the ping
fields (``handleState`` / ``sendState`` in syncplay/protocols.py). A State from the client
is ignored by the server until the client has echoed the server's last forced-State
counter; :meth:`SyncplayRaw.send_state` echoes it as the real client does, and
:meth:`SyncplayRaw.echo_state` answers a State with the position and pause state the
server asked for, as a player that follows the server would.

Each connection is made from a fresh loopback address (all of 127.0.0.0/8 is local on
Linux): the listener rate-limits connections per address, and one test module opens more
connections than its burst allows.
"""

from __future__ import annotations

import itertools
import json
import ssl
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from typing import Any

import trio

TIMEOUT = 10.0
SYNCPLAY_VERSION = "1.6.9"
READ_SIZE = 64 * 1024

_addresses = itertools.count(2)


def fresh_address() -> str:
    """A loopback source address no other connection of this process has used."""
    n = next(_addresses)
    return f"127.79.{n // 250}.{n % 250 + 2}"


class Closed(Exception):
    """The server ended the stream (EOF, or a reset after it closed)."""


class SyncplayRaw:
    """Lines in and out, with deadlines; see the module docstring."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self._buffer = bytearray()
        self._lines: deque[dict[str, Any]] = deque()
        self.closed = False
        #: Every message received, in order (for assertions on what came before).
        self.received: list[dict[str, Any]] = []
        # Syncplay's client-side echo counters (SyncClientProtocol).
        self.server_ignoring = 0
        self.client_ignoring = 0
        # The server's last ping stamp, to be echoed once as ``latencyCalculation``.
        self._latency_calculation: float | None = None
        # The player this client pretends to be: where it stands and since when.
        self.position = 0.0
        self.paused = True
        self._position_at = trio.current_time()
        #: Answer every State as it arrives (what a real client does).
        self.auto_echo = False
        #: Seconds added to the round trips the server measures (as if the echo of its
        #: ping stamp had taken that much longer): a slower link, without waiting.
        self.extra_rtt = 0.0

    # -- bytes and lines ----------------------------------------------------------------
    async def send_raw(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def send(self, message: dict[str, Any]) -> None:
        await self.send_raw(json.dumps(message).encode() + b"\r\n")

    async def _fill(self) -> None:
        try:
            data = await self.stream.receive_some(READ_SIZE)
        except trio.BrokenResourceError:
            # A reset right after the server closed: the end all the same.
            data = b""
        if not data:
            self.closed = True
            raise Closed
        self._buffer += data
        while (end := self._buffer.find(b"\n")) >= 0:
            line = bytes(self._buffer[:end])
            del self._buffer[: end + 1]
            # Syncplay's wire: one JSON object per CRLF-terminated line.
            assert line.endswith(b"\r"), f"a line not ended by CRLF: {line!r}"
            message = json.loads(line[:-1])
            assert isinstance(message, dict), line
            self._lines.append(message)

    async def recv(self, limit: float = TIMEOUT) -> dict[str, Any]:
        """The next message (a dict of commands), or :class:`Closed` at the end."""
        with trio.fail_after(limit):
            while not self._lines:
                if self.closed:
                    raise Closed
                await self._fill()
        message = self._lines.popleft()
        self.received.append(message)
        if "State" in message:
            self._heard_state(message["State"])
            if self.auto_echo and not self.closed:
                # If the server is closing, the next read sees the end.
                with suppress(trio.BrokenResourceError):
                    await self.echo_state()
        return message

    async def expect(
        self,
        command: str,
        predicate: Callable[[Any], bool] = lambda body: True,
        limit: float = TIMEOUT,
    ) -> Any:
        """The body of the next ``command`` for which ``predicate`` holds, skipping others.

        An ``Error`` on the way fails the test, unless it is what was asked for.
        """
        with trio.fail_after(limit):
            while True:
                message = await self.recv(limit)
                if command != "Error":
                    assert "Error" not in message, message
                if command in message and predicate(message[command]):
                    return message[command]

    async def read_until_closed(self, limit: float = TIMEOUT) -> list[dict[str, Any]]:
        """Every message up to the end of the stream."""
        seen: list[dict[str, Any]] = []
        with trio.fail_after(limit):
            while True:
                try:
                    seen.append(await self.recv(limit))
                except Closed:
                    return seen

    async def refused(self, limit: float = TIMEOUT) -> str:
        """The server's last word must be an Error, then the end: its message."""
        seen = await self.read_until_closed(limit)
        assert seen, "the stream ended without an Error"
        assert "Error" in seen[-1], seen
        message: str = seen[-1]["Error"]["message"]
        return message

    # -- the handshake ------------------------------------------------------------------
    async def start_tls(self, context: ssl.SSLContext) -> trio.SSLStream[trio.abc.Stream]:
        """STARTTLS: ask, and wrap the stream if the server says yes (else stay in plain)."""
        await self.send({"TLS": {"startTLS": "send"}})
        answer = await self.expect("TLS")
        if answer != {"startTLS": "true"}:
            raise AssertionError(f"the server did not start TLS: {answer}")
        assert not self._buffer, "bytes after the STARTTLS answer, before the handshake"
        tls = trio.SSLStream(self.stream, context, server_hostname="localhost")
        with trio.fail_after(TIMEOUT):
            await tls.do_handshake()
        self.stream = tls
        return tls

    async def send_hello(
        self, name: str, room: str, password_md5: str | None = None, **extra: Any
    ) -> None:
        hello: dict[str, Any] = {
            "username": name,
            "room": {"name": room},
            "version": "1.2.255",  # what 1.6.9 sends; the real one is in realversion
            "realversion": SYNCPLAY_VERSION,
            "features": {"sharedPlaylists": True, "chat": True, "readiness": True},
        } | extra
        if password_md5 is not None:
            hello["password"] = password_md5
        await self.send({"Hello": hello})

    async def hello(
        self, name: str, room: str, password_md5: str | None = None
    ) -> list[dict[str, Any]]:
        """Say Hello and read the answer up to the first State (included): joined.

        An Error instead fails the test (see :meth:`refused` for refusals).
        """
        await self.send_hello(name, room, password_md5)
        seen: list[dict[str, Any]] = []
        while True:
            message = await self.recv()
            assert "Error" not in message, message
            seen.append(message)
            if "State" in message:
                return seen

    # -- State --------------------------------------------------------------------------
    def _heard_state(self, state: dict[str, Any]) -> None:
        """SyncClientProtocol.handleState: the counters, the ping, the player follows."""
        ignore = state.get("ignoringOnTheFly", {})
        if "server" in ignore:
            self.server_ignoring = ignore["server"]
            self.client_ignoring = 0
        elif "client" in ignore and ignore["client"] == self.client_ignoring:
            self.client_ignoring = 0
        ping = state.get("ping", {})
        if "latencyCalculation" in ping:
            self._latency_calculation = ping["latencyCalculation"]
        play = state.get("playstate")
        if play is not None and not self.client_ignoring:
            self.set_player(float(play["position"]), bool(play["paused"]))

    def set_player(self, position: float, paused: bool) -> None:
        self.position = position
        self.paused = paused
        self._position_at = trio.current_time()

    def player_position(self) -> float:
        if self.paused:
            return self.position
        return self.position + trio.current_time() - self._position_at

    async def send_state(
        self,
        position: float | None = None,
        paused: bool | None = None,
        *,
        do_seek: bool = False,
        change: bool = False,
    ) -> None:
        """SyncClientProtocol.sendState: the player's state (or the one given), the ping,
        and the echo counters. ``change`` marks a change made by the user (a pause, a
        seek): the client then ignores the server until it echoes the client counter."""
        if position is not None or paused is not None:
            self.set_player(
                self.player_position() if position is None else position,
                self.paused if paused is None else paused,
            )
        state: dict[str, Any] = {}
        if self.client_ignoring == 0 or self.server_ignoring != 0:
            state["playstate"] = {"position": self.player_position(), "paused": self.paused}
            if do_seek:
                state["playstate"]["doSeek"] = True
        ping: dict[str, Any] = {"clientLatencyCalculation": trio.current_time(), "clientRtt": 0}
        if self._latency_calculation is not None:
            ping["latencyCalculation"] = self._latency_calculation - self.extra_rtt
            self._latency_calculation = None
        state["ping"] = ping
        if change:
            self.client_ignoring += 1
        if self.server_ignoring or self.client_ignoring:
            ignoring: dict[str, int] = {}
            if self.server_ignoring:
                ignoring["server"] = self.server_ignoring
                self.server_ignoring = 0
            if self.client_ignoring:
                ignoring["client"] = self.client_ignoring
            state["ignoringOnTheFly"] = ignoring
        await self.send({"State": state})

    async def echo_state(self) -> None:
        """Answer the last State as a real client does: the player now follows it."""
        await self.send_state()


def context_trusting(certificate: str) -> ssl.SSLContext:
    """A client context that trusts only ``certificate`` (a self-signed one)."""
    context = ssl.create_default_context(cafile=certificate)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


@asynccontextmanager
async def syncplay_client(port: int, host: str = "127.0.0.1") -> AsyncIterator[SyncplayRaw]:
    """A connection to the listener at ``host:port`` from a fresh loopback address."""
    stream = await trio.open_tcp_stream(host, port, local_address=fresh_address())
    client = SyncplayRaw(stream)
    try:
        yield client
    finally:
        with trio.move_on_after(2) as scope:
            scope.shield = True
            await client.stream.aclose()
