"""The server clock that the protocol speaks in.

trio's clock is monotonic (what timeouts need) but starts at an arbitrary
point; clients need a clock they can relate to wall time across restarts. The
server clock is trio's clock shifted once, at start, to Unix time: monotonic
while the process lives, and within NTP's error of wall time across restarts.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import trio


class ServerClock:
    """``now()`` in seconds since the Unix epoch, advancing with trio's clock."""

    def __init__(self) -> None:
        self._shift = time.time() - trio.current_time()

    def now(self) -> float:
        return trio.current_time() + self._shift

    def to_trio(self, server_time: float) -> float:
        """The trio deadline for a server time (for ``trio.sleep_until``)."""
        return server_time - self._shift

    @staticmethod
    def to_datetime(server_time: float) -> datetime:
        return datetime.fromtimestamp(server_time, UTC)

    @staticmethod
    def from_datetime(value: datetime) -> float:
        return value.timestamp()
