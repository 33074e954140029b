"""Daemon processes for the realtime tests, on both storage backends."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.daemon_process import SECRET, DaemonProcess, run_daemon
from tests.server.conftest import BACKENDS, backend_database_url

# Short timeouts so that waiting-room and idle rules fire within a test.
E2E_ENV = {
    "SYNCPLAY_SYNC_READY_TIMEOUT_SECONDS": "1.5",
    "SYNCPLAY_HEARTBEAT_INTERVAL_SECONDS": "0.5",
    "SYNCPLAY_DISCONNECT_TIMEOUT_SECONDS": "5",
    "SYNCPLAY_CHAT_MAX_MESSAGE_LENGTH": "10000",
    "SYNCPLAY_CHAT_RATE_LIMIT_MESSAGES_PER_MINUTE": "10000",
    "SYNCPLAY_WS_MAX_MESSAGES_PER_SECOND": "50",
    "SYNCPLAY_WS_MAX_CONNECTIONS_PER_USER": "3",
    "SYNCPLAY_WS_ALLOWED_ORIGINS": "https://media.example",
}


@pytest.fixture(scope="module", params=BACKENDS)
def live_daemon(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DaemonProcess]:
    folder = tmp_path_factory.mktemp(f"live-{request.param}")
    url = backend_database_url(request.param, request, folder)
    with run_daemon(url, folder / "state", E2E_ENV) as process:
        yield process
        # Whatever the tests did, the daemon never crashed or logged a traceback.
        assert process.process.poll() is None, "the daemon died during the tests"
        assert not any("Traceback" in line for line in process.log_lines), "\n".join(
            process.log_lines
        )
        # Structured (JSON) logs, and never the secret in them.
        assert all(line.startswith("{") for line in process.log_lines)
        assert not any(SECRET in line for line in process.log_lines)
