"""A Syncplay client's TCP stream, seen by the live room as one more WebSocket.

The room's connection class (:class:`~syncplayd.server.live.connection.Connection`)
talks to a ``WebSocketLike``: ``receive`` the client's next message, ``send``
one of the room's, ``close`` with a reason. :class:`SyncplayLink` is that, over
Syncplay's line protocol: ``receive`` reads lines and gives the room the
syncplayd messages the :class:`~syncplayd.core.syncplay.session.BridgeSession`
makes of them (answering on the spot what the room has no part in: ``List``,
a refused ``Set``); ``send`` turns the room's messages into Syncplay lines.
So a desktop client gets the room's outbox, rate limits, ``too-slow`` and
close reasons exactly as a browser does.

:meth:`SyncplayLink.run_clock` sends what Syncplay expects on time: a ``State``
every second, each room change at the instant it takes effect, and drops a
client silent for 12.5 s.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Final

import msgspec
import trio

from syncplayd.core import protocol
from syncplayd.core.syncplay import wire
from syncplayd.core.syncplay.session import BridgeSession
from syncplayd.server.live.direct_socket import SocketClosed

log = logging.getLogger(__name__)

READ_SIZE: Final = 16 * 1024
#: Close reasons after which the client should not come back on its own: it is told
#: why with an ``Error`` (Syncplay's client shows it and stops retrying). For the
#: others (a restart, an idle or slow connection) the stream just ends, and the
#: client reconnects as it does after any network failure.
FINAL_REASONS: Final = frozenset(
    {"room-ended", "kicked", "banned", "replaced", "unauthorized", "protocol-error", "left"}
)

_encode_client = msgspec.json.Encoder().encode


class SyncplayLink:
    """Lines in, lines out, for one joined Syncplay client (see the module docstring)."""

    def __init__(
        self,
        stream: trio.abc.Stream,
        reader: wire.LineReader,
        session: BridgeSession,
        now: Callable[[], float],
        *,
        chat_limit: int,
        send_timeout: float,
    ) -> None:
        self._stream = stream
        self._reader = reader
        self.session = session
        self._now = now
        self._chat_limit = chat_limit
        self._send_timeout = send_timeout
        self._write_lock = trio.Lock()
        self._frames: deque[str] = deque()
        self._wake = trio.Event()
        self._closed = False
        self._clock_stopped = False
        self._early: list[bytes] = []
        #: Called when the session wants the connection closed (a silent client).
        self.on_drop: Callable[[str], None] = lambda message: None
        #: Plays an item of the room's queue (a playlist selection): a service call,
        #: whose refusal is the notice it returns.
        self.play_item: Callable[[str], Awaitable[str | None]] | None = None

    # -- WebSocketLike ------------------------------------------------------------------
    def read_first(self, lines: list[bytes]) -> None:
        """Lines that came with the Hello: handled before anything read later."""
        self._early = lines

    async def receive(self) -> str:
        """The next message for the room, read from the client's lines."""
        while not self._frames:
            try:
                if self._early:
                    lines, self._early = self._early, []
                else:
                    lines = self._reader.feed(await self._read())
                for line in lines:
                    await self.handle_line(line)
            except wire.WireError as exc:
                await self.fail(str(exc))
                raise SocketClosed from None
            except SocketClosed:
                raise
            except Exception:
                # This runs in the room's nursery: a fault in translating one client's
                # line must cost that client its connection, not the room everyone's.
                log.exception(
                    "syncplay client %s: a line could not be handled", self.session.username
                )
                await self.fail("the server could not handle a message")
                raise SocketClosed from None
        return self._frames.popleft()

    async def send(self, data: str) -> None:
        """One of the room's messages."""
        message = protocol.decode_server(data)
        self.session.room_message(message, self._now())
        await self._flush()

    async def close(self, code: int, reason: str = "") -> None:
        """The room closes the connection; ``reason`` is a close reason of protocol.md."""
        message = self.session.drop or reason
        if reason in FINAL_REASONS and not self._closed:
            await self._write_lines([{"Error": {"message": message}}])
        await self.aclose()

    # -- the client's lines -------------------------------------------------------------
    async def handle_line(self, line: bytes) -> None:
        now = self._now()
        session = self.session
        session.heard(now)
        for command, body in wire.decode_line(line):
            if command == "State":
                session.client_state(wire.parse_state(body), now)
            elif command == "Set":
                for item in wire.parse_set(body):
                    session.client_set(item, now)
            elif command == "Chat":
                session.client_chat(wire.parse_chat(body, self._chat_limit))
            elif command == "List":
                session.client_list()
            elif command == "Error":
                raise wire.WireError("the client reported an error")
            # Hello and TLS again, once joined: nothing to do (Syncplay's server would
            # add the watcher a second time).
        for frame in session.take_frames():
            self._frames.append(_encode_client(frame).decode())
        for item_id in session.take_queue_plays():
            refusal = await self.play_item(item_id) if self.play_item is not None else None
            if refusal is not None:
                session.notice(refusal)
        await self._flush()

    async def _read(self) -> bytes | bytearray:
        try:
            data = await self._stream.receive_some(READ_SIZE)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            raise SocketClosed from None
        if not data:
            raise SocketClosed
        return data

    # -- time ---------------------------------------------------------------------------
    async def run_clock(self) -> None:
        """Send what is due when it is due (``BridgeSession.tick``)."""
        while not (self._closed or self._clock_stopped):
            wake = self.session.next_wake()
            with trio.move_on_at(trio.current_time() + max(0.0, wake - self._now())):
                await self._wake.wait()
            self._wake = trio.Event()
            self.session.tick(self._now())
            if self.session.drop is not None:
                self.on_drop(self.session.drop)
                return
            # Not ``_flush``: waking itself, this loop would spin (next_wake is read anew).
            await self._send_due()

    def stop_clock(self) -> None:
        self._clock_stopped = True
        self._wake.set()

    # -- writing ------------------------------------------------------------------------
    async def _flush(self) -> None:
        await self._send_due()
        # A change may now be due earlier than the clock task planned.
        self._wake.set()

    async def _send_due(self) -> None:
        lines = self.session.take_lines()
        if lines:
            await self._write_lines(lines)

    async def _write_lines(self, lines: list[dict[str, object]]) -> None:
        data = b"".join(wire.encode_line(line) for line in lines)
        async with self._write_lock:
            if self._closed:
                return
            try:
                with trio.fail_after(self._send_timeout):
                    await self._stream.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError, trio.TooSlowError):
                # Gone, or not taking anything: the reader sees the end and the room lets go.
                await self.aclose()

    async def fail(self, message: str) -> None:
        """Tell the client what was wrong, then end it (Syncplay's ``dropWithError``)."""
        log.info("syncplay client %s dropped: %s", self.session.username, message)
        await self._write_lines([{"Error": {"message": message}}])
        await self.aclose()

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._wake.set()
        with trio.CancelScope(shield=True), trio.move_on_after(1.0):
            await self._stream.aclose()
