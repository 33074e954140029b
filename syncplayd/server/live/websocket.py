"""``WS /api/v1/syncplay/ws``: the handshake, then hand-over to the live room.

Lifecycle of a connection (docs/protocol.md has the diagram)::

    CONNECTED --hello--> AUTHENTICATED --join--> IN_ROOM --(close)--> CLOSED

Before ``join`` the handler task talks to the socket itself: it checks the
``Origin``, authenticates (the ``Authorization`` header, or the token in
``hello`` for browsers, which cannot set headers on a websocket), answers
pings so clocks can start syncing early, and runs the join through the same
service as ``POST /rooms/{id}/join``. Then the live room takes over.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from math import ceil
from typing import Any, Literal, cast
from urllib.parse import urlsplit
from uuid import UUID

import trio
from quart import Response, current_app, websocket

from syncplayd.clocks import monotonic
from syncplayd.core import protocol
from syncplayd.core.ratelimit import TokenBucket
from syncplayd.identity import InvalidToken, Principal
from syncplayd.server.http.auth import (
    Incoming,
    bearer_token,
    host_allowed,
    proxy_principal,
    request_address,
    token_principal,
)
from syncplayd.server.http.problems import problem
from syncplayd.server.http.state import AppState
from syncplayd.server.live.cluster import RoomElsewhere
from syncplayd.server.live.connection import (
    CLOSE_CODES,
    CLOSE_GRACE_SECONDS,
    Connection,
    DirectConnection,
    WebSocketLike,
)
from syncplayd.server.live.direct_socket import DirectSocket, SocketClosed
from syncplayd.server.live.live_room import StandingRead
from syncplayd.server.live.messages import chat_entry
from syncplayd.server.live.user_connections import Hold, TooManyConnections
from syncplayd.server.process.front_door import Upgrade, take_upgrade
from syncplayd.service import ServiceError
from syncplayd.storage.errors import StorageError

log = logging.getLogger(__name__)

HELLO_TIMEOUT_SECONDS = 10.0
_NO_NURSERY = contextlib.nullcontext(None)
JOIN_TIMEOUT_SECONDS = 30.0
#: How :meth:`Handshake._join_room` ended (see there).
_Outcome = Literal["refused", "served", "kept"]


def origin_allowed(origin: str | None, host: str | None, allowed: tuple[str, ...]) -> bool:
    """Browsers send ``Origin``; other clients do not, and need no check.

    A browser page may connect from the daemon's own origin or one listed in
    ``websocket.allowed_origins``: this is what stops another
    site from riding on a user's cookies or tokens (cross-site websocket hijacking).
    """
    if origin is None:
        return True
    origin = origin.lower().rstrip("/")
    if origin in allowed:
        return True
    return host is not None and urlsplit(origin).netloc == host.lower()


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why an upgrade is answered with an HTTP problem instead of a WebSocket."""

    status: int
    code: str
    detail: str


#: A room id as the REST API shows it: a UUID, lower-case, with hyphens.
_ROOM_ID = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def room_in_url(query_string: bytes) -> UUID | Refusal | None:
    """The room the URL names (``?room=<id>``), ``None`` if it names none, or why not.

    A multi-node deployment's nginx sends a room's members to one node by hashing this
    parameter (``hash $arg_room consistent``) as nginx reads it: the name in any case,
    the value not percent-decoded, the first one if there are several. It is judged here
    the same way, and only one spelling of an id is taken, the canonical one: two
    spellings of one room would send its members to two nodes. A second ``room`` is
    refused rather than guessed at.
    """
    values = [
        value
        for name, _, value in (part.partition(b"=") for part in query_string.split(b"&"))
        if name.lower() == b"room"
    ]
    if not values:
        return None
    if len(values) > 1:
        return Refusal(400, "bad-request", "the URL names more than one room")
    if _ROOM_ID.fullmatch(values[0]) is None:
        return Refusal(
            400, "bad-request", "room must be a room id (a UUID, lower-case, with hyphens)"
        )
    return UUID(values[0].decode("ascii"))


def admission(state: AppState, incoming: Incoming) -> Principal | Refusal | None:
    """Whether to accept the upgrade ``incoming``: the proxy's user (or ``None``), or why not.

    The same checks for both ways in: Quart's route and the front door.
    """
    settings = state.settings.syncplay
    if not settings.enabled:
        return Refusal(503, "disabled", "SyncPlay is disabled on this server")
    headers = incoming.headers
    if not origin_allowed(
        headers.get("Origin"), headers.get("Host"), settings.websocket.allowed_origins
    ):
        return Refusal(403, "origin-not-allowed", "this origin may not open a websocket here")
    if state.supervisor is None or state.supervisor.shutting_down:
        return Refusal(503, "unavailable", "the server is restarting")
    try:
        return proxy_principal(state, incoming)
    except InvalidToken as exc:
        return Refusal(401, "unauthorized", str(exc))


def admit(
    state: AppState, incoming: Incoming, query_string: bytes
) -> tuple[Principal | None, UUID | None] | Refusal:
    """:func:`admission`, then the room in the URL: the user the proxy vouches for (or
    ``None``) and the room the URL names (or ``None``), or why the upgrade is refused."""
    vouched = admission(state, incoming)
    if isinstance(vouched, Refusal):
        return vouched
    room = room_in_url(query_string)
    if isinstance(room, Refusal):
        return room
    return vouched, room


async def websocket_endpoint() -> Response | None:
    """The Quart websocket route (registered on the API blueprint).

    The front door serves every upgrade it would accept on the bare socket: a
    connection's first request itself, a later one on a kept-alive connection (which
    hypercorn parsed) when it is given back here. What is left is answered here: the
    upgrades it refuses, and any on a connection that did not come through it.
    """
    if take_upgrade(websocket.scope):
        return None  # the front door serves it: nothing more to answer here
    state: AppState = current_app.extensions["syncplayd"]
    admitted = admit(state, websocket, websocket.query_string)
    if isinstance(admitted, Refusal):
        return problem(admitted.status, admitted.code, admitted.detail)
    vouched, room_hint = admitted
    # The proxied object itself: the room's tasks use it outside this request context.
    ws: WebSocketLike = QuartSocket(cast("Any", websocket)._get_current_object())
    await websocket.accept()
    address = request_address(state, websocket)
    authorization = websocket.headers.get("Authorization")
    handshake = Handshake(state, ws, authorization, vouched, address=address, room_hint=room_hint)
    await _without_cancelled_groups(handshake.run())
    return None


#: Sockets pinged between two turns of the rooms (``DirectRoute.keep_alive``): ~1 ms of writes.
KEEP_ALIVE_BATCH = 100


class DirectRoute:
    """``WS /api/v1/syncplay/ws`` served by the front door (``server/process/front_door.py``).

    Its sockets write each frame as it is sent (``direct_socket.py``). Pings every
    ``websocket.ping_interval_seconds`` keep proxies from dropping quiet
    connections, and a socket that has sent nothing for the read timeout is
    dropped (:meth:`keep_alive`, one task for all of them).
    """

    path = b"/api/v1/syncplay/ws"

    def __init__(self, state: AppState, read_timeout: float) -> None:
        self._state = state
        self._read_timeout = read_timeout
        self._sockets: set[DirectSocket] = set()
        self._flushes: trio.Nursery | None = None

    async def run(
        self, ping_interval: float, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """The route's tasks: the keep-alive sweep, and the flushes of sockets that fell behind
        (one nursery for all, rather than one per connection: memory per member)."""
        async with trio.open_nursery() as nursery:
            self._flushes = nursery
            nursery.start_soon(self.keep_alive, ping_interval)
            task_status.started()

    def admit(self, upgrade: Upgrade) -> Admitted | None:
        state = self._state
        if not host_allowed(upgrade.headers.getlist("Host"), state.settings.server.allowed_hosts):
            return None  # Quart answers 421
        if self._flushes is None:
            return None  # not running: Quart's path serves it
        admitted = admit(state, upgrade, upgrade.query_string)
        if isinstance(admitted, Refusal):
            return None
        vouched, room_hint = admitted
        # What serving needs, read now: the request's headers are not kept.
        authorization = upgrade.headers.get("Authorization")
        return Admitted(vouched, request_address(state, upgrade), authorization, room_hint)

    async def serve(self, stream: trio.SocketStream, admitted: object, leftover: bytes) -> bool:
        """The handshake; once joined, the live room serves the socket (``True``): its
        reader task is then the connection's only task, and :meth:`_let_go` ends it."""
        assert isinstance(admitted, Admitted)  # noqa: S101 - what admit returned
        assert self._flushes is not None  # noqa: S101 - admit checked it
        state = self._state
        socket = DirectSocket(
            stream,
            leftover,
            max_message_bytes=state.settings.server.max_request_bytes,
            spawn=self._flushes.start_soon,
            send_timeout=state.settings.syncplay.sync.disconnect_timeout_seconds,
        )
        del leftover
        self._sockets.add(socket)
        kept = False
        try:
            handshake = Handshake(
                state,
                socket,
                admitted.authorization,
                admitted.vouched,
                address=admitted.address,
                room_hint=admitted.room_hint,
                on_kept=self._let_go,
            )
            del admitted
            kept = await handshake.run()
            return kept
        finally:
            if not kept:
                self._sockets.discard(socket)
                await _finish(socket)

    def _let_go(self, socket: DirectSocket) -> None:
        """The room is done with a socket it kept: say goodbye and close, in a task of ours."""
        self._sockets.discard(socket)
        assert self._flushes is not None  # noqa: S101 - the route admitted the socket
        try:
            self._flushes.start_soon(_finish, socket)
        except RuntimeError:  # the route has stopped (the daemon is exiting): no goodbye
            socket.drop("the server is stopping")

    async def keep_alive(self, interval: float) -> None:
        """Ping every socket each ``interval``; drop those silent for the read timeout.

        A few sockets at a time, with the rooms' turn in between: written in one go,
        the pings of 10,000 sockets held every room for ~200 ms (docs/benchmarks.md,
        capacity).
        """
        while True:
            await trio.sleep(interval)
            silent_since = monotonic() - self._read_timeout
            for done, socket in enumerate(list(self._sockets), 1):
                if socket.last_received < silent_since:
                    socket.abort("no data for the read timeout")
                else:
                    socket.ping()
                if done % KEEP_ALIVE_BATCH == 0:
                    await trio.lowlevel.checkpoint()


async def _finish(socket: DirectSocket) -> None:
    # Shielded: the goodbye and the FIN must go out at a shutdown too (``finish``
    # bounds its own waits).
    with trio.CancelScope(shield=True):
        await socket.finish(CLOSE_GRACE_SECONDS)


@dataclass(frozen=True, slots=True)
class Admitted:
    """An upgrade the front door serves: the proxy's user if it vouched for one, the
    client's address, the ``Authorization`` header and the room the URL names."""

    vouched: Principal | None
    address: str | None
    authorization: str | None
    room_hint: UUID | None = None


async def _without_cancelled_groups(work: Awaitable[object]) -> None:
    """Await ``work``; if it is cancelled, let one plain ``Cancelled`` out, never a group.

    quart-trio cancels the handler when the peer disconnects. The cancellation comes
    out of our nurseries as an exception group, which Quart's handlers catch and
    raise again while holding it in a local variable: every closed connection then
    left ~340 objects in reference cycles (the group's tracebacks hold the frames
    that hold the group), freed only by a full collection. A plain ``Cancelled``
    goes straight through Quart (``except trio.Cancelled: raise``).
    """
    try:
        await work
    except BaseExceptionGroup as group:
        if group.split(trio.Cancelled)[1] is not None:
            raise
        cancelled = _first_leaf(group)
    else:
        return
    # Raised outside the ``except`` block, so that the group does not become its
    # ``__context__`` (the group holds it: another cycle); our frame is on its traceback.
    try:
        raise cancelled
    finally:
        del cancelled


def _first_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException:
    first = group.exceptions[0]
    return _first_leaf(first) if isinstance(first, BaseExceptionGroup) else first


class QuartSocket:
    """Quart's websocket, receiving what the client sent.

    Quart hands a message to the app as ``bytes or text``, so an empty binary frame
    arrives as ``None``; it crashed the handshake and the live room (every member's
    socket) until it was given back here as ``b""``: a binary frame, refused as such.
    """

    def __init__(self, ws: Any) -> None:
        self._ws = ws

    async def send(self, data: str) -> None:
        await self._ws.send(data)

    async def receive(self) -> str | bytes:
        data: str | bytes | None = await self._ws.receive()
        return b"" if data is None else data

    async def close(self, code: int, reason: str = "") -> None:
        await self._ws.close(code, reason)


class Handshake:
    """Everything before the connection is in a room."""

    def __init__(
        self,
        state: AppState,
        ws: WebSocketLike,
        authorization: str | None,
        vouched: Principal | None = None,
        *,
        address: str | None = None,
        room_hint: UUID | None = None,
        on_kept: Callable[[DirectSocket], None] | None = None,
    ) -> None:
        self._state = state
        self._ws = ws
        # Given: a joined socket is left to the live room, and this is called when the
        # room lets go of it (``DirectRoute``). Not given: the handler serves it to the end.
        self._on_kept = on_kept
        self._authorization = authorization
        self._vouched = vouched
        self._address = address  # the peer, for the failed-attempt budget of joins
        # The room the URL named (``?room=``), by which a proxy chose this node.
        self._room_hint = room_hint
        self._clock = state.clock
        # The live room's frame budget (live_room.py), from the first frame on: a
        # client must not get unlimited work (token checks, joins) before it joins.
        per_second = state.settings.syncplay.websocket.max_messages_per_second
        self._frames = TokenBucket(
            capacity=per_second * 2, rate=per_second, tokens=per_second * 2, stamp=state.clock.now()
        )
        self._limited_notice_at: float | None = None

    async def run(self) -> bool:
        """Hello and join; ``True`` if a live room now serves the socket (``on_kept``)."""
        try:
            principal = await self._hello()
            if principal is not None:
                return await self._join(principal)
        except (trio.BrokenResourceError, SocketClosed):
            pass  # the peer went away during the handshake
        except trio.BusyResourceError:
            # The peer closed as we were closing: hypercorn 0.18 shuts its side of
            # the stream (send_eof) outside the lock that guards our close frame.
            # The socket is gone either way; this is not an error of ours.
            pass
        return False

    async def _send(self, message: protocol.ServerMessage) -> None:
        await self._ws.send(protocol.encode(message))

    async def _close(
        self, reason: protocol.CloseReason, message: str, *, retry_after: float | None = None
    ) -> None:
        if retry_after is not None and reason not in protocol.RETRY_REASONS:
            raise ValueError(f"a {reason!r} closing says no time to come back")
        await self._send(protocol.Closing(reason=reason, message=message, retry_after=retry_after))
        await self._ws.close(CLOSE_CODES[reason], reason)

    async def _error(self, code: str, message: str) -> None:
        await self._send(protocol.ErrorOut(code=code, message=message))

    async def _receive(self, deadline: float) -> protocol.ClientMessage | None:
        """The next well-formed message before ``deadline``; errors are answered here."""
        while True:
            with trio.move_on_at(deadline):
                data = await self._ws.receive()
                received = self._clock.now()
                if self._frames.take(received) > 0:
                    # Dropped. One notice per second, as in the live room.
                    last = self._limited_notice_at
                    if last is None or received - last >= 1.0:
                        self._limited_notice_at = received
                        await self._error("rate-limited", "too many messages")
                    continue
                if isinstance(data, bytes):
                    await self._error("bad-message", "binary frames are not supported")
                    continue
                try:
                    message = protocol.decode_client(data)
                except protocol.ProtocolError as exc:
                    await self._error(exc.code, exc.message)
                    continue
                if isinstance(message, protocol.Ping):
                    pong = protocol.Pong(
                        id=message.id, t0=message.t0, t1=received, t2=self._clock.now()
                    )
                    await self._send(pong)
                    continue
                return message
            await self._close("idle-timeout", "no hello/join in time")
            return None

    async def _hello(self) -> Principal | None:
        message = await self._receive(self._clock.deadline(HELLO_TIMEOUT_SECONDS))
        if message is None:
            return None
        if not isinstance(message, protocol.Hello):
            await self._close("protocol-error", "the first message must be hello")
            return None
        if message.protocol != protocol.PROTOCOL_VERSION:
            await self._error(
                "unsupported-protocol", f"this server speaks protocol {protocol.PROTOCOL_VERSION}"
            )
            await self._close("protocol-error", "unsupported protocol version")
            return None
        token = message.token or bearer_token(self._authorization)
        try:
            if token is not None:
                principal = token_principal(self._state, token)
            elif self._vouched is not None:
                principal = self._vouched  # identity from the trusted reverse proxy
            else:
                await self._close("unauthorized", "a token is required (header or hello.token)")
                return None
        except InvalidToken as exc:
            await self._close("unauthorized", str(exc))
            return None
        await self._send(
            protocol.Welcome(
                protocol=protocol.PROTOCOL_VERSION,
                server_time=self._clock.now(),
                user_id=str(principal.user_id),
                user_name=principal.name,
                is_admin=principal.is_admin,
            )
        )
        return principal

    async def _join(self, principal: Principal) -> bool:
        """Join a room (retrying after refusals); ``True`` if the room keeps the socket."""
        deadline = self._clock.deadline(JOIN_TIMEOUT_SECONDS)
        state = self._state
        supervisor = state.supervisor
        assert supervisor is not None  # noqa: S101 - checked before accept
        limit = state.settings.syncplay.websocket.max_connections_per_user
        while True:
            message = await self._receive(deadline)
            if message is None:
                return False
            if not isinstance(message, protocol.Join):
                await self._error("not-joined", "join a room first")
                continue
            try:
                room_id = UUID(message.room_id)
            except ValueError:
                await self._error("bad-message", "room_id must be a UUID")
                continue
            if self._room_hint is not None and room_id != self._room_hint:
                # The proxy chose this node by the URL's room: a join of another room
                # would run it where its members are not sent.
                await self._error("bad-message", "the join names another room than the URL")
                continue
            wait = supervisor.join_wait(principal.user_id)
            if wait > 0:
                await self._error("rate-limited", f"too many joins; retry in {ceil(wait)} s")
                continue
            # Counted from here, before the join's first await: checked first and
            # counted later, concurrent joins all passed the check.
            try:
                hold = supervisor.user_connections.take(principal.user_id, limit)
            except TooManyConnections as exc:
                await self._error("too-many-connections", str(exc))
                await self._close("too-many-connections", "too many connections for this user")
                return False
            outcome: _Outcome = "refused"
            try:
                outcome = await self._join_room(principal, room_id, message, hold)
            finally:
                if outcome != "kept":
                    hold.release()
            if outcome != "refused":
                return outcome == "kept"

    def _connection(self, principal: Principal) -> Connection | DirectConnection:
        state = self._state
        if isinstance(self._ws, DirectSocket):
            return DirectConnection(self._ws, principal, self._clock.now, state.metrics)
        # A peer that takes nothing for the disconnect timeout is as gone as a silent one.
        return Connection(
            self._ws,
            principal,
            self._clock.now,
            state.metrics,
            send_timeout=state.settings.syncplay.sync.disconnect_timeout_seconds,
        )

    async def _join_room(
        self, principal: Principal, room_id: UUID, message: protocol.Join, hold: Hold
    ) -> _Outcome:
        """Join the room, and serve the connection until it ends or leave it to the room.

        ``refused``: the join was refused (said why; the client may try again);
        ``served``: the connection ended (or was sent elsewhere) here; ``kept``: the
        live room serves it from now on and gives ``hold`` back when it lets go.
        """
        state = self._state
        supervisor = state.supervisor
        assert supervisor is not None  # noqa: S101 - checked before accept
        # Taken before the service reads the joiner's standing: the room then need not
        # read it again (``LiveRoom.attach``).
        running = supervisor.running(room_id)
        count_before = None if running is None else running.moderation_count
        try:
            admission = await state.service.admit(
                principal,
                room_id,
                password=message.password,
                invitation_code=message.invitation_code,
                address=self._address,
            )
            room, participant = admission.room, admission.participant
            recent = [chat_entry(m) for m in await state.service.recent_chat(room_id)]
            live = supervisor.running(room_id)
            if live is None:
                # Only needed when this join starts the live room: a live one keeps its own.
                queue = await state.service.queue.get(principal, room_id)
                live = await supervisor.live_room(room, queue)
                del queue
            # Another live room than the one counted (it ended and started again) has not
            # counted what reached the first one: it reads the standing itself.
            read = None
            if live is running and count_before is not None:
                read = StandingRead(admission.standing, count_before)
            del admission, running
        except ServiceError as exc:
            await self._error(exc.code, exc.detail)
            return "refused"
        except StorageError as exc:
            log.warning("join of room %s failed: database unavailable: %s", room_id, exc)
            await self._error("unavailable", "the database is unavailable; retry")
            return "refused"
        except RoomElsewhere as exc:
            # Multi-node mode: another node runs the room and was asked to hand it over;
            # the client comes back through the proxy, which sends it here again.
            await self._close("moved", str(exc), retry_after=exc.retry_after)
            return "served"
        connection = self._connection(principal)
        # The history is sent once, in ``joined``; the connection may last for hours,
        # and this frame with it: keep none of it (``attach`` empties ``recent``).
        refusal: ServiceError | None = None
        moved: RoomElsewhere | None = None
        kept = False
        # A queued connection's writer runs beside the room, in this task's nursery; a
        # direct one has none (and no nursery to keep for the connection's life).
        async with (
            trio.open_nursery() if isinstance(connection, Connection) else _NO_NURSERY as writer
        ):
            if writer is not None and isinstance(connection, Connection):
                writer.start_soon(connection.run_writer)
            # Caught in here: out of the nursery it would come wrapped in an exception group.
            try:
                await live.attach(connection, participant, room, recent, message.resume, read)
                # Kept in this frame for as long as the connection lasts otherwise: records
                # read for the join, per member, for hours (docs/benchmarks.md: memory).
                del room, participant, recent, live, read
                if self._on_kept is not None and isinstance(connection, DirectConnection):
                    # The room's reader task is all the connection needs from here: this
                    # task ends (one task per member, not two). No checkpoint lies between
                    # ``attach`` starting the reader and this, so the reader sees it.
                    connection.on_done = _Kept(hold, self._on_kept, connection.socket)
                    kept = True
                else:
                    await connection.done.wait()
            except ServiceError as exc:
                # The room ended meanwhile, or a ban landed after the service let the
                # user in (the room reads the joiner's standing again: see ``attach``).
                refusal = exc
            except RoomElsewhere as exc:
                moved = exc  # it ended to move (multi-node mode): come back in a moment
            except StorageError as exc:
                log.warning("join of room %s failed: database unavailable: %s", room_id, exc)
                refusal = ServiceError(503, "unavailable", "the database is unavailable; retry")
            finally:
                if not kept:
                    # The reader (in the room) stops if this handler is cancelled
                    # because the peer vanished; the writer finishes its queue.
                    connection.scope.cancel()
                    if isinstance(connection, Connection):
                        connection.finish()
        if kept:
            return "kept"
        if moved is not None:
            await self._close("moved", str(moved), retry_after=moved.retry_after)
            return "served"
        if refusal is not None:
            await self._error(refusal.code, refusal.detail)
            return "refused"
        return "served"


class _Kept:
    """A kept connection's ``on_done``: its user's count, then its socket, go back."""

    __slots__ = ("_hold", "_let_go", "_socket")

    def __init__(
        self, hold: Hold, let_go: Callable[[DirectSocket], None], socket: DirectSocket
    ) -> None:
        self._hold = hold
        self._let_go = let_go
        self._socket = socket

    def __call__(self) -> None:
        self._hold.release()
        self._let_go(self._socket)
