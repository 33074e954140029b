"""One participant's WebSocket, with a bounded outbox and a reasoned close.

The room never awaits a socket: it drops messages into each connection's
bounded outbox with ``send`` (never blocking), and a writer task per
connection drains it. A connection whose outbox is full cannot keep up; it is
closed with ``too-slow`` instead of slowing everyone else down.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

import trio

from syncplayd.core import protocol
from syncplayd.identity import Principal
from syncplayd.server.metrics import Metrics, frame_type

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


Outgoing = str | PendingPong


class Connection:
    """A joined participant's socket: outbox, writer, and the way it ends."""

    def __init__(
        self,
        ws: WebSocketLike,
        principal: Principal,
        now: Callable[[], float],
        metrics: Metrics | None = None,
    ) -> None:
        self._metrics = metrics
        self.ws = ws
        self.principal = principal
        self.session_id = ""
        self._now = now
        self._outbox, self._pending = trio.open_memory_channel[Outgoing](OUTBOX_SIZE)
        self.closing: tuple[protocol.CloseReason, str] | None = None
        self.scope = trio.CancelScope()
        self._writer_scope = trio.CancelScope()
        self.done = trio.Event()
        self.sent = 0
        self.limited_notice_at = 0.0

    # -- used by the room (never blocks) ----------------------------------------------
    def send(self, message: protocol.ServerMessage | Outgoing) -> bool:
        """Queue a message; a full outbox closes the connection as too slow."""
        if self.closing is not None:
            return False
        item = message if isinstance(message, str | PendingPong) else protocol.encode(message)
        try:
            self._outbox.send_nowait(item)
        except trio.WouldBlock:
            if self._metrics is not None:
                self._metrics.error("too-slow")
            self.close("too-slow", f"more than {OUTBOX_SIZE} messages waiting to be sent")
            return False
        except trio.ClosedResourceError:
            return False  # finished: the socket is going away
        return True

    def close(self, reason: protocol.CloseReason, message: str) -> None:
        """End the connection: the writer sends a ``closing`` frame, then closes the socket."""
        if self.closing is not None:
            return
        self.closing = (reason, message)
        # Whatever is still queued is dropped: for a slow peer that is the point.
        self._writer_scope.cancel()
        self.scope.cancel()  # the reader: the room lets go of this connection now

    def finish(self) -> None:
        """No more messages: the writer sends what is queued (or the goodbye) and stops."""
        self._outbox.close()

    # -- the tasks ----------------------------------------------------------------------
    async def serve_reader(
        self, handle_frame: Callable[[Connection, str | bytes], Awaitable[None]]
    ) -> None:
        """Read frames until the peer goes or the connection is closed (a room task)."""
        try:
            with self.scope:
                while True:
                    await handle_frame(self, await self.ws.receive())
        finally:
            self.done.set()

    async def run_writer(self) -> None:
        """Drain the outbox into the socket; after a close, say why.

        This runs in the socket's own handler task, not in the room's nursery:
        hypercorn shields its socket writes, so a peer that stops reading can
        hold a write forever, and the room must be able to end regardless.
        """
        try:
            with self._writer_scope:
                async for item in self._pending:
                    kind = "pong"
                    if isinstance(item, PendingPong):
                        t2 = self._now()
                        item = protocol.encode(
                            protocol.Pong(id=item.id, t0=item.t0, t1=item.t1, t2=t2)
                        )
                    elif self._metrics is not None:
                        kind = frame_type(item)
                    await self.ws.send(item)
                    self.sent += 1
                    if self._metrics is not None:
                        self._metrics.message_out(kind)
        except Exception as exc:  # noqa: BLE001 - the peer is gone; the reader notices too
            log.debug("writer of %s stopped: %s", self.session_id, exc)
            self.scope.cancel()
            return
        if self.closing is not None:
            with trio.move_on_after(CLOSE_GRACE_SECONDS):
                await self._say_goodbye(*self.closing)

    async def _say_goodbye(self, reason: protocol.CloseReason, message: str) -> None:
        try:
            closing = protocol.Closing(reason=reason, message=message)
            await self.ws.send(protocol.encode(closing))
            await self.ws.close(CLOSE_CODES.get(reason, 1000), reason)
        except Exception as exc:  # noqa: BLE001 - the peer may be gone; nothing to do then
            log.debug("closing %s: %s", self.session_id, exc)
