"""What one client keeps across its connections, and how received messages change it.

No network I/O here: the connection (``_connection.py``) attaches itself, feeds
every decoded message to :meth:`ClientState._dispatch`, and detaches when its
socket ends. The scheduler task (:meth:`ClientState._scheduler`) outlives
connections: the local player keeps following the room while the client
reconnects.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import trio
from trio_websocket import WebSocketConnection

from syncplayd.core.clock import ClockEstimator, DriftRate, DriftSeek
from syncplayd.core.protocol import (
    ChatAck,
    Closing,
    ErrorOut,
    Joined,
    PlaybackChanged,
    PlaybackWire,
    PresenceBatch,
    ServerMessage,
)

from ._events import EventHub
from ._options import ClientOptions, SyncClosed, SyncConnectionError, SyncError, SyncRefused
from ._player import LocalPlayer, drift_action
from ._room import RoomView

__all__ = ["ClientState"]

log = logging.getLogger("syncplayd.client")


@dataclass(eq=False)
class _Ack:
    event: trio.Event = field(default_factory=trio.Event)
    message_id: str | None = None
    error: SyncError | None = None


class ClientState:
    """The client's clock estimate, room view, player, events and pending acks."""

    def __init__(
        self,
        local_clock: Callable[[], float],
        player: LocalPlayer | None,
        options: ClientOptions,
    ) -> None:
        self.local_time: Callable[[], float] = local_clock
        """The local clock (the ``clock`` argument plus ``clock_skew``)."""
        self.player: LocalPlayer = player or LocalPlayer(clock=local_clock)
        """The local player the room drives (the client always passes explicit times)."""
        self.reconnects = 0
        """How many times the client came back after a dropped connection."""
        self.last_rtt: float | None = None
        """The round trip of the latest ping, seconds (also sent in heartbeats)."""
        self._options = options
        self._estimator = ClockEstimator(
            fast_interval=options.fast_ping_interval,
            slow_interval=options.slow_ping_interval,
            fast_samples=options.fast_ping_count,
        )
        self._view = RoomView(options.chat_history)
        self._hub = EventHub(options.events_capacity, options.history_size)
        self._acks: dict[str, _Ack] = {}  # one per chat() call in progress
        self._ws: WebSocketConnection | None = None
        self._conn_scope: trio.CancelScope | None = None
        self._backoff_scope: trio.CancelScope | None = None
        self._clock_sampled = trio.Event()  # set (and replaced) at every clock sample
        self._player_changed = trio.Event()  # set (and replaced) when the player may have moved
        #: The item whose end was reported, while the player stays there (``report_end``).
        self._end_reported: str | None = None
        self._attached = trio.Event()  # set while a connection is attached (and once closed)
        self._detached = trio.Event()
        self._done = trio.Event()
        self._wake = trio.Event()
        self._leaving = False
        self._closed = False
        self._failure: SyncError | None = None
        self._last_closing: Closing | None = None
        #: The last ``closing``'s ``retry_after``, until a reconnect waits it out.
        self._retry_after: float | None = None

    # -- messages ----------------------------------------------------------------------
    def _install(self, joined: Joined) -> None:
        """A (re)join snapshot: replace the room view, put the player on its playback."""
        self._view.install(joined)
        self._schedule(joined.playback, joined.server_time, "joined", force=True)

    def _dispatch(self, message: ServerMessage) -> None:
        """Fold a received message into the state, the player, the acks and the events."""
        if isinstance(message, PresenceBatch):
            # Unpacked here, before the view and the hub: code reading the client's
            # events sees the same presences, in the same order, as if sent one by one.
            for presence in message.events:
                self._dispatch(presence)
            return
        playback = self._view.apply(message)
        if playback is not None and isinstance(message, PlaybackChanged):
            self._schedule(playback, message.execute_at, f"playback:{message.reason}")
        elif playback is not None:  # a sync command: seek to the live position now
            self._schedule(playback, self._estimator.server_time(self.local_time()), "sync")
        elif isinstance(message, ChatAck):
            self._resolve_ack(message.client_id, message.message_id, None)
        elif isinstance(message, ErrorOut) and message.ref is not None:
            self._resolve_ack(message.ref, None, SyncRefused(message.code, message.message))
        elif isinstance(message, Closing):
            self._last_closing = message
            self._retry_after = message.retry_after
        self._hub.publish(message)

    def _resolve_ack(
        self, client_id: str | None, message_id: str | None, error: SyncError | None
    ) -> None:
        ack = self._acks.get(client_id) if client_id is not None else None
        if ack is None or ack.event.is_set():
            return
        ack.message_id, ack.error = message_id, error
        ack.event.set()

    # -- the player --------------------------------------------------------------------
    def _server_to_local(self, server_time: float) -> float:
        return server_time - self._estimator.offset

    def _schedule(
        self, playback: PlaybackWire, execute_at: float, reason: str, *, force: bool = False
    ) -> None:
        """Hand ``playback`` to the player for ``execute_at``; apply it now if already due."""

        def apply() -> None:
            self.player.apply_playback(
                playback, execute_at, self._server_to_local, reason=reason, force=force
            )
            pending, now = self.player.pending_at, self.local_time()
            if pending is not None and pending <= now:
                self.player.update(now)

        self._player_call(apply)
        self._wake.set()
        self._tell_player_changed()

    def _tell_player_changed(self) -> None:
        self._player_changed.set()
        self._player_changed = trio.Event()

    def _correct_drift(self) -> None:
        """Compare the player with the room and nudge its rate (or, if asked, resync it).

        Beyond the threshold the rate stays nominal: the server's ``sync`` command
        (answering the next heartbeat) seeks, unless ``options.local_resync``.
        """
        settings, playback = self._view.settings, self._view.playback
        if settings is None or playback is None:
            return
        now = self.local_time()
        server_now = self._estimator.server_time(now)
        action = drift_action(
            self.player, playback, now=now, server_now=server_now, settings=settings
        )
        if isinstance(action, DriftSeek) and self._options.local_resync:
            log.info("drifted %.3f s from the room: resyncing", action.offset)
            self._schedule(playback, server_now, "resync")
        elif isinstance(action, DriftRate):
            rate = action.rate
            self._player_call(lambda: self.player.set_correction(rate, now))
        elif self.player.state_at(now).correction != 1.0:
            self._player_call(lambda: self.player.set_correction(1.0, now))

    def _player_call(self, fn: Callable[[], object]) -> None:
        """Run player code: an adapter's bug is logged, it never kills the connection."""
        try:
            fn()
        except Exception:
            log.exception("the local player failed")

    async def _scheduler(self) -> None:
        """Commit the player's scheduled changes at their local instants (runs for good)."""
        while True:
            self._wake = trio.Event()
            at = self.player.pending_at
            if at is None:
                await self._wake.wait()
            else:
                with trio.move_on_after(max(0.0, at - self.local_time())):
                    await self._wake.wait()
            self._player_call(lambda: self.player.update(self.local_time()))
            self._tell_player_changed()

    # -- connection lifetime -----------------------------------------------------------
    def _attach(self, ws: WebSocketConnection, scope: trio.CancelScope) -> None:
        self._ws, self._conn_scope = ws, scope
        self._detached = trio.Event()
        self._attached.set()

    def _detach(self) -> None:
        self._ws, self._conn_scope = None, None
        self._attached = trio.Event()
        self._detached.set()
        lost = SyncConnectionError("the connection dropped before the chat_ack")
        for client_id in list(self._acks):
            self._resolve_ack(client_id, None, lost)

    def _finish(self) -> None:
        """Close for good: end the channel, fail the waiters and whatever waits to send."""
        if self._closed:
            return
        self._closed = True
        reason = self._last_closing.reason if self._last_closing else None
        if self._leaving:
            message = "left the room"
        elif self._failure is not None:
            message = f"gave up: {self._failure}"
        elif reason is not None:
            message = f"closed by the server: {reason}"
        else:
            message = "the client was closed"
        error = SyncClosed(message, reason)
        self._hub.close(error)
        for client_id in list(self._acks):
            self._resolve_ack(client_id, None, error)
        self._attached.set()
        self._done.set()
