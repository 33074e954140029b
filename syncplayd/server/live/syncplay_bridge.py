"""The Syncplay-protocol listener: Syncplay desktop clients in syncplayd's rooms.

One more transport into the live rooms (docs/architecture.md §3.1): a client's
``Hello`` becomes a ``RoomService.join`` for a guest identity, and the joined
client becomes a room connection whose socket is a :class:`SyncplayLink`. The
mapping, and what is not supported, is in docs/syncplay-bridge.md:

* the Syncplay **room name** is an invitation code, or the id of a public room
  (private rooms stay unreachable without a code);
* the Syncplay **password** is the room's password (Syncplay sends its MD5,
  checked against the room's verifier for desktop clients);
* the **username** is the display name of a guest identity that lasts as long
  as the connection (a fresh user id each time: nobody can take over another
  desktop user's membership or role by using their name); the membership is
  left when the connection ends.

In multi-node mode a client whose room runs on another node is admitted here and then
relayed, byte for byte, to that node's listener, behind a signed ticket that tells it
who was admitted and from where (:mod:`syncplayd.core.syncplay.forward`): clients may
reach any node's listener.

Served by the daemon's root nursery, not a separate process; off unless
``syncplay_bridge.listen`` is set.
"""

from __future__ import annotations

import logging
import math
import re
import secrets
import ssl
import uuid
from functools import partial
from typing import Final
from urllib.parse import urlsplit

import trio

from syncplayd.clocks import ServerClock
from syncplayd.config import SyncplayBridgeSettings, parse_listen
from syncplayd.core.ratelimit import RateLimiter
from syncplayd.core.syncplay import forward, wire
from syncplayd.core.syncplay.session import BridgeSession, Limits
from syncplayd.core.text import CONTROL_CHARS
from syncplayd.identity import Principal
from syncplayd.server.http.state import AppState
from syncplayd.server.live.cluster import RoomElsewhere
from syncplayd.server.live.connection import Connection
from syncplayd.server.live.messages import chat_entry
from syncplayd.server.live.syncplay_link import SyncplayLink
from syncplayd.service import ServiceError
from syncplayd.storage.errors import StorageError

log = logging.getLogger(__name__)

#: A client must say Hello (after STARTTLS, if it asks for it) within this.
HELLO_TIMEOUT_SECONDS: Final = 10.0
#: Connections one address may open per minute (bursts of 20): each is a join.
JOINS_PER_MINUTE: Final = 60.0
NAME_LENGTH: Final = 64
#: How long a node may take to accept a client relayed to it.
RELAY_CONNECT_SECONDS: Final = 5.0
RELAY_BYTES: Final = 16 * 1024
#: A joined client is sent a State every second: a relay that hears nothing from the
#: room's node for this long has lost it (a vanished machine closes nothing).
RELAY_SILENCE_SECONDS: Final = 30.0
_CONTROL = re.compile(f"[{CONTROL_CHARS}]")


def guest_name(username: str) -> str:
    """A display name from a Syncplay username: no control characters, one space at most
    between words, at most NAME_LENGTH characters."""
    name = " ".join(_CONTROL.sub(" ", username).split())[:NAME_LENGTH]
    return name or "Anonymous"


def tls_context(settings: SyncplayBridgeSettings) -> ssl.SSLContext | None:
    """The STARTTLS context, or ``None`` when no certificate is configured.

    TLS 1.2 at least, as Syncplay's own server requires.
    """
    if settings.tls_certificate is None or settings.tls_private_key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(settings.tls_certificate), str(settings.tls_private_key))
    return context


def relay_address(host: str, port: int, node_url: str) -> str:
    """``HOST:PORT`` of a listener bound to ``host``, as the other nodes reach it: the host
    of the node's URL (``cluster.url``) stands in for a wildcard."""
    if host in ("0.0.0.0", "::"):  # noqa: S104  # nosec B104 - compared, not bound
        host = urlsplit(node_url).hostname or host  # config.check_node_url: it has one
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class SyncplayBridge:
    """The listener and each client's way in (see the module docstring)."""

    def __init__(self, state: AppState, settings: SyncplayBridgeSettings) -> None:
        self._state = state
        self._settings = settings
        self._tls = tls_context(settings)
        self._joins: RateLimiter[str] = RateLimiter(JOINS_PER_MINUTE, burst=20)
        self._ticket_key = forward.ticket_key(state.jwt_secret)
        self._seen_tickets = forward.SeenTickets()
        #: The relays to other nodes, cancelled when the daemon stops.
        self._relays: set[trio.CancelScope] = set()
        self._stopping = False
        self.connections = 0
        self._listeners: list[trio.SocketListener] = []

    async def bind(self) -> None:
        """Open the listening sockets (before serving: a refusal is a start-up error).

        Raises:
            OSError: the address is in use, not local, or not allowed.
        """
        assert self._settings.listen is not None  # noqa: S101 - the daemon checks it
        host, port = parse_listen(self._settings.listen)
        self._listeners = await trio.open_tcp_listeners(port, host=host or None)

    @property
    def addresses(self) -> list[str]:
        """The bound addresses, HOST:PORT (IPv6 bracketed)."""
        shown = []
        for listener in self._listeners:
            host, port = listener.socket.getsockname()[:2]
            shown.append(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
        return shown

    def reachable_at(self, node_url: str) -> str:
        """Where the other nodes reach this listener (see :func:`relay_address`)."""
        host, port = self._listeners[0].socket.getsockname()[:2]
        return relay_address(host, port, node_url)

    async def serve(self, *, shutdown_trigger: trio.Event) -> None:
        """Accept clients until ``shutdown_trigger``; the clients stay until the rooms
        close them (the daemon's shutdown tells every room to), relayed ones are cut
        (they reconnect, to a node that runs)."""
        async with trio.open_nursery() as clients, trio.open_nursery() as accepting:
            for listener in self._listeners:
                accepting.start_soon(self._accept, listener, clients)
            await shutdown_trigger.wait()
            accepting.cancel_scope.cancel()
            self._stopping = True
            for relay in self._relays:
                relay.cancel()

    def read_ticket(self, line: bytes) -> forward.Ticket:
        """The ticket of a client relayed by another node.

        Raises:
            WireError: not a good ticket (forged, expired, already used).
        """
        return forward.read_ticket(
            line,
            self._ticket_key,
            self._state.clock.now(),
            self._seen_tickets,
            leeway=self._state.settings.auth.jwt_leeway_seconds,
        )

    async def _accept(self, listener: trio.SocketListener, clients: trio.Nursery) -> None:
        async with listener:
            while True:
                stream = await listener.accept()
                clients.start_soon(self._serve_client, stream)

    async def _serve_client(self, stream: trio.SocketStream) -> None:
        try:
            peer = stream.socket.getpeername()
            address = str(peer[0]) if isinstance(peer, tuple) else None
        except OSError:
            address = None
        self.connections += 1
        try:
            await Client(self, stream, address).run()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the client went away
        finally:
            self.connections -= 1
            with trio.CancelScope(shield=True), trio.move_on_after(1.0):
                await stream.aclose()


class Client:
    """One Syncplay connection, from its first line to the end of its membership."""

    def __init__(self, bridge: SyncplayBridge, stream: trio.SocketStream, address: str | None):
        self._bridge = bridge
        self._state = bridge._state
        self._clock: ServerClock = bridge._state.clock
        self._stream: trio.abc.Stream = stream
        self._address = address
        self._reader = wire.LineReader()
        self._lines: list[bytes] = []  # read, not yet handled
        self._hello_line = b""
        #: Set when another node admitted the client and relays it here.
        self._ticket: forward.Ticket | None = None

    async def _write(self, message: dict[str, object]) -> None:
        await self._stream.send_all(wire.encode_line(message))

    async def _refuse(self, message: str) -> None:
        """Syncplay's ``dropWithError``: the client shows the message and stops retrying."""
        log.info("syncplay client at %s refused: %s", self._address, message)
        with trio.move_on_after(5.0):
            await self._write({"Error": {"message": message}})

    async def run(self) -> None:
        bridge = self._bridge
        if bridge.connections > bridge._settings.max_connections:
            await self._refuse("This server is full; try again later.")
            return
        hello = None
        with trio.move_on_after(HELLO_TIMEOUT_SECONDS):
            hello = await self._hello()
        if hello is None:
            return
        # A relayed client was counted by the node that admitted it, under its own address.
        if self._ticket is None:
            wait = bridge._joins.hit(self._address or "", self._clock.now())
            if wait > 0:
                await self._refuse(
                    f"Too many connections from your address; retry in {wait:.0f} s."
                )
                return
        await self._join(hello)

    async def _hello(self) -> wire.Hello | None:
        """Read lines until Hello, answering STARTTLS on the way (and taking a relaying
        node's ticket, which may only come first)."""
        first = True
        while True:
            while not self._lines:
                data = await self._stream.receive_some(16 * 1024)
                if not data:
                    return None
                try:
                    self._lines = self._reader.feed(data)
                except wire.WireError as exc:
                    await self._refuse(str(exc))
                    return None
            line = self._lines.pop(0)
            try:
                if first and forward.is_ticket_line(line):
                    self._ticket = self._bridge.read_ticket(line)
                    self._address = self._ticket.address
                    first = False
                    continue
                first = False
                for command, body in wire.decode_line(line):
                    if command == "TLS":
                        if self._lines or self._reader.pending:
                            raise wire.WireError("nothing may follow a STARTTLS request")
                        await self._start_tls(body)
                    elif command == "Hello":
                        self._hello_line = line
                        return wire.parse_hello(body)
                    else:
                        raise wire.WireError("say Hello first")
            except wire.WireError as exc:
                await self._refuse(str(exc))
                return None

    async def _leave_quietly(self, principal: Principal, room_id: uuid.UUID) -> None:
        with trio.CancelScope(shield=True), trio.move_on_after(5.0):
            await _leave(self._state, principal, room_id)

    async def _start_tls(self, body: object) -> None:
        asked = isinstance(body, dict) and body.get("startTLS") == "send"
        context = self._bridge._tls
        # A relayed client's TLS, if any, ended on the node that relays it.
        relayed = self._ticket is not None
        if not asked or context is None or relayed or isinstance(self._stream, trio.SSLStream):
            await self._write({"TLS": {"startTLS": "false"}})
            return
        await self._write({"TLS": {"startTLS": "true"}})
        tls = trio.SSLStream(self._stream, context, server_side=True)
        await tls.do_handshake()
        self._stream = tls

    async def _join(self, hello: wire.Hello) -> None:
        state = self._state
        supervisor = state.supervisor
        if supervisor is None or supervisor.shutting_down or not state.settings.syncplay.enabled:
            await self._refuse("The server is restarting; try again in a moment.")
            return
        ticket = self._ticket
        user_id = uuid.uuid4() if ticket is None else ticket.user_id
        principal = Principal(user_id=user_id, name=guest_name(hello.username))
        service = state.service
        code: str | None = None
        try:
            if ticket is not None:
                # Admitted by the node that relays it: the membership that node made is
                # found (a ban or the room's end since then still refuses).
                room_id = ticket.room_id
            else:
                try:
                    room_id = uuid.UUID(hello.room)
                except ValueError:
                    # Not a room id: an invitation code, which names its room.
                    code = hello.room
                    _, found = await service.get_invitation(principal, code, address=self._address)
                    room_id = found.id
            room, participant = await service.join(
                principal,
                room_id,
                syncplay_password=hello.password,
                invitation_code=code,
                address=self._address,
            )
            recent = [chat_entry(m) for m in await service.recent_chat(room_id)]
            live = supervisor.running(room_id)
            if live is None:
                queue = await service.queue.get(principal, room_id)
                # A Syncplay client cannot be sent to another node (its room is not in
                # anything a proxy could route by): it never asks for a handover.
                live = await supervisor.live_room(room, queue, ask_handover=False)
        except ServiceError as exc:
            await self._refuse(_refusal_text(exc))
            return
        except RoomElsewhere as exc:
            await self._elsewhere(exc, principal, room_id)
            return
        except StorageError as exc:
            log.warning("syncplay join of %s failed: database unavailable: %s", hello.room, exc)
            await self._refuse("The server's database is unavailable; try again later.")
            return
        chat_limit = state.settings.syncplay.chat.max_message_length
        session = BridgeSession(
            username=principal.name,
            room_name=hello.room,
            client_version=hello.version,
            motd=self._bridge._settings.motd,
            limits=Limits(chat_length=chat_limit, name_length=NAME_LENGTH),
            now=self._clock.now(),
        )
        send_timeout = state.settings.syncplay.sync.disconnect_timeout_seconds
        link = SyncplayLink(
            self._stream,
            self._reader,
            session,
            self._clock.now,
            chat_limit=chat_limit,
            send_timeout=send_timeout,
        )
        connection = Connection(
            link, principal, self._clock.now, state.metrics, send_timeout=send_timeout
        )
        connection.desktop = True
        link.read_first(self._lines)
        link.on_drop = partial(connection.close, "idle-timeout")
        link.play_item = partial(_play_item, state, principal, room_id)
        log.info(
            "syncplay client %r joined room %s from %s%s",
            principal.name,
            room_id,
            self._address,
            "" if ticket is None else f" (relayed by node {ticket.node})",
        )
        try:
            async with trio.open_nursery() as tasks:
                tasks.start_soon(connection.run_writer)
                try:
                    await live.attach(connection, participant, room, recent, None)
                    del room, participant, recent
                    tasks.start_soon(link.run_clock)
                    await connection.done.wait()
                except ServiceError as exc:
                    await link.fail(_refusal_text(exc))
                except RoomElsewhere:
                    await link.aclose()  # it moves: the client reconnects by itself
                finally:
                    connection.scope.cancel()
                    connection.finish()  # the writer sends what is queued, or the goodbye
                    link.stop_clock()
        finally:
            # A guest's membership ends with its connection: nothing of it lingers in
            # the room's member list (and the room's People list says "left").
            await self._leave_quietly(principal, room_id)
            await link.aclose()

    async def _elsewhere(
        self, exc: RoomElsewhere, principal: Principal, room_id: uuid.UUID
    ) -> None:
        """The room runs on another node: relay the client there, or say why not.

        A room between two nodes (handed over, or moved on since another node relayed
        the client here) has the connection closed without an error: Syncplay clients
        reconnect by themselves, and the node they reach then relays them.
        """
        target = None
        cluster = self._state.supervisor.cluster if self._state.supervisor else None
        if exc.owner is not None and self._ticket is None and cluster is not None:
            try:
                target = await cluster.syncplay_bridge_of(exc.owner)
            except StorageError as error:
                log.warning("syncplay relay: cannot read the nodes: %s", error)
        if target is not None and cluster is not None and not self._bridge._stopping:
            here = forward.Ticket(principal.user_id, room_id, self._address, cluster.node_id)
            await self._relay(target, exc.owner, principal, here)
            return
        await self._leave_quietly(principal, room_id)
        if exc.owner is None or self._ticket is not None:
            return
        await self._refuse(
            f"This room is live on another server node ({exc.owner}), which does not accept"
            " Syncplay clients; join when the room is not live."
        )

    async def _relay(
        self, target: str, owner: str | None, principal: Principal, ticket: forward.Ticket
    ) -> None:
        """Relay the client to ``target`` (the room's node's listener) until either ends."""
        bridge = self._bridge
        room_id = ticket.room_id
        host, _, port = target.rpartition(":")
        try:
            with trio.fail_after(RELAY_CONNECT_SECONDS):
                upstream = await trio.open_tcp_stream(host.strip("[]"), int(port))
        except (OSError, ValueError, trio.TooSlowError) as exc:
            # Closed without an error: the client reconnects, and a node that died has its
            # rooms free within seconds (then the node it reaches runs the room itself).
            log.warning("syncplay relay to node %s (%s) failed: %s", owner, target, exc)
            await self._leave_quietly(principal, room_id)
            return
        # The ticket, then what the client sent from its Hello on, as it came.
        head = forward.ticket_line(
            ticket, bridge._ticket_key, self._clock.now(), secrets.token_urlsafe(16)
        )
        head += b"".join(line + b"\r\n" for line in (self._hello_line, *self._lines))
        head += self._reader.take_pending()
        self._lines = []
        log.info("syncplay client relayed to node %s for room %s", owner, room_id)
        scope = trio.CancelScope()
        bridge._relays.add(scope)
        try:
            async with upstream:
                with scope:
                    await upstream.send_all(head)
                    await _splice(self._stream, upstream)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # either side went away
        finally:
            bridge._relays.discard(scope)
            # The room's node ends the membership when its side ends; if it never took the
            # client (refused, gone), this ends it (once more is harmless).
            await self._leave_quietly(principal, room_id)


async def _splice(
    client: trio.abc.Stream, upstream: trio.abc.Stream, silence: float = RELAY_SILENCE_SECONDS
) -> None:
    """Copy both ways until either side ends (what it sent before is passed on first),
    the upstream is silent for ``silence`` seconds, or a side takes nothing for as long."""

    async def copy(source: trio.abc.Stream, sink: trio.abc.Stream, quiet: float) -> None:
        try:
            while True:
                data: bytes | bytearray = b""
                with trio.move_on_after(quiet):
                    data = await source.receive_some(RELAY_BYTES)
                if not data:
                    break  # the end of the stream, or silence
                with trio.move_on_after(silence) as sending:
                    await sink.send_all(data)
                if sending.cancelled_caught:
                    break  # a peer that takes nothing: the relay ends, nothing is garbled
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        nursery.cancel_scope.cancel()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(copy, client, upstream, math.inf)
        nursery.start_soon(copy, upstream, client, silence)


async def _play_item(
    state: AppState, principal: Principal, room_id: uuid.UUID, item_id: str
) -> str | None:
    """A desktop user's playlist selection: that item of the room's queue, if allowed."""
    try:
        await state.service.queue.play(principal, room_id, uuid.UUID(item_id))
    except ServiceError as exc:
        return exc.detail
    except StorageError:
        return "the database is unavailable; retry"
    return None


async def _leave(state: AppState, principal: Principal, room_id: uuid.UUID) -> None:
    try:
        await state.service.leave(principal, room_id)
    except ServiceError:
        pass  # kicked, banned or the room ended: already out
    except StorageError as exc:
        log.warning("syncplay guest could not leave room %s: %s", room_id, exc)


def _refusal_text(exc: ServiceError) -> str:
    """What a Syncplay user is shown for a refused join (Syncplay shows plain text)."""
    if exc.code == "wrong-password":
        if "before" in exc.detail:  # a password set before desktop clients were supported
            return exc.detail[:1].upper() + exc.detail[1:] + "."
        return "Wrong or missing room password."
    if exc.code == "not-a-member":
        return (
            "This room is private: use an invitation code as the room name."
            if "private" in exc.detail
            else exc.detail
        )
    if exc.code == "not-found":
        return "No such room or invitation: the room name must be an invitation code or a room id."
    return f"{exc.detail} ({exc.code})"
