"""Load clients of ``bench/peer.py``: the same member for syncplayd and for Syncplay's server.

A measuring instrument should cost little next to what it measures, and the same for both
servers. So a member is a sans-I/O protocol adapter (bytes in, bytes out, receipts), and what
moves the bytes is the same for both protocols:

* in a worker process (``worker`` below), ONE loop over all its members' sockets: level-triggered
  ``select.epoll`` on non-blocking sockets, one ``recv`` per ready socket, the adapter's
  ``feed``, and then the batch's sends (plain non-blocking ``send``; what the kernel does not
  take waits for ``EPOLLOUT``), as a reactor such as the real client's Twisted writes after its
  callbacks. No task, channel or lock per member, and no cyclic garbage collection: the loop
  makes no cycles, and a collection would only add pauses to the measured delays;
* in the driver, the sender is the same adapter over a trio stream (:class:`TrioMember`).

The adapters decode every message they need with the stdlib ``json`` and stamp it with
``time.monotonic_ns()`` right after decoding:

* :class:`SyncplaydMember` speaks WebSocket: the upgrade request with ``wsproto``'s nonce and
  accept token, then a frame reader for the server's unmasked frames (a few slices per frame;
  ``wsproto``'s ``Connection`` costs ~5 us per frame more) and masked client frames written
  here; ``hello`` / ``join``, a ``heartbeat`` every 5 s, pings answered;
* :class:`SyncplayMember` speaks Syncplay 1.6.9's JSON lines (CRLF): ``Hello``, then ``List``,
  and answers every ``State`` at once with its own ``State`` exactly as the real client's
  ``SyncClientProtocol.handleState`` / ``sendState`` do (echoing ``latencyCalculation`` and the
  ``ignoringOnTheFly`` counters). The server sends each member a ``State`` every second and drops
  a member silent for 12.5 s, so this answer is the keep-alive.

A member that keeps no view (a fan-out listener) skips, before decoding, the only messages that
feed nothing but a view: syncplayd's ``presence`` / ``presence_batch`` and Syncplay's ``Set``.

Each member can also keep its *view* of the room (who is in it): syncplayd's from
``joined.participants`` and ``presence`` / ``presence_batch`` events, Syncplay's from ``List``
and ``Set user`` joined/left events, as the real client builds its user list. A view is a
bytearray over the expected members, so 2,000 members x 2,000 entries stay small.

Receipts are ``(event key, monotonic ns)``: the ``playback.version`` for syncplayd; for Syncplay
a forced ``State`` (``ignoringOnTheFly.server`` set) whose ``setBy`` is the sender, keyed by
its position: the sender puts event ``k`` at ``SPACING * k`` seconds.

What the client costs, apart from any real server (one worker, a fake server that lets members
in and broadcasts a burst every 5 ms; the worker's CPU per message received):
    .venv/bin/python bench/_peer_clients.py cost [MEMBERS [BROADCASTS]]    (200 and 200)

Internal use:  .venv/bin/python bench/_peer_clients.py worker   (JSON lines on stdin)
"""

from __future__ import annotations

import errno
import gc
import heapq
import json
import math
import os
import random
import select
import selectors
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import trio
from _common import WS_PATH, answer_driver, raise_open_files, token
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, Request, TextMessage
from wsproto.frame_protocol import FrameProtocol
from wsproto.utilities import generate_accept_token, generate_nonce

from syncplayd.core import protocol
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

# WebSocket opcodes (RFC 6455, 5.2).
CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


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

    @property
    def size(self) -> int:
        return 0 if self.index is None else len(self.index)


class Member:
    """One member's protocol, sans I/O: :meth:`feed` takes what the server sent, ``out`` holds
    what to send (the caller writes it and deletes what was written). Subclasses are the
    protocol adapters."""

    def __init__(self, roster: Roster, key: str, name: str) -> None:
        self.roster = roster
        self.key = key  # syncplayd: user id; Syncplay: user name
        self.name = name
        self.out = bytearray()
        self.joined = False  # in the room: the join is done
        self.closed: str | None = None
        self.keepalive_at = math.inf  # time.monotonic()
        self.receipts: list[tuple[int, int]] = []
        self.view: bytearray | None = None if roster.index is None else bytearray(roster.size)
        self.seen = 0
        self.strangers: set[str] = set()
        self.complete_ns = 0

    # -- the protocol adapter's part -----------------------------------------------------------
    def start(self, host: str, port: int, room: str, credential: str | None) -> None:
        """Connected: queue the opening bytes; ``joined`` turns true once in ``room``."""
        raise NotImplementedError

    def feed(self, data: bytes) -> None:
        raise NotImplementedError

    def keepalive(self, now: float) -> None:
        """Queue the keep-alive due at ``keepalive_at``, set the next (``now``: monotonic)."""
        raise NotImplementedError

    def command(self, kind: str, event: int) -> tuple[bytes, Callable[[int], bool]]:
        """Event ``event`` (``kind`` of :data:`CYCLE`): its bytes, and which receipt key will be
        this member's own copy of it."""
        raise NotImplementedError

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

    def view_correct(self) -> bool:
        """Open, and the view lists exactly the expected members."""
        return self.closed is None and self.seen == self.roster.size and not self.strangers


def client_frame(opcode: int, payload: bytes) -> bytes:
    """One whole client frame: masked, as RFC 6455 requires of a client."""
    size = len(payload)
    if size < 126:
        head = bytes((0x80 | opcode, 0x80 | size))
    elif size < 1 << 16:
        head = bytes((0x80 | opcode, 0x80 | 126)) + size.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 0x80 | 127)) + size.to_bytes(8, "big")
    mask = os.urandom(4)
    # The XOR of the whole payload as one big integer: C speed, no loop over bytes.
    key = (mask * (size // 4 + 1))[:size]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(size, "big")
    return head + mask + masked


class SyncplaydMember(Member):
    """A syncplayd member over WebSocket: ``hello``, ``join``, heartbeats; records ``playback``."""

    def __init__(self, roster: Roster, key: str, name: str) -> None:
        super().__init__(roster, key, name)
        self.stage = "upgrading"  # -> open -> welcome -> joined
        self.offset = 0.0  # server clock minus time.monotonic()
        self.server_time = 0.0
        self.version = 0
        self._room = ""
        self._accept = b""
        self._join_sent = 0.0
        # Bytes of a frame (or of the upgrade response) not complete yet, and how many make it.
        self._pending = bytearray()
        self._need = 0
        self._parts: list[bytes] = []  # a fragmented message (the server sends none)

    def start(self, host: str, port: int, room: str, credential: str | None) -> None:
        assert credential is not None
        self._room = room
        nonce = generate_nonce()
        self._accept = generate_accept_token(nonce)
        self.out += (
            f"GET {WS_PATH} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {nonce.decode()}\r\nSec-WebSocket-Version: 13\r\n"
            f"Authorization: Bearer {credential}\r\n\r\n"
        ).encode()

    def send_json(self, message: dict[str, Any]) -> None:
        self.out += client_frame(TEXT, json.dumps(message).encode())

    # -- reading -----------------------------------------------------------------------------------
    def feed(self, data: bytes) -> None:
        if self.joined and not self._pending and len(data) >= 2 and data[0] == 0x81:
            # The common case, a read that is exactly one whole text frame under 64 KiB, goes
            # straight to the message: a fifth of a microsecond less than the general path.
            size = data[1]
            if size < 126 and len(data) == 2 + size:
                self._message(data[2:])
                return
            if size == 126 and len(data) >= 4 and len(data) == 4 + (data[2] << 8 | data[3]):
                self._message(data[4:])
                return
        if self._pending:
            self._pending += data
            if len(self._pending) < self._need:
                return  # a big frame on its way: no parsing until it is whole
            data = bytes(self._pending)
            self._pending.clear()
        if self.stage == "upgrading":
            end = data.find(b"\r\n\r\n")
            if end < 0:
                self._pending += data
                self._need = len(self._pending) + 1
                return
            self._upgraded(data[:end])
            if self.closed is not None:
                return
            data = data[end + 4 :]
        self._frames(data)

    def _upgraded(self, head: bytes) -> None:
        lines = head.split(b"\r\n")
        status = lines[0].split(b" ", 2)
        if len(status) < 2 or status[1] != b"101":
            self.closed = f"upgrade refused: {lines[0].decode(errors='replace')}"
            return
        headers = dict(line.split(b":", 1) for line in lines[1:] if b":" in line)
        accept = {k.strip().lower(): v.strip() for k, v in headers.items()}
        if accept.get(b"sec-websocket-accept") != self._accept:
            self.closed = "upgrade: wrong Sec-WebSocket-Accept"
            return
        self.stage = "open"
        self.send_json({"type": "hello", "protocol": 1})

    def _frames(self, data: bytes) -> None:
        """Every whole frame of ``data``; the rest waits in ``_pending``."""
        at, end, need = 0, len(data), 0
        while self.closed is None:
            if end - at < 2:
                need = at + 2
                break
            head, size = data[at], data[at + 1]
            if size & 0x80:
                self.closed = "protocol error: a masked server frame"
                return
            start = at + 2
            if size == 126:
                start = at + 4
                size = int.from_bytes(data[at + 2 : start], "big") if end >= start else 0
            elif size == 127:
                start = at + 10
                size = int.from_bytes(data[at + 2 : start], "big") if end >= start else 0
            stop = start + size
            if stop > end:
                need = stop
                break
            self._frame(head, data[start:stop])
            at = stop
        if self.closed is None and at < end:
            self._pending += memoryview(data)[at:]
            self._need = need - at

    def _frame(self, head: int, payload: bytes) -> None:
        opcode = head & 0x0F
        if opcode in (TEXT, CONTINUATION):
            if not head & 0x80:
                self._parts.append(payload)
                return
            if self._parts:
                self._parts.append(payload)
                payload = b"".join(self._parts)
                self._parts.clear()
            self._message(payload)
        elif opcode == PING:
            self.out += client_frame(PONG, payload)
        elif opcode == CLOSE:
            code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
            self.closed = self.closed or f"closed ({code})"
            self.out += client_frame(CLOSE, payload[:2])
        # BINARY: the server sends none; PONG: this client sends no ping.

    def _message(self, payload: bytes) -> None:
        if self.view is None and payload.startswith(b'{"type":"presence'):
            return  # feeds nothing but a view, and this member keeps none
        # Decoding first is the fastest way to json.loads bytes (~0.3 us less than passing them).
        message = json.loads(payload.decode())
        self.handle(message, time.monotonic_ns())

    def handle(self, message: dict[str, Any], received_ns: int) -> None:
        kind = message.get("type")
        if kind == "playback":
            self.version = message["playback"]["version"]
            self.receipts.append((self.version, received_ns))
        elif kind == "presence":
            self.presence(message)
        elif kind == "presence_batch":
            for event in message["events"]:
                self.presence(event)
        elif kind == "joined":
            self.stage = "joined"
            self.joined = True
            self.server_time = message["server_time"]
            self.version = message["playback"]["version"]
            self.offset = self.server_time - (self._join_sent + time.monotonic()) / 2
            # Spread the room's heartbeats over the interval, as a room of real players would.
            self.keepalive_at = time.monotonic() + random.uniform(0, HEARTBEAT_SECONDS)
            for member in message["participants"]:
                self.see(member["user_id"], member["is_connected"])
        elif kind == "welcome":
            self.stage = "welcome"
            self._join_sent = time.monotonic()
            self.send_json({"type": "join", "room_id": self._room})
        elif kind == "closing":
            self.closed = f"closing: {message.get('reason')}"
        elif kind == "error" and self.stage != "joined":
            self.closed = f"error: {message.get('code')}"

    def presence(self, event: dict[str, Any]) -> None:
        member = event["member"]
        self.see(member["user_id"], member["is_connected"])

    # -- writing -----------------------------------------------------------------------------------
    def keepalive(self, now: float) -> None:
        # "At 0 s, version 0": keeps the session alive; an old version is never compared.
        beat = {
            "type": "heartbeat",
            "position": 0.0,
            "version": 0,
            "server_time": now + self.offset,
        }
        self.send_json(beat)
        self.keepalive_at += HEARTBEAT_SECONDS

    def command(self, kind: str, event: int) -> tuple[bytes, Callable[[int], bool]]:
        before = self.version
        data = client_frame(TEXT, json.dumps({"type": kind, "position": SPACING * event}).encode())
        return data, lambda version: version > before


class SyncplayMember(Member):
    """A Syncplay 1.6.9 member: JSON lines, ``Hello``, ``List``, and a ``State`` per ``State``."""

    def __init__(self, roster: Roster, key: str, name: str) -> None:
        super().__init__(roster, key, name)
        self.room = ""
        self.position: float | None = None  # the player's; unknown until the first State
        self.paused: bool | None = None
        self.client_ignoring = 0  # SyncClientProtocol.clientIgnoringOnTheFly
        self.server_ignoring = 0  # SyncClientProtocol.serverIgnoringOnTheFly
        self.rtt = 0.0
        self._partial: list[bytes] = []  # a line not complete yet

    def start(self, host: str, port: int, room: str, credential: str | None) -> None:
        self.room = room
        hello = {
            "username": self.name,
            "room": {"name": room},
            "version": "1.2.255",
            "realversion": "1.6.9",
            "features": SYNCPLAY_FEATURES,
        }
        self.send_message({"Hello": hello})

    def send_message(self, message: dict[str, Any]) -> None:
        self.out += json.dumps(message).encode() + b"\r\n"

    def feed(self, data: bytes) -> None:
        if b"\n" not in data:  # a long line (a big room's List) arrives in pieces
            self._partial.append(data)
            return
        if self._partial:
            self._partial.append(data)
            data = b"".join(self._partial)
            self._partial.clear()
        lines = data.split(b"\r\n")
        rest = lines.pop()
        if rest:
            self._partial.append(rest)
        for line in lines:
            if not line or (self.view is None and line.startswith(b'{"Set"')):
                continue  # a Set feeds nothing but a view, and this member keeps none
            message = json.loads(line.decode())
            received = time.monotonic_ns()
            for command, value in message.items():
                if command == "State":
                    self.state(value, received)
                elif command == "Set":
                    self.settings(value)
                elif command == "List":
                    self.user_list(value)
                elif command == "Hello":
                    # The real client asks for the user list after logging in (at its first
                    # State).
                    self.joined = True
                    self.send_message({"List": None})
                elif command == "Error":
                    self.closed = f"Error: {value.get('message')}"

    def state(self, state: dict[str, Any], received_ns: int) -> None:
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
                self.receipts.append((round(playstate["position"] / SPACING), received_ns))
            if not self.client_ignoring:
                self.position, self.paused = playstate["position"], playstate["paused"]
        ping = state.get("ping") or {}
        if "clientLatencyCalculation" in ping:
            self.rtt = time.time() - ping["clientLatencyCalculation"]
        self.out += self.state_line(ping.get("latencyCalculation"), False, False)

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

    def keepalive(self, now: float) -> None:
        # Never due (keepalive_at stays infinite): the answer to each State keeps a member alive.
        self.keepalive_at = math.inf

    def command(self, kind: str, event: int) -> tuple[bytes, Callable[[int], bool]]:
        # The user acts on the local player; the client sends the new state at once.
        self.position = SPACING * event
        if kind != "seek":
            self.paused = kind == "pause"
        return self.state_line(None, kind == "seek", True), lambda key: key == event


MEMBER_CLASSES: dict[str, type[Member]] = {SYNCPLAYD: SyncplaydMember, SYNCPLAY: SyncplayMember}


def credential_for(server: str, key: str, name: str) -> str | None:
    """syncplayd: a token for user ``key`` named ``name``; Syncplay needs none."""
    if server != SYNCPLAYD:
        return None
    return token(Principal(user_id=UUID(key), name=name, is_admin=False))


# -- the sender, in the driver: an adapter over a trio stream ------------------------------------
class TrioMember:
    """A :class:`Member` on a trio TCP stream, for a driver that has other work meanwhile."""

    def __init__(self, member: Member) -> None:
        self.member = member
        self.stream: trio.SocketStream | None = None
        self._send_lock = trio.Lock()  # the commands come from another task than run()
        self._waiter: trio.Event | None = None

    @classmethod
    def of(cls, server: str, roster: Roster, key: str, name: str) -> TrioMember:
        return cls(MEMBER_CLASSES[server](roster, key, name))

    @property
    def receipts(self) -> list[tuple[int, int]]:
        return self.member.receipts

    @property
    def closed(self) -> str | None:
        return self.member.closed

    async def connect(self, host: str, port: int, room: str, credential: str | None) -> None:
        self.stream = await trio.open_tcp_stream(host, port)
        self.member.start(host, port, room, credential)
        await self._flush()
        while not self.member.joined:
            if self.member.closed is not None:
                raise ClientError(self.member.closed)
            data = await self.stream.receive_some(RECEIVE_BYTES)
            if not data:
                raise ClientError("connection closed during the handshake")
            self.member.feed(data)
            await self._flush()

    async def _flush(self) -> None:
        if self.member.out:
            assert self.stream is not None
            data = bytes(self.member.out)
            self.member.out.clear()
            async with self._send_lock:
                await self.stream.send_all(data)

    async def run(self) -> None:
        """Read, answer and keep alive until the connection ends (the reason in ``closed``)."""
        assert self.stream is not None
        stream, member = self.stream, self.member
        try:
            while member.closed is None:
                data = None
                # The member's deadline is on time.monotonic(); trio's clock is another.
                due = trio.current_time() + (member.keepalive_at - time.monotonic())
                with trio.move_on_at(due):
                    data = await stream.receive_some(RECEIVE_BYTES)
                if data is None:
                    member.keepalive(time.monotonic())
                elif not data:
                    member.closed = "connection closed by the server"
                else:
                    before = len(member.receipts)
                    member.feed(data)
                    if len(member.receipts) > before and self._waiter is not None:
                        self._waiter.set()
                await self._flush()
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            member.closed = member.closed or f"{type(exc).__name__}: {exc}"
        finally:
            with trio.CancelScope(shield=True):
                await stream.aclose()

    async def command(self, kind: str, event: int, limit: float = 10.0) -> tuple[int, int]:
        """Send event ``event`` (``kind`` of :data:`CYCLE`), wait for this member's own copy.

        Returns the event's receipt key and ``time.monotonic_ns()`` just before the send.
        """
        assert self.stream is not None
        start = len(self.member.receipts)
        data, match = self.member.command(kind, event)
        sent = time.monotonic_ns()
        async with self._send_lock:
            await self.stream.send_all(data)
        with trio.fail_after(limit):
            while True:
                for key, _ in self.member.receipts[start:]:
                    if match(key):
                        return key, sent
                start = len(self.member.receipts)
                self._waiter = trio.Event()
                try:
                    await self._waiter.wait()
                finally:
                    self._waiter = None


# -- the worker process: one epoll loop over every member's socket --------------------------------
IN, OUT = select.EPOLLIN, select.EPOLLOUT


class Link:
    """A member's socket in the worker's loop."""

    __slots__ = ("connecting", "deadline", "events", "member", "sock")

    def __init__(self, sock: socket.socket, member: Member, deadline: float) -> None:
        self.sock = sock
        self.member = member
        self.connecting = True
        self.events = OUT  # until connected
        self.deadline = deadline  # of the join (time.monotonic()); inf once joined


@dataclass(eq=False)
class Joining:
    """A ``connect`` request in progress: members still to join, the ones joining, the tally."""

    request: dict[str, Any]
    roster: Roster
    address: tuple[Any, ...]
    family: int
    queue: list[tuple[str, str, str | None]]  # (key, name, credential), last first
    first_ns: int
    views_until: float  # time.monotonic(): how long to wait for every view to be complete
    flight: list[Link]
    errors: list[str]
    connected_ns: int = 0


class Worker:
    """Serve the driver on stdin/stdout: ``connect`` members, ``report`` receipts, ``check``
    views, ``exit``; between requests, and while a ``connect`` is joining, run the members."""

    def __init__(self) -> None:
        self.epoll = select.epoll()
        self.links: dict[int, Link] = {}  # by file descriptor
        self.members: list[Member] = []  # every member that joined, open or closed since
        self.keepalives: list[tuple[float, int, Link]] = []  # heap: (due, fd, link)
        self.joining: Joining | None = None
        self.stdin = sys.stdin.fileno()
        self.requests = b""
        self.running = True
        self.epoll.register(self.stdin, IN)

    def run(self) -> None:
        dirty: list[Link] = []  # links with something to send
        while self.running:
            for fd, events in self.epoll.poll(self._timeout()):
                link = self.links.get(fd)
                if link is None:
                    if fd == self.stdin:
                        self._driver()
                    continue
                if link.connecting:
                    self._connected(link)
                elif events & ~OUT:  # readable, or an error or hang-up that recv reports
                    self._receive(link)
                if link.member.out or events & OUT:
                    dirty.append(link)
            now = time.monotonic()
            while self.keepalives and self.keepalives[0][0] <= now:
                _, fd, link = heapq.heappop(self.keepalives)
                if self.links.get(fd) is link:
                    link.member.keepalive(now)
                    heapq.heappush(self.keepalives, (link.member.keepalive_at, fd, link))
                    dirty.append(link)
            # The batch's reads (and stamps) first, then what it made the members send.
            for link in dirty:
                self._write(link)
            dirty.clear()
            if self.joining is not None:
                self._progress(self.joining, now)

    def _timeout(self) -> float:
        """Seconds until the next keep-alive or join deadline; -1: none (wait for I/O only)."""
        due = self.keepalives[0][0] if self.keepalives else math.inf
        joining = self.joining
        if joining is not None:
            due = min(due, joining.views_until, *(link.deadline for link in joining.flight))
        return -1 if due == math.inf else max(0.0, due - time.monotonic())

    # -- the sockets -----------------------------------------------------------------------------
    def _open(self, joining: Joining, key: str, name: str, credential: str | None) -> None:
        request = joining.request
        try:
            sock = socket.socket(joining.family, socket.SOCK_STREAM)
        except OSError as exc:  # out of file descriptors, say
            joining.errors.append(f"{type(exc).__name__}: {exc}")
            return
        member = MEMBER_CLASSES[request["server"]](joining.roster, key, name)
        member.start(request["host"], request["port"], request["room"], credential)
        sock.setblocking(False)
        # As trio.open_tcp_stream does: small messages go out at once.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        code = sock.connect_ex(joining.address)
        if code not in (0, errno.EINPROGRESS):
            joining.errors.append(f"OSError: {os.strerror(code)}")
            sock.close()
            return
        link = Link(sock, member, time.monotonic() + request["join_timeout"])
        joining.flight.append(link)
        self.links[sock.fileno()] = link
        self.epoll.register(sock, OUT)

    def _connected(self, link: Link) -> None:
        """The non-blocking connect ended: the opening bytes are queued in ``out`` already."""
        link.connecting = False
        code = link.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code:
            self._close(link, f"OSError: {os.strerror(code)}")

    def _receive(self, link: Link) -> None:
        try:
            data = link.sock.recv(RECEIVE_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._close(link, f"{type(exc).__name__}: {exc}")
            return
        if not data:
            self._close(link, "connection closed by the server")
            return
        member = link.member
        member.feed(data)
        if member.closed is not None and not member.out:
            self._close(link, member.closed)

    def _write(self, link: Link) -> None:
        member = link.member
        if link.sock.fileno() < 0:
            return  # closed meanwhile
        out = member.out
        if out:
            try:
                del out[: link.sock.send(out)]
            except (BlockingIOError, InterruptedError):
                pass
            except OSError as exc:
                self._close(link, f"{type(exc).__name__}: {exc}")
                return
        if member.closed is not None and not out:
            self._close(link, member.closed)  # its last words (a close frame) are out
            return
        events = IN | OUT if out else IN
        if events != link.events:
            link.events = events
            self.epoll.modify(link.sock, events)

    def _close(self, link: Link, reason: str) -> None:
        member = link.member
        member.closed = member.closed or reason
        if link.sock.fileno() >= 0:
            del self.links[link.sock.fileno()]
            self.epoll.unregister(link.sock)
            link.sock.close()

    # -- the driver's requests ---------------------------------------------------------------------
    def _driver(self) -> None:
        chunk = os.read(self.stdin, 65536)
        if not chunk:
            self.running = False  # the driver went away
            return
        self.requests += chunk
        while b"\n" in self.requests and self.running:
            line, self.requests = self.requests.split(b"\n", 1)
            self._request(json.loads(line))

    def _request(self, request: dict[str, Any]) -> None:
        op = request["op"]
        if op == "connect":
            self._start_joining(request)
        elif op == "report":
            members = self.members
            receipts = [member.receipts for member in members]
            for member in members:
                member.receipts = []
            closed = [m.closed for m in members if m.closed is not None]
            answer_driver({"receipts": receipts, "alive": len(members) - len(closed)})
        elif op == "check":
            wrong = [m for m in self.members if not m.view_correct()]
            answer_driver(
                {
                    "members": len(self.members),
                    "correct": len(self.members) - len(wrong),
                    "closed": sorted({m.closed for m in wrong if m.closed})[:5],
                    "wrong": [
                        {"seen": m.seen, "strangers": len(m.strangers), "closed": m.closed}
                        for m in wrong[:5]
                    ],
                }
            )
        else:  # "exit"
            self.running = False

    def _start_joining(self, request: dict[str, Any]) -> None:
        """Join ``request["members"]``, at most ``concurrency`` joins in flight; with
        ``expected``, also wait (up to ``timeout`` s) until every member's view lists exactly the
        expected keys. The answer goes out from :meth:`_progress`."""
        server, host, port = request["server"], request["host"], request["port"]
        expected: list[str] | None = request.get("expected")
        people = [
            (key, name, credential_for(server, key, name)) for key, name in request["members"]
        ]
        people.reverse()  # popped from the end, in the order given
        roster = Roster(
            index=None if expected is None else {key: i for i, key in enumerate(expected)},
            sender=request.get("sender"),
            members=len(people),
        )
        family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        self.joining = Joining(
            request=request,
            roster=roster,
            address=address,
            family=family,
            queue=people,
            first_ns=time.monotonic_ns(),
            views_until=math.inf,
            flight=[],
            errors=[],
        )
        self._progress(self.joining, time.monotonic())

    def _progress(self, joining: Joining, now: float) -> None:
        """Move the joins on: retire the finished ones, start more, answer once all are done."""
        still = []
        for link in joining.flight:
            member = link.member
            if member.closed is not None:
                joining.errors.append(f"ClientError: {member.closed}")
                self._close(link, member.closed)
            elif member.joined:
                link.deadline = math.inf
                self.members.append(member)
                if member.keepalive_at < math.inf:
                    fd = link.sock.fileno()
                    heapq.heappush(self.keepalives, (member.keepalive_at, fd, link))
            elif now >= link.deadline:
                joining.errors.append("TooSlowError: the join took too long")
                self._close(link, "join timed out")
            else:
                still.append(link)
        joining.flight = still
        request = joining.request
        while joining.queue and len(joining.flight) < request["concurrency"]:
            self._open(joining, *joining.queue.pop())
        if joining.queue or joining.flight:
            return
        if not joining.connected_ns:
            joining.connected_ns = time.monotonic_ns()
            waiting = request.get("expected") is not None and not joining.errors
            joining.views_until = now + request["timeout"] if waiting else now
        roster = joining.roster
        if roster.complete < roster.members and now < joining.views_until:
            return
        self.joining = None
        answer_driver(
            {
                "ok": roster.members - len(joining.errors),
                "failed": len(joining.errors),
                "errors": sorted(set(joining.errors))[:5],
                "first_ns": joining.first_ns,
                "connected_ns": joining.connected_ns,
                "complete": roster.complete,
                "complete_ns": roster.complete_ns,
            }
        )

    def close(self) -> None:
        for link in list(self.links.values()):
            self._close(link, "worker exit")
        self.epoll.close()


def _worker() -> None:
    gc.disable()
    worker = Worker()
    try:
        worker.run()
    finally:
        worker.close()


# -- what the client costs, measured apart from any real server -----------------------------------
class FakeServer:
    """Just enough of either server to let members in, in a thread; then broadcasts on demand."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=4096)
        self.port: int = self.listener.getsockname()[1]
        self.joined: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        selector = selectors.DefaultSelector()
        selector.register(self.listener, selectors.EVENT_READ)
        while True:
            for key, _ in selector.select():
                if key.fileobj is self.listener:
                    sock, _ = self.listener.accept()
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    state = WSConnection(ConnectionType.SERVER) if self.kind == SYNCPLAYD else b""
                    selector.register(sock, selectors.EVENT_READ, (sock, state))
                    continue
                sock, state = key.data
                data = sock.recv(RECEIVE_BYTES)
                if not data:
                    selector.unregister(sock)
                    sock.close()
                elif isinstance(state, WSConnection):
                    self._websocket(sock, state, data)
                else:
                    *lines, rest = (state + data).split(b"\r\n")
                    selector.modify(sock, selectors.EVENT_READ, (sock, rest))
                    if any(line.startswith(b'{"Hello"') for line in lines):
                        with self.lock:  # before the answer: the next broadcast is for it
                            self.joined.append(sock)
                        hello = {"username": "x", "room": {"name": "bench"}, "motd": ""}
                        sock.sendall(json.dumps({"Hello": hello}).encode() + b"\r\n")

    def _websocket(self, sock: socket.socket, ws: WSConnection, data: bytes) -> None:
        ws.receive_data(data)
        for event in ws.events():
            if isinstance(event, Request):
                sock.sendall(ws.send(AcceptConnection()))
            elif isinstance(event, TextMessage):
                kind = json.loads(event.data)["type"]
                if kind == "hello":
                    sock.sendall(ws.send(TextMessage(data='{"type":"welcome"}')))
                elif kind == "join":
                    joined = {
                        "type": "joined",
                        "server_time": time.monotonic(),
                        "playback": {"version": 0},
                        "participants": [],
                    }
                    with self.lock:  # before the answer: the next broadcast is for it
                        self.joined.append(sock)
                    sock.sendall(ws.send(TextMessage(data=json.dumps(joined))))

    def broadcast(self, event: int) -> None:
        """Event ``event`` as the real server words it, to everyone who joined."""
        if self.kind == SYNCPLAYD:
            playback = protocol.PlaybackWire(
                state="playing",
                position=SPACING * event,
                rate=1.0,
                anchor=time.monotonic(),
                version=event,
                set_by=str(UUID(int=event)),
            )
            message = protocol.PlaybackChanged(
                playback=playback, execute_at=time.monotonic(), reason="play"
            )
            frame = FrameProtocol(client=False, extensions=[])
            data = bytes(frame.send_data(protocol.encode(message)))
        else:  # SyncServerProtocol.sendState, forced
            state = {
                "ping": {"latencyCalculation": time.time(), "serverRtt": 0.001},
                "playstate": {
                    "position": SPACING * event,
                    "paused": False,
                    "doSeek": False,
                    "setBy": "sender",
                },
                "ignoringOnTheFly": {"server": 1},
            }
            data = json.dumps({"State": state}).encode() + b"\r\n"
        with self.lock:
            joined = list(self.joined)
        for sock in joined:
            sock.sendall(data)


def _run_time_ns(pid: int) -> int:
    """A process's CPU time so far, every thread's, from ``/proc/PID/task/*/schedstat``."""
    tasks = Path(f"/proc/{pid}/task").iterdir()
    return sum(int((task / "schedstat").read_text().split()[0]) for task in tasks)


def _cost(members: int, broadcasts: int) -> None:
    """One worker, ``members`` members of a :class:`FakeServer`, ``broadcasts`` broadcasts 5 ms
    apart: the worker's CPU per message received, for each protocol."""
    for kind in (SYNCPLAYD, SYNCPLAY):
        server = FakeServer(kind)
        worker = subprocess.Popen(
            [sys.executable, __file__, "worker"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        assert worker.stdin is not None
        assert worker.stdout is not None

        def request(message: dict[str, Any], pipes: Any = worker) -> dict[str, Any]:
            pipes.stdin.write(json.dumps(message).encode() + b"\n")
            pipes.stdin.flush()
            answer: dict[str, Any] = json.loads(pipes.stdout.readline())
            return answer

        try:
            keys = [str(UUID(int=i + 1)) if kind == SYNCPLAYD else f"l{i}" for i in range(members)]
            joined = request(
                {
                    "op": "connect",
                    "server": kind,
                    "host": "127.0.0.1",
                    "port": server.port,
                    "room": "bench",
                    "members": [(key, f"l{i}") for i, key in enumerate(keys)],
                    "sender": "sender",
                    "concurrency": 25,
                    "join_timeout": 30.0,
                    "timeout": 30.0,
                }
            )
            if joined["failed"]:
                sys.exit(f"{kind}: members failed to join: {joined['errors']}")
            start = _run_time_ns(worker.pid)
            for event in range(1, broadcasts + 1):
                server.broadcast(event)
                time.sleep(0.005)  # a burst at a time, as in a fan-out run
            time.sleep(0.3)  # the last ones arrive
            spent = _run_time_ns(worker.pid) - start
            received = sum(len(receipts) for receipts in request({"op": "report"})["receipts"])
            print(
                f"{kind:>9}: {received:,} of {members * broadcasts:,} messages, "
                f"{spent / 1e3 / max(received, 1):.2f} us of worker CPU per message"
            )
        finally:
            worker.stdin.write(b'{"op": "exit"}\n')
            worker.stdin.close()
            worker.wait(10)


if __name__ == "__main__":
    if sys.argv[1:] == ["worker"]:
        raise_open_files()
        _worker()
    elif sys.argv[1:2] == ["cost"] and all(arg.isdigit() for arg in sys.argv[2:4]):
        raise_open_files()
        sizes = [int(arg) for arg in sys.argv[2:4]]
        _cost(*sizes, *[200, 200][len(sizes) :])
    else:
        sys.exit(__doc__)
