"""SIGHUP and systemd's notify protocol, against a daemon process."""

from __future__ import annotations

import signal
import socket
from pathlib import Path

import trio

from tests.daemon_process import new_user, run_daemon
from tests.e2e.raw import new_room, raw_client


def _datagrams(sock: socket.socket) -> list[str]:
    out: list[str] = []
    while True:
        try:
            out.append(sock.recv(4096).decode())
        except BlockingIOError:
            return out


async def _wait_for_line(lines: list[str], needle: str, limit: float = 10.0) -> str:
    with trio.fail_after(limit):
        while True:
            for line in lines:
                if needle in line:
                    return line
            await trio.sleep(0.05)  # the daemon's output arrives on a reader thread


async def test_sighup_applies_what_it_can_and_names_the_rest(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("syncplay:\n  sync:\n    threshold_seconds: 2\n")
    notify_path = tmp_path / "notify.sock"
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(notify_path))
    notify.setblocking(False)
    env = {"SYNCPLAY_CONFIG": str(config), "NOTIFY_SOCKET": str(notify_path)}
    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    try:
        with run_daemon(url, tmp_path / "state", env) as daemon:
            owner = new_user("owner")
            room_id = await new_room(daemon, owner)
            assert any("READY=1" in d for d in _datagrams(notify))

            config.write_text(
                "syncplay:\n  sync:\n    threshold_seconds: 3.5\ndatabase:\n  pool_size: 3\n"
            )
            daemon.process.send_signal(signal.SIGHUP)
            applied = await _wait_for_line(daemon.log_lines, "reload applied")
            assert "syncplay.sync.threshold_seconds" in applied
            restart = await _wait_for_line(daemon.log_lines, "without a restart")
            assert "database.pool_size" in restart
            async with raw_client(daemon, owner, room_id) as client:
                assert client.joined is not None
                assert client.joined["settings"]["threshold_seconds"] == 3.5

            config.write_text("syncplay:\n  sync:\n    threshold_seconds: -1\n")
            daemon.process.send_signal(signal.SIGHUP)
            refused = await _wait_for_line(daemon.log_lines, "reload refused")
            assert "syncplay.sync.threshold_seconds" in refused
            assert daemon.process.poll() is None  # a bad file never stops the daemon

            states = "".join(_datagrams(notify))
            assert states.count("RELOADING=1") == 2 and "MONOTONIC_USEC=" in states
            assert daemon.stop(signal.SIGTERM) == 0
        assert "STOPPING=1" in "".join(_datagrams(notify))
    finally:
        notify.close()
