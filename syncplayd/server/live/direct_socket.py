"""A server-side WebSocket on a bare trio socket: frames read sans I/O, written at once.

This is the socket of the broadcast path (docs/architecture.md, "The broadcast
path"). A broadcast encodes its frame once (:func:`server_frame`: server frames
are not masked, so the bytes are the same for every member) and each member's
socket takes the same bytes with :meth:`DirectSocket.write`, a plain ``write``
on the non-blocking socket, without a task switch. Only when the kernel's send
buffer is full does a frame wait, in a bounded backlog that a flush task drains
when the socket is writable again; a backlog that outgrows its bound, or a
flush that makes no progress for ``send_timeout``, is a peer too slow to keep.

Reading is :class:`~syncplayd.server.live.ws_frames.FrameReader` fed from the socket
(:meth:`_read`): pings are answered, fragmented messages are put together up to
``max_message_bytes`` (1009 beyond), a close is answered and ends :meth:`receive`
with :class:`SocketClosed`, and a frame that breaks the protocol is answered with a
close (1002, or 1007 for text that is not UTF-8) and ends it too.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import socket
from collections.abc import Callable

import trio

from syncplayd.clocks import monotonic
from syncplayd.server.live import ws_frames
from syncplayd.server.live.ws_frames import FrameReader, close_frame, control_frame, server_frame

log = logging.getLogger(__name__)

RECEIVE_BYTES = 65536
#: Frames and bytes a socket may hold back while its peer's window is closed. A
#: member takes a handful of frames a second; this many waiting is a peer that stopped.
BACKLOG_FRAMES = 256
BACKLOG_BYTES = 1 << 20
#: How long a peer found too slow, but still sending, may take to read why (the read
#: timeout's floor: a connection on which nothing arrives for that long is dropped too).
GOODBYE_WAIT_SECONDS = 60.0


def _no_spawn(*_: object) -> None:
    """``spawn`` of a finished socket: nothing more is written."""


class SocketClosed(Exception):
    """The WebSocket is closed (by the peer, by us, or the connection broke)."""


class TooSlow(Exception):
    """The peer does not take what is sent to it (see :meth:`DirectSocket.write`)."""


class DirectSocket:
    """One accepted WebSocket: reads through a ``FrameReader``, writes straight to the socket.

    ``on_too_slow`` is called (once) when the peer falls behind; the socket is
    then aborted. ``spawn`` starts the flush task when a write would block (a
    nursery's ``start_soon``: the connection's own handler task is busy serving it).
    """

    def __init__(
        self,
        stream: trio.SocketStream,
        leftover: bytes,
        *,
        max_message_bytes: int,
        spawn: Callable[..., object],
        send_timeout: float | None,
    ) -> None:
        self._stream = stream
        self._fd = stream.socket.fileno()
        self._frames = FrameReader(max_message_bytes, leftover)
        self._close_sent = False
        self._close_received = False
        self._spawn = spawn
        self._send_timeout = send_timeout
        # A list, not a deque: empty nearly always, and an empty deque costs 600 bytes.
        self._backlog: list[bytes] = []
        self._backlog_bytes = 0
        self._head_partial = False  # the backlog's first frame is partly written
        self._flushed: trio.Event | None = None  # set when the flush ends, if awaited
        self._told_at: float | None = None  # when the peer was found too slow
        self._flushing = False
        self.broken = False
        self.last_received = monotonic()
        self.on_too_slow: Callable[[str], None] | None = None

    # -- writing -------------------------------------------------------------------------
    def write(self, data: bytes) -> bool:
        """Send ``data`` (whole frames) now, or hold it back if the peer's window is full.

        Never blocks and never switches tasks. A broken socket takes nothing
        (``False``: the frame will not reach the peer).
        """
        if self.broken:
            return False
        if not self._backlog:
            try:
                sent = os.write(self._fd, data)
            except BlockingIOError:
                sent = 0
            except OSError as exc:
                self._break(exc)
                return False
            if sent == len(data):
                return True
            data = data[sent:]
            self._head_partial = sent > 0
        # Queued first, then measured: a frame cut in the middle must stay whole.
        self._backlog.append(data)
        self._backlog_bytes += len(data)
        if len(self._backlog) > BACKLOG_FRAMES:
            self._slow(f"more than {BACKLOG_FRAMES} messages waiting to be sent")
        elif self._backlog_bytes > BACKLOG_BYTES:
            self._slow(f"more than {BACKLOG_BYTES // 1024} KiB waiting to be sent")
        if self._backlog and not self._flushing:  # (a cut socket has none left)
            self._flushing = True
            self._spawn(self._flush)
        return not self.broken

    async def _flush(self) -> None:
        """Drain the backlog as the peer takes it; give up on one that takes nothing."""
        try:
            while self._backlog and not self.broken:
                limit = self._send_timeout
                with trio.move_on_after(limit if limit is not None else float("inf")) as waited:
                    await trio.lowlevel.wait_writable(self._fd)
                if waited.cancelled_caught:
                    if self._goodbye_may_wait(limit):
                        continue
                    # The goodbye queued by the first stall is written here too; a second
                    # stall cuts the socket (and ends the loop).
                    self._slow(f"the peer has not taken a message for {limit:g} s")
                    continue
                self._write_backlog()
        except (OSError, trio.ClosedResourceError) as exc:  # closed meanwhile
            self._break(OSError(str(exc)))
        except Exception as exc:  # in the route's nursery: must never end the daemon
            log.exception("flush of socket %d failed", self._fd)
            self._break(OSError(str(exc)))
        finally:
            self._flushing = False
            if self._flushed is not None:
                self._flushed.set()

    def _goodbye_may_wait(self, limit: float | None) -> bool:
        """Whether a goodbye still waits for a peer that stalls again after being told.

        A peer that still sends (heartbeats) is alive, only not reading: it gets up
        to ``GOODBYE_WAIT_SECONDS`` to read why it is dropped, as long as it sends
        something every ``limit``. One that went silent is cut at once.
        """
        told = self._told_at
        if told is None or limit is None:
            return False
        now = monotonic()
        return now - told < GOODBYE_WAIT_SECONDS and now - self.last_received < limit

    def _write_backlog(self) -> None:
        while self._backlog:
            data = self._backlog[0]
            try:
                sent = os.write(self._fd, data)
            except BlockingIOError:
                return
            except OSError as exc:
                self._break(exc)
                return
            self._backlog_bytes -= sent
            if sent < len(data):
                self._backlog[0] = data[sent:]
                self._head_partial = self._head_partial or sent > 0
                return
            del self._backlog[0]
            self._head_partial = False

    def _slow(self, message: str) -> None:
        """The peer fell behind: drop what waits, and let the connection say why.

        The goodbye (``closing`` and the close frame) then waits behind what the
        kernel holds; :meth:`finish` gives it ``send_timeout``. A peer still too
        slow after that (no callback left) is cut off.
        """
        callback, self.on_too_slow = self.on_too_slow, None
        if callback is None:
            self._break(TooSlow(message))
            return
        self._told_at = monotonic()
        head = self._backlog[0] if self._head_partial else None
        self._backlog.clear()
        if head is not None:  # a frame cut in the middle would garble the stream
            self._backlog.append(head)
        self._backlog_bytes = len(head or b"")
        callback(message)

    def _break(self, exc: Exception) -> None:
        """Give up on the socket: what is queued is dropped, the peer sees a reset."""
        if self.broken:
            return
        self.broken = True
        self._backlog.clear()
        self._backlog_bytes = 0
        log.debug("socket %d broken: %s", self._fd, exc)
        if not isinstance(exc, OSError) or exc.errno not in (errno.EPIPE, errno.ECONNRESET):
            # Wake the reader (and end the connection): nothing more goes out on it.
            with contextlib.suppress(OSError):
                self._stream.socket.shutdown(socket.SHUT_RDWR)

    # -- WebSocketLike (the handshake and the old connection code use these) ------------
    async def send(self, data: str) -> None:
        """Send one text message (written at once; see :meth:`write`)."""
        if self.broken or self._close_sent or self._close_received:
            raise trio.BrokenResourceError("the websocket is closed")
        self.write(server_frame(data))

    async def close(self, code: int, reason: str = "") -> None:
        self.close_now(code, reason)

    def close_now(self, code: int, reason: str = "") -> None:
        """Send a close frame (the peer's answer, if any, is read by :meth:`receive`)."""
        if self._close_sent:
            return
        self._close_sent = True
        self.write(close_frame(code, reason))

    async def receive(self) -> str | bytes:
        """The next whole message (a binary one as ``b""``); pings are answered on the way.

        Raises:
            SocketClosed: the peer closed, the connection broke, the peer broke the
                protocol, or a message was too big and the peer has answered our close.
        """
        frames = self._frames
        while True:
            received = frames.next()
            while received is not None:
                message = self._on_frame(received)
                if message is not None:
                    return message
                received = frames.next()
            if self._close_received:
                raise SocketClosed("closed")
            try:
                data = await self._read()
            except (OSError, trio.ClosedResourceError) as exc:
                raise SocketClosed(str(exc)) from None
            self.last_received = monotonic()
            if not data:
                raise SocketClosed("the peer went away")
            frames.feed(data)

    async def _read(self) -> bytes:
        """What the peer sent next (``b""``: it closed its side).

        The socket itself rather than the ``SocketStream``: an idle member's reader
        then waits three frames deep instead of seven (memory per member), and a
        read costs one ``read``.
        """
        while True:
            await trio.lowlevel.wait_readable(self._fd)
            try:
                return os.read(self._fd, RECEIVE_BYTES)
            except BlockingIOError:
                continue  # a wake-up without data (the readiness was consumed meanwhile)

    async def _drain(self) -> None:
        """Read and drop what the peer sends, noting when, until it closes its side."""
        try:
            while await self._read():
                self.last_received = monotonic()
        except (OSError, trio.ClosedResourceError):
            pass

    def _on_frame(self, received: ws_frames.Received) -> str | bytes | None:
        match received:
            case ws_frames.Text(data=text):
                return text
            case ws_frames.Binary():
                return b""  # refused by the reader, whatever it holds
            case ws_frames.Ping(payload=payload):
                if not self._close_sent:
                    self.write(control_frame(ws_frames.PONG, payload))
            case ws_frames.Close(code=code):
                self._close_received = True
                # Our answer echoes the code (section 5.5.1), unless we closed first.
                self.close_now(code)
                raise SocketClosed(f"closed by the peer ({code})")
            case ws_frames.Failure(code=code, reason=reason):
                # Failing the connection (section 7.1.7): our close says why. After a
                # 1009 the peer's answer is still read; after anything else, nothing.
                self.close_now(code, reason)
                if code != ws_frames.MESSAGE_TOO_BIG:
                    self._close_received = True
                    raise SocketClosed(f"protocol error ({code}): {reason}")
        return None

    def abort(self, reason: str) -> None:
        """Drop the connection at once (no close handshake: the peer is not there)."""
        self._break(ConnectionAbortedError(reason))

    def drop(self, reason: str) -> None:
        """Abort and close the socket now, when no task is left to :meth:`finish` it."""
        self.abort(reason)
        self.on_too_slow = None
        self._spawn = _no_spawn
        self._stream.socket.close()

    def ping(self) -> None:
        """A WebSocket ping (keeps idle proxies from dropping the connection)."""
        if not (self._close_sent or self._close_received):
            self.write(control_frame(ws_frames.PING))

    async def finish(self, grace: float) -> None:
        """End the TCP connection, letting the peer read what was sent first.

        What still waits to be written (a goodbye behind a slow peer's backlog)
        gets ``send_timeout``, as any write. Then our FIN; then the peer's
        remaining data and its close are read and dropped for up to ``grace``
        seconds, since closing a socket with unread data resets the connection,
        and a reset may destroy the frames the peer has not read yet.
        """
        if self._flushing:
            # The flush task writes it (one waiter per socket); it gives up by itself.
            # Meanwhile what the peer sends is read and dropped: it shows the peer is
            # alive (``_goodbye_may_wait``), and unread it would reset the connection.
            self._flushed = trio.Event()
            async with trio.open_nursery() as draining:
                draining.start_soon(self._drain)
                await self._flushed.wait()
                draining.cancel_scope.cancel()
        with trio.move_on_after(grace):
            if not self.broken and not self._backlog:
                try:
                    self._stream.socket.shutdown(socket.SHUT_WR)  # our FIN after the frames
                    while await self._read():
                        pass
                except (OSError, trio.ClosedResourceError):
                    pass
        self.broken = True
        self._backlog.clear()
        # The connection and the nursery point back here: without these two references
        # a closed socket would wait for a full collection (test_connection_garbage.py).
        self.on_too_slow = None
        self._spawn = _no_spawn
        await self._stream.aclose()
