"""Fixes for four bugs of hypercorn 0.18, installed once by the daemon at start-up.

They replace or wrap five of hypercorn's methods (``WSStream._handle_events``,
``WebsocketBuffer.extend``, ``WSStream._send_pings``, ``WSStream.handle`` and
``TCPServer.run``), so they are only as right as the code they were read against:
``install`` refuses any hypercorn outside ``SUPPORTED`` (the bound pyproject.toml
declares too) instead of patching code nobody checked. To move to a new
hypercorn: read each patched method again, check whether its bug is still there
(tests/fuzz/test_websocket_fuzzer.py and tests/server/test_connection_garbage.py
reproduce them), drop or adapt the patch, then widen ``SUPPORTED`` and the bound.

Each patch below says where its bug came from and whether it is reported upstream
(pgjones/hypercorn; searched on 2026-12-05).
"""

from __future__ import annotations

import re
from importlib import metadata
from io import BytesIO, StringIO
from typing import Any

import trio
from hypercorn.protocol import ws_stream
from hypercorn.protocol.events import StreamClosed
from hypercorn.trio import tcp_server
from wsproto.connection import ConnectionState
from wsproto.events import CloseConnection, Message, Ping, TextMessage
from wsproto.frame_protocol import CloseReason

# The hypercorn releases these patches were checked against: [0.18, 0.19).
SUPPORTED = ((0, 18), (0, 19))
SUPPORTED_SPEC = ">=0.18,<0.19"  # the same, as pyproject.toml writes it


class UnsupportedHypercorn(RuntimeError):
    """The installed hypercorn is not a release these fixes were checked against."""


def _installed_version() -> str:
    return metadata.version("hypercorn")


def check_version() -> None:
    """Refuse a hypercorn these patches were not checked against.

    Raises:
        UnsupportedHypercorn: the installed release is outside ``SUPPORTED``.
    """
    installed = _installed_version()
    match = re.match(r"(\d+)\.(\d+)", installed)
    release = (int(match[1]), int(match[2])) if match else None
    if release is None or not SUPPORTED[0] <= release < SUPPORTED[1]:
        raise UnsupportedHypercorn(
            f"hypercorn {installed} is installed, but syncplayd's fixes to it"
            f" (server/process/hypercorn_fixes.py) support only hypercorn{SUPPORTED_SPEC}"
        )


# 1. An oversized message crashes the daemon, or grows without bound.
#    Upstream: not reported upstream (no issue in pgjones/hypercorn). Found by
#    tests/fuzz/test_websocket_fuzzer.py. When a message grows past
#    ``websocket_max_message_size``, hypercorn sends close 1009 but keeps the partial
#    message in the connection's buffer, and stops reading the events parsed so far
#    (``break``). When more data arrives (the peer may send frames until it answers
#    the close, and its close answer is itself data), the frames after the oversized
#    one are appended to the same buffer:
#    * a text frame after an oversized binary one, or the reverse, writes ``str`` into
#      a ``BytesIO`` (or ``bytes`` into a ``StringIO``); the ``TypeError`` escapes the
#      connection's task and hypercorn's server nursery, and **the whole daemon exits**;
#    * frames of the same kind keep growing the buffer for as long as the peer streams
#      data, without bound.
#    The fix is hypercorn's own ``_handle_events`` with two changes: the partial
#    message is dropped when it is refused, and every message after that is discarded
#    unread while the events go on being handled (pings answered, the peer's close
#    answer seen, so the connection ends as the close handshake says).
_REFUSED = "_syncplayd_message_too_big"


async def _handle_events(self: Any) -> None:
    for event in self.connection.events():
        if isinstance(event, Message):
            if getattr(self, _REFUSED, False):
                continue  # close 1009 was sent: nothing the peer sends now is read
            try:
                self.buffer.extend(event)
            except ws_stream.FrameTooLargeError:
                self.buffer.clear()
                setattr(self, _REFUSED, True)
                await self._send_wsproto_event(CloseConnection(code=CloseReason.MESSAGE_TOO_BIG))
                continue
            if event.message_finished:
                await self.app_put(self.buffer.to_message())
                self.buffer.clear()
        elif isinstance(event, Ping):
            await self._send_wsproto_event(event.response())
        elif isinstance(event, CloseConnection):
            if self.connection.state == ConnectionState.REMOTE_CLOSING:
                await self._send_wsproto_event(event.response())
            await self.send(StreamClosed(stream_id=self.stream_id))


# 2. A text message is measured in characters, not bytes.
#    Upstream: not reported upstream (no issue in pgjones/hypercorn). A text frame of
#    up to four times ``max_request_bytes`` got through, where docs/protocol.md §4.12
#    promises bytes. ``WebsocketBuffer.extend`` now counts UTF-8 bytes, and checks
#    before it stores.
def _extend(self: Any, event: Message[Any]) -> None:
    data = event.data
    self.length += len(data.encode()) if isinstance(data, str) else len(data)
    if self.length > self.max_length:
        raise ws_stream.FrameTooLargeError()
    if self.value is None:
        self.value = StringIO() if isinstance(event, TextMessage) else BytesIO()
    self.value.write(data)


# 3. A closed WebSocket lives on until its next ping.
#    Upstream: not reported upstream (no issue names it; the open pgjones/hypercorn#119,
#    "Very high memory usage?", reports growth with no cause found and may be related).
#    Found by the fuzzer's memory check.
#    Every WebSocket connection has a task that sends a ping every
#    ``websocket_ping_interval`` and checks whether the stream closed only when it
#    wakes up. hypercorn waits for that task before it lets the connection go, so a
#    closed connection kept its task, buffers, ASGI scope and Quart objects (about
#    25 KiB) for up to 30 s: a client opening and closing sockets quickly held memory
#    in proportion to its rate (hundreds of MiB at a few hundred connections a
#    second). The ping loop now runs in a cancel scope that ``WSStream.handle``
#    cancels as soon as the stream closes.
_PINGS = "_syncplayd_ping_scope"


async def _send_pings(self: Any) -> None:
    with trio.CancelScope() as scope:
        setattr(self, _PINGS, scope)
        if self.closed:
            return  # closed before this task got to run
        while not self.closed:
            await self._send_wsproto_event(Ping())
            await self.context.sleep(self.config.websocket_ping_interval)


def _closing_handle(original: Any) -> Any:
    async def handle(self: Any, event: Any) -> None:
        try:
            await original(self, event)
        finally:
            scope = getattr(self, _PINGS, None)
            if self.closed and scope is not None:
                scope.cancel()  # the stream is done: do not keep it alive until the next ping

    handle._syncplayd_fixed = True  # type: ignore[attr-defined]
    return handle


# 4. Every closed connection waits for a full garbage collection.
#    Upstream: not reported upstream (no issue names it; pgjones/hypercorn#119 again may
#    be related). Found by the soak benchmark. Every connection's ``TCPServer`` holds
#    its protocol, and the protocol holds the server's ``protocol_send`` as its
#    ``send``: a reference cycle. A WebSocket connection lives long enough for the
#    collector to move it to the oldest generation, so each closed one (with its
#    buffers and the ASGI and Quart objects it reaches) stayed in memory until a full
#    collection, which the daemon's tuned collector runs rarely (``cli/daemon.py``):
#    memory grew by about 10 MiB a minute under churn (with the exception groups of
#    ``server/live/websocket.py``). ``TCPServer.run`` now lets go of the protocol when
#    it returns.
def _releasing_run(original: Any) -> Any:
    async def run(self: Any) -> None:
        try:
            await original(self)
        finally:
            self.__dict__.pop("protocol", None)  # the connection is over: break the cycle

    run._syncplayd_fixed = True  # type: ignore[attr-defined]
    return run


def install() -> None:
    """Check hypercorn's version, then patch it (idempotent: a second call changes nothing).

    Raises:
        UnsupportedHypercorn: the installed hypercorn was not checked; nothing is patched.
    """
    check_version()
    server_class: Any = tcp_server.TCPServer
    if not getattr(server_class.run, "_syncplayd_fixed", False):
        server_class.run = _releasing_run(server_class.run)
    stream_class: Any = ws_stream.WSStream
    stream_class._handle_events = _handle_events
    stream_class._send_pings = _send_pings
    if not getattr(stream_class.handle, "_syncplayd_fixed", False):
        stream_class.handle = _closing_handle(stream_class.handle)
    buffer_class: Any = ws_stream.WebsocketBuffer
    buffer_class.extend = _extend
