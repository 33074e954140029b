"""The sd_notify client against a fake service manager: a real datagram socket we read from.

Two fakes, as systemd may use either: a socket bound to a file (``NOTIFY_SOCKET=/path``)
and one in the abstract namespace (``NOTIFY_SOCKET=@name``). Timing tests run on the
autojump clock; receiving through ``trio.socket`` cooperates with it, because a datagram
that was sent is already queued in the kernel when trio looks for I/O.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import trio
import trio.testing

from syncplayd.server.process.sdnotify import (
    SEND_TIMEOUT_SECONDS,
    Notifier,
    run_watchdog,
    watchdog_interval,
)

# sockaddr_un.sun_path holds 108 bytes on Linux, NUL included.
MAX_SOCKET_PATH = 107


class FakeManager:
    """The receiving end of ``NOTIFY_SOCKET``: what systemd would read."""

    def __init__(self, raw: socket.socket, address: str) -> None:
        self.raw = raw  # non-blocking once wrapped, for pending()
        self.sock = trio.socket.from_stdlib_socket(raw)
        self.address = address  # the NOTIFY_SOCKET value

    @property
    def environ(self) -> dict[str, str]:
        return {"NOTIFY_SOCKET": self.address}

    async def receive(self) -> str:
        # Virtual seconds under the autojump clock, where it only ends a hang.
        with trio.fail_after(600):
            data = await self.sock.recv(65536)
        return data.decode("utf-8")

    async def receive_fields(self) -> dict[str, str]:
        text = await self.receive()
        return dict(line.split("=", 1) for line in text.split("\n"))

    def pending(self) -> list[str]:
        """Datagrams queued now, without waiting."""
        found = []
        while True:
            try:
                found.append(self.raw.recv(65536).decode("utf-8"))
            except BlockingIOError:
                return found


@pytest.fixture
def socket_dir(tmp_path: Path) -> Iterator[Path]:
    """``tmp_path``, or a shorter folder if a socket path there would not fit sun_path."""
    if len(os.fsencode(tmp_path / "notify.sock")) <= MAX_SOCKET_PATH:
        yield tmp_path
        return
    short = Path(tempfile.mkdtemp(prefix="sdn-"))
    try:
        yield short
    finally:
        shutil.rmtree(short)


def _bound(address: str | bytes) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    return sock


@pytest.fixture(params=["path", "abstract"])
async def manager(request: pytest.FixtureRequest, socket_dir: Path) -> AsyncIterator[FakeManager]:
    """A fake manager on a socket file, and one in the abstract namespace."""
    if request.param == "path":
        path = str(socket_dir / "notify.sock")
        sock = _bound(path)
        address = path
    else:
        name = f"syncplayd-test/{uuid.uuid4().hex}"
        sock = _bound(b"\0" + name.encode())
        address = "@" + name
    with sock:
        yield FakeManager(sock, address)


async def test_ready(manager: FakeManager) -> None:
    notifier = Notifier.from_environ(manager.environ)
    assert notifier.enabled
    assert await notifier.ready() is True
    assert await manager.receive() == "READY=1"


async def test_ready_with_status(manager: FakeManager) -> None:
    notifier = Notifier.from_environ(manager.environ)
    assert await notifier.ready(status="listening on http://127.0.0.1:8750")
    assert await manager.receive() == "READY=1\nSTATUS=listening on http://127.0.0.1:8750"


async def test_stopping(manager: FakeManager) -> None:
    notifier = Notifier.from_environ(manager.environ)
    assert await notifier.stopping()
    assert await manager.receive() == "STOPPING=1"
    assert await notifier.stopping("telling clients to reconnect")
    assert await manager.receive() == "STOPPING=1\nSTATUS=telling clients to reconnect"


async def test_watchdog_ping(manager: FakeManager) -> None:
    notifier = Notifier.from_environ(manager.environ)
    assert await notifier.watchdog()
    assert await manager.receive() == "WATCHDOG=1"


async def test_status(manager: FakeManager) -> None:
    notifier = Notifier.from_environ(manager.environ)
    assert await notifier.status("3 live rooms, 7 connections")
    assert await manager.receive() == "STATUS=3 live rooms, 7 connections"


async def test_status_newlines_cannot_inject_assignments(manager: FakeManager) -> None:
    notifier = Notifier.from_environ(manager.environ)
    assert await notifier.status("line one\nREADY=1")
    assert await manager.receive() == "STATUS=line one READY=1"


async def test_status_that_is_not_valid_unicode_is_still_sent(manager: FakeManager) -> None:
    notifier = Notifier.from_environ(manager.environ)
    assert await notifier.status("room \udce9t\u00e9")
    assert await manager.receive() == "STATUS=room ?t\u00e9"


async def test_reloading_carries_monotonic_usec(manager: FakeManager) -> None:
    notifier = Notifier.from_environ(manager.environ)
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert await notifier.reloading()
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    fields = await manager.receive_fields()
    assert fields.keys() == {"RELOADING", "MONOTONIC_USEC"}
    assert fields["RELOADING"] == "1"
    assert before <= int(fields["MONOTONIC_USEC"]) <= after
    # A reload ends with READY=1.
    assert await notifier.ready()
    assert await manager.receive() == "READY=1"


async def test_reloading_with_status(manager: FakeManager) -> None:
    notifier = Notifier.from_environ(manager.environ)
    assert await notifier.reloading("reloading configuration")
    fields = await manager.receive_fields()
    assert fields["RELOADING"] == "1"
    assert fields["STATUS"] == "reloading configuration"
    assert int(fields["MONOTONIC_USEC"]) > 0


async def test_raw_notify(manager: FakeManager) -> None:
    notifier = Notifier(manager.address)
    assert await notifier.notify("EXTEND_TIMEOUT_USEC=5000000")
    assert await manager.receive() == "EXTEND_TIMEOUT_USEC=5000000"


async def test_watchdog_pings_at_half_the_period(
    manager: FakeManager, autojump_clock: trio.testing.MockClock
) -> None:
    interval = watchdog_interval({"WATCHDOG_USEC": "30000000"}, pid=os.getpid())
    assert interval == 15.0
    notifier = Notifier.from_environ(manager.environ)
    start = trio.current_time()
    times: list[float] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(run_watchdog, notifier, interval)
        # The first ping is out before start() returns.
        assert manager.pending() == ["WATCHDOG=1"]
        times.append(trio.current_time() - start)
        for _ in range(4):
            assert await manager.receive() == "WATCHDOG=1"
            times.append(trio.current_time() - start)
        nursery.cancel_scope.cancel()
    assert times == [0.0, 15.0, 30.0, 45.0, 60.0]
    assert manager.pending() == []


async def test_watchdog_after_a_stall_resumes_without_a_burst(
    manager: FakeManager, autojump_clock: trio.testing.MockClock
) -> None:
    notifier = Notifier.from_environ(manager.environ)
    async with trio.open_nursery() as nursery:
        await nursery.start(run_watchdog, notifier, 1.0)
        assert await manager.receive() == "WATCHDOG=1"
        # The event loop was blocked (by a synchronous call) for 10 intervals.
        autojump_clock.jump(10.0)
        await trio.testing.wait_all_tasks_blocked()
        assert manager.pending() == ["WATCHDOG=1"]
        start = trio.current_time()
        assert await manager.receive() == "WATCHDOG=1"
        assert trio.current_time() - start == 1.0
        nursery.cancel_scope.cancel()


async def test_watchdog_without_socket_returns_at_once() -> None:
    with trio.fail_after(1):
        async with trio.open_nursery() as nursery:
            await nursery.start(run_watchdog, Notifier(None), 1.0)


@pytest.mark.parametrize("interval", [0.0, -1.0, float("nan")])
async def test_watchdog_interval_must_be_positive(interval: float) -> None:
    with pytest.raises(ValueError, match="must be positive"):
        await run_watchdog(Notifier(None), interval)


@pytest.mark.parametrize("environ", [{}, {"NOTIFY_SOCKET": ""}])
async def test_no_socket_is_a_no_op(environ: dict[str, str]) -> None:
    notifier = Notifier.from_environ(environ)
    assert not notifier.enabled
    assert await notifier.ready() is False
    assert await notifier.stopping() is False
    assert await notifier.watchdog() is False
    assert await notifier.status("x") is False
    assert await notifier.reloading() is False
    assert await notifier.notify("READY=1") is False


@pytest.mark.parametrize("address", ["relative/notify.sock", "vsock:2:1234"])
def test_unsupported_address_disables_with_a_warning(
    address: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="syncplayd.server.process.sdnotify"):
        notifier = Notifier(address)
    assert not notifier.enabled
    assert "not supported" in caplog.text


async def test_send_error_is_logged_not_raised(
    socket_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    notifier = Notifier(str(socket_dir / "nobody-listens.sock"))
    assert notifier.enabled
    with caplog.at_level(logging.DEBUG, logger="syncplayd.server.process.sdnotify"):
        assert await notifier.ready() is False
        assert await notifier.watchdog() is False
    assert "sd_notify 'READY=1' failed" in caplog.text


async def test_send_error_for_an_overlong_path_is_not_raised() -> None:
    notifier = Notifier("/" + "x" * 200)
    assert await notifier.ready() is False


async def test_a_wedged_manager_does_not_block_forever(
    manager: FakeManager,
    autojump_clock: trio.testing.MockClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Nobody reads: the socket's queue fills up (net.unix.max_dgram_qlen, 10 by default
    # on Linux), after which each send gives up after SEND_TIMEOUT_SECONDS.
    notifier = Notifier.from_environ(manager.environ)
    results = []
    start = trio.current_time()
    with caplog.at_level(logging.DEBUG, logger="syncplayd.server.process.sdnotify"):
        for _ in range(1000):
            sent = await notifier.status("busy")
            results.append(sent)
            if not sent:
                break
    assert results[-1] is False
    assert trio.current_time() - start == SEND_TIMEOUT_SECONDS
    assert "timed out" in caplog.text
    # Once the manager reads again, messages get through.
    assert len(manager.pending()) == len(results) - 1
    assert await notifier.ready()
    assert await manager.receive() == "READY=1"


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"WATCHDOG_USEC": "30000000"}, 15.0),
        ({"WATCHDOG_USEC": "1"}, 0.0000005),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "4242"}, 15.0),
        ({}, None),
        ({"WATCHDOG_PID": "4242"}, None),
        ({"WATCHDOG_USEC": ""}, None),
        ({"WATCHDOG_USEC": "abc"}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "-30000000"}, None),
        ({"WATCHDOG_USEC": "+30000000"}, None),
        ({"WATCHDOG_USEC": " 30000000"}, None),
        ({"WATCHDOG_USEC": "30_000_000"}, None),
        ({"WATCHDOG_USEC": "1.5"}, None),
        ({"WATCHDOG_USEC": "³"}, None),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "4243"}, None),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, None),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": ""}, None),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "abc"}, None),
    ],
)
def test_watchdog_interval(environ: dict[str, str], expected: float | None) -> None:
    assert watchdog_interval(environ, pid=4242) == expected


def test_watchdog_interval_checks_our_own_pid_by_default() -> None:
    mine = {"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid())}
    assert watchdog_interval(mine) == 1.0
    other = {"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid() + 1)}
    assert watchdog_interval(other) is None
