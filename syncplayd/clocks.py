"""The daemon's clocks: every read of the time goes through this module.

trio's clock is monotonic (what timeouts need) but starts at an arbitrary
point; clients need a clock they can relate to wall time across restarts. The
server clock is trio's clock shifted once, at start, to Unix time: monotonic
while the process lives, and within NTP's error of wall time across restarts.

Reading the time in one place is what lets tests run the daemon's logic on
trio's ``MockClock`` (with ``autojump_clock`` a thirty-second timeout takes no
time), and keeps event times and protocol times on one scale.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import trio


def utc_now() -> datetime:
    """Wall time, for code that runs outside trio (the CLI, migrations, token minting)."""
    return datetime.now(UTC)


def monotonic() -> float:
    """trio's clock, seconds: for deadlines, rate limits and attempt budgets."""
    return trio.current_time()


class ServerClock:
    """``now()`` in seconds since the Unix epoch, advancing with trio's clock."""

    def __init__(self) -> None:
        self._shift = time.time() - trio.current_time()

    def now(self) -> float:
        return trio.current_time() + self._shift

    def wall(self) -> datetime:
        """``now()`` as an aware UTC datetime (what storage records carry)."""
        return self.to_datetime(self.now())

    def to_trio(self, server_time: float) -> float:
        """The trio deadline for a server time (for ``trio.sleep_until``)."""
        return server_time - self._shift

    def deadline(self, seconds: float) -> float:
        """The trio deadline ``seconds`` from now (for ``trio.move_on_at``)."""
        return trio.current_time() + seconds

    @staticmethod
    def to_datetime(server_time: float) -> datetime:
        return datetime.fromtimestamp(server_time, UTC)

    @staticmethod
    def from_datetime(value: datetime) -> float:
        return value.timestamp()
