"""Database faults (issue 6, point 2), against real daemon processes.

PostgreSQL restarted, or its connections killed with ``pg_terminate_backend``, while
rooms are live: live sync carries on from memory, write-behind writes wait in bounded
queues and are flushed after recovery, ``/readyz`` reports the outage and recovers, no
task dies, and nothing acknowledged is lost (chat during an outage is refused with
``unavailable``, never acknowledged and then lost).

SQLite: a read-only database (file or folder) stops the daemon at start with one line
naming the file and the reason; a full disk at run time makes writes fail at once with
``unavailable``/503 and a warning naming the cause, ``/readyz`` says so, and everything
recovers once there is space again. Every wait is bounded.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit
from uuid import uuid4

import psycopg
import pytest
import trio
from psycopg import sql

from syncplayd.client import ClientOptions, SyncClient, SyncRefused, open_sync_client
from syncplayd.core.protocol import ErrorOut, Joined, PlaybackChanged, ServerMessage
from syncplayd.identity import Principal
from syncplayd.server.live.persister import Persister
from syncplayd.storage import (
    ChatMessage,
    NewEvent,
    NewRoom,
    SqliteRepository,
    StorageUnavailable,
    open_repository,
)
from tests.daemon_process import DaemonProcess, daemon_environment, new_user
from tests.e2e.proxy import CuttableProxy, cuttable_proxy
from tests.e2e.raw import new_room, token, ws_url
from tests.reliability.conftest import (
    OwnPostgres,
    Rest,
    daemon_running,
    fill_up,
    poll_until,
    rest,
    stored_version,
    tmpfs,
    tracebacks,
)
from tests.server.conftest import backend_database_url

pytestmark = pytest.mark.slow

ENV = {
    "SYNCPLAY_CHAT_RATE_LIMIT_MESSAGES_PER_MINUTE": "10000",
    "SYNCPLAY_HEARTBEAT_INTERVAL_SECONDS": "1",
}
OPTIONS = ClientOptions(
    fast_ping_interval=0.05,
    slow_ping_interval=0.5,  # pongs keep coming during the outage: seen within seconds
    reconnect_initial_delay=0.1,
    reconnect_max_delay=1.0,
    reconnect_attempts=120,
)
PER_ROOM = 4

# Bounds. Live sync is in memory: a broadcast takes milliseconds; 2 s is generous on a
# loaded 2-core machine. A refusal must come well before the client's own 10 s timeout.
BROADCAST_WITHIN = 2.0
REFUSED_WITHIN = 5.0
READYZ_ANSWERS_WITHIN = 5.0
# From the database being back: readyz 200 (and joins work), and the write-behind queue
# written out (the persister retries with a backoff of at most 5 s).
READY_AGAIN_WITHIN = 5.0
FLUSHED_WITHIN = 10.0
OUTAGE_SECONDS = 25.0
KILL_ROUNDS = 3
REJOIN_REFUSALS = 3  # rejoin attempts refused during the outage before it ends


def _refused_for_now(message: ServerMessage) -> bool:
    return isinstance(message, ErrorOut) and message.code == "unavailable"


@dataclass
class Live:
    """Two live rooms of clients (room 0 plays, room 1 is paused), a client behind a
    cuttable proxy (``roamer``, in room 1), and the chat acknowledged so far."""

    daemon: DaemonProcess
    http: Rest
    room_ids: list[str]
    rooms: list[list[SyncClient]]
    acked: set[str] = field(default_factory=set)
    roamer: SyncClient | None = None
    proxy: CuttableProxy | None = None

    async def chat_all(self, tag: str) -> None:
        for r, clients in enumerate(self.rooms):
            for i, client in enumerate(clients):
                self.acked.add(await client.chat(f"{tag} room {r} client {i}"))


def _playback(state: str, version: int) -> Callable[[ServerMessage], bool]:
    def match(message: ServerMessage) -> bool:
        return (
            isinstance(message, PlaybackChanged)
            and message.playback.state == state
            and message.playback.version >= version
        )

    return match


async def _command_reaches_everyone(live: Live, room: int, state: str) -> tuple[int, float]:
    """Play or pause ``room`` from its first client; (new version, slowest arrival, s)."""
    clients = live.rooms[room]
    marks = [c.received_count for c in clients]
    version = clients[0].playback.version + 1
    started = time.monotonic()
    if state == "playing":
        await clients[0].play()
    else:
        await clients[0].pause()
    for client, mark in zip(clients, marks, strict=True):
        await client.wait_for(_playback(state, version), 10.0, since=mark)
    return version, time.monotonic() - started


@asynccontextmanager
async def live_rooms(database_url: str, tmp_path: Path) -> AsyncIterator[Live]:
    """A daemon, two rooms of PER_ROOM clients (one plays), and one more client via a proxy."""
    owner = new_user("owner")
    async with AsyncExitStack() as stack:
        started = await stack.enter_async_context(
            daemon_running(database_url, tmp_path / "state", ENV)
        )
        daemon = started.daemon
        http = await stack.enter_async_context(rest(daemon.base_url, owner))
        room_ids = [await new_room(daemon, owner, name=f"room {r}") for r in range(2)]

        async def join(user: Principal, room_id: str, url: str | None = None) -> SyncClient:
            return await stack.enter_async_context(
                open_sync_client(
                    url or ws_url(daemon), token(user), room_id=room_id, options=OPTIONS
                )
            )

        rooms = [
            [await join(new_user(f"r{r}c{i}"), room_id) for i in range(PER_ROOM)]
            for r, room_id in enumerate(room_ids)
        ]
        live = Live(daemon, http, room_ids, rooms)
        target = urlsplit(daemon.base_url)
        assert target.hostname is not None and target.port is not None
        live.proxy = await stack.enter_async_context(cuttable_proxy(target.hostname, target.port))
        proxied = f"ws://127.0.0.1:{live.proxy.port}/api/v1/syncplay/ws"
        live.roamer = await join(new_user("roamer"), room_ids[1], proxied)
        version, _ = await _command_reaches_everyone(live, 0, "playing")
        await stored_version(http, room_ids[0], version, limit=10.0)
        await live.chat_all("before")
        yield live
        assert daemon.process.poll() is None, "the daemon died"
        assert not tracebacks(daemon), "\n".join(daemon.log_lines)


async def _readyz(live: Live) -> tuple[int, float]:
    started = time.monotonic()
    with trio.fail_after(READYZ_ANSWERS_WITHIN):
        response = await live.http.readyz()
    return response.status_code, time.monotonic() - started


async def _all_chat_stored(live: Live) -> None:
    stored: set[str] = set()
    for room_id in live.room_ids:
        stored |= await live.http.chat_ids(room_id)
    lost = live.acked - stored
    assert not lost, f"{len(lost)} of {len(live.acked)} acknowledged messages lost"


def _stored_outage_writes(database_url: str, room_id: str, version: int, user: str) -> bool:
    """Whether the write-behind writes made during the outage are in the database now.

    The playback event of the command given during the outage, and the roamer's
    disconnection (its event, then its presence back to connected).
    """
    with psycopg.connect(database_url, autocommit=True) as conn:
        events = conn.execute(
            "SELECT type, payload->>'version', user_id::text FROM events WHERE room_id = %s",
            [room_id],
        ).fetchall()
        connected = conn.execute(
            "SELECT is_connected FROM participants WHERE room_id = %s AND user_id = %s",
            [room_id, user],
        ).fetchone()
    playback = ("playback", str(version)) in {(kind, v) for kind, v, _ in events}
    dropped = ("disconnected", user) in {(kind, u) for kind, _, u in events}
    return playback and dropped and connected == (True,)


@pytest.mark.postgres
async def test_postgres_restart_while_rooms_are_live(
    own_postgres: OwnPostgres, tmp_path: Path
) -> None:
    database_url = await trio.to_thread.run_sync(own_postgres.create_database)
    async with live_rooms(database_url, tmp_path) as live:
        assert live.roamer is not None and live.proxy is not None
        await trio.to_thread.run_sync(own_postgres.stop)
        down_at = time.monotonic()

        # /readyz reports the outage (every answer bounded).
        async def not_ready() -> bool:
            status, _ = await _readyz(live)
            return status == 503

        noticed = await poll_until(not_ready, READYZ_ANSWERS_WITHIN)
        # Live sync goes on from memory: commands reach everyone, pongs keep coming.
        _, broadcast = await _command_reaches_everyone(live, 0, "paused")
        outage_version, _ = await _command_reaches_everyone(live, 1, "playing")
        for clients in live.rooms:
            for client in clients:
                with trio.fail_after(5):
                    await client.wait_clock_samples(client.clock_samples + 2)
        # Chat is refused with a clear error, not acknowledged and then lost.
        started = time.monotonic()
        with pytest.raises(SyncRefused) as refused:
            await live.rooms[0][1].chat("during the outage")
        refused_after = time.monotonic() - started
        assert refused.value.code == "unavailable"
        response = await live.http.post(f"/rooms/{live.room_ids[0]}/chat", {"message": "rest"})
        assert (response.status_code, response.json()["code"]) == (503, "unavailable")
        # A client whose connection drops during the outage keeps trying to rejoin
        # (each attempt refused with "unavailable"), and keeps its session.
        session = live.roamer.session_id
        mark = live.roamer.received_count
        live.proxy.cut()
        for _ in range(REJOIN_REFUSALS):
            seen = live.roamer.received_count
            await live.roamer.wait_for(_refused_for_now, 20.0, since=seen)
        assert not live.roamer.closed
        # The outage lasts long enough for the driver's reconnect backoff (1, 2, 4,
        # 8, 16 s...) to have grown: coming back must not wait for it. Scenario time,
        # not a wait for a condition.
        await trio.sleep(max(0.0, down_at + OUTAGE_SECONDS - time.monotonic()))
        status, readyz_took = await _readyz(live)
        assert status == 503
        # Nobody else was disconnected: heartbeats never needed the database.
        for clients in live.rooms:
            for client in clients:
                assert client.connected
        outage = time.monotonic() - down_at

        await trio.to_thread.run_sync(own_postgres.start)
        up_at = time.monotonic()

        async def ready() -> bool:
            status, _ = await _readyz(live)
            return status == 200

        recovered = await poll_until(ready, READY_AGAIN_WITHIN)
        await live.roamer.wait_for(lambda m: isinstance(m, Joined), READY_AGAIN_WITHIN, since=mark)
        rejoined = time.monotonic() - up_at
        assert not live.roamer.closed
        assert live.roamer.session_id == session

        roamer = live.roamer.welcome.user_id if live.roamer.welcome else ""

        async def flushed() -> bool:
            return await trio.to_thread.run_sync(
                _stored_outage_writes, database_url, live.room_ids[1], outage_version, roamer
            )

        await poll_until(flushed, FLUSHED_WITHIN)
        flushed_after = time.monotonic() - up_at
        await live.chat_all("after")
        await _all_chat_stored(live)
        log = "\n".join(live.daemon.log_lines)
        assert "database unavailable" in log and "database back" in log
        metrics = (await live.http.get_absolute("/metrics")).text
        # The chat refused over the websocket and the one refused over REST, at least.
        assert _metric(metrics, 'syncplayd_errors_total{code="unavailable"}') >= 2
        print(
            f"\n[postgres stop/start] outage {outage:.1f} s: readyz 503 after"
            f" {noticed:.2f} s (each answer <= {readyz_took:.2f} s); a command reached"
            f" everyone in {broadcast * 1000:.0f} ms; chat refused in {refused_after:.2f} s;"
            f" after the start: readyz 200 in {recovered:.2f} s, roamer back (same session)"
            f" in {rejoined:.2f} s, queued writes flushed in {flushed_after:.2f} s;"
            f" {len(live.acked)} acknowledged chat messages, all stored"
        )
        assert broadcast <= BROADCAST_WITHIN
        assert refused_after <= REFUSED_WITHIN


async def _chat_flow(live: Live, stop: trio.Event, refused: list[str]) -> None:
    """Every client of room 0 chats until ``stop``; acked ids kept, refusals counted."""

    async def chatter(client: SyncClient, i: int) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            try:
                live.acked.add(await client.chat(f"flow {i} #{n}"))
            except SyncRefused as exc:
                refused.append(exc.code)
            await trio.sleep(0.05)  # pacing a person's typing, not waiting for state

    async with trio.open_nursery() as nursery:
        for i, client in enumerate(live.rooms[0]):
            nursery.start_soon(chatter, client, i)


def _metric(text: str, name: str) -> float:
    """One sample of the Prometheus text format, by its full name with labels."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


@pytest.mark.postgres
async def test_postgres_connections_killed_while_rooms_are_live(
    request: pytest.FixtureRequest, postgres_server_url: str, tmp_path: Path
) -> None:
    database_url = await trio.to_thread.run_sync(
        backend_database_url, "postgres", request, tmp_path
    )
    dbname = psycopg.conninfo.conninfo_to_dict(database_url)["dbname"]

    def terminate() -> int:
        # With a timeout, pg_terminate_backend waits until each backend has exited.
        with psycopg.connect(postgres_server_url, autocommit=True) as admin:
            rows = admin.execute(
                "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid()",
                [dbname],
            ).fetchall()
        return len(rows)

    async with live_rooms(database_url, tmp_path) as live:
        # Kill every connection of the daemon, three times, while chat flows.
        during: list[str] = []
        killed = 0
        stop = trio.Event()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_chat_flow, live, stop, during)
            for _ in range(KILL_ROUNDS):
                killed += await trio.to_thread.run_sync(terminate)
                # Each room back to where it was: room 0 plays, room 1 is paused.
                _, took = await _command_reaches_everyone(live, 0, "paused")
                await _command_reaches_everyone(live, 1, "playing")
                await _command_reaches_everyone(live, 0, "playing")
                version, _ = await _command_reaches_everyone(live, 1, "paused")
            stop.set()
        assert killed >= KILL_ROUNDS
        # Once the kills are over, every chat is acknowledged: the killed connections
        # were noticed and replaced, not handed out to fail one request each.
        killed += await trio.to_thread.run_sync(terminate)
        after: list[str] = []
        for client in live.rooms[0]:
            try:
                live.acked.add(await client.chat("right after the kill"))
            except SyncRefused as exc:
                after.append(exc.code)
        status, _ = await _readyz(live)
        flushed = await stored_version(live.http, live.room_ids[1], version, FLUSHED_WITHIN)
        await live.chat_all("after")
        await _all_chat_stored(live)
        print(
            f"\n[postgres pg_terminate_backend] {killed} connections killed in"
            f" {KILL_ROUNDS + 1} rounds; a command reached everyone in {took * 1000:.0f} ms;"
            f" chat refused during the kills: {len(during)} ({set(during) or 'none'}),"
            f" after them: {len(after)}; readyz {status}; playback flushed in"
            f" {flushed:.2f} s; {len(live.acked)} acknowledged chat messages, all stored"
        )
        assert set(during) <= {"unavailable"}
        assert after == []
        assert status == 200


# -- SQLite --------------------------------------------------------------------------------
START_REFUSED_WITHIN = 30.0  # a daemon that cannot use its database exits, it does not hang


def _error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if '"level": "error"' in line]


def _without_root_powers() -> list[str]:
    """A command prefix under which file modes apply, even to root.

    Root ignores file modes through two capabilities (CAP_DAC_OVERRIDE and
    CAP_DAC_READ_SEARCH); dropped from the bounding set, root is held to the owner
    bits like anyone (a 0444 file of its own is read-only to it) and still runs the
    interpreter under /root. Nothing to drop for other users.
    """
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: file modes cannot be made to apply")
    return ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--"]


@pytest.mark.parametrize("case", ["read-only file", "read-only folder, no file yet"])
async def test_sqlite_read_only_database_stops_the_daemon_at_start(
    case: str, tmp_path: Path
) -> None:
    folder = tmp_path / "db"
    folder.mkdir()
    path = folder / "syncplayd.sqlite3"
    if case == "read-only file":
        repo = await open_repository(f"sqlite:///{path}")  # a good database first
        await repo.aclose()
        path.chmod(0o444)
    folder.chmod(0o555)
    env = daemon_environment(f"sqlite:///{path}", tmp_path / "state")
    command = [*_without_root_powers(), sys.executable, "-m", "syncplayd"]

    def start() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            command,
            env=env,
            capture_output=True,
            text=True,
            timeout=START_REFUSED_WITHIN,
            check=False,
        )

    started = time.monotonic()
    try:
        result = await trio.to_thread.run_sync(start)
    finally:
        folder.chmod(0o755)  # so that pytest can clean up
    took = time.monotonic() - started
    output = result.stdout + result.stderr
    errors = _error_lines(output)
    print(f"\n[sqlite {case}] exit {result.returncode} after {took:.2f} s: {errors}")
    assert result.returncode == 1, output
    assert len(errors) == 1, output
    assert "cannot start" in errors[0] and str(path) in errors[0]
    assert "not writable" in errors[0], errors[0]
    assert "Traceback" not in output


async def test_sqlite_full_disk_at_run_time(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "disk", "4m") as disk:
        database_url = f"sqlite:///{disk / 'syncplayd.sqlite3'}"
        async with live_rooms(database_url, tmp_path) as live:
            filler = await trio.to_thread.run_sync(fill_up, disk)
            # Writes fail at once, with a clear reason, and the daemon says so.
            started = time.monotonic()
            with pytest.raises(SyncRefused) as refused:
                await live.rooms[0][1].chat("on a full disk")
            refused_after = time.monotonic() - started
            assert refused.value.code == "unavailable"
            response = await live.http.post(f"/rooms/{live.room_ids[0]}/chat", {"message": "x"})
            assert (response.status_code, response.json()["code"]) == (503, "unavailable")
            status, readyz_took = await _readyz(live)
            assert status == 503
            # Live sync goes on from memory.
            _, broadcast = await _command_reaches_everyone(live, 0, "paused")
            version, _ = await _command_reaches_everyone(live, 1, "playing")
            for clients in live.rooms:
                for client in clients:
                    assert client.connected
            log = "\n".join(live.daemon.log_lines)
            assert "database or disk is full" in log and "the disk is full" in log

            await trio.to_thread.run_sync(filler.unlink)
            freed_at = time.monotonic()

            async def ready() -> bool:
                status, _ = await _readyz(live)
                return status == 200

            recovered = await poll_until(ready, READY_AGAIN_WITHIN)
            await stored_version(live.http, live.room_ids[1], version, FLUSHED_WITHIN)
            flushed = time.monotonic() - freed_at
            await live.chat_all("after")
            await _all_chat_stored(live)
            print(
                f"\n[sqlite full disk] chat refused in {refused_after * 1000:.0f} ms; readyz 503"
                f" in {readyz_took * 1000:.0f} ms; a command reached everyone in"
                f" {broadcast * 1000:.0f} ms; space freed: readyz 200 in {recovered:.2f} s,"
                f" queued writes flushed in {flushed:.2f} s; {len(live.acked)} acknowledged"
                " chat messages, all stored"
            )
            assert refused_after <= REFUSED_WITHIN


async def test_sqlite_full_disk_stops_the_daemon_at_start(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "disk", "1m") as disk:
        await trio.to_thread.run_sync(fill_up, disk)
        path = disk / "syncplayd.sqlite3"
        env = daemon_environment(f"sqlite:///{path}", tmp_path / "state")

        def start() -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "syncplayd"],
                env=env,
                capture_output=True,
                text=True,
                timeout=START_REFUSED_WITHIN,
                check=False,
            )

        result = await trio.to_thread.run_sync(start)
    output = result.stdout + result.stderr
    errors = _error_lines(output)
    print(f"\n[sqlite full disk at start] exit {result.returncode}: {errors}")
    assert result.returncode == 1, output
    assert len(errors) == 1, output
    assert "cannot start" in errors[0] and str(path) in errors[0]
    assert "the disk is full" in errors[0], errors[0]
    assert "Traceback" not in output


async def test_sqlite_page_limit_gives_a_clear_error(tmp_path: Path) -> None:
    """The full-disk path where no file system can be mounted: SQLite's own size limit.

    ``max_page_count`` makes SQLite answer exactly as on a full disk ("database or
    disk is full", SQLITE_FULL), so the repository's handling is the same code.
    """
    path = tmp_path / "syncplayd.sqlite3"
    repo = await open_repository(f"sqlite:///{path}")
    assert isinstance(repo, SqliteRepository)
    try:
        owner = uuid4()
        room = await repo.create_room(
            NewRoom(uuid4(), "r", owner, "o", "movie", "1", True, None, 10, datetime.now(UTC))
        )

        def message(text: str) -> ChatMessage:
            return ChatMessage(uuid4(), room.id, owner, "o", text, datetime.now(UTC))

        def limit(pages: int | None) -> None:
            # The writer connection's limit (a per-connection setting); None: lift it.
            conn = repo._writer
            if pages is None:
                conn.execute("PRAGMA max_page_count = 1073741823")
            else:
                used = conn.execute("PRAGMA page_count").fetchone()[0]
                conn.execute(f"PRAGMA max_page_count = {used + pages}")

        await trio.to_thread.run_sync(limit, 0)
        started = time.monotonic()
        full: StorageUnavailable | None = None
        with trio.fail_after(5):
            for i in range(1000):  # the first page split needs a page it cannot have
                try:
                    await repo.create_chat_message(message("x" * 500 + str(i)))
                except StorageUnavailable as exc:
                    full = exc
                    break
        took = time.monotonic() - started
        assert full is not None, "1000 messages fitted in no new page"
        assert "database or disk is full" in str(full)
        assert "max_page_count" in str(full)  # the disk has room: says which limit
        with pytest.raises(StorageUnavailable, match="cannot be written"):
            await repo.ping()  # what /readyz asks
        await trio.to_thread.run_sync(limit, None)
        await repo.ping()
        stored = await repo.create_chat_message(message("after"))
        assert stored.message == "after"
        print(f"\n[sqlite page limit] refused in {took * 1000:.0f} ms: {full}")
    finally:
        await repo.aclose()


@pytest.mark.postgres
async def test_postgres_read_only_server_is_an_outage(
    request: pytest.FixtureRequest, postgres_server_url: str, tmp_path: Path
) -> None:
    """A server that takes no writes for now (a standby during a failover) is waited out.

    The write-behind queue keeps what a read-only server refuses instead of dropping it
    as a bad write; chat is refused with ``unavailable``.
    """
    database_url = await trio.to_thread.run_sync(
        backend_database_url, "postgres", request, tmp_path
    )
    dbname = str(psycopg.conninfo.conninfo_to_dict(database_url)["dbname"])

    def read_only(on: bool) -> None:
        with psycopg.connect(postgres_server_url, autocommit=True) as admin:
            admin.execute(
                sql.SQL("ALTER DATABASE {} SET default_transaction_read_only = {}").format(
                    sql.Identifier(dbname), sql.Literal(on)
                )
            )
            admin.execute(  # the setting applies to new sessions: end the old ones
                "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid()",
                [dbname],
            )

    repo = await open_repository(database_url)
    try:
        owner = uuid4()
        room = await repo.create_room(
            NewRoom(uuid4(), "r", owner, "o", "movie", "1", True, None, 10, datetime.now(UTC))
        )
        writer = Persister(repo, flush_interval=0.05)
        await trio.to_thread.run_sync(read_only, True)
        with pytest.raises(StorageUnavailable, match="read-only"), trio.fail_after(5):
            await repo.create_chat_message(
                ChatMessage(uuid4(), room.id, owner, "o", "hi", datetime.now(UTC))
            )
        writer.event(NewEvent(room.id, "playback", datetime.now(UTC), payload={"v": 1}))
        with trio.fail_after(5):
            assert not await writer.flush()
        assert writer.pending == 1 and writer.dropped_events == 0  # kept, not dropped
        await trio.to_thread.run_sync(read_only, False)
        with trio.fail_after(5):
            assert await writer.flush()
        assert (await repo.list_events(room.id, 10, 0))[1] == 1
    finally:
        await repo.aclose()
