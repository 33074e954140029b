"""A small ``sd_notify`` client, so the daemon can run as a ``Type=notify`` systemd service.

Why it exists: systemd learns that a ``Type=notify`` service is up (``READY=1``), reloading
(``RELOADING=1``), going down (``STOPPING=1``) or still alive (``WATCHDOG=1``) from datagrams
the service sends to the Unix socket named by ``$NOTIFY_SOCKET``. The protocol is a few
``KEY=value`` lines per datagram (sd_notify(3)), so a trio-native client of a few dozen lines
replaces a dependency on libsystemd or a Python binding.

Theory of operation:

* The daemon builds one :class:`Notifier` from its environment with
  :meth:`Notifier.from_environ`. Without ``$NOTIFY_SOCKET`` (a terminal, a test, another
  supervisor) every method is a no-op, so callers never check whether systemd is there.
* Each message is one datagram on a fresh ``AF_UNIX``/``SOCK_DGRAM`` socket, as libsystemd
  does: nothing is held open between messages, and a restarted service manager that binds the
  socket again is found again. The socket is *connected* before sending, so trio waits for the
  manager's queue to have room instead of spinning on ``EAGAIN``; the wait is capped by
  :data:`SEND_TIMEOUT_SECONDS`.
* Sending never raises: the service manager's state is advisory for the daemon, and a daemon
  that crashes because its supervisor hiccupped would be worse than one whose status is stale.
  Failures are logged at debug level; every method returns whether the datagram was sent.
  Cancellation still propagates, as from any trio checkpoint.
* ``$WATCHDOG_USEC`` is set when the unit has ``WatchdogSec=``. :func:`watchdog_interval`
  turns it into the ping period (half the timeout, as sd_watchdog_enabled(3) recommends) and
  :func:`run_watchdog` is the task that pings. systemd arms the watchdog when the service
  reports ``READY=1`` (or at its first ``WATCHDOG=1``), so start the task after ``ready()``.
* The pings come from a trio task: they prove that the event loop still schedules tasks. A
  loop blocked by a synchronous call stops pinging and systemd restarts the service.

Addresses: an absolute path, or an abstract-namespace name written with a leading ``@``
(sent as a leading NUL byte). Other forms (relative paths, ``vsock:``) are not supported
and disable the notifier with a warning.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping

import trio

log = logging.getLogger(__name__)

# Longest wait for room in the service manager's queue. systemd reads its notify socket
# continuously, so this only matters when it is wedged; then a stale status is better than
# a daemon (or its shutdown) stuck behind a send.
SEND_TIMEOUT_SECONDS = 5.0


def _parse_address(value: str) -> bytes | None:
    """The ``sockaddr_un`` path for a ``$NOTIFY_SOCKET`` value, or None if unsupported."""
    if value.startswith("@"):
        # Abstract namespace: systemd writes the leading NUL byte as '@' (sd_notify(3)).
        return b"\0" + os.fsencode(value[1:])
    if value.startswith("/"):
        return os.fsencode(value)
    return None


def _parse_uint(text: str | None) -> int | None:
    # ASCII digits only, as systemd's safe_atou64 expects: int() would also take " 5",
    # "+5", "5_000" and non-ASCII digits.
    if text is None or not text.isascii() or not text.isdigit():
        return None
    return int(text)


def _one_line(text: str) -> str:
    # The datagram is newline-separated KEY=value lines: a newline in a value would start
    # a new (bogus) assignment.
    return " ".join(text.splitlines())


class Notifier:
    """Sends state changes to the service manager named by ``$NOTIFY_SOCKET``.

    A notifier without an address does nothing, so the daemon can call it
    unconditionally. Every method returns True if the datagram was sent and False
    otherwise (no socket configured, or a send error, which is logged at debug level);
    none of them raises, except for trio's cancellation.

    Args:
        address: The value of ``$NOTIFY_SOCKET``: an absolute path, or ``@name`` for the
            abstract namespace. None or an empty string disables the notifier.
    """

    def __init__(self, address: str | None) -> None:
        self._address: bytes | None = None
        if address:
            self._address = _parse_address(address)
            if self._address is None:
                log.warning("NOTIFY_SOCKET=%r is not supported; not notifying systemd", address)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Notifier:
        """A notifier for the socket named by ``environ["NOTIFY_SOCKET"]``, if any.

        Args:
            environ: The process environment (``os.environ``), or a test's mapping.

        Returns:
            The notifier; a no-op one when ``NOTIFY_SOCKET`` is unset or empty.
        """
        return cls(environ.get("NOTIFY_SOCKET"))

    @property
    def enabled(self) -> bool:
        """Whether there is a service manager to notify."""
        return self._address is not None

    def __repr__(self) -> str:
        return f"Notifier(address={self._address!r})"

    async def notify(self, state: str) -> bool:
        """Send raw ``KEY=value`` lines, separated by newlines, as one datagram.

        Args:
            state: The assignments, for example ``"READY=1\\nSTATUS=serving"``.

        Returns:
            True if the datagram was sent.
        """
        if self._address is None:
            return False
        # "replace": a status built from a file name may hold surrogates; never raise for it.
        data = state.encode("utf-8", "replace")
        try:
            with trio.socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                with trio.move_on_after(SEND_TIMEOUT_SECONDS):
                    await sock.connect(self._address)
                    await sock.send(data)
                    return True
                log.debug("sd_notify %r: timed out after %ss", state, SEND_TIMEOUT_SECONDS)
        except OSError as exc:
            log.debug("sd_notify %r failed: %s", state, exc)
        return False

    async def _send(self, assignment: str, status: str | None) -> bool:
        if status is not None:
            assignment += "\nSTATUS=" + _one_line(status)
        return await self.notify(assignment)

    async def ready(self, status: str | None = None) -> bool:
        """Report that start-up (or a reload) is complete: ``READY=1``.

        Send it only once the service accepts connections: systemd starts the units
        ordered after this one, and ``systemctl start`` returns, when it arrives.

        Args:
            status: An optional ``STATUS=`` text sent in the same datagram.

        Returns:
            True if the datagram was sent.
        """
        return await self._send("READY=1", status)

    async def reloading(self, status: str | None = None) -> bool:
        """Report that a configuration reload begins: ``RELOADING=1``.

        Carries ``MONOTONIC_USEC=`` (``CLOCK_MONOTONIC`` in microseconds), which
        sd_notify(3) requires with ``RELOADING=1`` since systemd 253 so the manager can
        tell this reload from an earlier one. Send :meth:`ready` when the reload is done.

        Args:
            status: An optional ``STATUS=`` text sent in the same datagram.

        Returns:
            True if the datagram was sent.
        """
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return await self._send(f"RELOADING=1\nMONOTONIC_USEC={usec}", status)

    async def stopping(self, status: str | None = None) -> bool:
        """Report that shutdown begins: ``STOPPING=1``.

        Args:
            status: An optional ``STATUS=`` text sent in the same datagram.

        Returns:
            True if the datagram was sent.
        """
        return await self._send("STOPPING=1", status)

    async def watchdog(self) -> bool:
        """Tell the service manager that the daemon is alive: ``WATCHDOG=1``.

        Returns:
            True if the datagram was sent.
        """
        return await self.notify("WATCHDOG=1")

    async def status(self, text: str) -> bool:
        """Set the free-form status line ``systemctl status`` shows: ``STATUS=text``.

        Args:
            text: The status; newlines are replaced by spaces.

        Returns:
            True if the datagram was sent.
        """
        return await self.notify("STATUS=" + _one_line(text))


def watchdog_interval(environ: Mapping[str, str], *, pid: int | None = None) -> float | None:
    """How often to ping the watchdog, in seconds: half of ``$WATCHDOG_USEC``.

    ``WATCHDOG_PID``, when set, names the process the watchdog is meant for; a child
    that inherited the environment must not ping on its parent's behalf.

    Args:
        environ: The process environment (``os.environ``), or a test's mapping.
        pid: The process to check ``WATCHDOG_PID`` against; default ``os.getpid()``.

    Returns:
        The interval, or None when there is no watchdog: ``WATCHDOG_USEC`` unset, not a
        positive integer, or ``WATCHDOG_PID`` naming another (or no valid) process.
    """
    usec = _parse_uint(environ.get("WATCHDOG_USEC"))
    if usec is None or usec == 0:
        return None
    if "WATCHDOG_PID" in environ:
        expected = os.getpid() if pid is None else pid
        if _parse_uint(environ["WATCHDOG_PID"]) != expected:
            return None
    return usec / 2 / 1_000_000


async def run_watchdog(
    notifier: Notifier,
    interval: float,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Ping the watchdog (``WATCHDOG=1``) every ``interval`` seconds, until cancelled.

    The first ping goes out before ``task_status.started()``. A disabled notifier
    returns at once (after reporting started).

    Args:
        notifier: Where to send the pings.
        interval: Seconds between pings, normally :func:`watchdog_interval`'s answer.
        task_status: Reports that the first ping was sent (for ``nursery.start``).

    Raises:
        ValueError: If ``interval`` is not positive.
    """
    if not interval > 0:
        raise ValueError(f"watchdog interval must be positive, got {interval!r}")
    if not notifier.enabled:
        task_status.started()
        return
    await notifier.watchdog()
    task_status.started()
    while True:
        # Sleep a full interval after each ping rather than keeping a fixed schedule: the
        # drift (one send per period) is harmless at half the timeout, and after a stall
        # (a blocked event loop) the pings resume at the normal pace, not in a burst.
        await trio.sleep(interval)
        await notifier.watchdog()
