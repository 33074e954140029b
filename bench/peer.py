"""Side by side with Syncplay's own server: fan-out, joins and memory per idle member.

The peer is Syncplay 1.6.9's server (Debian's ``syncplay-server``, Python 3 and Twisted, from
``/usr/lib/python3/dist-packages/syncplay``): its own ``SyncFactory`` run by a three-line
launcher under the system ``python3`` (``--syncplay-python``), which does what
``/usr/bin/syncplay-server`` does with its default options, except that it listens on
127.0.0.1 only and on a free port (the packaged script binds every interface). syncplayd is a
fresh daemon of this checkout, started as ``bench/fanout.py`` starts it (SQLite, a raised
message rate, a long disconnect timeout). Every measurement gets a fresh server.

Both are driven by the same load client (``bench/_peer_clients.py``): ``--workers`` processes
hold the members, each process one epoll loop over its members' non-blocking sockets; only the
protocol adapter differs (WebSocket frames and syncplayd's JSON; Syncplay's JSON lines). Each
member answers what its protocol requires to stay connected: syncplayd, a heartbeat every 5 s;
Syncplay, a ``State`` for each ``State`` the server sends it every second, as the real client
does. The workers' CPU over the event phase, per broadcast received, is reported (stderr and
``--raw``) to show what the instrument costs next to the servers.

Scenarios, interleaved: for each repeat, each size runs syncplayd and then Syncplay (the order
flips every repeat).

1. Fan-out (``--sizes``): one room of ``size`` members (a sender in this process and ``size - 1``
   listeners). After ``--settle`` s and ``--warmup`` unmeasured events, the sender sends
   ``--events`` events cycling play, seek, pause, seek; each after its own copy of the previous
   one came back plus ``--interval`` s (jittered +-50 %). Delay of a listener = when its worker
   has decoded the broadcast minus just before the sender's send, both ``time.monotonic_ns()``
   (one clock for every process of the machine). Per size: delivery p50 over listeners x
   events; last-receiver p99 (per event, the last listener; p99 over events); server CPU per
   fan-out (the server process's CPU time over the event phase / events: the run time of its
   threads, ``/proc/PID/task/*/schedstat``, to the nanosecond; ``utime + stime``, in 10-ms
   ticks, if a thread ended meanwhile) and as a share of one core; missing receipts. The idle
   CPU over the settle window is also reported, and the CPU per fan-out net of it (Syncplay's
   1-s ``State`` exchange with every member is idle load that syncplayd's 5-s heartbeats are
   not).
2. Joins (``--join-sizes``): ``N`` members join one room from the workers, at most
   ``--join-concurrency`` joins in flight per worker. Time from the first connect until every
   member's view of the room lists all ``N`` members (syncplayd: ``joined.participants`` and
   ``presence`` / ``presence_batch``; Syncplay: ``List`` and ``Set user`` joined/left), and
   whether every view is exactly right after ``--idle`` more seconds.
3. Memory per idle member: after those ``--idle`` s, the server's ``VmRSS`` minus its ``VmRSS``
   before the members connected (after the room was created), divided by ``N``.

Rooms beyond 1,000: the daemon runs with ``rooms.max_participants_limit`` at 10,000, the room is
created over REST with the seats the scenario needs.

Every phase is bounded (``--phase-timeout``): a fan-out phase that exceeds it fails the run
with the phase's name; a join that does not complete is reported as timed out.

Usage:  .venv/bin/python bench/peer.py [--sizes 10,50,200,500] [--events 60] [--repeats 3]
            [--join-sizes 500,1000,2000] [--workers 3] [--raw FILE]
        .venv/bin/python bench/peer.py --sizes 10,50 --events 20 --repeats 1 --join-sizes 200
Results go to stdout as markdown tables (paste into docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit
from uuid import uuid4

import trio
from _common import (
    WorkerProcess,
    cpu_seconds,
    create_rooms,
    machine_line,
    markdown_table,
    raise_open_files,
    summary,
    token,
    vm_rss_kib,
)
from _peer_clients import CYCLE, SYNCPLAY, SYNCPLAYD, Roster, TrioMember

from tests.daemon_process import run_daemon

CLIENTS_SCRIPT = Path(__file__).resolve().parent / "_peer_clients.py"
ENV = {
    # The sender sends a few commands per second on top of its heartbeats.
    "SYNCPLAY_WS_MAX_MESSAGES_PER_SECOND": "1000",
    # Nobody may be timed out while a big room is still joining.
    "SYNCPLAY_DISCONNECT_TIMEOUT_SECONDS": "120",
    # Rooms of more than 1,000 members (rooms.max_participants_limit).
    "SYNCPLAY_MAX_PARTICIPANTS_LIMIT": "10000",
}
SYNCPLAY_ROOM = "bench"
#: ``/usr/bin/syncplay-server`` with its default options (no password, no MOTD, rooms not
#: isolated, readiness and chat on, no stats, no TLS), on 127.0.0.1 and a free port.
LAUNCHER = """
from twisted.internet import reactor
from syncplay.server import SyncFactory
factory = SyncFactory("0", "", None, False, "bench-salt", False, False, None, None, None, None)
port = reactor.listenTCP(0, factory, interface="127.0.0.1")
print("syncplay listening on", port.getHost().port, flush=True)
reactor.run()
"""
SERVERS = (SYNCPLAYD, SYNCPLAY)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class CpuSample:
    """A server process's CPU time so far: per thread to the nanosecond, and in clock ticks."""

    threads: dict[str, int]  # thread id -> run time, ns (``/proc/PID/task/TID/schedstat``)
    ticks_seconds: float  # ``utime + stime`` (``/proc/PID/stat``), 10-ms ticks

    @classmethod
    def take(cls, pid: int) -> CpuSample:
        threads = {}
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(FileNotFoundError, IndexError, ValueError):
                threads[task.name] = int((task / "schedstat").read_text().split()[0])
        return cls(threads, cpu_seconds(pid))

    def until(self, later: CpuSample) -> float:
        """CPU seconds from this sample to ``later``.

        Exact from the threads' run times, unless a thread ended in between (its time is then
        in no thread's count): then the ticks, which the process keeps for ended threads.
        """
        if not self.threads or any(tid not in later.threads for tid in self.threads):
            return later.ticks_seconds - self.ticks_seconds
        return sum(ns - self.threads.get(tid, 0) for tid, ns in later.threads.items()) / 1e9


class PhaseTimeout(Exception):
    """A bounded phase of the benchmark took too long."""


@contextmanager
def phase(seconds: float, what: str) -> Iterator[None]:
    try:
        with trio.fail_after(seconds):
            yield
    except trio.TooSlowError:
        raise PhaseTimeout(f"{what}: not done within {seconds:g} s") from None


# -- the servers -----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Server:
    kind: str
    host: str
    port: int
    pid: int
    base_url: str = ""  # syncplayd
    database: Path | None = None  # syncplayd's SQLite file


@contextmanager
def start_syncplayd() -> Iterator[Server]:
    """A fresh daemon of this checkout, as ``bench/fanout.py`` starts it."""
    with tempfile.TemporaryDirectory() as tmp:
        database = Path(tmp) / "bench.sqlite3"
        with run_daemon(f"sqlite:///{database}", Path(tmp) / "state", ENV) as daemon:
            url = urlsplit(daemon.base_url)
            assert url.hostname is not None
            assert url.port is not None
            yield Server(
                SYNCPLAYD, url.hostname, url.port, daemon.process.pid, daemon.base_url, database
            )


@contextmanager
def start_syncplay(python: str) -> Iterator[Server]:
    """Syncplay's server in a child process; its output is kept for the error message."""
    process = subprocess.Popen(
        [python, "-c", LAUNCHER],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    ports: list[int] = []
    ready = threading.Event()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line.rstrip("\n"))
            if line.startswith("syncplay listening on ") and not ports:
                ports.append(int(line.split()[-1]))
                ready.set()
        ready.set()  # EOF: it exited

    threading.Thread(target=pump, daemon=True).start()
    try:
        if not ready.wait(30) or not ports:
            raise RuntimeError("Syncplay's server did not start:\n" + "\n".join(lines[-20:]))
        yield Server(SYNCPLAY, "127.0.0.1", ports[0], process.pid)
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextmanager
def start_server(kind: str, args: argparse.Namespace) -> Iterator[Server]:
    if kind == SYNCPLAYD:
        with start_syncplayd() as server:
            yield server
    else:
        with start_syncplay(args.syncplay_python) as server:
            yield server


@dataclass(frozen=True, slots=True)
class Person:
    key: str  # syncplayd: user id; Syncplay: user name
    name: str
    credential: str | None = None


async def open_room(server: Server, capacity: int) -> tuple[str, Person]:
    """A room for ``capacity`` members and the member who will send (syncplayd: its owner)."""
    if server.kind == SYNCPLAY:
        return SYNCPLAY_ROOM, Person("sender", "sender")
    [(room_id, owner)] = await create_rooms(server.base_url, 1, max_participants=capacity)
    return room_id, Person(str(owner.user_id), owner.name, token(owner))


def people(kind: str, count: int, prefix: str) -> list[Person]:
    """``count`` fresh members: one new user each (syncplayd) or a unique name (Syncplay)."""
    if kind == SYNCPLAYD:
        return [Person(str(uuid4()), f"{prefix}{i}") for i in range(count)]
    return [Person(f"{prefix}{i}", f"{prefix}{i}") for i in range(count)]


# -- the load-client workers -----------------------------------------------------------------------
class PeerWorker(WorkerProcess):
    """The driver's side of one ``bench/_peer_clients.py worker`` process."""

    @classmethod
    async def spawn(cls) -> PeerWorker:
        return await cls.start(CLIENTS_SCRIPT, "worker")

    async def connect(
        self,
        server: Server,
        room: str,
        members: Sequence[Person],
        args: argparse.Namespace,
        *,
        concurrency: int,
        sender: str | None = None,
        expected: list[str] | None = None,
    ) -> dict[str, Any]:
        return await self.request(
            {
                "op": "connect",
                "server": server.kind,
                "host": server.host,
                "port": server.port,
                "room": room,
                "members": [(person.key, person.name) for person in members],
                "sender": sender,
                "expected": expected,
                "concurrency": concurrency,
                "join_timeout": 30.0,
                "timeout": args.phase_timeout,
            }
        )


def shares(items: Sequence[T], parts: int) -> list[list[T]]:
    """``items`` dealt round-robin into ``parts`` near-equal lists."""
    return [list(items[i::parts]) for i in range(parts)]


async def gather(calls: Sequence[Callable[[], Awaitable[T]]]) -> list[T]:
    """Run the calls concurrently; their results in order."""
    results: list[Any] = [None] * len(calls)

    async def one(i: int) -> None:
        results[i] = await calls[i]()

    async with trio.open_nursery() as nursery:
        for i in range(len(calls)):
            nursery.start_soon(one, i)
    return results


async def spawn_workers(count: int) -> list[PeerWorker]:
    return await gather([PeerWorker.spawn for _ in range(count)])


async def stop_workers(workers: Sequence[PeerWorker]) -> None:
    with trio.CancelScope(shield=True):
        await gather([worker.stop for worker in workers])


# -- scenario 1: fan-out ---------------------------------------------------------------------------
@dataclass(slots=True)
class FanoutRun:
    server: str
    size: int
    repeat: int
    events: int
    delays_ms: list[list[float]]  # per event, one per listener that got it
    echo_ms: list[float]
    missing: int
    cpu_seconds: float  # server, over the event phase
    wall_seconds: float  # the event phase
    idle_cpu_share: float  # server, over the settle window
    closed: int
    client_cpu_seconds: float = 0.0  # the load-client workers together, over the event phase

    @property
    def delivery_p50(self) -> float:
        return summary([d for event in self.delays_ms for d in event]).p50

    @property
    def last_p99(self) -> float:
        return summary([max(event) for event in self.delays_ms if event]).p99

    @property
    def cpu_per_fanout_ms(self) -> float:
        return self.cpu_seconds / self.events * 1000

    @property
    def cpu_share(self) -> float:
        return self.cpu_seconds / self.wall_seconds

    @property
    def client_us_per_message(self) -> float:
        """The workers' CPU per broadcast a listener got, keep-alives and answers included."""
        received = self.events * (self.size - 1) - self.missing
        return self.client_cpu_seconds / received * 1e6 if received else float("nan")

    @property
    def net_cpu_per_fanout_ms(self) -> float:
        idle = self.idle_cpu_share * self.wall_seconds
        return (self.cpu_seconds - idle) / self.events * 1000


async def fanout(server: Server, size: int, repeat: int, args: argparse.Namespace) -> FanoutRun:
    room, sender_person = await open_room(server, size + 5)
    listeners = people(server.kind, size - 1, "l")
    workers = await spawn_workers(min(args.workers, size - 1))
    try:
        async with trio.open_nursery() as nursery:
            roster = Roster(index=None, sender=sender_person.name, members=1)
            sender = TrioMember.of(server.kind, roster, sender_person.key, sender_person.name)
            with phase(30, "the sender's join"):
                await sender.connect(server.host, server.port, room, sender_person.credential)
            nursery.start_soon(sender.run)
            with phase(args.phase_timeout, f"joining {size - 1} listeners"):
                answers = await gather(
                    [
                        lambda w=worker, part=part: w.connect(
                            server, room, part, args, concurrency=25, sender=sender_person.name
                        )
                        for worker, part in zip(
                            workers, shares(listeners, len(workers)), strict=True
                        )
                    ]
                )
            if any(answer["failed"] for answer in answers):
                errors = [error for answer in answers for error in answer["errors"]]
                raise RuntimeError(f"{server.kind}: listeners failed to join: {errors}")
            # The join storm dies down; what the server spends meanwhile is its idle load.
            cpu_before, wall_before = CpuSample.take(server.pid), trio.current_time()
            await trio.sleep(args.settle)
            idle_cpu = cpu_before.until(CpuSample.take(server.pid))
            idle = idle_cpu / (trio.current_time() - wall_before)
            event = 0
            sent: dict[int, int] = {}
            with phase(args.phase_timeout, f"{args.warmup + args.events} events"):
                for measured in [False] * args.warmup + [True] * args.events:
                    if measured and not sent:
                        cpu_before, wall_before = CpuSample.take(server.pid), trio.current_time()
                        clients_before = [CpuSample.take(w.process.pid) for w in workers]
                    event += 1
                    try:
                        key, at = await sender.command(CYCLE[(event - 1) % len(CYCLE)], event)
                    except trio.TooSlowError:
                        raise PhaseTimeout(
                            f"{server.kind}, {size} members: the sender's own copy of event "
                            f"{event} did not come back within 10 s (sender: {sender.closed})"
                        ) from None
                    if measured:
                        sent[key] = at
                    await trio.sleep(args.interval * random.uniform(0.5, 1.5))
            cpu = cpu_before.until(CpuSample.take(server.pid))
            wall = trio.current_time() - wall_before
            client_cpu = sum(
                before.until(CpuSample.take(w.process.pid))
                for before, w in zip(clients_before, workers, strict=True)
            )
            await trio.sleep(1.0)  # stragglers
            with phase(60, "collecting receipts"):
                reports = await gather(
                    [lambda w=worker: w.request({"op": "report"}) for worker in workers]
                )
            nursery.cancel_scope.cancel()
    finally:
        await stop_workers(workers)
    run = summarise_fanout(server.kind, size, repeat, sender, sent, reports, cpu, wall, idle)
    run.client_cpu_seconds = client_cpu
    return run


def summarise_fanout(
    kind: str,
    size: int,
    repeat: int,
    sender: TrioMember,
    sent: dict[int, int],
    reports: list[dict[str, Any]],
    cpu: float,
    wall: float,
    idle: float,
) -> FanoutRun:
    by_event: dict[int, list[float]] = {key: [] for key in sent}
    missing = 0
    alive = 0
    for report in reports:
        alive += report["alive"]
        for receipts in report["receipts"]:
            got: dict[int, int] = {}
            for key, at in receipts:
                if key in sent and key not in got:
                    got[key] = at
            missing += len(sent) - len(got)
            for key, at in got.items():
                by_event[key].append((at - sent[key]) / 1e6)
    echo = [(at - sent[key]) / 1e6 for key, at in sender.receipts if key in sent]
    return FanoutRun(
        server=kind,
        size=size,
        repeat=repeat,
        events=len(sent),
        delays_ms=[by_event[key] for key in sorted(by_event)],
        echo_ms=echo,
        missing=missing,
        cpu_seconds=cpu,
        wall_seconds=wall,
        idle_cpu_share=idle,
        closed=size - 1 - alive,
    )


# -- scenarios 2 and 3: joins and memory -----------------------------------------------------------
@dataclass(slots=True)
class JoinRun:
    server: str
    members: int
    repeat: int
    seconds: float | None  # None: not every view was complete within the phase bound
    complete: int  # members whose view was complete in time
    correct: int  # members whose view is exactly right after the idle time
    rss_before_kib: int
    rss_after_kib: int
    wrong: list[dict[str, Any]] = field(default_factory=list)
    cpu_seconds: float = 0.0  # server, over the join phase
    client_cpu_seconds: float = 0.0  # the load-client workers together, over the join phase

    @property
    def kib_per_member(self) -> float:
        return (self.rss_after_kib - self.rss_before_kib) / self.members


async def joins(server: Server, count: int, repeat: int, args: argparse.Namespace) -> JoinRun:
    room, _ = await open_room(server, count + 5)
    members = people(server.kind, count, "m")
    expected = [person.key for person in members]
    workers = await spawn_workers(min(args.workers, count))
    try:
        await trio.sleep(1.0)  # the room's creation settles before the baseline
        rss_before = vm_rss_kib(server.pid)
        cpu_before = CpuSample.take(server.pid)
        clients_before = [CpuSample.take(w.process.pid) for w in workers]
        with phase(args.phase_timeout + 60, f"joining {count} members"):
            answers = await gather(
                [
                    lambda w=worker, part=part: w.connect(
                        server,
                        room,
                        part,
                        args,
                        concurrency=args.join_concurrency,
                        expected=expected,
                    )
                    for worker, part in zip(workers, shares(members, len(workers)), strict=True)
                ]
            )
        cpu = cpu_before.until(CpuSample.take(server.pid))
        client_cpu = sum(
            before.until(CpuSample.take(w.process.pid))
            for before, w in zip(clients_before, workers, strict=True)
        )
        if any(answer["failed"] for answer in answers):
            errors = [error for answer in answers for error in answer["errors"]]
            raise RuntimeError(f"{server.kind}: members failed to join: {errors}")
        complete = sum(answer["complete"] for answer in answers)
        seconds = None
        if complete == count:
            first = min(answer["first_ns"] for answer in answers)
            seconds = (max(answer["complete_ns"] for answer in answers) - first) / 1e9
        await trio.sleep(args.idle)
        with phase(60, "checking the views"):
            checks = await gather(
                [lambda w=worker: w.request({"op": "check"}) for worker in workers]
            )
        rss_after = vm_rss_kib(server.pid)
    finally:
        await stop_workers(workers)
    return JoinRun(
        server=server.kind,
        members=count,
        repeat=repeat,
        seconds=seconds,
        complete=complete,
        correct=sum(check["correct"] for check in checks),
        rss_before_kib=rss_before,
        rss_after_kib=rss_after,
        wrong=[wrong for check in checks for wrong in check["wrong"]][:5],
        cpu_seconds=cpu,
        client_cpu_seconds=client_cpu,
    )


# -- reporting -------------------------------------------------------------------------------------
def median(values: Sequence[float | None]) -> float:
    known = [v for v in values if v is not None]
    return statistics.median(known) if len(known) == len(values) and known else float("nan")


def pair(ours: float, theirs: float, digits: int = 2) -> str:
    def cell(value: float) -> str:
        return "-" if value != value else f"{value:,.{digits}f}"

    return f"{cell(ours)} / {cell(theirs)}"


def ratio(ours: float, theirs: float) -> str:
    if ours != ours or theirs != theirs or theirs == 0:
        return "-"
    return f"{ours / theirs:.2f}"


def fanout_tables(runs: list[FanoutRun], sizes: list[int]) -> str:
    main_rows = []
    detail_rows = []
    for size in sizes:
        by = {kind: [r for r in runs if r.size == size and r.server == kind] for kind in SERVERS}
        if not all(by.values()):
            continue

        def m(kind: str, value: Callable[[FanoutRun], float], by: Any = by) -> float:
            return median([value(run) for run in by[kind]])

        figures = {
            name: (m(SYNCPLAYD, getter), m(SYNCPLAY, getter))
            for name, getter in {
                "p50": lambda r: r.delivery_p50,
                "p99": lambda r: r.last_p99,
                "cpu": lambda r: r.cpu_per_fanout_ms,
                "share": lambda r: r.cpu_share * 100,
                "idle": lambda r: r.idle_cpu_share * 100,
                "net": lambda r: r.net_cpu_per_fanout_ms,
                "echo": lambda r: summary(r.echo_ms).p50,
            }.items()
        }
        missing = [sum(run.missing for run in by[kind]) for kind in SERVERS]
        closed = [sum(run.closed for run in by[kind]) for kind in SERVERS]
        main_rows.append(
            (
                size,
                pair(*figures["p50"]),
                ratio(*figures["p50"]),
                pair(*figures["p99"]),
                ratio(*figures["p99"]),
                pair(*figures["cpu"], 3),
                ratio(*figures["cpu"]),
                pair(*figures["share"], 1),
                f"{missing[0]:,} / {missing[1]:,}",
            )
        )
        detail_rows.append(
            (
                size,
                pair(*figures["idle"], 1),
                pair(*figures["net"], 3),
                ratio(*figures["net"]),
                pair(*figures["echo"]),
                f"{closed[0]:,} / {closed[1]:,}",
            )
        )
    main = markdown_table(
        [
            "room size",
            "delivery p50 ms (us / Syncplay)",
            "ratio p50",
            "last-receiver p99 ms (us / Syncplay)",
            "ratio p99",
            "CPU per fan-out ms (us / Syncplay)",
            "ratio CPU",
            "CPU % of a core (us / Syncplay)",
            "missing",
        ],
        main_rows,
    )
    detail = markdown_table(
        [
            "room size",
            "idle CPU % (us / Syncplay)",
            "CPU per fan-out net of idle ms (us / Syncplay)",
            "ratio net",
            "sender echo p50 ms (us / Syncplay)",
            "closed",
        ],
        detail_rows,
    )
    return main + "\n\n" + detail


def join_table(runs: list[JoinRun], sizes: list[int], timeout: float) -> str:
    rows = []
    for count in sizes:
        by = {
            kind: [r for r in runs if r.members == count and r.server == kind] for kind in SERVERS
        }
        if not all(by.values()):
            continue
        seconds = [median([run.seconds for run in by[kind]]) for kind in SERVERS]
        memory = [median([run.kib_per_member for run in by[kind]]) for kind in SERVERS]

        def correct(kind: str, by: Any = by, count: int = count) -> str:
            worst = min(run.correct for run in by[kind])
            return "yes" if worst == count else f"{worst:,} of {count:,}"

        def join_cell(value: float) -> str:
            return f"> {timeout:g} (timed out)" if value != value else f"{value:,.2f}"

        rows.append(
            (
                count,
                f"{join_cell(seconds[0])} / {join_cell(seconds[1])}",
                ratio(*seconds),
                f"{correct(SYNCPLAYD)} / {correct(SYNCPLAY)}",
                pair(*memory, 1),
                ratio(*memory),
            )
        )
    return markdown_table(
        [
            "members",
            "join s (us / Syncplay)",
            "ratio join",
            "lists correct (us / Syncplay)",
            "memory per member KiB (us / Syncplay)",
            "ratio memory",
        ],
        rows,
    )


def write_raw(
    path: Path, args: argparse.Namespace, fan: list[FanoutRun], join: list[JoinRun]
) -> None:
    def fanout_record(run: FanoutRun) -> dict[str, Any]:
        record = asdict(run)
        record["delays_ms"] = [[round(d, 4) for d in event] for event in run.delays_ms]
        record["echo_ms"] = [round(d, 4) for d in run.echo_ms]
        record |= {
            "delivery_p50_ms": run.delivery_p50,
            "last_p99_ms": run.last_p99,
            "cpu_per_fanout_ms": run.cpu_per_fanout_ms,
            "net_cpu_per_fanout_ms": run.net_cpu_per_fanout_ms,
            "client_us_per_message": run.client_us_per_message,
        }
        return record

    data = {
        "machine": machine_line(),
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "fanout": [fanout_record(run) for run in fan],
        "joins": [asdict(run) | {"kib_per_member": run.kib_per_member} for run in join],
    }
    path.write_text(json.dumps(data))


# -- the driver ------------------------------------------------------------------------------------
def sizes_option(text: str) -> list[int]:
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of sizes: {text}") from None
    return sizes


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add = parser.add_argument
    add(
        "--sizes",
        type=sizes_option,
        default="10,50,200,500",
        help="fan-out room sizes, comma-separated; empty: no fan-out (default: %(default)s)",
    )
    add("--events", type=int, default=60, help="measured events per fan-out (default: %(default)s)")
    add("--warmup", type=int, default=5, help="unmeasured events first (default: %(default)s)")
    add(
        "--interval",
        type=float,
        default=0.1,
        help="mean pause after the sender's own copy of an event, s (default: %(default)s)",
    )
    add(
        "--settle",
        type=float,
        default=2.0,
        help="seconds after the joins, before the events; the idle CPU is measured over them "
        "(default: %(default)s)",
    )
    add(
        "--join-sizes",
        type=sizes_option,
        default="500,1000,2000",
        help="members of the join and memory runs, comma-separated; empty: none "
        "(default: %(default)s)",
    )
    add(
        "--join-concurrency",
        type=int,
        default=25,
        help="joins in flight per worker, both servers (default: %(default)s)",
    )
    add(
        "--idle",
        type=float,
        default=5.0,
        help="seconds idle after the joins before the views and memory are read "
        "(default: %(default)s)",
    )
    add("--repeats", type=int, default=3, help="repeats of everything (default: %(default)s)")
    add("--workers", type=int, default=3, help="load-client processes (default: %(default)s)")
    add(
        "--phase-timeout",
        type=float,
        default=120.0,
        help="bound of each phase (joins, events), s (default: %(default)s)",
    )
    add(
        "--syncplay-python",
        default="/usr/bin/python3",
        help="the Python that has Syncplay's server and Twisted (default: %(default)s)",
    )
    add("--raw", type=Path, help="write every raw number as JSON to this file (default: none)")
    args = parser.parse_args()
    if any(not 2 <= size <= 1000 for size in args.sizes):
        parser.error("--sizes: each within 2..1000")
    if any(not 1 <= count <= 10_000 for count in args.join_sizes):
        parser.error("--join-sizes: each within 1..10000")
    if not 1 <= args.events <= 10_000 or not 0.001 <= args.interval <= 5:
        parser.error("--events must be within 1..10000 and --interval within 0.001..5")
    if not 1 <= args.repeats <= 20 or not 1 <= args.workers <= 16:
        parser.error("--repeats must be within 1..20 and --workers within 1..16")
    if not Path(args.syncplay_python).exists():
        parser.error(f"--syncplay-python: no {args.syncplay_python}")
    return args


def main() -> None:
    args = parse_args()
    raise_open_files()
    started = time.monotonic()
    print(machine_line())
    print(
        f"# {args.workers} load-client processes; sender in process {os.getpid()}; "
        f"{args.repeats} repeats, medians; 'us' is syncplayd\n",
        flush=True,
    )
    fan: list[FanoutRun] = []
    join: list[JoinRun] = []
    for repeat in range(args.repeats):
        order = SERVERS if repeat % 2 == 0 else SERVERS[::-1]
        for size in args.sizes:
            for kind in order:
                with start_server(kind, args) as server:
                    run = trio.run(fanout, server, size, repeat, args)
                fan.append(run)
                print(
                    f"# repeat {repeat + 1}, fan-out {size:>4}, {kind:>9}: "
                    f"p50 {run.delivery_p50:.2f} ms, last p99 {run.last_p99:.2f} ms, "
                    f"CPU {run.cpu_per_fanout_ms:.3f} ms/fan-out ({run.cpu_share:.0%}, "
                    f"idle {run.idle_cpu_share:.0%}), missing {run.missing}, closed {run.closed}; "
                    f"clients {run.client_us_per_message:.1f} us CPU per message",
                    file=sys.stderr,
                    flush=True,
                )
        for count in args.join_sizes:
            for kind in order:
                with start_server(kind, args) as server:
                    result = trio.run(joins, server, count, repeat, args)
                join.append(result)
                took = "timed out" if result.seconds is None else f"{result.seconds:.2f} s"
                print(
                    f"# repeat {repeat + 1}, join {count:>5}, {kind:>9}: {took}, "
                    f"{result.correct}/{count} views right, "
                    f"{result.kib_per_member:.1f} KiB per member (RSS "
                    f"{result.rss_before_kib / 1024:.1f} -> "
                    f"{result.rss_after_kib / 1024:.1f} MiB); "
                    f"CPU: server {result.cpu_seconds:.2f} s, "
                    f"clients {result.client_cpu_seconds:.2f} s",
                    file=sys.stderr,
                    flush=True,
                )
        if args.raw is not None:  # after each repeat: an interrupted run keeps what it has
            write_raw(args.raw, args, fan, join)
    if args.sizes:
        print(fanout_tables(fan, args.sizes))
        print()
    if args.join_sizes:
        print(join_table(join, args.join_sizes, args.phase_timeout))
        print()
    print(f"# {time.monotonic() - started:.0f} s in all")


if __name__ == "__main__":
    main()
