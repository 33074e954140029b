"""Run syncplayd as a real process for integration tests.

The daemon is started with ``python -m syncplayd`` on port 0; its log line
"syncplayd listening on http://HOST:PORT" tells the tests where it is, so no
test waits by sleeping.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from uuid import uuid4

import httpx

from syncplayd.identity import Principal, encode_token

SECRET = "integration-test-secret-0123456789abcdef"
_LISTENING = re.compile(r"syncplayd listening on (?P<url>http://[^\s\"]+)")
START_TIMEOUT = 30.0


@dataclass
class DaemonProcess:
    """A running daemon: its base URL, its log, and ways to stop it."""

    process: subprocess.Popen[str]
    base_url: str
    log_lines: list[str] = field(default_factory=list)
    clients: list[httpx.Client] = field(default_factory=list)
    #: Notified by the log pump after each line (see :meth:`wait_for_log`).
    logged: threading.Condition = field(default_factory=threading.Condition)

    def wait_for_log(self, pattern: str, timeout: float = 10.0) -> str:
        """The first log line matching ``pattern``, waiting for it (blocking: call it in a
        thread from async code).

        Raises:
            AssertionError: no such line within ``timeout`` seconds.
        """
        found = re.compile(pattern)
        with self.logged:
            if self.logged.wait_for(
                lambda: any(found.search(line) for line in self.log_lines), timeout
            ):
                return next(line for line in self.log_lines if found.search(line))
        raise AssertionError(f"no log line matching {pattern!r}:\n" + "\n".join(self.log_lines))

    def client(
        self, principal: Principal | None = None, *, token: str | None = None
    ) -> httpx.Client:
        headers = {}
        if principal is not None:
            token = encode_token(principal, SECRET, ttl=timedelta(hours=1))
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        client = httpx.Client(base_url=self.base_url, headers=headers, timeout=10.0)
        self.clients.append(client)  # closed when the daemon stops
        return client

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout=15)


def _pump(
    stream: object,
    lines: list[str],
    ready: threading.Event,
    found: list[str],
    logged: threading.Condition,
) -> None:
    for line in stream:  # type: ignore[attr-defined]
        with logged:
            lines.append(line.rstrip("\n"))
            logged.notify_all()
        match = _LISTENING.search(line)
        if match and not found:
            found.append(match["url"])
            ready.set()
    ready.set()  # EOF: the process exited


def daemon_environment(
    database_url: str | None, state_dir: Path, secret: str | None = SECRET
) -> dict[str, str]:
    """The process environment for a daemon: this one's, minus any SYNCPLAY_* of the caller."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCPLAY_")}
    env.update(
        {
            "SYNCPLAY_LISTEN": "127.0.0.1:0",
            "SYNCPLAY_STATE_DIR": str(state_dir),
            "PYTHONUNBUFFERED": "1",
        }
    )
    if database_url is not None:
        env["SYNCPLAY_DATABASE_URL"] = database_url
    if secret is not None:
        env["SYNCPLAY_AUTH_JWT_SECRET"] = secret
    return env


@contextmanager
def run_daemon(
    database_url: str | None,
    state_dir: Path,
    extra_env: Mapping[str, str] | None = None,
    *,
    secret: str | None = SECRET,
) -> Iterator[DaemonProcess]:
    """Start a daemon on a free port with the given database; stop it on exit.

    ``None`` for the database or the secret leaves them to the daemon's defaults
    (SQLite in the state folder, a generated secret), as on a fresh machine.
    """
    env = daemon_environment(database_url, state_dir, secret)
    env.update(extra_env or {})
    process = subprocess.Popen(
        [sys.executable, "-m", "syncplayd"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    found: list[str] = []
    ready = threading.Event()
    logged = threading.Condition()
    threading.Thread(
        target=_pump, args=(process.stdout, lines, ready, found, logged), daemon=True
    ).start()
    try:
        if not ready.wait(START_TIMEOUT) or not found:
            process.kill()
            raise RuntimeError("daemon did not start:\n" + "\n".join(lines[-40:]))
        daemon = DaemonProcess(process, found[0], lines, logged=logged)
        try:
            yield daemon
        finally:
            for client in daemon.clients:
                client.close()
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stdout is not None:
            process.stdout.close()


def new_user(name: str = "user", *, admin: bool = False) -> Principal:
    return Principal(user_id=uuid4(), name=name, is_admin=admin)
