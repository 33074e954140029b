"""Fixtures of the ``syncplayctl`` tests against a real daemon (helpers: ``ctl_support.py``).

``daemon`` is one daemon process per test module, with its admin socket in a short
folder; ``via`` runs each test on both transports (the unix socket, HTTP with an
admin token); ``runner`` runs commands with no ``SYNCPLAY*`` variable of the caller's.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.cli.ctl_support import Daemon, token_file
from tests.daemon_process import new_user, run_daemon


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    folder = tmp_path_factory.mktemp("ctl")
    # A unix socket path holds at most 108 bytes: pytest's folders can be longer.
    short = Path(tempfile.mkdtemp(prefix="spctl-", dir="/tmp"))
    sock = short / "admin.sock"
    env = {"SYNCPLAY_ADMIN_SOCKET": str(sock), "SYNCPLAY_HEARTBEAT_INTERVAL_SECONDS": "0.5"}
    try:
        with run_daemon(None, folder / "state", env) as process:
            # The admin socket is bound before the port listens: it is there now.
            assert sock.exists()
            yield Daemon(
                process,
                sock,
                token_file(folder, "admin.jwt", new_user("root", admin=True)),
                token_file(folder, "user.jwt", new_user("plain")),
                token_file(
                    folder, "forged.jwt", new_user("evil", admin=True), "another-secret-" * 3
                ),
                folder / "state" / "syncplayd.sqlite3",
            )
            assert process.process.poll() is None, "the daemon died during the tests"
            assert not any("Traceback" in line for line in process.log_lines), "\n".join(
                process.log_lines
            )
        assert not sock.exists(), "the daemon left its admin socket behind"
    finally:
        shutil.rmtree(short, ignore_errors=True)


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> CliRunner:
    for name in list(os.environ):
        if name.startswith(("SYNCPLAY_", "SYNCPLAYCTL_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("SYNCPLAY_STATE_DIR", str(tmp_path / "state"))
    return CliRunner()


@pytest.fixture(params=["unix", "http"])
def via(request: pytest.FixtureRequest, daemon: Daemon) -> list[str]:
    """The global options that select a transport."""
    if request.param == "unix":
        return ["--url", f"unix:{daemon.socket}"]
    return ["--url", daemon.base_url, "--token-file", str(daemon.admin_token_file)]
