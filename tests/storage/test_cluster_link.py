"""ClusterLink on a real PostgreSQL: room locks between nodes, and notifications.

Each test gets its own database (advisory locks and notifications are per database), and
the links are two "nodes" on it; a third, plain connection plays the operator or the
kernel (``pg_terminate_backend`` is how PostgreSQL sees a node killed with -9).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
import pytest
import trio

from syncplayd.storage import StorageUnavailable
from syncplayd.storage.cluster import (
    LISTEN_THREAD_NAME,
    MAX_PAYLOAD_BYTES,
    ClusterLink,
    lock_key,
)
from tests.conftest import fresh_database

pytestmark = pytest.mark.postgres


@pytest.fixture
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with fresh_database("postgres", request, tmp_path) as database_url:
        yield database_url


@asynccontextmanager
async def opened(url: str, **kwargs: Any) -> AsyncIterator[ClusterLink]:
    link = await ClusterLink.open(url, **kwargs)
    try:
        yield link
    finally:
        await link.aclose()


def query(url: str, sql: str, *params: object) -> list[tuple[Any, ...]]:
    """One statement on a connection of its own (in a worker thread from the tests)."""
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(sql, params).fetchall()


async def admin(url: str, sql: str, *params: object) -> list[tuple[Any, ...]]:
    return await trio.to_thread.run_sync(lambda: query(url, sql, *params))


async def advisory_keys(url: str, pid: int) -> list[int]:
    """The bigint advisory keys the session ``pid`` holds, as the server reports them."""
    rows = await admin(
        url,
        "SELECT classid::bigint, objid::bigint FROM pg_locks"
        " WHERE locktype = 'advisory' AND objsubid = 1 AND granted AND pid = %s",
        pid,
    )
    keys = []
    for high, low in rows:
        unsigned = (high << 32) | low
        keys.append(unsigned - (1 << 64) if unsigned >= 1 << 63 else unsigned)
    return sorted(keys)


async def terminate(url: str, pid: int) -> None:
    # With a timeout, pg_terminate_backend returns once the session has ended.
    ((done,),) = await admin(url, "SELECT pg_terminate_backend(%s, 5000)", pid)
    assert done is True


async def listen_pid(url: str) -> int:
    ((pid,),) = await admin(
        url,
        "SELECT pid FROM pg_stat_activity WHERE application_name = 'syncplayd cluster listen'",
    )
    return int(pid)


def listening_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == LISTEN_THREAD_NAME]


# -- keys --------------------------------------------------------------------------------------


def test_the_key_is_the_ids_first_eight_bytes_signed() -> None:
    assert lock_key(UUID("00000000-0000-4000-8000-000000000000")) == 0x4000
    assert lock_key(UUID("7fffffff-ffff-4fff-bfff-ffffffffffff")) == 0x7FFF_FFFF_FFFF_4FFF
    assert lock_key(UUID("ffffffff-ffff-4fff-bfff-ffffffffffff")) == -0xB001
    # The last 8 bytes play no part.
    assert lock_key(UUID("12345678-9abc-4def-8000-000000000000")) == lock_key(
        UUID("12345678-9abc-4def-bfff-ffffffffffff")
    )


# -- locks ---------------------------------------------------------------------------------------


async def test_a_lock_is_exclusive_between_links(url: str) -> None:
    room, other = uuid.uuid4(), uuid.uuid4()
    async with opened(url) as a, opened(url) as b:
        assert a.backend_pid != b.backend_pid
        assert await a.try_lock(room) is True
        assert await b.try_lock(room) is False
        assert await a.try_lock(room) is True  # held already: not taken a second time
        assert await b.try_lock(other) is True
        assert (a.held, b.held) == ({room}, {other})
        # What the server holds, under the key derived from the id: once per room.
        assert await advisory_keys(url, a.backend_pid) == [lock_key(room)]
        assert await advisory_keys(url, b.backend_pid) == [lock_key(other)]


async def test_unlock_frees_the_room_for_another_link(url: str) -> None:
    room = uuid.uuid4()
    async with opened(url) as a, opened(url) as b:
        assert await a.try_lock(room) is True
        assert await a.try_lock(room) is True
        # One unlock is enough however often it was taken.
        assert await a.unlock(room) is True
        assert a.held == frozenset()
        assert await advisory_keys(url, a.backend_pid) == []
        assert await b.try_lock(room) is True
        assert await a.unlock(room) is False  # not a's to release
        assert await a.try_lock(room) is False
        assert b.held == {room}


async def test_closing_the_holder_frees_its_rooms(url: str) -> None:
    rooms = [uuid.uuid4() for _ in range(3)]
    async with opened(url) as b:
        a = await ClusterLink.open(url)
        for room in rooms:
            assert await a.try_lock(room) is True
        await a.aclose()
        assert a.held == frozenset()
        for room in rooms:
            assert await b.try_lock(room) is True
        with pytest.raises(StorageUnavailable, match="closed"):
            await a.try_lock(uuid.uuid4())
        assert await a.ping(timeout=1) is False
        await a.aclose()  # twice is fine


async def test_a_killed_holder_loses_its_rooms_and_its_ping_says_so(url: str) -> None:
    room = uuid.uuid4()
    async with opened(url) as a, opened(url) as b:
        assert await a.try_lock(room) is True
        assert await a.ping(timeout=5) is True
        assert await b.try_lock(room) is False

        # As PostgreSQL sees a node killed with -9: its session ends.
        await terminate(url, a.backend_pid)
        assert await b.try_lock(room) is True

        assert await a.ping(timeout=5) is False
        assert (a.lost, a.held) == (True, frozenset())
        assert await a.ping(timeout=5) is False  # and stays so: the link must be replaced
        with pytest.raises(StorageUnavailable, match="lost"):
            await a.try_lock(uuid.uuid4())
        assert await a.unlock(room) is False
        with pytest.raises(StorageUnavailable):
            await a.notify("syncplayd", "{}")


async def test_a_failed_lock_call_marks_the_link_lost(url: str) -> None:
    async with opened(url) as a:
        await terminate(url, a.backend_pid)
        with pytest.raises(StorageUnavailable):
            await a.try_lock(uuid.uuid4())
        assert a.lost is True
        assert await a.ping(timeout=1) is False


async def test_the_server_ends_an_idle_lock_session_after_idle_session_timeout(
    url: str,
) -> None:
    """A partitioned node stops pinging: its locks go when its session has been idle
    that long, without waiting for TCP to notice."""
    room = uuid.uuid4()

    def wait_for_the_lock() -> None:
        # Blocks until the holder's session ends (far less than the lock_timeout).
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("SET lock_timeout = '10s'")
            conn.execute("SELECT pg_advisory_lock(%s)", (lock_key(room),))

    async with opened(url, idle_session_timeout=0.3) as a:
        assert await a.try_lock(room) is True
        with trio.fail_after(10):
            await trio.to_thread.run_sync(wait_for_the_lock)
            assert await a.ping(timeout=5) is False


# -- notifications -------------------------------------------------------------------------------


async def test_a_hundred_notifications_arrive_in_order(url: str) -> None:
    async with opened(url) as a, opened(url) as b, b.listen("syncplayd") as payloads:
        sent = [f'{{"n": {i}, "text": "message {i} é"}}' for i in range(100)]
        for payload in sent:
            await a.notify("syncplayd", payload)
        await a.notify("elsewhere", "not for b")
        await a.notify("syncplayd", "last")
        received = []
        with trio.fail_after(10):
            async for payload in payloads:
                received.append(payload)
                if len(received) == len(sent) + 1:
                    break
        assert received == [*sent, "last"]


async def test_a_link_hears_its_own_notifications(url: str) -> None:
    async with opened(url) as a, a.listen("syncplayd") as payloads:
        await a.notify("syncplayd", "echo")
        with trio.fail_after(5):
            assert await payloads.receive() == "echo"


async def test_payloads_over_the_limit_are_refused(url: str) -> None:
    largest = "x" * MAX_PAYLOAD_BYTES
    async with opened(url) as a, opened(url) as b, b.listen("syncplayd") as payloads:
        with pytest.raises(ValueError, match="7900"):
            await a.notify("syncplayd", largest + "x")
        # Counted in UTF-8 bytes: 3,951 characters of two bytes each are too many.
        with pytest.raises(ValueError, match="7902"):
            await a.notify("syncplayd", "é" * 3951)
        with pytest.raises(ValueError, match="NUL"):
            await a.notify("syncplayd", "a\0b")
        for channel in ("", "c" * 64):
            with pytest.raises(ValueError, match="channel"):
                await a.notify(channel, "{}")
        await a.notify("syncplayd", largest)
        with trio.fail_after(5):
            assert await payloads.receive() == largest  # nothing refused was sent


async def test_a_cancelled_listener_stops_within_a_second_and_leaves_no_thread(
    url: str,
) -> None:
    async with opened(url) as a, opened(url) as b:
        heard = trio.Event()
        finished = trio.Event()

        async def listener(*, task_status: trio.TaskStatus[trio.CancelScope]) -> None:
            with trio.CancelScope() as scope:
                async with b.listen("one") as payloads:
                    task_status.started(scope)
                    async for _ in payloads:
                        heard.set()
            finished.set()

        async with trio.open_nursery() as nursery:
            scope = await nursery.start(listener)
            await a.notify("one", "are you there")
            with trio.fail_after(5):
                await heard.wait()
            assert len(listening_threads()) == 1
            with trio.fail_after(1):
                scope.cancel()
                await finished.wait()
        assert listening_threads() == []

        # The link listens again, and nothing of the old channel comes through.
        await a.notify("one", "stale")
        async with b.listen("two") as payloads:
            await a.notify("one", "stale too")
            await a.notify("two", "fresh")
            with trio.fail_after(5):
                assert await payloads.receive() == "fresh"


async def test_one_listener_per_link(url: str) -> None:
    async with opened(url) as a, a.listen("one"):
        with pytest.raises(RuntimeError, match="listening already"):
            async with a.listen("two"):
                pass  # pragma: no cover


async def test_a_lost_listen_connection_ends_the_iteration_with_an_error(url: str) -> None:
    async def consume(link: ClusterLink) -> None:
        async with link.listen("syncplayd") as payloads:
            await terminate(url, await listen_pid(url))
            with trio.fail_after(5):
                async for _ in payloads:
                    pass  # pragma: no cover

    async with opened(url) as a:
        with pytest.raises(StorageUnavailable):
            await consume(a)
        assert listening_threads() == []


async def test_closing_the_link_ends_a_listener_quietly(url: str) -> None:
    async with opened(url) as a:
        ended = trio.Event()

        async def listener(*, task_status: trio.TaskStatus[None]) -> None:
            async with a.listen("syncplayd") as payloads:
                task_status.started()
                async for _ in payloads:
                    pass  # pragma: no cover
            ended.set()

        async with trio.open_nursery() as nursery:
            await nursery.start(listener)
            with trio.fail_after(1):
                await a.aclose()
                await ended.wait()
        assert listening_threads() == []
