"""One participant's WebSocket as the room sees it: sends that never block, a reasoned close.

Two transports carry it. :class:`DirectConnection` (the front door's sockets,
nearly all of them) writes each message to its socket as it is sent, and a
broadcast's frame is encoded once for all members (:class:`Frame`); see
``direct_socket.py``. :class:`Connection` serves the WebSockets Quart accepts (an
upgrade on a kept-alive HTTP connection): the room drops messages into its
bounded outbox with ``send`` (never blocking), and a writer task per
connection drains it. The rest of this docstring is about that one.

A connection that cannot keep up is closed with ``too-slow`` instead of
slowing everyone else down: when its outbox is full, or when one write has
been stuck for ``send_timeout`` seconds (a peer that stopped reading: its TCP
window is closed and the kernel's buffers are full).

hypercorn shields its socket writes, so a write to a peer that never reads
again cannot be cancelled; it ends when the socket does. Two things make sure
the socket does end: once the room has let go of a connection, its frames
are still read (and dropped), so that hypercorn keeps reading the socket and
sees the peer's EOF, a read timeout or an error; and the daemon sets
``TCP_USER_TIMEOUT`` on its listening sockets (``server/process/daemon.py``), so that
the kernel aborts a connection whose data stays unacknowledged.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

import trio

from syncplayd.clocks import monotonic
from syncplayd.core import protocol
from syncplayd.identity import Principal
from syncplayd.server.live.direct_socket import DirectSocket, SocketClosed
from syncplayd.server.live.ws_frames import frame_text, server_frame
from syncplayd.server.metric_labels import frame_type, message_type
from syncplayd.server.metrics import Metrics

log = logging.getLogger(__name__)

OUTBOX_SIZE = 256
CLOSE_GRACE_SECONDS = 1.0

#: WebSocket close codes by reason (documented in docs/protocol.md).
CLOSE_CODES: dict[str, int] = {
    "left": 1000,
    "protocol-error": 1008,
    "server-restarting": 1012,
    "room-ended": 4001,
    "kicked": 4002,
    "replaced": 4003,
    "too-slow": 4004,
    "idle-timeout": 4005,
    "too-many-connections": 4006,
    "banned": 4007,
    "moved": 4008,
    "unauthorized": 4401,
}


class WebSocketLike(Protocol):
    """What a connection needs from a server-side websocket (Quart's satisfies it)."""

    async def send(self, data: str) -> None: ...
    async def receive(self) -> str | bytes: ...
    async def close(self, code: int, reason: str = "") -> None: ...


@dataclass(frozen=True, slots=True)
class PendingPong:
    """A pong whose send time (``t2``) is stamped by the writer, as late as possible."""

    id: int
    t0: float
    t1: float

    def stamped(self, t2: float) -> protocol.Pong:
        return protocol.Pong(id=self.id, t0=self.t0, t1=self.t1, t2=t2)


Outgoing = str | PendingPong


class Frame:
    """A message encoded once: a broadcast's, for every member, or a large one's.

    ``text`` for connections that queue text (:class:`Connection`), ``wire`` (the
    WebSocket frame's bytes) for those that write to their socket themselves
    (:class:`DirectConnection`). Made from its frame's bytes (:meth:`of_wire`), the
    text is decoded only if a connection asks for it.
    """

    __slots__ = ("_text", "kind", "wire")

    def __init__(self, text: str, kind: str) -> None:
        self._text: str | None = text
        self.kind = kind  # the message type, for the metrics
        self.wire = server_frame(text)

    @classmethod
    def of_wire(cls, wire: bytes, kind: str) -> Frame:
        """The frame whose bytes are ``wire`` (a server text frame)."""
        frame = cls.__new__(cls)
        frame._text, frame.kind, frame.wire = None, kind, wire
        return frame

    @property
    def text(self) -> str:
        if self._text is None:
            self._text = frame_text(self.wire)
        return self._text


class BaseConnection:
    """What the room holds of a joined participant's socket, whatever carries it.

    The room never awaits a connection: ``send`` and ``send_frame`` never block,
    ``close`` ends it with a reason. ``send`` counts the message in the metrics;
    ``send_frame`` does not (the room counts a broadcast once, for all members).
    """

    #: A desktop player through the Syncplay bridge (``Member.desktop``).
    desktop = False

    def __init__(
        self,
        principal: Principal,
        now: Callable[[], float],
        metrics: Metrics | None = None,
    ) -> None:
        self._metrics = metrics
        self.principal = principal
        self.session_id = ""
        self._now = now
        self.closing: tuple[protocol.CloseReason, str] | None = None
        self.scope = trio.CancelScope()
        self.done = trio.Event()
        #: Called once the reader has ended: what the socket's handshake handed over
        #: to the room is given back (see ``DirectRoute``).
        self.on_done: Callable[[], None] | None = None
        self.limited_notice_at = 0.0

    def send(self, message: protocol.ServerMessage | Outgoing | Frame) -> bool:
        """Send one message to this member; ``False`` if the connection is going away."""
        if isinstance(message, Frame):
            kind, sent = message.kind, self.send_frame(message)
        else:
            if isinstance(message, PendingPong):
                kind = "pong"
            elif isinstance(message, str):
                kind = frame_type(message)
            else:
                kind, message = message_type(message), protocol.encode(message)
            sent = self._put(message)
        if not sent:
            return False
        if self._metrics is not None:
            self._metrics.message_out(kind)
        return True

    def _put(self, item: Outgoing) -> bool:
        """Hand one encoded message (or a pong to stamp) to the transport."""
        raise NotImplementedError

    def send_frame(self, frame: Frame) -> bool:
        """Send an encoded frame (not counted here; see the class)."""
        raise NotImplementedError

    def close(self, reason: protocol.CloseReason, message: str) -> None:
        """End the connection: say why (``closing`` frame, close code), then let go."""
        if self.closing is not None:
            return
        self.closing = (reason, message)
        if self._metrics is not None and reason != "left":
            self._metrics.error(reason)  # too-slow, idle-timeout, replaced, room-ended...
        self._closed()
        self.scope.cancel()  # the reader: the room lets go of this connection now

    def _closed(self) -> None:
        """What the transport does on ``close`` (after ``closing`` is set)."""

    def _too_slow(self, message: str) -> None:
        log.info("closing %s as too slow: %s", self.session_id or "a connection", message)
        self.close("too-slow", message)

    async def serve_reader(
        self, handle_frame: Callable[[BaseConnection, str | bytes], Awaitable[None]]
    ) -> None:
        """Read frames until the peer goes or the connection is closed (a room task)."""
        receive = self._receiver()  # called directly: no frame more per idle reader
        try:
            with self.scope:
                while True:
                    await handle_frame(self, await receive())
        except SocketClosed:
            pass  # the peer went away or closed: the room lets go
        finally:
            self.done.set()
            on_done, self.on_done = self.on_done, None
            if on_done is not None:
                on_done()

    def _receiver(self) -> Callable[[], Awaitable[str | bytes]]:
        """The transport's ``receive``: the peer's next message."""
        raise NotImplementedError


class Connection(BaseConnection):
    """A joined participant's socket behind an ASGI server: outbox, writer task, close.

    Used for WebSockets that Quart serves (an upgrade on a kept-alive HTTP
    connection); the front door's sockets are :class:`DirectConnection`.
    """

    def __init__(
        self,
        ws: WebSocketLike,
        principal: Principal,
        now: Callable[[], float],
        metrics: Metrics | None = None,
        *,
        send_timeout: float | None = None,
    ) -> None:
        super().__init__(principal, now, metrics)
        self._send_timeout = send_timeout
        self.ws = ws
        self._outbox, self._pending = trio.open_memory_channel[Outgoing](OUTBOX_SIZE)
        self._writer_scope = trio.CancelScope()
        # The write in progress: when it started (trio time), and a serial number.
        self._sending_since: float | None = None
        self._writes = 0
        self._write_started = trio.Event()

    # -- used by the room (never blocks) ----------------------------------------------
    def send_frame(self, frame: Frame) -> bool:
        return self._put(frame.text)

    def _put(self, item: Outgoing) -> bool:
        """Queue it; a full outbox closes the connection as too slow."""
        if self.closing is not None:
            return False
        try:
            self._outbox.send_nowait(item)
        except trio.WouldBlock:
            self._too_slow(f"more than {OUTBOX_SIZE} messages waiting to be sent")
            return False
        except trio.ClosedResourceError:
            return False  # finished: the socket is going away
        return True

    def _closed(self) -> None:
        # Whatever is still queued is dropped: for a slow peer that is the point.
        self._writer_scope.cancel()

    def finish(self) -> None:
        """No more messages: the writer sends what is queued (or the goodbye) and stops."""
        self._outbox.close()

    # -- the tasks ----------------------------------------------------------------------
    def _receiver(self) -> Callable[[], Awaitable[str | bytes]]:
        return self.ws.receive

    async def run_writer(self) -> None:
        """Drain the outbox into the socket; after a close, say why.

        This runs in the socket's own handler task, not in the room's nursery:
        hypercorn shields its socket writes, so a peer that stops reading can
        hold a write until its socket ends, and the room must be able to end
        regardless. Beside the writer run a watch on stuck writes and, once the
        room has let go, a reader that drops what the peer still sends.
        """
        async with trio.open_nursery() as helpers:
            if self._send_timeout is not None:
                helpers.start_soon(self._watch_writes, self._send_timeout)
            helpers.start_soon(self._drain_after_release)
            try:
                await self._write_all()
            finally:
                helpers.cancel_scope.cancel()

    async def _write_all(self) -> None:
        try:
            with self._writer_scope:
                async for item in self._pending:
                    if isinstance(item, PendingPong):
                        item = protocol.encode(item.stamped(self._now()))
                    await self._send_watched(item)
        except Exception as exc:  # noqa: BLE001 - the peer is gone; the reader notices too
            log.debug("writer of %s stopped: %s", self.session_id, exc)
            self.scope.cancel()
            return
        if self.closing is not None:
            with trio.move_on_after(CLOSE_GRACE_SECONDS):
                await self._say_goodbye(*self.closing)

    async def _send_watched(self, data: str) -> None:
        """``ws.send``, with its start visible to :meth:`_watch_writes`."""
        self._writes += 1
        self._sending_since = monotonic()
        self._write_started.set()
        try:
            await self.ws.send(data)
        finally:
            self._sending_since = None

    async def _watch_writes(self, limit: float) -> None:
        """Close the connection as too slow once a single write has waited ``limit`` seconds.

        A write only waits when the kernel's send buffer is full, that is when
        the peer has not taken data for a while. The watch wakes up at most
        once per ``limit`` while writes go through, not once per write.
        """
        while True:
            started = self._sending_since
            if started is None:
                self._write_started = trio.Event()
                await self._write_started.wait()
                continue
            serial = self._writes
            await trio.sleep_until(started + limit)
            if self._writes == serial and self._sending_since is not None:
                self._too_slow(f"the peer has not taken a message for {limit:g} s")
                return

    async def _drain_after_release(self) -> None:
        """Once the room has let go, read and drop the peer's frames until the writer ends.

        hypercorn hands received frames to the application through bounded
        queues: if nobody read them, it would stop reading the socket, and would
        then never notice the peer's EOF or a read timeout. A writer stuck on a
        peer that stops reading would then keep its socket (and this task) for
        as long as the peer keeps the connection open.
        """
        await self.done.wait()
        try:
            while True:
                await self.ws.receive()
        except Exception as exc:  # noqa: BLE001 - the socket is gone: nothing left to drain
            log.debug("drain of %s stopped: %s", self.session_id, exc)

    async def _say_goodbye(self, reason: protocol.CloseReason, message: str) -> None:
        try:
            closing = protocol.Closing(reason=reason, message=message)
            await self.ws.send(protocol.encode(closing))
            await self.ws.close(CLOSE_CODES.get(reason, 1000), reason)
        except Exception as exc:  # noqa: BLE001 - the peer may be gone; nothing to do then
            log.debug("closing %s: %s", self.session_id, exc)


class DirectConnection(BaseConnection):
    """A joined participant on a :class:`DirectSocket`: every send is a socket write.

    No outbox and no writer task: a message is written when it is sent, and only
    what the peer's TCP window cannot take waits, in the socket's bounded
    backlog (too much of it, or no progress for ``send_timeout``: ``too-slow``).
    The reader runs in the room, as for :class:`Connection`.
    """

    def __init__(
        self,
        socket: DirectSocket,
        principal: Principal,
        now: Callable[[], float],
        metrics: Metrics | None = None,
    ) -> None:
        super().__init__(principal, now, metrics)
        self.socket = socket
        self._write = socket.write
        socket.on_too_slow = self._too_slow

    def _put(self, item: Outgoing) -> bool:
        if self.closing is not None:
            return False
        if isinstance(item, PendingPong):
            # Stamped as late as possible: now is when it goes out.
            item = protocol.encode(item.stamped(self._now()))
        return self._write(server_frame(item))

    def send_frame(self, frame: Frame) -> bool:
        # The broadcast loop's body, once per member: kept to a check and a write.
        return self.closing is None and self._write(frame.wire)

    def _closed(self) -> None:
        assert self.closing is not None  # noqa: S101 - set by close()
        reason, message = self.closing
        self.socket.write(
            server_frame(protocol.encode(protocol.Closing(reason=reason, message=message)))
        )
        self.socket.close_now(CLOSE_CODES.get(reason, 1000), reason)

    def _receiver(self) -> Callable[[], Awaitable[str | bytes]]:
        return self.socket.receive
