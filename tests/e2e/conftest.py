"""Daemon processes for the realtime tests, on both storage backends."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.daemon_process import SECRET, DaemonProcess
from tests.server.conftest import BACKENDS, backend_daemon

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
    with backend_daemon(request, tmp_path_factory, "live", E2E_ENV) as process:
        yield process
        # Structured (JSON) logs, and never the secret in them.
        assert all(line.startswith("{") for line in process.log_lines)
        assert not any(SECRET in line for line in process.log_lines)
