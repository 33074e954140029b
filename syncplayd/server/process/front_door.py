"""The HTTP listener's front door: WebSocket upgrades to the broadcast path, the rest to hypercorn.

One port serves the REST API, the watch page and the WebSocket. A connection
whose first request is the upgrade to ``WS /api/v1/syncplay/ws`` that the app
would accept is served here, on a bare socket (``server/live/direct_socket.py``):
a broadcast then costs each member one ``write`` of a frame encoded once, instead
of a task switch, ASGI messages, a frame encoding and a locked send per member
(docs/architecture.md, "The broadcast path", has the numbers). Every other
connection, and an upgrade the app would refuse (so that the refusal is Quart's
own answer, word for word), goes to hypercorn with the bytes read so far put back
in front of the stream. An upgrade that comes later on such a kept-alive connection
(reverse proxies reuse their connections to the daemon) reaches the app's websocket
handler through hypercorn; the handler gives it back here (:func:`take_upgrade`),
and it is served on the bare socket all the same.

``serve`` is hypercorn's ``worker_serve`` (hypercorn 0.18, ``hypercorn/trio/run.py``)
cut to what the daemon uses: plain TCP listeners adopted from bound sockets,
lifespan, graceful shutdown; with this dispatcher in front of its ``TCPServer``.
``hypercorn_fixes.SUPPORTED`` pins the release it was read against.
"""

from __future__ import annotations

import errno
import logging
import socket
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio.lifespan import Lifespan
from hypercorn.trio.tcp_server import TCPServer
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.typing import ASGIFramework, ConnectionState, LifespanState
from hypercorn.utils import ShutdownError, raise_shutdown, repr_socket_addr, wrap_app
from werkzeug.datastructures import Headers
from wsproto.connection import ConnectionType
from wsproto.events import AcceptConnection, Request
from wsproto.handshake import H11Handshake
from wsproto.utilities import RemoteProtocolError

log = logging.getLogger(__name__)

MAX_RECV = 65536
#: ``accept`` errors that mean "out of a resource", and the pause before trying again
#: (``trio/_highlevel_serve_listeners.py``).
ACCEPT_CAPACITY_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})
ACCEPT_RETRY_SECONDS = 0.1
#: The largest request head read here; a bigger one goes to hypercorn, which refuses it.
MAX_HEAD_BYTES = 16384
#: Where a connection handed to hypercorn finds its way back to the front door: the key of
#: its ``_Replayed`` stream in the connection's ASGI ``state`` (see :func:`take_upgrade`).
_CONNECTION_KEY = "syncplayd.front_door.connection"


@dataclass(frozen=True, slots=True)
class Upgrade:
    """A WebSocket upgrade as read here: what ``server/http/auth.py`` reads of a request,
    and its target (the route reads the query: ``?room=``)."""

    headers: Headers
    remote_addr: str | None
    scope: Mapping[str, Any] = field(default_factory=dict)
    #: The request target as sent: the path and the query, if any.
    target: str = ""

    @property
    def query_string(self) -> bytes:
        """The query (without ``?``), as Quart's ``websocket.query_string`` gives it."""
        _, _, query = self.target.partition("?")
        return query.encode("latin-1", "replace")


class WebSocketRoute(Protocol):
    """The app's WebSocket endpoint, as the front door serves it."""

    path: bytes

    def admit(self, upgrade: Upgrade) -> object | None:
        """What the endpoint needs to serve ``upgrade``, or ``None`` to let the app answer."""

    async def serve(self, stream: trio.SocketStream, admitted: object, leftover: bytes) -> bool:
        """Serve the accepted WebSocket (the 101 answer is already written).

        ``True``: the socket lives on beyond this call (a live room serves it) and
        the route closes it; ``False``: it is done with, and the caller closes it.
        """


class _Replayed(trio.abc.HalfCloseableStream):
    """``stream`` with ``prefix`` read again first: hypercorn parses the request from the start.

    The front door can take the stream back from hypercorn (:meth:`take_upgrade`):
    hypercorn's read then ends as if the peer had closed, and whatever hypercorn
    still does with the stream (its answer to a request it thinks unanswered, its
    FIN, its close) goes nowhere.
    """

    def __init__(self, stream: trio.SocketStream, prefix: bytes, door: FrontDoor) -> None:
        self._stream = stream
        self._prefix = prefix
        self._door = door
        #: The front door took the stream back (``take_upgrade``): it is not hypercorn's.
        self.taken = False
        self._reading: trio.CancelScope | None = None
        #: hypercorn has written (or is writing) since the peer last sent something: it
        #: answered the request in hand, and the stream is not the front door's to take.
        self._answered = False
        self.socket = stream.socket  # hypercorn reads the peer's address from it

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if self._prefix:
            data, self._prefix = self._prefix, b""
            return data
        if self.taken:
            return b""
        # A read cancelled here has taken nothing: trio's socket reads only return
        # data through a shielded checkpoint.
        with trio.CancelScope() as self._reading:
            data = await self._stream.receive_some(max_bytes)
            if data:
                self._answered = False
            return data
        return b""  # cancelled by take_upgrade: for hypercorn, the peer has gone

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if not self.taken:
            # Not for b"": hypercorn's end of a response may come after the peer has read
            # it and sent its next request.
            self._answered = self._answered or bool(data)
            await self._stream.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        if not self.taken:
            await self._stream.wait_send_all_might_not_block()

    async def send_eof(self) -> None:
        if not self.taken:
            await self._stream.send_eof()

    async def aclose(self) -> None:
        if not self.taken:
            await self._stream.aclose()

    def take_upgrade(self, head: bytes) -> bool:
        """Serve the upgrade in ``head`` (a whole request head) on the broadcast path, as if
        it had been this connection's first request; ``False`` if the front door would
        leave it to the app. Does not block: the serving happens in a task of its own.

        Only for an upgrade the app's websocket handler has not answered: the peer
        waits for the ``101`` and sends nothing meanwhile, so hypercorn holds none of
        its bytes. Not once hypercorn has written since the upgrade's bytes came: it
        has answered it itself (a ``400`` to a client that sent frames before the
        ``101``, say), and a ``101`` after that would garble the connection.
        """
        door = self._door
        if self.taken or self._answered or door.route is None:
            return False
        accepted = door._accept(self._stream, head, door.route)
        if accepted is None:
            return False
        self.taken = True
        if self._reading is not None:
            self._reading.cancel()
        door.spawn(door.serve_taken, self._stream, *accepted)
        return True


def take_upgrade(scope: Mapping[str, Any]) -> bool:
    """Whether the front door took over the WebSocket upgrade of ``scope`` (an ASGI
    websocket scope, before the app has answered it) to serve it on the broadcast path.

    For an upgrade on a kept-alive connection, which hypercorn parsed and handed to the
    app (the front door only reads each connection's first request): ``True``, and the
    app must return without answering; ``False`` (not a connection of the front door,
    or an upgrade it would not serve), and the app serves or refuses it itself.
    """
    connection = scope.get("state", {}).get(_CONNECTION_KEY)
    if not isinstance(connection, _Replayed):
        return False
    return connection.take_upgrade(_request_head(scope))


def _request_head(scope: Mapping[str, Any]) -> bytes:
    """The request head of an ASGI websocket ``scope``, as the client sent it (near enough:
    header names as hypercorn gives them, in lower case)."""
    target = bytes(scope.get("raw_path") or scope["path"].encode())
    if scope.get("query_string"):
        target += b"?" + bytes(scope["query_string"])
    lines = [b"GET " + target + b" HTTP/1.1"]
    lines += [bytes(name) + b": " + bytes(value) for name, value in scope["headers"]]
    return b"\r\n".join(lines) + b"\r\n\r\n"


@dataclass(slots=True)
class FrontDoor:
    """Routes each accepted connection (see the module docstring)."""

    route: WebSocketRoute | None
    head_timeout: float
    hand_over: Callable[[_Replayed], Awaitable[None]]
    #: Starts a task beside the connections' own (the nursery of their handlers).
    spawn: Callable[..., object]
    #: The marks of the listener (the proxy socket's), as the app's scopes carry them.
    scope: Mapping[str, Any] = field(default_factory=dict)

    async def run(self, stream: trio.SocketStream) -> None:
        """Serve one accepted connection; closed at the end unless the route kept it."""
        kept = False
        try:
            kept = await self(stream)
        finally:
            if not kept:
                await trio.aclose_forcefully(stream)

    async def __call__(self, stream: trio.SocketStream) -> bool:
        """Route ``stream``; ``True`` if the WebSocket route kept it (see ``WebSocketRoute``).

        A stream that is neither kept nor handed to hypercorn is closed by :meth:`run`.
        """
        try:
            buffer = b""
            with trio.move_on_after(self.head_timeout):
                buffer = await stream.receive_some(MAX_RECV)
            if not buffer:
                return False  # nothing asked in time (or the peer left)
            if self.route is not None and _requests_path(buffer, self.route.path):
                with trio.move_on_after(self.head_timeout) as waited:
                    while b"\r\n\r\n" not in buffer and len(buffer) < MAX_HEAD_BYTES:
                        more = await stream.receive_some(MAX_RECV)
                        if not more:
                            break
                        buffer += more
                if waited.cancelled_caught:
                    # A head that never ends (slowloris): closed unanswered, as hypercorn
                    # closes one after its keep-alive timeout.
                    return False
                accepted = self._accept(stream, buffer, self.route)
                if accepted is not None:
                    # Only what serving needs lives on with the connection (the head, the
                    # handshake's h11 state and headers would, in this frame, for hours).
                    del buffer
                    answer, admitted, leftover = accepted
                    del accepted
                    await stream.send_all(answer)
                    del answer
                    return await self.route.serve(stream, admitted, leftover)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            return False
        replayed = _Replayed(stream, buffer, self)
        await self.hand_over(replayed)
        return replayed.taken  # an upgrade taken back is closed by whoever serves it

    async def serve_taken(
        self, stream: trio.SocketStream, answer: bytes, admitted: object, leftover: bytes
    ) -> None:
        """Serve an upgrade taken back from hypercorn (:func:`take_upgrade`), as a
        connection's first request is served; closed at the end unless the route kept it."""
        assert self.route is not None  # noqa: S101 - take_upgrade checked it
        kept = False
        try:
            await stream.send_all(answer)
            del answer
            kept = await self.route.serve(stream, admitted, leftover)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass
        except Exception:
            # In the listener's nursery: one connection's failure must not end the daemon.
            log.warning("a WebSocket taken back from hypercorn failed", exc_info=True)
        finally:
            if not kept:
                await trio.aclose_forcefully(stream)

    def _accept(
        self, stream: trio.SocketStream, buffer: bytes, route: WebSocketRoute
    ) -> tuple[bytes, object, bytes] | None:
        """The 101 answer, what ``route`` admitted and the bytes after the head,
        if the upgrade in ``buffer`` is served here; ``None`` if hypercorn should have it."""
        end = buffer.find(b"\r\n\r\n")
        if end == -1:
            return None
        head, leftover = buffer[: end + 4], buffer[end + 4 :]
        handshake = H11Handshake(ConnectionType.SERVER)
        try:
            handshake.receive_data(head)
            request = next((e for e in handshake.events() if isinstance(e, Request)), None)
        except RemoteProtocolError:
            return None  # not a valid upgrade: hypercorn and Quart answer it
        if request is None:
            return None
        headers = Headers()
        headers.add("Host", request.host)
        for name, value in request.extra_headers:
            headers.add(name.decode("latin-1"), value.decode("latin-1"))
        upgrade = Upgrade(headers, _peer(stream.socket), self.scope, request.target)
        admitted = route.admit(upgrade)
        if admitted is None:
            return None
        # No extension and no subprotocol: the frames of a broadcast are the same
        # bytes for everyone only without per-connection compression.
        return handshake.send(AcceptConnection()), admitted, leftover


async def _accept(listener: trio.SocketListener, door: FrontDoor, handlers: trio.Nursery) -> None:
    """``trio.serve_listeners`` for one listener, except that a connection's handler does
    not always close it: a WebSocket a live room keeps outlives its handler task."""
    async with listener:
        while True:
            try:
                stream = await listener.accept()
            except OSError as exc:
                if exc.errno not in ACCEPT_CAPACITY_ERRNOS:
                    raise
                # Out of file descriptors or memory: wait for some to be freed, as trio does.
                log.error("accept failed (%s); waiting %g s", exc, ACCEPT_RETRY_SECONDS)
                await trio.sleep(ACCEPT_RETRY_SECONDS)
            else:
                handlers.start_soon(door.run, stream)


def _requests_path(buffer: bytes, path: bytes) -> bool:
    """Whether the request line in ``buffer`` is ``GET <path>`` (with or without a query)."""
    start = b"GET " + path
    return buffer.startswith(start) and buffer[len(start) : len(start) + 1] in (b" ", b"?")


def _peer(sock: trio.socket.SocketType) -> str | None:
    try:
        address = sock.getpeername()
    except OSError:
        return None
    return address[0] if sock.family in (socket.AF_INET, socket.AF_INET6) else None


async def serve(
    app: ASGIFramework,
    config: HypercornConfig,
    sockets: list[socket.socket],
    *,
    route: WebSocketRoute | None,
    scope: Mapping[str, Any] | None = None,
    shutdown_trigger: Callable[..., Awaitable[None]],
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``app`` (and ``route``) on the bound ``sockets`` until ``shutdown_trigger``.

    ``scope``: marks the listener gives its upgrades (the app's scopes get them from
    its own wrapper, ``admin_socket.socket_app``).

    Reports the bound URLs once listening. At shutdown, connections get
    ``config.graceful_timeout`` to finish, as with hypercorn's own ``serve``.
    """
    wrapped = wrap_app(app, config.wsgi_max_body_size, "asgi")
    lifespan_state: LifespanState = {}
    lifespan = Lifespan(wrapped, config, lifespan_state)
    context = WorkerContext(None)
    async with trio.open_nursery() as lifespan_nursery:
        await lifespan_nursery.start(lifespan.handle_lifespan)
        await lifespan.wait_for_startup()
        async with trio.open_nursery() as server_nursery:
            listeners = []
            binds = []
            for sock in sockets:
                sock.listen(config.backlog)
                listeners.append(trio.SocketListener(trio.socket.from_stdlib_socket(sock)))
                binds.append(f"http://{repr_socket_addr(sock.family, sock.getsockname())}")

            async def hand_over(stream: _Replayed) -> None:
                state = ConnectionState(lifespan_state.copy())
                state[_CONNECTION_KEY] = stream  # the way back, for a later upgrade
                server: Any = TCPServer(wrapped, config, context, state, stream)  # type: ignore[arg-type]
                try:
                    await server.run()
                except Exception:
                    # One connection's failure inside hypercorn (h11 refusing to send after
                    # answering a bad upgrade 400, found by tests/server/test_front_door.py)
                    # must not end the listener and the daemon with it.
                    log.warning("an HTTP connection failed inside hypercorn", exc_info=True)
                    await stream.aclose()

            door = FrontDoor(
                route,
                config.keep_alive_timeout,
                hand_over,
                server_nursery.start_soon,
                dict(scope or {}),
            )
            task_status.started(binds)
            try:
                async with trio.open_nursery(strict_exception_groups=True) as nursery:
                    nursery.start_soon(raise_shutdown, shutdown_trigger)
                    nursery.start_soon(raise_shutdown, context.terminate.wait)
                    for listener in listeners:
                        nursery.start_soon(_accept, listener, door, server_nursery)
                    await trio.sleep_forever()
            except BaseExceptionGroup as error:
                _, other = error.split((ShutdownError, KeyboardInterrupt))
                if other is not None:
                    raise other from None
            finally:
                await context.terminated.set()
                server_nursery.cancel_scope.deadline = trio.current_time() + config.graceful_timeout
        await lifespan.wait_for_shutdown()
        lifespan_nursery.cancel_scope.cancel()
