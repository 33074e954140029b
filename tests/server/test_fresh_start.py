"""What a new user gets from `make run`: no configuration at all."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from syncplayd.identity import decode_token
from tests.daemon_process import daemon_environment, run_daemon


def test_daemon_starts_with_no_configuration(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with run_daemon(None, state, secret=None) as daemon:
        client = daemon.client()
        assert client.get("/healthz").json() == {"status": "ok"}
        assert client.get("/readyz").json() == {"status": "ready"}
        assert any("generated one into" in line for line in daemon.log_lines)
    assert (state / "syncplayd.sqlite3").is_file()
    secret_file = state / "jwt_secret"
    assert secret_file.stat().st_mode & 0o777 == 0o600
    secret = secret_file.read_text().strip()
    assert secret not in "\n".join(daemon.log_lines)

    # syncplayctl finds the generated secret through the same state folder.
    env = daemon_environment(None, state, secret=None)
    token = subprocess.run(
        [
            sys.executable,
            "-m",
            "syncplayd.cli.ctl",
            "token",
            "create",
            "--user",
            "6f1c0a52-3c41-4f0e-9b1a-0d6f2a1b7c11",
            "--name",
            "Ada",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert decode_token(token, secret).name == "Ada"

    # A second start reuses the secret instead of minting a new one.
    with run_daemon(None, state, secret=None) as daemon:
        assert not any("generated one into" in line for line in daemon.log_lines)
        assert daemon.client(token=token).get("/api/v1/syncplay/rooms").status_code == 200
