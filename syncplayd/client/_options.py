"""Client options, errors and the reconnect backoff (no I/O here)."""

from __future__ import annotations

import random
from dataclasses import dataclass

from syncplayd import __version__

__all__ = [
    "FINAL_CLOSE_REASONS",
    "MAX_RETRY_AFTER",
    "TRANSIENT_REFUSALS",
    "ClientOptions",
    "SyncClosed",
    "SyncConnectionError",
    "SyncError",
    "SyncRefused",
    "backoff_delay",
    "retry_delay",
]

#: ``closing`` reasons after which the client never reconnects (``banned`` is also the
#: code of a refused join: a banned user's resume is not retried either).
FINAL_CLOSE_REASONS = frozenset(
    {"room-ended", "kicked", "banned", "left", "replaced", "unauthorized"}
)

#: Refusals of a (re)join that say "not now" or "not here" rather than "no": the server
#: cannot reach its database (``unavailable``: live rooms carry on during such an
#: outage), or another node runs the room (a ``closing`` ``moved``: the proxy sends the
#: next attempt there). A reconnecting client keeps its session and tries again, after
#: the server's ``retry_after`` if it gave one, else after the usual backoff.
TRANSIENT_REFUSALS = frozenset({"unavailable", "moved"})

#: The longest ``closing.retry_after`` obeyed, seconds: a wrong hint must not park a
#: client for hours.
MAX_RETRY_AFTER = 60.0


@dataclass(frozen=True, slots=True)
class ClientOptions:
    """Tuning knobs of :class:`~syncplayd.client.SyncClient`; the defaults suit a real player.

    Attributes:
        fast_ping_interval: seconds between the first ``fast_ping_count`` clock pings
            of each connection (tests use ~0.05).
        fast_ping_count: how many fast pings start each connection.
        slow_ping_interval: seconds between the pings after those.
        drift_check_interval: how often the local player is compared with the room.
        local_resync: also seek at once when that check finds a drift beyond the
            room's threshold; off by default, since the server answers such a
            heartbeat with a ``sync`` command (one authority, no seek storms).
        reconnect_initial_delay: the first reconnect delay; it doubles per failure...
        reconnect_max_delay: ...up to this (each delay is jittered down to half).
        reconnect_attempts: failed reconnects in a row before giving up; with the
            default delays, 30 attempts keep trying for one to two minutes, long
            enough for a daemon (or its database) to restart.
        connect_timeout: seconds for the TCP + websocket handshake.
        disconnect_timeout: seconds for the closing handshake.
        request_timeout: seconds to wait for ``welcome``/``joined``, a ``chat_ack``,
            or a connection (while reconnecting) before a command is sent.
        events_capacity: capacity of the :meth:`~syncplayd.client.SyncClient.events`
            channel; when full, the oldest message is dropped.
        history_size: received messages kept for ``wait_for(..., since=...)``.
        chat_history: chat messages kept in ``SyncClient.chat_history``.
        client_name: sent in ``hello``.
        report_end: send ``ended`` when the local player reaches the end of its item
            (or the room's end stops it there), once until the player leaves the end.
    """

    fast_ping_interval: float = 0.5
    fast_ping_count: int = 5
    slow_ping_interval: float = 10.0
    drift_check_interval: float = 0.5
    local_resync: bool = False
    reconnect_initial_delay: float = 0.1
    reconnect_max_delay: float = 5.0
    reconnect_attempts: int = 30
    connect_timeout: float = 10.0
    disconnect_timeout: float = 5.0
    request_timeout: float = 10.0
    events_capacity: int = 256
    history_size: int = 256
    chat_history: int = 200
    client_name: str = f"syncplayd-client/{__version__}"
    report_end: bool = True

    def __post_init__(self) -> None:
        if self.events_capacity < 1 or self.history_size < 1 or self.chat_history < 1:
            raise ValueError("events_capacity, history_size and chat_history must be >= 1")
        if self.reconnect_attempts < 0 or self.fast_ping_count < 0:
            raise ValueError("reconnect_attempts and fast_ping_count must be >= 0")
        if min(self.fast_ping_interval, self.slow_ping_interval, self.drift_check_interval) <= 0:
            raise ValueError("intervals must be > 0")


def backoff_delay(failures: int, options: ClientOptions, rng: random.Random) -> float:
    """The delay before reconnect attempt number ``failures + 1`` (0-based ``failures``).

    ``initial * 2**failures`` capped at ``max``, then jittered into ``[d/2, d]`` so
    that a room full of clients cut by one restart does not reconnect in lockstep.
    """
    base = options.reconnect_initial_delay * 2.0 ** min(failures, 60)
    delay = min(options.reconnect_max_delay, base)
    return delay * (0.5 + 0.5 * rng.random())


def retry_delay(retry_after: float, options: ClientOptions, rng: random.Random) -> float:
    """The delay before reconnecting when the server said when (``closing.retry_after``).

    The hint (capped at :data:`MAX_RETRY_AFTER`), plus a jitter of up to a tenth of it
    (at least ``reconnect_initial_delay``): a room's members, moved together, then do
    not all come back in the same instant.
    """
    hint = min(max(retry_after, 0.0), MAX_RETRY_AFTER)
    return hint + rng.random() * max(options.reconnect_initial_delay, hint / 10)


class SyncError(Exception):
    """Base class of the client's errors."""


class SyncRefused(SyncError):
    """The server answered with an ``error`` (or a ``closing``) instead of what was asked.

    Attributes:
        code: the stable error code (or the closing reason).
        message: the human-readable text.
        ref: the server's ``ref`` field, if any.
    """

    def __init__(self, code: str, message: str, ref: str | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.ref = ref


class SyncConnectionError(SyncError):
    """The server could not be reached, or the connection broke before an answer."""


class SyncClosed(SyncError):
    """The client is closed for good (left, kicked, room ended, gave up reconnecting...).

    Attributes:
        reason: the ``closing`` reason if the server gave one, else ``None``.
    """

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason
