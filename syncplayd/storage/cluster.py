"""A node's own PostgreSQL connections for the cluster: room locks and notifications.

Theory of operation
-------------------
A :class:`ClusterLink` is two dedicated autocommit connections, outside the repository's
pool because their *sessions* matter:

* the **lock connection** holds one session-level advisory lock per room the node runs
  (``pg_try_advisory_lock``) and sends notifications (``pg_notify``). The locks live
  exactly as long as that session: a node that exits, crashes or is killed loses its
  connection, and PostgreSQL releases every lock it held the moment it sees the session
  end. :meth:`ClusterLink.aclose` releases them all (``pg_advisory_unlock_all``, so that
  they are free when it returns: after a mere close the server frees them a moment later,
  once its process has noticed) and closes it.
* the **listen connection** LISTENs on one channel at a time; a worker thread waits for
  notifications on it and hands their payloads to trio, in order, through a bounded
  memory channel.

psycopg's async API does not run under trio, so every psycopg call runs in a worker
thread, one at a time per connection: each connection has a ``trio.Lock``, and a call
abandoned by a timed-out :meth:`~ClusterLink.ping` still holds its connection until its
thread returns (the next call waits for it). Calls other than ``ping`` are not abandoned
when cancelled: a lock taken by the server must never be unknown to the node.

Lock keys
---------
A room's key is the first 8 bytes of its id read as a signed 64-bit integer
(:func:`lock_key`), in the one-``bigint`` key space (disjoint from the two-``int`` one) of
the database the link connects to. Room ids are UUID 4s: those 8 bytes hold 60 random bits
(4 are the version), so among ``n`` rooms live at once the chance that two share a key is
about ``n**2 / 2**61``: 4e-11 for 10,000 rooms, 4e-7 for a million. A shared key costs
placement, never safety: the two rooms can then only run on the same node (session locks
stack within a session, so that node takes both; others are refused while it holds
either). The migration runner's key has version nibble 0 and so is no UUID 4's. Ids
whose first bytes are not random (UUID 7 is a timestamp there) would collide constantly
and need another derivation.

Losing the connection
---------------------
The node must stop serving its rooms *before* another node can take them. It checks its
lock connection with :meth:`~ClusterLink.ping` every few seconds; a failure or a timeout
means it must assume every lock lost (:attr:`~ClusterLink.held` is then empty and the
link refuses further locks), stop its rooms, :meth:`~ClusterLink.aclose` the link and
open a new one. How soon PostgreSQL frees the locks depends on how the node went away:

* a process that exits or is killed: its kernel closes the socket, and the server sees
  the end of the session at once;
* a machine or network that goes silent: the server notices only through TCP (its
  ``tcp_keepalives_*`` settings, the kernel's defaults being two hours) or, with
  ``idle_session_timeout`` given to :meth:`~ClusterLink.open`, once the session has been
  idle that long. With the timeout longer than the node's ping interval plus ping timeout,
  the node notices its loss before the server frees its locks (no two owners); the
  timeout bounds how long a partitioned node's rooms stay unavailable.

The URL must reach PostgreSQL directly or through a pooler in session mode: in
transaction mode (PgBouncer's default) session locks and LISTEN do not work.

Notifications
-------------
Payloads are limited to :data:`MAX_PAYLOAD_BYTES` in UTF-8 (PostgreSQL's limit is 8,000
bytes). Each :meth:`~ClusterLink.notify` is its own transaction, so notifications from one
link arrive in the order sent (PostgreSQL delivers in commit order) and identical payloads
are not folded into one (it folds duplicates only within a transaction). Nothing is
queued for a channel nobody listens on: a listener that starts late, or restarts after a
failure, must read what it missed from the tables. A listener that stops reading holds
back PostgreSQL's notification queue, shared by the whole server: consume promptly.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any, Final, Generic, TypeVar
from uuid import UUID

import outcome
import psycopg
import trio
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from syncplayd.storage.errors import StorageError, StorageUnavailable
from syncplayd.storage.postgres import CONNECT_TIMEOUT_SECONDS, translate_error

__all__ = [
    "LISTEN_THREAD_NAME",
    "MAX_PAYLOAD_BYTES",
    "ClusterLink",
    "lock_key",
]

T = TypeVar("T")

#: The largest notification payload accepted, in UTF-8 bytes (PostgreSQL's limit: 8,000).
MAX_PAYLOAD_BYTES: Final = 7900
#: Channel names are identifiers: at most NAMEDATALEN - 1 bytes.
MAX_CHANNEL_BYTES: Final = 63
#: How long the listening thread waits for a notification before it checks whether it
#: should stop: the bound on how late a cancelled listener lets go.
POLL_SECONDS: Final = 0.1
#: Payloads a listener may have waiting for its consumer before the thread waits too.
LISTEN_BUFFER: Final = 1000
#: How long closing waits for a connection's call in flight; after that its thread
#: closes the connection when the call returns.
CLOSE_WAIT_SECONDS: Final = 5.0
#: How long a listener that stops waits for its UNLISTEN; a connection that does not
#: answer in time is closed instead (PostgreSQL then stops queueing for it).
UNLISTEN_WAIT_SECONDS: Final = 0.5
#: The listening thread's name while it runs (what a leak check looks for).
LISTEN_THREAD_NAME: Final = "syncplayd-cluster-listen"

# Without keepalives a silent network leaves a blocked call waiting for hours; with
# these, libpq gives up on a dead peer in about 11 s, on unacknowledged data in 10 s
# (TCP only: libpq ignores them on Unix sockets). A URL's own values win.
_TCP_SETTINGS: Final[dict[str, int]] = {
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
    "tcp_user_timeout": 10_000,
}


def lock_key(room_id: UUID) -> int:
    """The advisory lock key of a room: its id's first 8 bytes as a signed 64-bit integer
    (see the module docstring for the collision odds)."""
    return int.from_bytes(room_id.bytes[:8], "big", signed=True)


def _check_channel(channel: str) -> None:
    if not channel or len(channel.encode()) > MAX_CHANNEL_BYTES or "\0" in channel:
        raise ValueError(f"a channel name is 1 to {MAX_CHANNEL_BYTES} bytes without NUL")


def _close_quietly(conn: psycopg.Connection[Any]) -> None:
    with contextlib.suppress(psycopg.Error, OSError):
        conn.close()


class _Call(Generic[T]):
    """One job of a connection's worker thread; ``done`` is set once the thread has let
    go of the connection."""

    def __init__(self) -> None:
        self.done = trio.Event()
        self.result: outcome.Outcome[T] | None = None

    def finish(self, result: outcome.Outcome[T]) -> None:
        self.result = result
        self.done.set()

    def unwrap(self) -> T:
        if self.result is None:  # pragma: no cover - only read after done
            raise RuntimeError("the call has not finished")
        try:
            return self.result.unwrap()
        except psycopg.Error as exc:
            raise translate_error(exc) from exc


class _Session:
    """One dedicated connection, used by one worker thread at a time.

    ``mutex`` orders the trio tasks; ``_guard`` hands the connection between trio and a
    worker thread, so that closing never races a call: whoever finds the connection idle
    after ``closing`` is set closes it (the closer at once, or the thread of the call in
    flight when that call returns).
    """

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn
        self.mutex = trio.Lock()
        self._token = trio.lowlevel.current_trio_token()
        self._guard = threading.Lock()
        self._busy = False
        self._closing = False
        self._current: _Call[Any] | None = None

    @property
    def closed(self) -> bool:
        return self._closing

    @property
    def broken(self) -> bool:
        return self._closing or self.conn.broken or self.conn.closed

    def start(
        self, fn: Callable[[psycopg.Connection[Any]], T], *, thread_name: str | None = None
    ) -> _Call[T]:
        """Run ``fn(conn)`` in a worker thread now; the caller holds ``mutex`` and has
        waited for the previous call.

        Raises:
            StorageUnavailable: the session is closed.
        """
        with self._guard:
            if self._closing:
                raise StorageUnavailable("the cluster link is closed")
            self._busy = True
        call: _Call[T] = _Call()
        self._current = call
        conn, token = self.conn, self._token

        def deliver(result: outcome.Outcome[T]) -> None:
            # In the worker thread, after fn returned.
            with self._guard:
                self._busy = False
                close = self._closing
            if close:
                _close_quietly(conn)
            with contextlib.suppress(trio.RunFinishedError):
                token.run_sync_soon(call.finish, result)

        trio.lowlevel.start_thread_soon(partial(fn, conn), deliver, name=thread_name)
        return call

    async def call(self, fn: Callable[[psycopg.Connection[Any]], T], *, abandon: bool = False) -> T:
        """Run ``fn(conn)`` in a worker thread and return its result; the caller holds
        ``mutex``. Cancelled, it waits for the thread unless ``abandon``.

        Raises:
            StorageError: what ``fn`` raised, translated (a lost connection:
                StorageUnavailable); or the session is closed.
        """
        previous = self._current
        if previous is not None:
            await previous.done.wait()  # an abandoned call may still hold the connection
        call = self.start(fn)
        if abandon:
            await call.done.wait()
        else:
            with trio.CancelScope(shield=True):
                await call.done.wait()
        return call.unwrap()

    async def aclose(self) -> None:
        """Close the connection, or have the call in flight close it when it returns
        (waiting up to ``CLOSE_WAIT_SECONDS`` for that). Never raises."""
        with self._guard:
            if self._closing:
                return
            self._closing = True
            busy = self._busy
        with trio.CancelScope(shield=True):
            if not busy:
                await trio.to_thread.run_sync(_close_quietly, self.conn)
            elif self._current is not None:
                with trio.move_on_after(CLOSE_WAIT_SECONDS):
                    await self._current.done.wait()


def _connect(
    url: str, role: str, connect_timeout: float, idle_session_timeout: float | None
) -> psycopg.Connection[Any]:
    given = conninfo_to_dict(url)
    kwargs: dict[str, Any] = {k: v for k, v in _TCP_SETTINGS.items() if k not in given}
    if "connect_timeout" not in given:
        kwargs["connect_timeout"] = max(1, round(connect_timeout))
    if "application_name" not in given:
        # What operators see in pg_stat_activity (and pg_locks through the pid).
        kwargs["application_name"] = f"syncplayd cluster {role}"
    conn = psycopg.connect(url, autocommit=True, **kwargs)
    try:
        if idle_session_timeout is not None:
            ms = max(1, round(idle_session_timeout * 1000))
            conn.execute(sql.SQL("SET idle_session_timeout = {}").format(sql.Literal(ms)))
    except BaseException:
        conn.close()
        raise
    return conn


def _scalar(conn: psycopg.Connection[Any], query: str, params: tuple[object, ...]) -> Any:
    row = conn.execute(query, params).fetchone()
    return None if row is None else row[0]


def _unlock_all(conn: psycopg.Connection[Any]) -> None:
    conn.execute("SELECT pg_advisory_unlock_all()")


def _listen(conn: psycopg.Connection[Any], channel: str) -> None:
    conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))


def _unlisten(conn: psycopg.Connection[Any], channel: str) -> None:
    conn.execute(sql.SQL("UNLISTEN {}").format(sql.Identifier(channel)))
    # What arrived before the UNLISTEN took effect must not reach the next listener.
    for _ in conn.notifies(timeout=0):
        pass


def _pump(
    conn: psycopg.Connection[Any],
    channel: str,
    send: trio.MemorySendChannel[str],
    stop: threading.Event,
    token: trio.lowlevel.TrioToken,
) -> None:
    """Hand the channel's payloads to trio, in order, until ``stop`` is set or the
    receiving side is closed (in a worker thread)."""
    try:
        while not stop.is_set():
            # A short timeout: the thread must notice ``stop`` promptly.
            for note in conn.notifies(timeout=POLL_SECONDS):
                if note.channel != channel:  # pragma: no cover - left from an earlier LISTEN
                    continue
                try:
                    # Blocks while the channel is full: backpressure, not an unbounded queue.
                    trio.from_thread.run(send.send, note.payload, trio_token=token)
                except (trio.BrokenResourceError, trio.RunFinishedError, trio.Cancelled):
                    return
                if stop.is_set():
                    return
    finally:
        # Scheduled after every payload was sent: the consumer reads them all, then the end.
        with contextlib.suppress(trio.RunFinishedError):
            token.run_sync_soon(send.close)


class ClusterLink:
    """This node's lock and listen connections (see the module docstring).

    Use :meth:`open`; :meth:`aclose` when done (which releases every lock).
    """

    def __init__(self, locks: _Session, listener: _Session) -> None:
        self._locks = locks
        self._listener = listener
        self._held: set[UUID] = set()
        self._lost = False
        self._closed = False
        self._stops: set[threading.Event] = set()
        #: The lock connection's server process id (``pg_backend_pid()``): its row in
        #: ``pg_stat_activity`` and ``pg_locks``.
        self.backend_pid: int = locks.conn.info.backend_pid

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        connect_timeout: float = CONNECT_TIMEOUT_SECONDS,
        idle_session_timeout: float | None = None,
    ) -> ClusterLink:
        """Open both connections to the PostgreSQL database at ``url``.

        Args:
            url: a libpq URL or conninfo string.
            connect_timeout: seconds for each connection attempt (unless the URL says).
            idle_session_timeout: seconds after which the *server* ends the lock
                connection's session if it ran no statement (PostgreSQL 14+), releasing
                its locks: the bound on a partitioned node's hold on its rooms. Ping more
                often than that. ``None``: no such limit.

        Raises:
            StorageUnavailable: the server cannot be reached.
            StorageError: it refused a setting.
        """

        def connect_both() -> tuple[psycopg.Connection[Any], psycopg.Connection[Any]]:
            locks = _connect(url, "locks", connect_timeout, idle_session_timeout)
            try:
                listener = _connect(url, "listen", connect_timeout, None)
            except BaseException:
                locks.close()
                raise
            return locks, listener

        try:
            locks, listener = await trio.to_thread.run_sync(connect_both)
        except psycopg.Error as exc:
            raise translate_error(exc) from exc
        return cls(_Session(locks), _Session(listener))

    # -- state ----------------------------------------------------------------------------
    @property
    def held(self) -> frozenset[UUID]:
        """The rooms whose locks this link holds; empty once the connection is lost or
        the link closed (whatever the server has yet to notice)."""
        return frozenset(self._held)

    @property
    def lost(self) -> bool:
        """Whether the lock connection failed (or a ping timed out): every lock must be
        taken for lost, and the link replaced."""
        return self._lost

    def _mark_lost(self) -> None:
        self._lost = True
        self._held.clear()

    def _check_usable(self) -> None:
        if self._closed:
            raise StorageUnavailable("the cluster link is closed")
        if self._lost:
            raise StorageUnavailable("the cluster link lost its lock connection")

    async def _on_locks(self, fn: Callable[[psycopg.Connection[Any]], T]) -> T:
        """Run ``fn`` on the lock connection (the caller holds its mutex); a failure that
        broke the connection marks the link lost."""
        self._check_usable()
        try:
            return await self._locks.call(fn)
        except StorageError:
            if self._locks.broken:
                self._mark_lost()
            raise

    # -- locks ----------------------------------------------------------------------------
    async def try_lock(self, room_id: UUID) -> bool:
        """Take the room's lock if no other session holds it; ``True`` if this link holds
        it now (taking it again is a no-op).

        Raises:
            StorageUnavailable: the link is closed or lost, or the connection failed.
        """
        async with self._locks.mutex:
            # Checked under the mutex: session locks stack, and a second take would need a
            # second unlock that nobody would make.
            self._check_usable()
            if room_id in self._held:
                return True
            got = await self._on_locks(
                partial(
                    _scalar, query="SELECT pg_try_advisory_lock(%s)", params=(lock_key(room_id),)
                )
            )
            if got and not self._closed and not self._lost:
                self._held.add(room_id)
            return bool(got)

    async def unlock(self, room_id: UUID) -> bool:
        """Release the room's lock; ``False`` if this link did not hold it. A link whose
        connection is lost holds nothing (the server frees its locks with the session):
        then ``False`` too, never an error."""
        async with self._locks.mutex:
            if room_id not in self._held:
                return False
            self._held.discard(room_id)
            try:
                released = await self._on_locks(
                    partial(
                        _scalar, query="SELECT pg_advisory_unlock(%s)", params=(lock_key(room_id),)
                    )
                )
            except StorageError:
                # Still open and working after an error it did not cause? Then the lock may
                # be held: the link can no longer say what it holds.
                self._mark_lost()
                return False
            return bool(released)

    # The timeout is the question asked (an answer in time?), not a deadline to raise on.
    async def ping(self, timeout: float) -> bool:  # noqa: ASYNC109
        """Whether the lock connection answers ``SELECT 1`` within ``timeout`` seconds.

        ``False`` on any error or timeout, and from then on: the node must assume it lost
        every lock (see the module docstring).
        """
        if self._lost or self._closed:
            return False
        with trio.move_on_after(timeout):
            async with self._locks.mutex:
                try:
                    await self._locks.call(
                        partial(_scalar, query="SELECT 1", params=()), abandon=True
                    )
                except StorageError:
                    pass
                else:
                    return True
        self._mark_lost()
        return False

    # -- notifications ----------------------------------------------------------------------
    async def notify(self, channel: str, payload: str) -> None:
        """Send ``payload`` to the listeners of ``channel`` (on every node, this one too).

        Raises:
            ValueError: the payload is over :data:`MAX_PAYLOAD_BYTES` in UTF-8 or holds a
                NUL; the channel name is empty, too long or holds a NUL.
            StorageUnavailable: the link is closed or lost, or the connection failed.
        """
        _check_channel(channel)
        size = len(payload.encode())
        if size > MAX_PAYLOAD_BYTES:
            raise ValueError(
                f"a notification payload is at most {MAX_PAYLOAD_BYTES} bytes, not {size}"
            )
        if "\0" in payload:
            raise ValueError("a notification payload cannot hold a NUL character")
        async with self._locks.mutex:
            await self._on_locks(
                partial(_scalar, query="SELECT pg_notify(%s, %s)", params=(channel, payload))
            )

    @asynccontextmanager
    async def listen(
        self, channel: str, *, buffer: int = LISTEN_BUFFER
    ) -> AsyncIterator[trio.MemoryReceiveChannel[str]]:
        """LISTEN on ``channel`` for the block; iterate what it yields for the payloads, in
        the order they were sent.

        One listener per link at a time. Cancelled, the block ends within about
        ``POLL_SECONDS`` (the thread notices, then UNLISTENs, given at most
        ``UNLISTEN_WAIT_SECONDS``). If the connection fails, the iteration ends and
        leaving the block raises :class:`StorageUnavailable`; :meth:`aclose` ends the
        iteration quietly.

        Raises:
            RuntimeError: the link is already listening.
            ValueError: the channel name is empty, too long or holds a NUL.
            StorageUnavailable: the link is closed, or the connection failed.
        """
        _check_channel(channel)
        session = self._listener
        if session.mutex.locked():  # by another listener: nothing else takes it
            raise RuntimeError("this cluster link is listening already")
        session.mutex.acquire_nowait()
        try:
            if self._closed:
                raise StorageUnavailable("the cluster link is closed")
            await session.call(partial(_listen, channel=channel))
            send, receive = trio.open_memory_channel[str](buffer)
            stop = threading.Event()
            self._stops.add(stop)
            pump = session.start(
                partial(
                    _pump,
                    channel=channel,
                    send=send,
                    stop=stop,
                    token=trio.lowlevel.current_trio_token(),
                ),
                thread_name=LISTEN_THREAD_NAME,
            )
            try:
                async with receive:  # closed first: a thread blocked handing over gives up
                    yield receive
            finally:
                stop.set()
                self._stops.discard(stop)
                with trio.CancelScope(shield=True):
                    await pump.done.wait()
                    await self._unlisten(session, channel)
            if not self._closed:
                pump.unwrap()  # the connection failed: StorageUnavailable
        finally:
            session.mutex.release()

    async def _unlisten(self, session: _Session, channel: str) -> None:
        if session.broken:
            return
        with trio.move_on_after(UNLISTEN_WAIT_SECONDS):
            try:
                await session.call(partial(_unlisten, channel=channel), abandon=True)
            except StorageError:
                pass
            else:
                return
        # Still listening, as far as the server knows: close rather than let PostgreSQL
        # queue notifications for a connection nobody reads.
        await session.aclose()

    # -- closing ------------------------------------------------------------------------------
    async def aclose(self) -> None:
        """Release every lock of the link's session, then close both connections.

        A listener's iteration ends. A call in flight (a ping abandoned on a silent
        network) is given ``CLOSE_WAIT_SECONDS`` per connection, after which its thread
        closes its connection when it returns. Never raises.
        """
        if self._closed:
            return
        self._closed = True
        self._held.clear()
        for stop in self._stops:
            stop.set()
        with trio.CancelScope(shield=True):
            # The locks are what others wait for: first, and released explicitly. A closed
            # socket alone frees them only once the server process has noticed, a moment
            # after close() returns; a node handing a room over must not return before.
            if not self._lost and not self._locks.broken:
                with trio.move_on_after(CLOSE_WAIT_SECONDS):
                    async with self._locks.mutex:
                        with contextlib.suppress(StorageError):
                            await self._locks.call(_unlock_all, abandon=True)
            await self._locks.aclose()
            await self._listener.aclose()
