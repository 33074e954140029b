"""Soak benchmark: many rooms with realistic traffic for a long time; memory, latency, errors.

Starts one daemon (SQLite, default settings except as noted), creates ``--rooms`` rooms
over REST, and has ``--workers`` client processes (this file run as ``soak.py worker``)
join ``--members`` fresh users to each (whole rooms per worker). Then, for
``--duration`` seconds, every room lives:

* every member heartbeats every ``--heartbeat`` seconds (the daemon's interval, 5 s by
  default, the real one) with the room's current version and position, pings for its
  clock (5 pings 0.5 s apart after each join, then every 10 s, like the reference
  client) and reports its round trip in its heartbeats;
* a random member sends play, pause or seek about every ``--command-interval`` seconds
  per room (exponential gaps); each carries a position unique in its room, so every
  ``playback`` broadcast names its command;
* a random member sends a chat message about every ``--chat-interval`` seconds per room;
* a random member leaves about every ``--churn-interval`` seconds per room: half of the
  time with ``leave`` (it then joins again as a new participant), half of the time by
  closing its socket (it then comes back with ``join.resume``), after 2 to 10 s.

Every ``--sample`` seconds the driver records: the daemon's ``VmRSS`` and open file
descriptors (``/proc``), its CPU share, the connections joined to rooms and the live
rooms (``/metrics``), and from the workers, for that window: fan-out delays (a member's
task has the ``playback`` frame minus just before its command was sent, both
``time.monotonic_ns()``, i.e. ``CLOCK_MONOTONIC``, one clock for every process), chat
acknowledgement times, and errors: ``error`` frames (none is deliberate here), closes the
client did not ask for, refused joins, and lost messages (a member connected for the 5 s
after a command that never got its ``playback``; a chat never acknowledged while its
sender stayed).

Usage:  .venv/bin/python bench/soak.py [--duration 600] [--rooms 200] [--members 10]
            [--workers 2] [--sample 30] [--json FILE]
Prints a markdown table (one row per sample) and a summary; writes everything as JSON.

Internal use:  .venv/bin/python bench/soak.py worker   (JSON lines on stdin/stdout)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import sys
import tempfile
import time
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import msgspec
import trio
from _common import (
    WorkerProcess,
    answer_driver,
    cpu_seconds,
    create_rooms,
    driver_requests,
    machine_line,
    markdown_table,
    percentile,
    raise_open_files,
    sqlite_daemon,
    token,
    vm_rss_kib,
    ws_url,
)
from trio_websocket import ConnectionClosed, WebSocketConnection, connect_websocket_url
from wsproto.utilities import LocalProtocolError

from tests.daemon_process import new_user

SCRIPT = Path(__file__).resolve()
LOST_AFTER_NS = 5_000_000_000  # a playback not there 5 s after its command is lost
UNACKED_AFTER_NS = 10_000_000_000  # a chat not acknowledged within 10 s is lost
FAST_PINGS, FAST_PING_INTERVAL, SLOW_PING_INTERVAL = 5, 0.5, 10.0
WORDS = [
    "the",
    "cat",
    "sat",
    "on",
    "a",
    "mat",
    "and",
    "watched",
    "the",
    "film",
    "while",
    "we",
    "all",
    "waited",
    "for",
    "the",
    "next",
    "scene",
]


# -- the worker: rooms of members ------------------------------------------------------------------
class _Playback(msgspec.Struct):
    state: str
    position: float
    rate: float
    anchor: float
    version: int


class _Frame(msgspec.Struct):
    """The fields of a server frame the worker reads (the others are ignored)."""

    type: str
    playback: _Playback | None = None
    server_time: float | None = None
    session_id: str | None = None
    reason: str | None = None
    code: str | None = None
    client_id: str | None = None
    id: int | None = None
    t0: float | None = None


_decode = msgspec.json.Decoder(_Frame).decode


@dataclass
class Window:
    """What one worker saw since its last report."""

    delays: list[float] = field(default_factory=list)  # ms, member x command
    chat_acks: list[float] = field(default_factory=list)  # ms
    commands: int = 0
    chats: int = 0
    joins: int = 0
    resumes: int = 0
    leaves: int = 0
    drops: int = 0
    syncs: int = 0
    client_glitches: int = 0  # trio-websocket's, not the daemon's
    lost_playbacks: int = 0
    lost_chats: int = 0
    lost_details: list[str] = field(default_factory=list)  # the first few, for a diagnosis
    error_frames: Counter[str] = field(default_factory=Counter)
    unexpected_closes: Counter[str] = field(default_factory=Counter)
    refused_joins: Counter[str] = field(default_factory=Counter)


class JoinRefused(Exception):
    """The daemon said no (an ``error`` or ``closing`` frame) before ``joined``."""


@dataclass(eq=False)
class Conn:
    """One websocket of a member, from its ``joined`` to its end."""

    ws: WebSocketConnection
    room: Room
    session_id: str
    offset: float  # server clock minus time.monotonic()
    rtt: float | None = None
    received: set[float] = field(default_factory=set)  # command positions seen
    ended_ns: int | None = None
    leaving: str | None = None  # "leave", "drop" or "stop": the client ends it
    closing_seen: str | None = None


@dataclass(eq=False)
class Room:
    room_id: str
    index: int
    conns: set[Conn] = field(default_factory=set)
    playback: _Playback = field(default_factory=lambda: _Playback("paused", 0.0, 1.0, 0.0, 0))
    sent: dict[float, int] = field(default_factory=dict)  # command position -> send ns
    # (position, send ns, members expected to get it, command) of the last few seconds
    pending: deque[tuple[float, int, list[Conn], str]] = field(default_factory=deque)
    in_flight: set[float] = field(default_factory=set)  # sent, not seen broadcast yet
    next_position: float = 60.0
    chats: int = 0

    def live(self) -> list[Conn]:
        return [c for c in self.conns if c.leaving is None]


class Worker:
    """Holds whole rooms of members and runs their traffic (see the module docstring)."""

    def __init__(self, request: dict[str, Any]) -> None:
        self.url: str = request["url"]
        self.members: int = request["members"]
        self.heartbeat: float = request["heartbeat"]
        self.command_interval: float = request["command_interval"]
        self.chat_interval: float = request["chat_interval"]
        self.churn_interval: float = request["churn_interval"]
        self.limiter = trio.CapacityLimiter(request["concurrency"])
        self.rooms = [Room(room_id, i) for i, room_id in enumerate(request["rooms"])]
        self.window = Window()
        self.chat_sent: dict[str, tuple[int, Conn]] = {}
        self.first_joins = 0
        self.first_joins_done = trio.Event()
        self.traffic = trio.Event()

    # -- joining ---------------------------------------------------------------------------------
    async def _expect(self, ws: WebSocketConnection, kind: str) -> _Frame:
        with trio.fail_after(30):
            while True:
                frame = _decode(await ws.get_message())
                if frame.type == kind:
                    return frame
                if frame.type in ("error", "closing"):
                    raise JoinRefused(f"{frame.type}: {frame.code or frame.reason}")

    async def join(self, nursery: trio.Nursery, room: Room, user: Any, resume: str | None) -> Conn:
        headers = [(b"authorization", f"Bearer {token(user)}".encode())]
        ws = await connect_websocket_url(
            nursery, self.url, extra_headers=headers, message_queue_size=256
        )
        try:
            await ws.send_message('{"type":"hello","protocol":1}')
            await self._expect(ws, "welcome")
            body: dict[str, Any] = {"type": "join", "room_id": room.room_id}
            if resume is not None:
                body["resume"] = resume
            t0 = time.monotonic()
            await ws.send_message(json.dumps(body))
            joined = await self._expect(ws, "joined")
            t3 = time.monotonic()
        except BaseException:
            with trio.move_on_after(2) as cleanup:
                cleanup.shield = True
                await ws.aclose()
            raise
        assert joined.server_time is not None
        assert joined.session_id is not None
        if joined.playback is not None and joined.playback.version >= room.playback.version:
            room.playback = joined.playback
        return Conn(ws, room, joined.session_id, joined.server_time - (t0 + t3) / 2)

    # -- one member's seat in a room, over its connections ------------------------------------
    async def seat(self, room: Room, index: int) -> None:
        user = new_user(f"r{room.index}m{index}")
        resume: str | None = None
        first = True
        while True:
            outcome = "failed"
            conn: Conn | None = None
            try:
                async with trio.open_nursery() as nursery:
                    try:
                        async with self.limiter:
                            conn = await self.join(nursery, room, user, resume)
                    except JoinRefused as exc:
                        self.window.refused_joins[str(exc)] += 1
                    except (OSError, ConnectionClosed, trio.TooSlowError) as exc:
                        self.window.refused_joins[type(exc).__name__] += 1
                    except Exception as exc:  # noqa: BLE001 - trio-websocket's handshake errors
                        self.window.refused_joins[type(exc).__name__] += 1
                    if first:
                        first = False
                        self.first_joins += 1
                        if self.first_joins == len(self.rooms) * self.members:
                            self.first_joins_done.set()
                    if conn is not None:
                        self.window.joins += 1
                        self.window.resumes += resume is not None
                        resume = conn.session_id
                        outcome = await self.live(conn)
                    nursery.cancel_scope.cancel()
            except* LocalProtocolError:
                # trio-websocket answers a server ping while it closes the socket itself
                # (after a deliberate close) and its reader task fails: the client's glitch.
                self.window.client_glitches += 1
                outcome = (conn.leaving or "closed") if conn is not None else "failed"
            if outcome == "stop":
                return
            if outcome == "leave":
                resume = None  # it left the room: it joins again as a new participant
            await trio.sleep(random.uniform(2, 10) if outcome in ("leave", "drop") else 1.0)

    async def live(self, conn: Conn) -> str:
        """Serve one connection until it ends; returns why (``leave``, ``drop``, ``closed``)."""
        conn.room.conns.add(conn)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._quietly, self.heartbeats, conn)
                nursery.start_soon(self._quietly, self.pings, conn)
                await self.read(conn)
                nursery.cancel_scope.cancel()
        finally:
            conn.room.conns.discard(conn)
            conn.ended_ns = time.monotonic_ns()
        return conn.leaving or "closed"

    @staticmethod
    async def _quietly(task: Any, conn: Conn) -> None:
        # The socket ended: the reader sees it and says why.
        with contextlib.suppress(
            ConnectionClosed, trio.BrokenResourceError, trio.ClosedResourceError
        ):
            await task(conn)

    async def read(self, conn: Conn) -> None:
        room = conn.room
        try:
            while True:
                text = await conn.ws.get_message()
                now = time.monotonic_ns()
                frame = _decode(text)
                window = self.window  # (replaced at every report)
                kind = frame.type
                if kind == "playback" and frame.playback is not None:
                    position = frame.playback.position
                    sent = room.sent.get(position)
                    if sent is not None:
                        window.delays.append((now - sent) / 1e6)
                        conn.received.add(position)
                        room.in_flight.discard(position)
                    if frame.playback.version > room.playback.version:
                        room.playback = frame.playback
                elif kind == "pong" and frame.t0 is not None:
                    conn.rtt = min(60.0, time.monotonic() - frame.t0)
                elif kind == "chat_ack" and frame.client_id is not None:
                    acked = self.chat_sent.pop(frame.client_id, None)
                    if acked is not None:
                        window.chat_acks.append((now - acked[0]) / 1e6)
                elif kind == "sync":
                    window.syncs += 1
                elif kind == "error":
                    window.error_frames[frame.code or "?"] += 1
                elif kind == "closing":
                    conn.closing_seen = frame.reason
                    if not (conn.leaving == "leave" and frame.reason == "left"):
                        window.unexpected_closes[f"closing {frame.reason}"] += 1
        except ConnectionClosed as exc:
            if conn.leaving is None and conn.closing_seen is None:
                code = exc.reason.code if exc.reason is not None else None
                self.window.unexpected_closes[f"socket closed {code}"] += 1

    async def heartbeats(self, conn: Conn) -> None:
        """Where the room's playback says this member is, at its idea of the server time."""
        await trio.sleep(random.uniform(0, self.heartbeat))
        while True:
            server_time = time.monotonic() + conn.offset
            playback = conn.room.playback
            position = playback.position
            if playback.state == "playing":
                position += max(0.0, server_time - playback.anchor) * playback.rate
            beat: dict[str, Any] = {
                "type": "heartbeat",
                "position": position,
                "server_time": server_time,
                "version": playback.version,
                "playing": playback.state == "playing",
            }
            if conn.rtt is not None:
                beat["rtt"] = conn.rtt
            await conn.ws.send_message(json.dumps(beat))
            await trio.sleep(self.heartbeat)

    async def pings(self, conn: Conn) -> None:
        for n in range(1_000_000):
            await conn.ws.send_message(
                json.dumps({"type": "ping", "id": n, "t0": time.monotonic()})
            )
            await trio.sleep(FAST_PING_INTERVAL if n < FAST_PINGS else SLOW_PING_INTERVAL)

    # -- the room's traffic ------------------------------------------------------------------------
    async def commands(self, room: Room) -> None:
        while True:
            await trio.sleep(random.expovariate(1 / self.command_interval))
            live = room.live()
            if not live:
                continue
            conn = random.choice(live)
            if room.in_flight:
                # The room's state is about to change: a play or pause chosen from the old
                # one could be a no-op (no broadcast). A seek to a new position never is.
                kind = "seek"
            elif room.playback.state == "playing":
                kind = random.choice(("pause", "seek"))
            else:
                kind = random.choice(("play", "seek"))
            position = room.next_position
            room.next_position += random.uniform(1.0, 90.0)
            sent = time.monotonic_ns()
            entry = (position, sent, live, kind)
            room.sent[position] = sent
            room.pending.append(entry)
            room.in_flight.add(position)
            try:
                await conn.ws.send_message(json.dumps({"type": kind, "position": position}))
            except ConnectionClosed:
                # Its sender left meanwhile: the command was never sent.
                room.pending.remove(entry)
                room.sent.pop(position, None)
                room.in_flight.discard(position)
                continue
            self.window.commands += 1

    async def chats(self, room: Room) -> None:
        while True:
            await trio.sleep(random.expovariate(1 / self.chat_interval))
            live = room.live()
            if not live:
                continue
            conn = random.choice(live)
            room.chats += 1
            client_id = f"r{room.index}c{room.chats}"
            text = " ".join(random.choices(WORDS, k=random.randint(3, 20)))
            self.chat_sent[client_id] = (time.monotonic_ns(), conn)
            self.window.chats += 1
            with contextlib.suppress(ConnectionClosed):
                await conn.ws.send_message(
                    json.dumps({"type": "chat", "message": text, "client_id": client_id})
                )

    async def churn(self, room: Room) -> None:
        while True:
            await trio.sleep(random.expovariate(1 / self.churn_interval))
            live = room.live()
            if not live:
                continue
            conn = random.choice(live)
            if random.random() < 0.5:
                conn.leaving = "leave"
                self.window.leaves += 1
                with contextlib.suppress(ConnectionClosed):
                    await conn.ws.send_message('{"type":"leave"}')
            else:
                conn.leaving = "drop"
                self.window.drops += 1
                with trio.move_on_after(5):
                    await conn.ws.aclose()

    async def sweep(self) -> None:
        """Once a second: count what never arrived, and forget what is old."""
        while True:
            await trio.sleep(1.0)
            now = time.monotonic_ns()
            for room in self.rooms:
                while room.pending and now - room.pending[0][1] > LOST_AFTER_NS:
                    position, sent, expected, kind = room.pending.popleft()
                    lost = 0
                    for conn in expected:
                        stayed = conn.ended_ns is None or conn.ended_ns > sent + LOST_AFTER_NS
                        if position not in conn.received and stayed and conn.leaving is None:
                            lost += 1
                        conn.received.discard(position)
                    if lost:
                        self.window.lost_playbacks += lost
                        if len(self.window.lost_details) < 20:
                            detail = f"room {room.index}: {kind} missed by {lost}/{len(expected)}"
                            self.window.lost_details.append(detail)
                    room.sent.pop(position, None)
                    room.in_flight.discard(position)
            for client_id, (sent, conn) in list(self.chat_sent.items()):
                if now - sent > UNACKED_AFTER_NS:
                    del self.chat_sent[client_id]
                    stayed = conn.ended_ns is None or conn.ended_ns > sent + UNACKED_AFTER_NS
                    if stayed and conn.leaving is None:
                        self.window.lost_chats += 1

    async def run(self, nursery: trio.Nursery) -> None:
        for room in self.rooms:
            for index in range(self.members):
                nursery.start_soon(self.seat, room, index)
        await self.first_joins_done.wait()
        for room in self.rooms:
            nursery.start_soon(self.commands, room)
            nursery.start_soon(self.chats, room)
            nursery.start_soon(self.churn, room)
        nursery.start_soon(self.sweep)

    def report(self) -> dict[str, Any]:
        window, self.window = self.window, Window()
        data = asdict(window)
        data["alive"] = sum(len(room.conns) for room in self.rooms)
        return data


async def _worker_main() -> None:
    """Serve the driver: ``start`` (returns once every member has tried to join), ``report``."""
    worker: Worker | None = None
    answer = answer_driver
    async with trio.open_nursery() as nursery:
        async for request in driver_requests():
            if request["op"] == "start":
                worker = Worker(request)
                started = time.monotonic()
                await worker.run(nursery)
                report = worker.report()
                answer(report | {"seconds": time.monotonic() - started})
            elif request["op"] == "report" and worker is not None:
                answer(worker.report())
            else:
                break
        # "exit", or the driver went away: stop the members' churn, then everything.
        if worker is not None:
            for room in worker.rooms:
                for conn in room.conns:
                    conn.leaving = "stop"
        nursery.cancel_scope.cancel()


class WorkerHandle(WorkerProcess):
    """The driver's side of one soak worker process."""

    stop_timeout = 15.0

    @classmethod
    async def spawn(cls) -> WorkerHandle:
        return await cls.start(SCRIPT, "worker")


# -- the driver ------------------------------------------------------------------------------------
@dataclass
class Sample:
    t: float  # seconds since the members had joined
    rss_mib: float
    open_fds: int
    connections: int  # joined to rooms, says the daemon
    live_rooms: int
    full_collections: int  # the daemon's generation-2 garbage collections so far
    clients_alive: int  # connections the workers hold
    daemon_cpu: float  # share of one core over the window
    workers_cpu: float
    commands: int
    fanout_samples: int
    fanout_p50: float
    fanout_p99: float
    fanout_max: float
    chats: int
    chat_ack_p99: float
    joins: int
    resumes: int
    leaves: int
    drops: int
    syncs: int
    client_glitches: int
    errors: dict[str, int]
    lost_details: list[str]

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


def _stat(values: Sequence[float], q: float) -> float:
    return percentile(values, q) if values else float("nan")


async def _scrape(http: httpx.AsyncClient) -> dict[str, float]:
    wanted = (
        "syncplayd_connections",
        "syncplayd_live_rooms",
        'python_gc_collections_total{generation="2"}',
    )
    values: dict[str, float] = {}
    for line in (await http.get("/metrics")).text.splitlines():
        name, _, value = line.partition(" ")
        if name in wanted:
            values[name] = float(value)
    return values


def _errors(reports: list[dict[str, Any]]) -> dict[str, int]:
    errors: Counter[str] = Counter()
    for report in reports:
        for kind in ("error_frames", "unexpected_closes", "refused_joins"):
            for what, count in report[kind].items():
                errors[f"{kind.removesuffix('s').replace('_', ' ')}: {what}"] += count
        errors["lost playback"] += report["lost_playbacks"]
        errors["lost chat"] += report["lost_chats"]
    return {k: v for k, v in errors.items() if v}


async def _sample(
    t: float,
    pid: int,
    workers: list[WorkerHandle],
    http: httpx.AsyncClient,
    cpu: dict[str, float],
    reports: list[dict[str, Any]] | None = None,
) -> Sample:
    if reports is None:
        reports = [await worker.request({"op": "report"}) for worker in workers]
    wall = time.monotonic()
    daemon_cpu = cpu_seconds(pid)
    workers_cpu = sum(cpu_seconds(w.process.pid) for w in workers)
    span = max(1e-9, wall - cpu["wall"])
    shares = ((daemon_cpu - cpu["daemon"]) / span, (workers_cpu - cpu["workers"]) / span)
    cpu.update(wall=wall, daemon=daemon_cpu, workers=workers_cpu)
    live = await _scrape(http)
    delays = [d for r in reports for d in r["delays"]]
    acks = [d for r in reports for d in r["chat_acks"]]
    return Sample(
        t=round(t, 1),
        rss_mib=vm_rss_kib(pid) / 1024,
        open_fds=len(os.listdir(f"/proc/{pid}/fd")),
        connections=int(live.get("syncplayd_connections", -1)),
        live_rooms=int(live.get("syncplayd_live_rooms", -1)),
        full_collections=int(live.get('python_gc_collections_total{generation="2"}', -1)),
        clients_alive=sum(r["alive"] for r in reports),
        daemon_cpu=shares[0],
        workers_cpu=shares[1],
        commands=sum(r["commands"] for r in reports),
        fanout_samples=len(delays),
        fanout_p50=_stat(delays, 50),
        fanout_p99=_stat(delays, 99),
        fanout_max=max(delays, default=float("nan")),
        chats=sum(r["chats"] for r in reports),
        chat_ack_p99=_stat(acks, 99),
        joins=sum(r["joins"] for r in reports),
        resumes=sum(r["resumes"] for r in reports),
        leaves=sum(r["leaves"] for r in reports),
        drops=sum(r["drops"] for r in reports),
        syncs=sum(r["syncs"] for r in reports),
        client_glitches=sum(r["client_glitches"] for r in reports),
        errors=_errors(reports),
        lost_details=[d for r in reports for d in r["lost_details"]],
    )


def _row(s: Sample) -> tuple[object, ...]:
    return (
        f"{s.t:.0f}",
        f"{s.rss_mib:.1f}",
        s.open_fds,
        s.connections,
        f"{s.daemon_cpu:.0%}",
        s.full_collections,
        s.commands,
        s.fanout_samples,
        s.fanout_p50,
        s.fanout_p99,
        s.fanout_max,
        s.chats,
        s.chat_ack_p99,
        f"{s.joins}/{s.leaves + s.drops}",
        s.error_count,
    )


HEADERS = [
    "t s",
    "RSS MiB",
    "fds",
    "conns",
    "daemon CPU",
    "full GCs",
    "cmds",
    "fan-out n",
    "p50 ms",
    "p99 ms",
    "max ms",
    "chats",
    "chat ack p99 ms",
    "joins/leaves",
    "errors",
]


def slope_per_minute(points: Sequence[tuple[float, float]]) -> float:
    """Least-squares slope of ``(seconds, value)`` points, per minute."""
    n = len(points)
    if n < 2:
        return float("nan")
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    cov = sum((t - mean_t) * (v - mean_v) for t, v in points)
    return cov / var * 60 if var else float("nan")


async def run(
    base_url: str, pid: int, args: argparse.Namespace
) -> tuple[list[Sample], dict[str, Any]]:
    url = ws_url(base_url)
    rss_empty = vm_rss_kib(pid) / 1024
    started = time.monotonic()
    rooms = await create_rooms(base_url, args.rooms, max_participants=args.members + 2)
    rss_rooms = vm_rss_kib(pid) / 1024
    print(
        f"# daemon VmRSS {rss_empty:.1f} MiB at start, {rss_rooms:.1f} MiB after creating "
        f"{len(rooms)} rooms ({time.monotonic() - started:.0f} s)",
        flush=True,
    )
    workers = [await WorkerHandle.spawn() for _ in range(args.workers)]
    shares: list[list[str]] = [[] for _ in workers]
    for i, (room_id, _) in enumerate(rooms):
        shares[i % len(workers)].append(room_id)
    samples: list[Sample] = []
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        try:
            cpu = {"wall": time.monotonic(), "daemon": cpu_seconds(pid), "workers": 0.0}
            joined_at = time.monotonic()
            answers: list[dict[str, Any]] = []

            async def start(worker: WorkerHandle, share: list[str]) -> None:
                request = {
                    "op": "start",
                    "url": url,
                    "rooms": share,
                    "members": args.members,
                    "heartbeat": args.heartbeat,
                    "command_interval": args.command_interval,
                    "chat_interval": args.chat_interval,
                    "churn_interval": args.churn_interval,
                    "concurrency": args.concurrency,
                }
                answers.append(await worker.request(request))

            async with trio.open_nursery() as nursery:
                for worker, share in zip(workers, shares, strict=True):
                    nursery.start_soon(start, worker, share)
            join_seconds = time.monotonic() - joined_at
            joined = sum(a["joins"] for a in answers)
            print(
                f"# {joined:,} of {args.rooms * args.members:,} members joined in "
                f"{join_seconds:.1f} s; errors while joining: {_errors(answers) or 'none'}",
                flush=True,
            )
            t0 = time.monotonic()
            first = await _sample(0.0, pid, workers, http, cpu, answers)
            samples.append(first)
            print("\n" + markdown_table(HEADERS, [_row(first)]), flush=True)
            ticks = int(args.duration // args.sample)
            for k in range(1, ticks + 1):
                await trio.sleep_until(
                    trio.current_time() + t0 + k * args.sample - time.monotonic()
                )
                sample = await _sample(time.monotonic() - t0, pid, workers, http, cpu)
                samples.append(sample)
                print(markdown_table(HEADERS, [_row(sample)]).splitlines()[-1], flush=True)
                if sample.clients_alive == 0:
                    print("# every client connection is gone: stopping", flush=True)
                    break
        finally:
            with trio.CancelScope(shield=True):
                for worker in workers:
                    await worker.stop()
    return samples, summarise(samples, rss_empty, rss_rooms, join_seconds, args)


def summarise(
    samples: list[Sample],
    rss_empty: float,
    rss_rooms: float,
    join_seconds: float,
    args: argparse.Namespace,
) -> dict[str, Any]:
    windows = samples[1:]  # the first sample is the state right after the joins
    rss = [(s.t, s.rss_mib) for s in samples]
    half = [(t, v) for t, v in rss if t >= samples[-1].t / 2]
    errors: Counter[str] = Counter()
    for s in samples:
        errors.update(s.errors)
    p99s = sorted(s.fanout_p99 for s in windows if s.fanout_samples)
    return {
        "rss_mib": {
            "empty": round(rss_empty, 1),
            "rooms_created": round(rss_rooms, 1),
            "start": round(samples[0].rss_mib, 1),
            "end": round(samples[-1].rss_mib, 1),
            "max": round(max(v for _, v in rss), 1),
            "slope_mib_per_min": round(slope_per_minute(rss), 3),
            "slope_second_half_mib_per_min": round(slope_per_minute(half), 3),
        },
        "open_fds": {"start": samples[0].open_fds, "end": samples[-1].open_fds},
        "join_seconds": round(join_seconds, 1),
        "fanout_ms": {
            "window_p50_median": round(_stat([s.fanout_p50 for s in windows], 50), 2),
            "window_p99_median": round(_stat(p99s, 50), 2),
            "window_p99_max": round(max(p99s, default=float("nan")), 2),
            "samples": sum(s.fanout_samples for s in windows),
        },
        "traffic": {
            "commands": sum(s.commands for s in windows),
            "chats": sum(s.chats for s in windows),
            "joins_after_start": sum(s.joins for s in windows),
            "resumes": sum(s.resumes for s in windows),
            "leaves": sum(s.leaves for s in windows),
            "drops": sum(s.drops for s in windows),
            "syncs": sum(s.syncs for s in windows),
            "client_glitches": sum(s.client_glitches for s in windows),
        },
        "errors": dict(errors),
        "lost_details": [f"t={s.t:.0f} {d}" for s in samples for d in s.lost_details][:20],
        "error_total": sum(errors.values()),
        "minutes": round(samples[-1].t / 60, 1),
        "args": vars(args) | {"json": str(args.json)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=600.0, help="seconds (default: 600)")
    parser.add_argument("--rooms", type=int, default=200, help="rooms (default: %(default)s)")
    parser.add_argument("--members", type=int, default=10, help="per room (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=2, help="client processes (default: 2)")
    parser.add_argument("--sample", type=float, default=30.0, help="seconds per sample (30)")
    parser.add_argument("--heartbeat", type=float, default=5.0, help="seconds (default: 5)")
    parser.add_argument(
        "--command-interval", type=float, default=20.0, help="mean s between commands per room"
    )
    parser.add_argument(
        "--chat-interval", type=float, default=15.0, help="mean s between chats per room"
    )
    parser.add_argument(
        "--churn-interval", type=float, default=60.0, help="mean s between leaves per room"
    )
    parser.add_argument(
        "--concurrency", type=int, default=25, help="joins in flight per worker (25)"
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=Path(tempfile.gettempdir())
        / f"syncplayd-soak-{datetime.now(UTC):%Y%m%d-%H%M}.json",
        help="where to write the samples and the summary (default: a file in the temp folder)",
    )
    args = parser.parse_args()
    connections = args.rooms * args.members
    if not 1 <= args.rooms <= 2000 or not 2 <= args.members <= 100 or connections > 20_000:
        parser.error("--rooms 1..2000, --members 2..100, at most 20000 connections")
    if not 1 <= args.workers <= 16 or args.sample < 5 or args.duration < args.sample:
        parser.error("--workers 1..16, --sample at least 5 s, --duration at least one sample")
    files = raise_open_files()
    if files < connections + 1000:
        parser.error(f"the open-files limit is {files}: too low for {connections} sockets")
    machine = machine_line()
    print(machine)
    print("# " + " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]), flush=True)
    env = {"SYNCPLAY_HEARTBEAT_INTERVAL_SECONDS": f"{args.heartbeat:g}"}
    with sqlite_daemon(env) as daemon:
        samples, summary = trio.run(run, daemon.base_url, daemon.process.pid, args)
        tracebacks = [line for line in daemon.log_lines if "Traceback" in line]
    summary["daemon_tracebacks"] = len(tracebacks)
    rss = summary["rss_mib"]
    fanout = summary["fanout_ms"]
    print(
        f"\n# {summary['minutes']} min; RSS {rss['start']} -> {rss['end']} MiB "
        f"(max {rss['max']}), slope {rss['slope_mib_per_min']:+.3f} MiB/min "
        f"({rss['slope_second_half_mib_per_min']:+.3f} over the second half); fan-out p50 "
        f"{fanout['window_p50_median']} ms, p99 per window median {fanout['window_p99_median']} "
        f"ms, worst {fanout['window_p99_max']} ms over {fanout['samples']:,} samples"
    )
    print(f"# traffic: {summary['traffic']}")
    print(f"# errors: {summary['error_total']} {summary['errors'] or ''}; daemon tracebacks: "
          f"{len(tracebacks)}")  # fmt: skip
    for detail in summary["lost_details"]:
        print(f"#   lost: {detail}")
    record = {
        "machine": machine,
        "command": sys.argv,
        "summary": summary,
        "samples": [asdict(sample) for sample in samples],
    }
    args.json.write_text(json.dumps(record, indent=1))
    print(f"# JSON: {args.json}")


if __name__ == "__main__":
    if sys.argv[1:] == ["worker"]:
        raise_open_files()
        trio.run(_worker_main)
    else:
        main()
