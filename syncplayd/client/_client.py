"""The client's supervisor: the first connection, reconnects, and the context manager.

Theory of operation
-------------------
:func:`open_sync_client` runs two tasks in its own nursery: the scheduler (the
player's scheduled changes; it outlives connections) and the supervisor
(:meth:`SyncClient._run`). The supervisor opens the first connection and
reports "started" once it is joined; if that fails, :func:`open_sync_client`
raises (but a ``moved``, "another node runs this room", is followed: the next
attempt goes where the proxy now sends the room). Afterwards, whenever a
connection ends it reconnects (``resume=<session id>``) after the ``retry_after``
of the server's ``closing`` if it gave one, else after a jittered exponential
backoff, unless the server said ``closing`` with a final reason
(:data:`FINAL_CLOSE_REASONS`), :meth:`~syncplayd.client.SyncClient.leave` was
called, ``auto_reconnect`` is off, a rejoin was refused (other than "not now" or
"not here": :data:`TRANSIENT_REFUSALS`, which counts as a failed attempt), or
``reconnect_attempts`` failed in a row. Then the client is *closed for good*: the
events channel ends, waiters and commands fail with
:class:`~syncplayd.client.SyncClosed`.
"""

from __future__ import annotations

import logging
import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from urllib.parse import quote, urlsplit, urlunsplit
from uuid import UUID

import msgspec
import trio
from trio_websocket import (
    ConnectionClosed,
    HandshakeError,
    WebSocketConnection,
    open_websocket_url,
)

from syncplayd.clocks import monotonic
from syncplayd.core.protocol import PROTOCOL_VERSION, Hello, Join, Welcome

from ._api import ClientCore
from ._connection import Connection
from ._options import (
    FINAL_CLOSE_REASONS,
    TRANSIENT_REFUSALS,
    ClientOptions,
    SyncConnectionError,
    SyncRefused,
    backoff_delay,
    retry_delay,
)
from ._player import LocalPlayer

__all__ = ["SyncClient", "open_sync_client", "room_url"]

log = logging.getLogger("syncplayd.client")


def room_url(url: str, room_id: str) -> str:
    """``url`` naming the room in its query (``?room=<id>``), the rest of the query kept.

    A proxy in front of several nodes routes by it (docs/protocol.md §2.5), so it is
    the canonical spelling of the id, replacing any ``room`` already there. A
    ``room_id`` that is no UUID is left out: the server refuses it at ``join``, which
    says why better than a refused upgrade would.
    """
    try:
        room = str(UUID(room_id))
    except ValueError:
        return url
    parts = urlsplit(url)
    kept = [
        part for part in parts.query.split("&") if part and part.partition("=")[0].lower() != "room"
    ]
    query = "&".join([*kept, f"room={quote(room)}"])
    return urlunsplit(parts._replace(query=query))


class SyncClient(ClientCore):
    """A participant of one room; open it with :func:`open_sync_client`.

    The arguments are those of :func:`open_sync_client`. The public API (clock,
    room state, events, commands) is inherited from ``ClientCore``.
    """

    def __init__(
        self,
        url: str,
        token: str,
        *,
        room_id: str,
        password: str | None = None,
        invitation_code: str | None = None,
        clock: Callable[[], float] | None = None,
        clock_skew: float = 0.0,
        auto_reconnect: bool = True,
        header_auth: bool = True,
        player: LocalPlayer | None = None,
        options: ClientOptions | None = None,
    ) -> None:
        base_clock = clock or monotonic
        super().__init__(lambda: base_clock() + clock_skew, player, options or ClientOptions())
        self.url = room_url(url, room_id)
        """The websocket URL connected to: the one given, naming the room (``?room=``)."""
        self.room_id = room_id
        self.auto_reconnect = auto_reconnect
        self.welcome: Welcome | None = None
        """The latest ``welcome`` (who the server says this user is)."""
        self._headers = [(b"authorization", f"Bearer {token}".encode())] if header_auth else None
        self._hello = Hello(
            protocol=PROTOCOL_VERSION,
            token=None if header_auth else token,
            client=self._options.client_name,
        )
        self._join = Join(room_id=room_id, password=password, invitation_code=invitation_code)
        self._random = random.Random()  # noqa: S311 - backoff jitter, not a secret  # nosec B311

    async def _run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Connect (raising if the first connection fails), then reconnect until done."""
        try:
            await self._connect_first(task_status.started)
            failures = 0
            while self._should_reconnect():
                if failures >= self._options.reconnect_attempts:
                    self._failure = SyncConnectionError(
                        f"gave up after {failures} failed reconnect attempts"
                    )
                    return
                rejoined = False

                def mark() -> None:
                    nonlocal rejoined
                    rejoined = True
                    self.reconnects += 1

                # leave() cancels this scope: no more sleeping, no rejoining after it.
                with trio.CancelScope() as self._backoff_scope:
                    await trio.sleep(self._reconnect_delay(failures))
                    try:
                        await self._connect(self.session_id, mark)
                    except SyncRefused as exc:
                        if exc.code not in TRANSIENT_REFUSALS:
                            self._failure = exc
                            return
                        # The server is there but its database is not: try again.
                        log.info("rejoin refused for now (%s): retrying", exc)
                    except SyncConnectionError as exc:
                        log.info("reconnect failed: %s", exc)
                self._backoff_scope = None
                failures = 0 if rejoined else failures + 1
        finally:
            self._finish()

    async def _connect_first(self, on_joined: Callable[[], None]) -> None:
        """The first connection (see :meth:`_connect`). A ``moved`` is no refusal of the
        user: the node said another one runs the room, so it is tried again, as often as
        ``reconnect_attempts`` allows."""
        moves = 0
        while True:
            try:
                await self._connect(None, on_joined)
                return
            except SyncRefused as exc:
                if exc.code != "moved" or moves >= self._options.reconnect_attempts:
                    raise
                log.info("room moved (%s): joining again", exc.message)
            await trio.sleep(self._reconnect_delay(moves))
            moves += 1

    def _reconnect_delay(self, failures: int) -> float:
        """The wait before the next attempt: the ``retry_after`` of the last ``closing``
        (once), or else the backoff after ``failures`` failed attempts in a row."""
        hint, self._retry_after = self._retry_after, None
        if hint is None:
            return backoff_delay(failures, self._options, self._random)
        return retry_delay(hint, self._options, self._random)

    def _should_reconnect(self) -> bool:
        if not self.auto_reconnect or self._leaving:
            return False
        return self.close_reason not in FINAL_CLOSE_REASONS

    async def _connect(self, resume: str | None, on_joined: Callable[[], None]) -> None:
        """One connection: returns when an established one ends; raises if it never joined.

        Raises:
            SyncRefused: ``hello`` or ``join`` was refused.
            SyncConnectionError: no connection, or it broke before ``joined``.
        """
        joined = False
        opened: WebSocketConnection | None = None
        try:
            async with open_websocket_url(
                self.url,
                extra_headers=self._headers,
                connect_timeout=self._options.connect_timeout,
                disconnect_timeout=self._options.disconnect_timeout,
            ) as ws:
                opened = ws
                connection = Connection(self, ws)
                join = msgspec.structs.replace(self._join, resume=resume)
                with trio.fail_after(self._options.request_timeout):
                    await connection.join(self._hello, join)
                self.welcome = connection.welcome
                joined = True
                on_joined()
                await connection.serve()
        except (HandshakeError, ConnectionClosed, OSError, trio.TooSlowError) as exc:
            if not joined:
                raise SyncConnectionError(f"cannot join via {self.url}: {exc!r}") from exc
            log.info("connection lost: %r", exc)
        finally:
            if opened is not None:
                await _release_socket(opened)


async def _release_socket(ws: WebSocketConnection) -> None:
    """Close the TCP stream under ``ws`` (idempotent).

    STACK_NOTES trap 7: when the server closes first, trio-websocket's client
    never closes its socket (it leaks until garbage collection, with a
    ``ResourceWarning``). A private attribute, hence the defensive lookup.
    """
    stream = getattr(ws, "_stream", None)
    if isinstance(stream, trio.abc.AsyncResource):
        await trio.aclose_forcefully(stream)


@asynccontextmanager
async def open_sync_client(
    url: str,
    token: str,
    *,
    room_id: str,
    password: str | None = None,
    invitation_code: str | None = None,
    clock: Callable[[], float] | None = None,
    clock_skew: float = 0.0,
    auto_reconnect: bool = True,
    header_auth: bool = True,
    player: LocalPlayer | None = None,
    options: ClientOptions | None = None,
) -> AsyncIterator[SyncClient]:
    """Join ``room_id`` through the syncplayd websocket at ``url`` and stay in step.

    Args:
        url: the websocket URL (``ws://`` or ``wss://``).
        token: the user's bearer token (JWT).
        room_id: the room to join.
        password: the room's password, if it has one.
        invitation_code: an invitation code, for a private room.
        clock: the local clock (default :func:`syncplayd.clocks.monotonic`, trio's clock).
        clock_skew: a fixed offset added to ``clock`` (to test skewed clocks).
        auto_reconnect: reconnect (resuming the session) when the socket drops.
        header_auth: send the token in the ``Authorization`` header, else in ``hello``.
        player: the local player to drive (default: a plain :class:`LocalPlayer`).
        options: tuning, see :class:`ClientOptions`.

    Yields:
        The joined :class:`SyncClient`. Leaving the block disconnects without
        leaving the room (the server sees a dropped connection); call
        :meth:`SyncClient.leave` first to leave it.

    The URL gets the room in its query (``?room=<room_id>``, see :func:`room_url`), by
    which a proxy in front of several nodes sends the room's members to one of them. A
    node that does not run the room closes with ``moved``: the client comes back (after
    the ``retry_after`` it was given), on the first connection as on later ones.

    Raises:
        SyncRefused: the server refused ``hello`` or ``join`` (``code`` says why).
        SyncConnectionError: the server could not be reached or did not answer.
    """
    client = SyncClient(
        url,
        token,
        room_id=room_id,
        password=password,
        invitation_code=invitation_code,
        clock=clock,
        clock_skew=clock_skew,
        auto_reconnect=auto_reconnect,
        header_auth=header_auth,
        player=player,
        options=options,
    )
    # Errors are re-raised outside the nursery so that they are not wrapped in an
    # exception group (trio-websocket's own context managers do the same).
    error: BaseException | None = None
    async with trio.open_nursery() as nursery:
        nursery.start_soon(client._scheduler)
        try:
            await nursery.start(client._run)
        except BaseException as exc:  # noqa: BLE001 - re-raised below, unwrapped
            error = exc
            nursery.cancel_scope.cancel()
        else:
            try:
                yield client
            except BaseException as exc:  # noqa: BLE001 - re-raised below, unwrapped
                error = exc
            finally:
                nursery.cancel_scope.cancel()
    if error is not None:
        raise error
