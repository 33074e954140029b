"""Shared pieces of the benchmarks under ``bench/``.

* the daemon, started as a real process on a throwaway SQLite file with extra
  environment (:func:`sqlite_daemon`), its memory and CPU from ``/proc``;
* rooms created over REST, tokens for fresh users;
* statistics (:func:`percentile`, :func:`summary`) and markdown tables;
* :class:`Member`, a bare protocol client (trio-websocket, no client library)
  that joins a room, sends heartbeats, toggles play/pause and stamps every
  ``playback`` message it receives with ``time.monotonic_ns()``;
* the *listener worker*: this file run as a script holds many members in one
  process and is driven with JSON lines on stdin/stdout (:class:`WorkerHandle`
  on the driver side). ``fanout.py``, ``capacity.py`` and ``cluster.py`` spawn it
  (``cluster.py`` with the room in each member's URL, :func:`room_ws_url`, as a
  proxy in front of several nodes routes by it).

Clock: every timestamp that crosses a process boundary is ``time.monotonic_ns()``,
i.e. Linux ``CLOCK_MONOTONIC``, which is one system-wide clock shared by all
processes of the machine.

Internal use:  .venv/bin/python bench/_common.py listener   (JSON lines on stdin)
"""

from __future__ import annotations

import gc
import json
import os
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Self

import httpx
import msgspec
import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, connect_websocket_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from syncplayd.identity import Principal, encode_token
from tests.daemon_process import SECRET, DaemonProcess, new_user, run_daemon

WORKER_SCRIPT = Path(__file__).resolve()
WS_PATH = "/api/v1/syncplay/ws"
ROOMS_PATH = "/api/v1/syncplay/rooms"
#: Several nodes: a member told ``moved`` (its room runs on, or goes to, another node) joins
#: again through the proxy after this long (the server's ``retry_after``), this many times.
MOVED_RETRY_SECONDS = 1.0
MOVED_ATTEMPTS = 30


# -- statistics and reporting ----------------------------------------------------------------------
def percentile(samples: Sequence[float], q: float) -> float:
    """The nearest-rank ``q``-th percentile (``q`` in 0..100) of a non-empty sample."""
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))
    return ordered[index]


@dataclass(frozen=True, slots=True)
class Summary:
    """The size, median, tail and maximum of a sample (``nan`` when empty)."""

    count: int
    p50: float
    p95: float
    p99: float
    max: float


def summary(samples: Sequence[float]) -> Summary:
    if not samples:
        nan = float("nan")
        return Summary(0, nan, nan, nan, nan)
    return Summary(
        len(samples),
        percentile(samples, 50),
        percentile(samples, 95),
        percentile(samples, 99),
        max(samples),
    )


def machine_line() -> str:
    """One markdown comment line: when and where the numbers were taken."""
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"# {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, load average {load}"
    )


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A markdown table; the first column is left-aligned, the others right-aligned."""
    lines = [
        "| " + " | ".join(headers) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(headers) - 1)) + "|",
    ]
    for row in rows:
        lines.append("| " + " | ".join(_cell(value) for value in row) + " |")
    return "\n".join(lines)


def _cell(value: object) -> str:
    if isinstance(value, float):
        return "-" if value != value else f"{value:,.2f}"  # nan: no data
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


# -- the daemon ------------------------------------------------------------------------------------
def raise_open_files() -> int:
    """Raise this process's soft ``RLIMIT_NOFILE`` to the hard limit (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


@contextmanager
def sqlite_daemon(env: dict[str, str]) -> Iterator[DaemonProcess]:
    """A daemon process on a fresh SQLite file in a temporary folder, with ``env`` added."""
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.sqlite3'}"
        with run_daemon(url, Path(tmp) / "state", env) as daemon:
            yield daemon


def vm_rss_kib(pid: int) -> int:
    """The resident set of a process (``VmRSS`` in ``/proc/PID/status``), KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (``/proc/PID/stat``), seconds."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat.rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return ticks / os.sysconf("SC_CLK_TCK")


def ws_url(base_url: str) -> str:
    return base_url.replace("http://", "ws://") + WS_PATH


def room_ws_url(url: str, room_id: str) -> str:
    """The websocket ``url`` naming the room (``?room=ID``): nginx in front of several
    nodes hashes it to pick the room's node (docs/deployment.md, "Several nodes")."""
    return f"{url}?room={room_id}"


def token(principal: Principal, hours: float = 2.0) -> str:
    return encode_token(principal, SECRET, ttl=timedelta(hours=hours))


async def create_rooms(
    base_url: str, count: int, *, max_participants: int, concurrency: int = 16
) -> list[tuple[str, Principal]]:
    """``count`` public rooms, each created by a fresh owner: ``[(room id, owner), ...]``.

    One owner per room keeps clear of ``rooms.max_rooms_per_user``. The owner is
    a participant (role ``owner``) but is not connected until someone uses it.
    """
    rooms: list[tuple[str, Principal] | None] = [None] * count
    limiter = trio.CapacityLimiter(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=60) as client:

        async def one(i: int) -> None:
            owner = new_user(f"owner{i}")
            async with limiter:
                response = await client.post(
                    ROOMS_PATH,
                    headers={"Authorization": f"Bearer {token(owner)}"},
                    json={
                        "name": f"bench {i}",
                        "content_type": "movie",
                        "content_id": "1",
                        "is_public": True,
                        "max_participants": max_participants,
                    },
                )
            if response.status_code != 201:
                raise RuntimeError(f"room creation: {response.status_code} {response.text}")
            rooms[i] = (response.json()["id"], owner)

        async with trio.open_nursery() as nursery:
            for i in range(count):
                nursery.start_soon(one, i)
    return [room for room in rooms if room is not None]


# -- a bare member ---------------------------------------------------------------------------------
class _Version(msgspec.Struct):
    version: int
    state: str


class _Frame(msgspec.Struct):
    """The fields of a server frame that the benchmarks read (others are ignored)."""

    type: str
    server_time: float | None = None
    playback: _Version | None = None
    reason: str | None = None
    code: str | None = None


_frame = msgspec.json.Decoder(_Frame)


class BenchError(Exception):
    """A member could not join, or its room closed it."""


async def _open_ws(nursery: trio.Nursery, url: str, principal: Principal) -> WebSocketConnection:
    headers = [(b"authorization", f"Bearer {token(principal)}".encode())]
    return await connect_websocket_url(nursery, url, extra_headers=headers, message_queue_size=64)


@dataclass(eq=False)
class Member:
    """One joined websocket: a room member that heartbeats and records ``playback``.

    ``receipts`` holds ``(version, time.monotonic_ns())`` for every ``playback``
    message, stamped as soon as this task has the frame.
    """

    ws: WebSocketConnection
    room_id: str
    offset: float = 0.0  # server clock minus time.monotonic(), from welcome/joined
    version: int = 0
    state: str = "paused"
    receipts: list[tuple[int, int]] = field(default_factory=list)
    closed: str | None = None
    moves: int = 0  # times it followed a ``moved`` (:meth:`run_following_moves`)
    _changed: trio.Event = field(default_factory=trio.Event)

    @classmethod
    async def join(
        cls, nursery: trio.Nursery, url: str, room_id: str, principal: Principal
    ) -> Member:
        """Connect (the reader runs in ``nursery``), say ``hello``, ``join``; raise on refusal."""
        member = cls(await _open_ws(nursery, url, principal), room_id)
        await member._handshake()
        return member

    @classmethod
    async def join_following_moves(
        cls, nursery: trio.Nursery, url: str, room_id: str, principal: Principal
    ) -> Member:
        """:meth:`join`, trying again while the node says the room is elsewhere (``moved``)."""
        for attempt in range(MOVED_ATTEMPTS):
            try:
                return await cls.join(nursery, url, room_id, principal)
            except BenchError as exc:
                if not str(exc).endswith("moved") or attempt == MOVED_ATTEMPTS - 1:
                    raise
            await trio.sleep(MOVED_RETRY_SECONDS)
        raise AssertionError("unreachable")

    async def _handshake(self) -> None:
        ws = self.ws
        try:
            await ws.send_message('{"type":"hello","protocol":1}')
            await self._expect("welcome")
            t0 = time.monotonic()
            await ws.send_message(json.dumps({"type": "join", "room_id": self.room_id}))
            joined = await self._expect("joined")
            t3 = time.monotonic()
        except BaseException:
            with trio.move_on_after(2) as cleanup:
                cleanup.shield = True
                await ws.aclose()
            raise
        assert joined.server_time is not None
        self.offset = joined.server_time - (t0 + t3) / 2
        if joined.playback is not None:
            self.version, self.state = joined.playback.version, joined.playback.state

    @property
    def moved(self) -> bool:
        """Whether the server closed it with ``moved`` (close code 4008): the room runs on,
        or goes to, another node, and a client joins again through the proxy."""
        return self.closed in ("closing: moved", "socket closed (4008)")

    async def run_following_moves(
        self, nursery: trio.Nursery, url: str, principal: Principal, heartbeat_interval: float
    ) -> None:
        """:meth:`run`; after a ``moved``, join again through ``url`` (as the clients do)
        and carry on, keeping ``receipts``. Ends on any other close, or when joining again
        fails (the reason lands in ``closed``)."""
        while True:
            await self.run(heartbeat_interval)
            if not self.moved:
                return
            self.moves += 1
            self.closed = None  # moving, not gone
            for attempt in range(MOVED_ATTEMPTS):
                await trio.sleep(MOVED_RETRY_SECONDS)
                try:
                    self.ws = await _open_ws(nursery, url, principal)
                    await self._handshake()
                    break
                except BenchError as exc:
                    if not str(exc).endswith("moved") or attempt == MOVED_ATTEMPTS - 1:
                        self.closed = f"joining again: {exc}"
                        return
                except Exception as exc:  # noqa: BLE001 - refused upgrades, resets: reported
                    self.closed = f"joining again: {type(exc).__name__}: {exc}"
                    return

    async def _expect(self, kind: str) -> _Frame:
        with trio.fail_after(30):
            while True:
                frame = _frame.decode(await self.ws.get_message())
                if frame.type == kind:
                    return frame
                if frame.type in ("error", "closing"):
                    raise BenchError(f"{frame.type}: {frame.code or frame.reason}")

    async def run(self, heartbeat_interval: float) -> None:
        """Read and heartbeat until the socket ends (the reason lands in ``closed``)."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._guard, self._heartbeats, heartbeat_interval, nursery)
            nursery.start_soon(self._guard, self._read, None, nursery)

    async def _guard(self, task: Any, arg: Any, nursery: trio.Nursery) -> None:
        """Run one of the member's tasks; whichever ends first ends the other."""
        try:
            await (task() if arg is None else task(arg))
        except ConnectionClosed as exc:
            code = exc.reason.code if exc.reason is not None else None
            self.closed = self.closed or f"socket closed ({code})"
        finally:
            nursery.cancel_scope.cancel()

    async def _read(self) -> None:
        while True:
            text = await self.ws.get_message()
            received = time.monotonic_ns()
            if '"playback"' not in text and '"closing"' not in text:
                continue  # presence, pong, chat...: nothing to record
            frame = _frame.decode(text)
            if frame.type == "playback" and frame.playback is not None:
                self.receipts.append((frame.playback.version, received))
                self.version, self.state = frame.playback.version, frame.playback.state
                self._changed.set()
                self._changed = trio.Event()
            elif frame.type == "closing":
                self.closed = f"closing: {frame.reason}"
                return

    async def _heartbeats(self, interval: float) -> None:
        """Heartbeat "at 0 s, version 0": keeps the session alive; old versions are not compared."""
        await trio.sleep(random.uniform(0, interval))  # spread the room's heartbeats
        while True:
            beat = {
                "type": "heartbeat",
                "position": 0.0,
                "version": 0,
                "server_time": time.monotonic() + self.offset,
            }
            await self.ws.send_message(json.dumps(beat))
            await trio.sleep(interval)

    async def toggle(self, limit: float = 10.0) -> tuple[int, int]:
        """Send play (when paused) or pause; wait for this member's own copy of the change.

        Returns the new version and the ``time.monotonic_ns()`` just before sending.
        """
        before = self.version
        command = "pause" if self.state == "playing" else "play"
        sent = time.monotonic_ns()
        await self.ws.send_message(f'{{"type":"{command}"}}')
        with trio.fail_after(limit):
            while self.version <= before:
                await self._changed.wait()
        return self.version, sent


# -- the listener worker ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Connected:
    """A worker's answer to ``connect``."""

    ok: int
    failed: int
    seconds: float
    errors: list[str]


class WorkerProcess:
    """The driver's side of a client worker process: JSON lines over its stdin and stdout."""

    #: Seconds a worker gets to exit after ``{"op": "exit"}`` before it is killed.
    stop_timeout = 10.0

    def __init__(self, process: trio.Process) -> None:
        self.process = process
        self._buffer = b""

    @classmethod
    async def start(cls, script: Path, role: str) -> Self:
        process = await trio.lowlevel.open_process(
            [sys.executable, str(script), role], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        return cls(process)

    async def request(self, message: dict[str, Any]) -> dict[str, Any]:
        assert self.process.stdin is not None
        await self.process.stdin.send_all(json.dumps(message).encode() + b"\n")
        return await self._line()

    async def _line(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        while b"\n" not in self._buffer:
            chunk = await self.process.stdout.receive_some(1 << 20)
            if not chunk:
                raise RuntimeError(f"worker {self.process.pid} exited")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        answer: dict[str, Any] = json.loads(line)
        return answer

    async def stop(self) -> None:
        """Ask the worker to exit; kill it (by its pid) if it does not within ``stop_timeout``."""
        try:
            assert self.process.stdin is not None
            await self.process.stdin.send_all(b'{"op": "exit"}\n')
            await self.process.stdin.aclose()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        with trio.move_on_after(self.stop_timeout):
            await self.process.wait()
            return
        self.process.kill()
        await self.process.wait()


def answer_driver(message: dict[str, Any]) -> None:
    """A worker's answer to its driver: one JSON line on stdout."""
    sys.stdout.write(json.dumps(message, separators=(",", ":")) + "\n")
    sys.stdout.flush()


async def driver_requests() -> AsyncIterator[dict[str, Any]]:
    """A worker's requests from its driver, one JSON line each; ends when the driver goes."""
    stdin = trio.lowlevel.FdStream(os.dup(sys.stdin.fileno()))
    buffer = b""
    while True:
        while b"\n" not in buffer:
            chunk = await stdin.receive_some(65536)
            if not chunk:
                return
            buffer += chunk
        line, buffer = buffer.split(b"\n", 1)
        yield json.loads(line)


class WorkerHandle(WorkerProcess):
    """The driver's side of one listener worker process."""

    #: Moves its members followed so far, as of the last :meth:`report` (several nodes).
    moves: int = 0

    @classmethod
    async def spawn(cls) -> WorkerHandle:
        return await cls.start(WORKER_SCRIPT, "listener")

    async def connect(
        self,
        url: str,
        rooms: list[tuple[str, int]],
        heartbeat: float,
        concurrency: int,
        *,
        room_in_url: bool = False,
    ) -> Connected:
        """Join ``count`` fresh users to each room; returns when all have joined or failed.

        ``room_in_url``: each member connects to ``url`` naming its room
        (:func:`room_ws_url`), as clients behind a proxy for several nodes do, and follows
        the room when told ``moved`` (:meth:`Member.run_following_moves`).
        """
        answer = await self.request(
            {
                "op": "connect",
                "url": url,
                "rooms": rooms,
                "heartbeat": heartbeat,
                "concurrency": concurrency,
                "room_in_url": room_in_url,
            }
        )
        return Connected(answer["ok"], answer["failed"], answer["seconds"], answer["errors"])

    async def report(self) -> tuple[dict[str, list[list[tuple[int, int]]]], int, list[str]]:
        """Receipts by room (one list per member) since the last report; alive; close reasons."""
        answer = await self.request({"op": "report"})
        self.moves = answer.get("moves", 0)
        receipts = {
            room: [[(v, t) for v, t in member] for member in members]
            for room, members in answer["receipts"].items()
        }
        return receipts, answer["alive"], answer["closed"]


async def _worker() -> None:
    """Serve the driver: ``connect`` members, ``report`` receipts, ``exit``.

    Without the cycle collector (as ``_peer_clients.py``): its full passes walk every
    member of the worker (300-500 ms with 2,500 members) and landed in the measured
    delays as pauses of the client, not of the daemon. A run is bounded; what cycles
    it leaves go with the process.
    """
    gc.disable()
    members: list[Member] = []
    answer = answer_driver
    async with trio.open_nursery() as nursery:
        async for request in driver_requests():
            if request["op"] == "connect":
                answer(await _connect_all(nursery, request, members))
            elif request["op"] == "report":
                receipts: dict[str, list[list[tuple[int, int]]]] = {}
                for member in members:
                    receipts.setdefault(member.room_id, []).append(member.receipts)
                    member.receipts = []
                closed = [m.closed for m in members if m.closed is not None]
                moves = sum(m.moves for m in members)
                answer(
                    {
                        "receipts": receipts,
                        "alive": len(members) - len(closed),
                        "closed": closed,
                        "moves": moves,
                    }
                )
            else:
                break
        nursery.cancel_scope.cancel()  # "exit", or the driver went away


async def _connect_all(
    nursery: trio.Nursery, request: dict[str, Any], members: list[Member]
) -> dict[str, Any]:
    limiter = trio.CapacityLimiter(request["concurrency"])
    errors: list[str] = []
    ok = 0
    start = time.monotonic()

    # With the room in the URL there are several nodes behind a proxy: members follow moves.
    several = bool(request.get("room_in_url"))

    async def one(room_id: str) -> None:
        nonlocal ok
        url = room_ws_url(request["url"], room_id) if several else request["url"]
        principal = new_user("listener")
        async with limiter:
            try:
                if several:
                    member = await Member.join_following_moves(nursery, url, room_id, principal)
                else:
                    member = await Member.join(nursery, url, room_id, principal)
            except (OSError, BenchError, ConnectionClosed, trio.TooSlowError) as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                return
            except Exception as exc:  # noqa: BLE001 - handshake failures of trio-websocket
                errors.append(f"{type(exc).__name__}: {exc}")
                return
        members.append(member)
        ok += 1
        if several:
            nursery.start_soon(
                member.run_following_moves, nursery, url, principal, request["heartbeat"]
            )
        else:
            nursery.start_soon(member.run, request["heartbeat"])

    async with trio.open_nursery() as connecting:
        for room_id, count in request["rooms"]:
            for _ in range(count):
                connecting.start_soon(one, room_id)
    return {
        "ok": ok,
        "failed": len(errors),
        "seconds": time.monotonic() - start,
        "errors": sorted(set(errors))[:5],
    }


if __name__ == "__main__":
    if sys.argv[1:] != ["listener"]:
        sys.exit(__doc__)
    raise_open_files()
    trio.run(_worker)


async def toggle_probe(
    senders: list[Member], seconds: float, *, rejoining: bool = False
) -> tuple[dict[tuple[str, int], int], int]:
    """Each sender toggles play/pause about once a second for ``seconds``; returns
    ``{(room, version): sent_ns}`` and how many toggles got no answer.

    ``rejoining``: a sender whose socket closes is being moved to another node and joins
    again by itself (bench/cluster.py); counted as lost and tried again. Otherwise a closed
    socket ends the run, as any other failure.
    """
    sent: dict[tuple[str, int], int] = {}
    lost = 0

    async def one(sender: Member) -> None:
        nonlocal lost
        deadline = trio.current_time() + seconds
        await trio.sleep(random.uniform(0, 1))
        while trio.current_time() < deadline:
            try:
                version, at = await sender.toggle(limit=10)
            except trio.TooSlowError:
                lost += 1
                continue
            except ConnectionClosed:
                if not rejoining:
                    raise
                lost += 1
                await trio.sleep(0.5)
                continue
            sent[(sender.room_id, version)] = at
            await trio.sleep(random.uniform(0.5, 1.5))

    async with trio.open_nursery() as nursery:
        for sender in senders:
            nursery.start_soon(one, sender)
    return sent, lost


@dataclass
class Delays:
    """What the listeners received of the commands ``toggle_probe`` sent (ms)."""

    delays: list[float]  # every receipt
    last: list[float]  # per command: the last listener's
    missing: int  # receipts expected and not there
    alive: int  # the workers' members still connected
    closed: list[str]  # why the workers' closed members closed


async def collect_delays(
    workers: Sequence[WorkerHandle], probes: Iterable[str], sent: dict[tuple[str, int], int]
) -> Delays:
    """Match the workers' receipts for the ``probes`` rooms against what was ``sent``."""
    delays: list[float] = []
    last: dict[tuple[str, int], float] = {}
    missing, alive, closed = 0, 0, []
    rooms = list(probes)
    for worker in workers:
        receipts_by_room, worker_alive, worker_closed = await worker.report()
        alive += worker_alive
        closed += worker_closed
        for room_id in rooms:
            expected = {version for room, version in sent if room == room_id}
            for receipts in receipts_by_room.get(room_id, []):
                got = {v: t for v, t in receipts if v in expected}
                missing += len(expected) - len(got)
                for version, at in got.items():
                    delay = (at - sent[(room_id, version)]) / 1e6
                    delays.append(delay)
                    key = (room_id, version)
                    last[key] = max(last.get(key, 0.0), delay)
    return Delays(delays, list(last.values()), missing, alive, closed)
