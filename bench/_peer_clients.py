"""Load clients of ``bench/peer.py``: the same member for syncplayd and for Syncplay's server.

What makes the comparison fair is that only the protocol adapter differs:

* one member = one plain trio TCP socket and ONE task (:meth:`Member.run`), which reads, decodes
  every message with the stdlib ``json``, stamps it with ``time.monotonic_ns()`` right after
  decoding, answers what the protocol asks it to answer and sends its keep-alive from the same
  loop (a ``move_on_at`` around ``receive_some``, which loses no data when cancelled);
* :class:`SyncplaydMember` speaks WebSocket with sans-I/O ``wsproto`` (handshake, masked client
  frames, pongs), ``hello`` / ``join``, and a ``heartbeat`` every 5 s, as ``bench/_common.py``'s
  listener does;
* :class:`SyncplayMember` speaks Syncplay 1.6.9's JSON lines (CRLF): ``Hello``, then ``List``,
  and answers every ``State`` at once with its own ``State`` exactly as the real client's
  ``SyncClientProtocol.handleState`` / ``sendState`` do (echoing ``latencyCalculation`` and the
  ``ignoringOnTheFly`` counters). The server sends each member a ``State`` every second and drops
  a member silent for 12.5 s, so this answer is the keep-alive.

Each member can also keep its *view* of the room (who is in it): syncplayd's from
``joined.participants`` and ``presence`` / ``presence_batch`` events, Syncplay's from ``List``
and ``Set user`` joined/left events, as the real client builds its user list. A view is a
bytearray over the expected members, so 2,000 members x 2,000 entries stay small.

Receipts are ``(event key, monotonic ns)``: the ``playback.version`` for syncplayd; for Syncplay
a forced ``State`` (``ignoringOnTheFly.server`` set) whose ``setBy`` is the sender, keyed by
its position: the sender puts event ``k`` at ``SPACING * k`` seconds.

Internal use:  .venv/bin/python bench/_peer_clients.py worker   (JSON lines on stdin)
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import trio
from _common import (
    WS_PATH,
    answer_driver,
    driver_requests,
    raise_open_files,
    token,
)
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    CloseConnection,
    Ping,
    RejectConnection,
    Request,
    TextMessage,
)
from wsproto.utilities import LocalProtocolError

from syncplayd.identity import Principal

SYNCPLAYD = "syncplayd"
SYNCPLAY = "syncplay"
RECEIVE_BYTES = 65536
HEARTBEAT_SECONDS = 5.0
#: Syncplay event ``k`` is sent at position ``SPACING * k``; a receiver rounds it back. Playing
#: adds the server's estimate of the sender's one-way delay, milliseconds here.
SPACING = 10.0
#: What Syncplay 1.6.9's client says of itself in ``Hello`` (``SyncClientProtocol.sendHello``).
SYNCPLAY_FEATURES = {
    "sharedPlaylists": True,
    "chat": True,
    "featureList": True,
    "readiness": True,
    "managedRooms": True,
}
#: play, a seek while playing, pause, a seek while paused: each one changes the room.
CYCLE = ("play", "seek", "pause", "seek")


class ClientError(Exception):
    """A member could not join, or its server closed it."""


@dataclass(eq=False)
class Roster:
    """What one process's members share: the expected room, the sender, who has a full view."""

    index: dict[str, int] | None  # member key -> slot in a view; None: views are not kept
    sender: str | None  # Syncplay: the sender's user name (``setBy`` of its broadcasts)
    members: int  # members of this process that must complete their view
    complete: int = 0
    complete_ns: int = 0  # when the last of them completed
    all_complete: trio.Event = field(default_factory=trio.Event)

    @property
    def size(self) -> int:
        return 0 if self.index is None else len(self.index)


class Member:
    """One member: a socket and one task. Subclasses are the protocol adapters."""

    def __init__(self, roster: Roster, key: str, name: str) -> None:
        self.roster = roster
        self.key = key  # syncplayd: user id; Syncplay: user name
        self.name = name
        self.stream: trio.SocketStream | None = None
        self.receipts: list[tuple[int, int]] = []
        self.closed: str | None = None
        self.keepalive_at = math.inf  # trio clock
        self.view: bytearray | None = None if roster.index is None else bytearray(roster.size)
        self.seen = 0
        self.strangers: set[str] = set()
        self.complete_ns = 0
        self._send_lock = trio.Lock()  # the sender's commands come from another task
        self._waiter: trio.Event | None = None

    # -- the protocol adapter's part -----------------------------------------------------------
    async def connect(self, host: str, port: int, room: str, credential: str | None) -> None:
        raise NotImplementedError

    async def feed(self, data: bytes) -> None:
        raise NotImplementedError

    async def keepalive(self) -> None:
        raise NotImplementedError

    async def command(self, kind: str, event: int, limit: float = 10.0) -> tuple[int, int]:
        """Send event ``event`` (``kind`` of :data:`CYCLE`), wait for this member's own copy.

        Returns the event's receipt key and ``time.monotonic_ns()`` just before the send.
        """
        raise NotImplementedError

    # -- shared ----------------------------------------------------------------------------------
    async def send(self, data: bytes) -> None:
        assert self.stream is not None
        async with self._send_lock:
            await self.stream.send_all(data)

    async def run(self) -> None:
        """Read, answer and keep alive until the connection ends (the reason in ``closed``)."""
        assert self.stream is not None
        stream = self.stream
        try:
            while self.closed is None:
                data = None
                with trio.move_on_at(self.keepalive_at):
                    data = await stream.receive_some(RECEIVE_BYTES)
                if data is None:
                    await self.keepalive()
                elif not data:
                    self.closed = "connection closed by the server"
                else:
                    await self.feed(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            self.closed = self.closed or f"{type(exc).__name__}: {exc}"
        finally:
            with trio.CancelScope(shield=True):
                await stream.aclose()

    async def read_until(self, done: Callable[[], bool]) -> None:
        """The handshake: read and handle messages as :meth:`run` does until ``done()``."""
        assert self.stream is not None
        while not done():
            if self.closed is not None:
                raise ClientError(self.closed)
            data = await self.stream.receive_some(RECEIVE_BYTES)
            if not data:
                raise ClientError(self.closed or "connection closed during the handshake")
            await self.feed(data)

    async def aclose(self) -> None:
        if self.stream is not None:
            with trio.CancelScope(shield=True):
                await self.stream.aclose()

    def receipt(self, key: int, received_ns: int) -> None:
        self.receipts.append((key, received_ns))
        if self._waiter is not None:
            self._waiter.set()

    async def wait_receipt(self, start: int, match: Callable[[int], bool], limit: float) -> int:
        """The key of the first receipt from index ``start`` on that ``match``es."""
        with trio.fail_after(limit):
            while True:
                for key, _ in self.receipts[start:]:
                    if match(key):
                        return key
                start = len(self.receipts)
                self._waiter = trio.Event()
                try:
                    await self._waiter.wait()
                finally:
                    self._waiter = None

    # -- the view of the room --------------------------------------------------------------------
    def see(self, key: str, present: bool) -> None:
        if self.view is None:
            return
        assert self.roster.index is not None
        slot = self.roster.index.get(key)
        if slot is None:
            if present:
                self.strangers.add(key)
            else:
                self.strangers.discard(key)
            return
        if present and not self.view[slot]:
            self.view[slot] = 1
            self.seen += 1
            if self.seen == self.roster.size and not self.complete_ns and not self.strangers:
                self._completed()
        elif not present and self.view[slot]:
            self.view[slot] = 0
            self.seen -= 1

    def clear_view(self) -> None:
        if self.view is not None:
            self.view = bytearray(self.roster.size)
            self.seen = 0
            self.strangers.clear()

    def _completed(self) -> None:
        self.complete_ns = time.monotonic_ns()
        roster = self.roster
        roster.complete += 1
        roster.complete_ns = max(roster.complete_ns, self.complete_ns)
        if roster.complete == roster.members:
            roster.all_complete.set()

    def view_correct(self) -> bool:
        """Open, and the view lists exactly the expected members."""
        return self.closed is None and self.seen == self.roster.size and not self.strangers


class SyncplaydMember(Member):
    """A syncplayd member over wsproto: ``hello``, ``join``, heartbeats; records ``playback``."""

    def __init__(self, roster: Roster, key: str, name: str) -> None:
        super().__init__(roster, key, name)
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.stage = "connecting"  # -> open -> welcome -> joined
        self.offset = 0.0  # server clock minus time.monotonic()
        self.server_time = 0.0
        self.version = 0
        self._parts: list[str] = []

    async def connect(self, host: str, port: int, room: str, credential: str | None) -> None:
        assert credential is not None
        self.stream = await trio.open_tcp_stream(host, port)
        request = Request(
            host=f"{host}:{port}",
            target=WS_PATH,
            extra_headers=[(b"authorization", f"Bearer {credential}".encode())],
        )
        await self.send(self.ws.send(request))
        await self.read_until(lambda: self.stage == "open")
        await self.send_json({"type": "hello", "protocol": 1})
        await self.read_until(lambda: self.stage == "welcome")
        t0 = time.monotonic()
        await self.send_json({"type": "join", "room_id": room})
        await self.read_until(lambda: self.stage == "joined")
        t3 = time.monotonic()
        self.offset = self.server_time - (t0 + t3) / 2
        # Spread the room's heartbeats over the interval, as a room of real players would.
        self.keepalive_at = trio.current_time() + random.uniform(0, HEARTBEAT_SECONDS)

    async def send_json(self, message: dict[str, Any]) -> None:
        await self.send(self.ws.send(TextMessage(data=json.dumps(message))))

    async def feed(self, data: bytes) -> None:
        self.ws.receive_data(data)
        for event in self.ws.events():
            if isinstance(event, TextMessage):
                if not event.message_finished:
                    self._parts.append(event.data)
                    continue
                if self._parts:
                    self._parts.append(event.data)
                    text = "".join(self._parts)
                    self._parts.clear()
                else:
                    text = event.data
                message = json.loads(text)
                self.handle(message, time.monotonic_ns())
            elif isinstance(event, Ping):
                await self.send(self.ws.send(event.response()))
            elif isinstance(event, AcceptConnection):
                self.stage = "open"
            elif isinstance(event, RejectConnection):
                self.closed = f"upgrade refused: {event.status_code}"
            elif isinstance(event, CloseConnection):
                self.closed = self.closed or f"closed ({event.code})"
                with contextlib.suppress(LocalProtocolError):  # already closing
                    await self.send(self.ws.send(event.response()))

    def handle(self, message: dict[str, Any], received_ns: int) -> None:
        kind = message.get("type")
        if kind == "playback":
            self.version = message["playback"]["version"]
            self.receipt(self.version, received_ns)
        elif kind == "presence":
            self.presence(message)
        elif kind == "presence_batch":
            for event in message["events"]:
                self.presence(event)
        elif kind == "joined":
            self.stage = "joined"
            self.server_time = message["server_time"]
            self.version = message["playback"]["version"]
            for member in message["participants"]:
                self.see(member["user_id"], member["is_connected"])
        elif kind == "welcome":
            self.stage = "welcome"
        elif kind == "closing":
            self.closed = f"closing: {message.get('reason')}"
        elif kind == "error" and self.stage != "joined":
            self.closed = f"error: {message.get('code')}"

    def presence(self, event: dict[str, Any]) -> None:
        member = event["member"]
        self.see(member["user_id"], member["is_connected"])

    async def keepalive(self) -> None:
        # "At 0 s, version 0": keeps the session alive; an old version is never compared.
        beat = {
            "type": "heartbeat",
            "position": 0.0,
            "version": 0,
            "server_time": time.monotonic() + self.offset,
        }
        await self.send_json(beat)
        self.keepalive_at += HEARTBEAT_SECONDS

    async def command(self, kind: str, event: int, limit: float = 10.0) -> tuple[int, int]:
        before, start = self.version, len(self.receipts)
        data = self.ws.send(
            TextMessage(data=json.dumps({"type": kind, "position": SPACING * event}))
        )
        sent = time.monotonic_ns()
        await self.send(data)
        key = await self.wait_receipt(start, lambda version: version > before, limit)
        return key, sent


class SyncplayMember(Member):
    """A Syncplay 1.6.9 member: JSON lines, ``Hello``, ``List``, and a ``State`` per ``State``."""

    def __init__(self, roster: Roster, key: str, name: str) -> None:
        super().__init__(roster, key, name)
        self.room = ""
        self.logged = False
        self.position: float | None = None  # the player's; unknown until the first State
        self.paused: bool | None = None
        self.client_ignoring = 0  # SyncClientProtocol.clientIgnoringOnTheFly
        self.server_ignoring = 0  # SyncClientProtocol.serverIgnoringOnTheFly
        self.rtt = 0.0
        self._buffer = b""

    async def connect(self, host: str, port: int, room: str, credential: str | None) -> None:
        self.room = room
        self.stream = await trio.open_tcp_stream(host, port)
        hello = {
            "username": self.name,
            "room": {"name": room},
            "version": "1.2.255",
            "realversion": "1.6.9",
            "features": SYNCPLAY_FEATURES,
        }
        await self.send_message({"Hello": hello})
        await self.read_until(lambda: self.logged)
        # The real client asks for the user list after logging in (at its first State).
        await self.send_message({"List": None})

    async def send_message(self, message: dict[str, Any]) -> None:
        await self.send(json.dumps(message).encode() + b"\r\n")

    async def feed(self, data: bytes) -> None:
        lines = (self._buffer + data).split(b"\r\n") if self._buffer else data.split(b"\r\n")
        self._buffer = lines.pop()
        for line in lines:
            if not line:
                continue
            message = json.loads(line)
            received = time.monotonic_ns()
            for command, value in message.items():
                if command == "State":
                    await self.state(value, received)
                elif command == "Set":
                    self.settings(value)
                elif command == "List":
                    self.user_list(value)
                elif command == "Hello":
                    self.logged = True
                elif command == "Error":
                    self.closed = f"Error: {value.get('message')}"

    async def state(self, state: dict[str, Any], received_ns: int) -> None:
        """``SyncClientProtocol.handleState``: note the counters, follow the room, answer."""
        ignoring = state.get("ignoringOnTheFly")
        forced = False
        if ignoring:
            if "server" in ignoring:
                forced = True
                self.server_ignoring = ignoring["server"]
                self.client_ignoring = 0
            elif "client" in ignoring and ignoring["client"] == self.client_ignoring:
                self.client_ignoring = 0
        playstate = state.get("playstate")
        if playstate is not None:
            if forced and playstate.get("setBy") == self.roster.sender:
                self.receipt(round(playstate["position"] / SPACING), received_ns)
            if not self.client_ignoring:
                self.position, self.paused = playstate["position"], playstate["paused"]
        ping = state.get("ping") or {}
        if "clientLatencyCalculation" in ping:
            self.rtt = time.time() - ping["clientLatencyCalculation"]
        await self.send(self.state_line(ping.get("latencyCalculation"), False, False))

    def state_line(self, latency: float | None, seek: bool, change: bool) -> bytes:
        """``SyncClientProtocol.sendState`` with this member's player state."""
        state: dict[str, Any] = {}
        if (self.client_ignoring == 0 or self.server_ignoring != 0) and (
            self.position is not None and self.paused is not None
        ):
            playstate: dict[str, Any] = {"position": self.position, "paused": self.paused}
            if seek:
                playstate["doSeek"] = True
            state["playstate"] = playstate
        ping: dict[str, Any] = {}
        if latency:
            ping["latencyCalculation"] = latency
        ping["clientLatencyCalculation"] = time.time()
        ping["clientRtt"] = self.rtt
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
        return json.dumps({"State": state}).encode() + b"\r\n"

    def settings(self, settings: dict[str, Any]) -> None:
        """``Set user``: joined and left events, or a change (``modUser`` adds the unknown)."""
        users = settings.get("user")
        if not users:
            return
        for name, user in users.items():
            event = user.get("event")
            if event and "joined" in event:
                self.see(name, True)
            elif event and "left" in event:
                self.see(name, False)
            elif not event:
                self.see(name, user.get("room", {}).get("name") == self.room)

    def user_list(self, rooms: dict[str, Any]) -> None:
        """``List``: the real client clears its list and adds everyone listed."""
        self.clear_view()
        for room, users in rooms.items():
            if room == self.room:
                for name in users:
                    self.see(name, True)

    async def keepalive(self) -> None:
        # Never due (keepalive_at stays infinite): the answer to each State keeps a member alive.
        self.keepalive_at = math.inf

    async def command(self, kind: str, event: int, limit: float = 10.0) -> tuple[int, int]:
        # The user acts on the local player; the client sends the new state at once.
        self.position = SPACING * event
        if kind != "seek":
            self.paused = kind == "pause"
        start = len(self.receipts)
        data = self.state_line(None, kind == "seek", True)
        sent = time.monotonic_ns()
        await self.send(data)
        key = await self.wait_receipt(start, lambda key: key == event, limit)
        return key, sent


MEMBER_CLASSES: dict[str, type[Member]] = {SYNCPLAYD: SyncplaydMember, SYNCPLAY: SyncplayMember}


def credential_for(server: str, key: str, name: str) -> str | None:
    """syncplayd: a token for user ``key`` named ``name``; Syncplay needs none."""
    if server != SYNCPLAYD:
        return None
    return token(Principal(user_id=UUID(key), name=name, is_admin=False))


# -- the worker process ---------------------------------------------------------------------------
async def _worker() -> None:
    """Serve the driver: ``connect`` members, ``report`` receipts, ``check`` views, ``exit``."""
    members: list[Member] = []
    async with trio.open_nursery() as nursery:
        async for request in driver_requests():
            op = request["op"]
            if op == "connect":
                answer_driver(await _connect(nursery, request, members))
            elif op == "report":
                receipts = [member.receipts for member in members]
                for member in members:
                    member.receipts = []
                closed = [m.closed for m in members if m.closed is not None]
                answer_driver({"receipts": receipts, "alive": len(members) - len(closed)})
            elif op == "check":
                wrong = [m for m in members if not m.view_correct()]
                answer_driver(
                    {
                        "members": len(members),
                        "correct": len(members) - len(wrong),
                        "closed": sorted({m.closed for m in wrong if m.closed})[:5],
                        "wrong": [
                            {"seen": m.seen, "strangers": len(m.strangers), "closed": m.closed}
                            for m in wrong[:5]
                        ],
                    }
                )
            else:
                break
        nursery.cancel_scope.cancel()  # "exit", or the driver went away


async def _connect(
    nursery: trio.Nursery, request: dict[str, Any], members: list[Member]
) -> dict[str, Any]:
    """Join ``request["members"]``, at most ``concurrency`` joins in flight; with ``expected``,
    also wait (up to ``timeout`` s) until every member's view lists exactly the expected keys."""
    server, host, port, room = request["server"], request["host"], request["port"], request["room"]
    expected: list[str] | None = request.get("expected")
    people = [(key, name, credential_for(server, key, name)) for key, name in request["members"]]
    roster = Roster(
        index=None if expected is None else {key: i for i, key in enumerate(expected)},
        sender=request.get("sender"),
        members=len(people),
    )
    cls = MEMBER_CLASSES[server]
    limiter = trio.CapacityLimiter(request["concurrency"])
    errors: list[str] = []
    start = trio.current_time()
    first_ns = time.monotonic_ns()

    async def one(key: str, name: str, credential: str | None) -> None:
        member = cls(roster, key, name)
        async with limiter:
            try:
                with trio.fail_after(request["join_timeout"]):
                    await member.connect(host, port, room, credential)
            except (OSError, ClientError, trio.TooSlowError, trio.BrokenResourceError) as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                await member.aclose()
                return
        members.append(member)
        nursery.start_soon(member.run)

    async with trio.open_nursery() as connecting:
        for key, name, credential in people:
            connecting.start_soon(one, key, name, credential)
    connected_ns = time.monotonic_ns()
    if expected is not None and not errors and people:
        with trio.move_on_at(start + request["timeout"]):
            await roster.all_complete.wait()
    return {
        "ok": len(people) - len(errors),
        "failed": len(errors),
        "errors": sorted(set(errors))[:5],
        "first_ns": first_ns,
        "connected_ns": connected_ns,
        "complete": roster.complete,
        "complete_ns": roster.complete_ns,
    }


if __name__ == "__main__":
    if sys.argv[1:] != ["worker"]:
        sys.exit(__doc__)
    raise_open_files()
    trio.run(_worker)
