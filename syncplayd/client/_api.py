"""The public API of :class:`~syncplayd.client.SyncClient`: clock, room state, events, commands.

Nothing here reads the network: commands go out on the connection that the
supervisor (``_client.py``) attaches, waiting for one while the client
reconnects.
"""

from __future__ import annotations

import secrets
from collections import deque
from collections.abc import Mapping

import msgspec
import trio
from trio_websocket import ConnectionClosed

from syncplayd.core.protocol import (
    Buffering,
    Chat,
    ChatEntry,
    ClientMessage,
    Closing,
    Ended,
    Joined,
    Leave,
    Media,
    Member,
    Next,
    Pause,
    Play,
    PlaybackChanged,
    PlaybackWire,
    Previous,
    ProtocolError,
    QueueInfo,
    QueueItemInfo,
    Readiness,
    Ready,
    RoomInfo,
    Seek,
    ServerMessage,
    SetRate,
    SyncSettings,
    decode_client,
)

from ._events import Predicate
from ._options import SyncClosed, SyncConnectionError, SyncError
from ._player import room_position_at
from ._state import ClientState, _Ack

__all__ = ["ClientCore"]


class ClientCore(ClientState):
    """Everything :class:`~syncplayd.client.SyncClient` offers besides connecting."""

    # -- clock -------------------------------------------------------------------------
    def server_time(self) -> float:
        """The estimated server clock now."""
        return self._estimator.server_time(self.local_time())

    def server_to_local(self, server_time: float) -> float:
        """A server time converted to the local clock (with the current offset estimate)."""
        return self._server_to_local(server_time)

    @property
    def clock_offset(self) -> float:
        """Server clock minus local clock, seconds (the min-delay sample's)."""
        return self._estimator.offset

    @property
    def clock_delay(self) -> float | None:
        """The network round trip of the trusted clock sample, seconds."""
        return self._estimator.delay

    async def wait_clock_samples(self, count: int = 5) -> None:
        """Wait until the clock estimate rests on ``count`` ping samples (a settled estimate).

        Bound it with a cancel scope: pings stop while the client is disconnected.
        """
        while self._estimator.count < count:
            await self._clock_sampled.wait()

    @property
    def clock_samples(self) -> int:
        """Clock samples taken on this connection (``welcome`` and ``joined`` count)."""
        return self._estimator.count

    def room_position(self) -> float:
        """The room's live position: the latest playback at the estimated server time
        (never past the item's end)."""
        return room_position_at(self.playback, self.server_time())

    # -- room state --------------------------------------------------------------------
    @property
    def playback(self) -> PlaybackWire:
        """The room's latest playback (possibly scheduled: see ``last_change.execute_at``)."""
        if self._view.playback is None:
            raise RuntimeError("not joined yet")
        return self._view.playback

    @property
    def last_change(self) -> PlaybackChanged | None:
        """The latest ``playback`` message since the last (re)join."""
        return self._view.last_change

    @property
    def joined(self) -> Joined | None:
        """The latest ``joined`` snapshot as received."""
        return self._view.joined

    @property
    def session_id(self) -> str | None:
        """This participant's session id (kept across resumed reconnects)."""
        return self._view.session_id

    @property
    def room(self) -> RoomInfo | None:
        """The room, as of ``joined`` or the latest ``room`` message (``None`` before joining)."""
        return self._view.room

    @property
    def settings(self) -> SyncSettings | None:
        """The room's sync settings, as of ``joined`` or the latest ``room`` message."""
        return self._view.settings

    @property
    def participants(self) -> Mapping[str, Member]:
        """The room's members by user id, kept up to date from ``presence`` (read-only)."""
        return self._view.participants

    @property
    def queue(self) -> QueueInfo | None:
        """The room's play queue, as of ``joined`` or the latest ``queue`` message."""
        return self._view.queue

    @property
    def current_item(self) -> QueueItemInfo | None:
        """The queue item the room plays (``playback.item_id``), if the queue holds it."""
        playback = self._view.playback
        return self._view.item(None if playback is None else playback.item_id)

    @property
    def ended(self) -> bool:
        """Whether the room stands at the end of its item (``playback.ended``)."""
        playback = self._view.playback
        return playback is not None and playback.ended

    @property
    def you(self) -> Member | None:
        """This user's own member entry."""
        return self._view.you

    @property
    def chat_history(self) -> deque[ChatEntry]:
        """The latest chat messages, bounded: the ``joined`` snapshot, then ``chat`` events,
        without the ones deleted since (``chat_deleted``)."""
        return self._view.chat

    @property
    def closing(self) -> Closing | None:
        """The last ``closing`` message received, if any."""
        return self._last_closing

    @property
    def close_reason(self) -> str | None:
        """Why the last ``closing`` message came (``kicked``, ``banned``, ``room-ended``...)."""
        return self._last_closing.reason if self._last_closing else None

    @property
    def connected(self) -> bool:
        """Whether a joined connection is up right now."""
        return self._ws is not None

    @property
    def closed(self) -> bool:
        """Whether the client is closed for good (no more messages, commands fail)."""
        return self._closed

    @property
    def failure(self) -> SyncError | None:
        """Why the client gave up, when it was not a ``closing`` (refused, unreachable)."""
        return self._failure

    # -- events ------------------------------------------------------------------------
    def events(self) -> trio.MemoryReceiveChannel[ServerMessage]:
        """Every server message except ``pong``, in order, on a bounded channel.

        A ``presence_batch`` comes out as its ``presence`` messages, one by one (as
        do :meth:`wait_for` and :attr:`received_count`, which counts each of them).
        One shared channel (one consumer). When it is full the *oldest* message is
        dropped (counted in :attr:`events_dropped`); it ends (``EndOfChannel``)
        once the client is closed for good.
        """
        return self._hub.channel

    @property
    def events_dropped(self) -> int:
        """Messages dropped from :meth:`events` because nobody read them in time."""
        return self._hub.dropped

    @property
    def received_count(self) -> int:
        """The sequence number of the latest message; a mark for ``wait_for(since=...)``."""
        return self._hub.received

    async def wait_for(
        self,
        predicate: Predicate,
        timeout: float = 5.0,  # noqa: ASYNC109 - the helper's documented signature
        *,
        since: int | None = None,
    ) -> ServerMessage:
        """The first received message matching ``predicate``.

        Without ``since``, only messages that arrive after the call count. A reply can
        beat the call, so take a mark before acting::

            mark = client.received_count
            await client.play()
            msg = await client.wait_for(lambda m: isinstance(m, PlaybackChanged), since=mark)

        Raises:
            TimeoutError: nothing matched within ``timeout`` seconds.
            SyncClosed: the client closed for good first.
        """
        return await self._hub.wait_for(predicate, timeout, since=since)

    # -- commands ----------------------------------------------------------------------
    async def play(self, position: float | None = None) -> None:
        """Ask the room to play (from ``position``, default: where it is)."""
        await self._command(Play(position=position))

    async def pause(self, position: float | None = None) -> None:
        """Ask the room to pause (at ``position``, default: where it is)."""
        await self._command(Pause(position=position))

    async def seek(self, position: float) -> None:
        """Ask the room to seek to ``position`` seconds."""
        await self._command(Seek(position=position))

    async def set_rate(self, rate: float) -> None:
        """Ask the room to play at ``rate`` (0.25 to 4)."""
        await self._command(SetRate(rate=rate))

    async def buffering(self, position: float | None = None) -> None:
        """Tell the room this player is buffering (the room waits for it)."""
        await self._command(Buffering(position=position))

    async def ready(self, position: float | None = None) -> None:
        """Tell the room this player can play (after loading, after buffering)."""
        await self._command(Ready(position=position))

    async def media(self, duration: float | None, item_id: str | None = None) -> None:
        """Tell the room the length of ``item_id`` (default: the item the room plays) as the
        player found it; the first trustworthy value of the item's is kept."""
        await self._command(Media(item_id=self._item(item_id), duration=duration))

    async def report_ended(self, item_id: str | None = None) -> None:
        """Tell the room this player reached the end of ``item_id`` (default: the current
        item). The client does so by itself unless ``options.report_end`` is off."""
        await self._command(Ended(item_id=self._item(item_id)))

    async def next(self, current_item_id: str | None = None) -> None:
        """Ask for the next queue item. ``current_item_id`` (default: the queue's current item)
        is the item you see playing: if the room moved on meanwhile, nothing changes."""
        await self._command(Next(current_item_id=self._current(current_item_id)))

    async def previous(self, current_item_id: str | None = None) -> None:
        """Ask for the previous queue item (see :meth:`next`)."""
        await self._command(Previous(current_item_id=self._current(current_item_id)))

    async def set_ready(self, ready: bool = True) -> None:
        """Say whether this user is ready ("I'm ready"); every pause clears it."""
        await self._command(Readiness(ready=ready))

    def _item(self, item_id: str | None) -> str:
        found = item_id if item_id is not None else self.playback.item_id
        if found is None:
            raise ValueError("the room plays no queue item")
        return found

    def _current(self, item_id: str | None) -> str:
        if item_id is not None:
            return item_id
        queue = self._view.queue
        if queue is not None and queue.current_item_id is not None:
            return queue.current_item_id
        return self._item(None)

    async def chat(self, text: str) -> str:
        """Post a chat message; returns its id from the server's ``chat_ack``.

        Raises:
            SyncRefused: the server answered an ``error`` referring to it.
            SyncConnectionError: the connection dropped before the ack (the message
                may or may not have been stored).
            TimeoutError: no ack within ``options.request_timeout``.
        """
        client_id = f"c-{secrets.token_hex(8)}"
        ack = self._acks[client_id] = _Ack()
        try:
            await self._command(Chat(message=text, client_id=client_id))
            with trio.move_on_after(self._options.request_timeout):
                await ack.event.wait()
        finally:
            del self._acks[client_id]
        if ack.error is not None:
            raise ack.error
        if ack.message_id is None:
            raise TimeoutError("no chat_ack in time")
        return ack.message_id

    async def leave(self) -> None:
        """Leave the room (not just disconnect) and close the client for good."""
        self._leaving = True
        ws = self._ws
        if ws is not None:
            try:
                await ws.send_message(msgspec.json.encode(Leave()).decode())
                with trio.move_on_after(self._options.request_timeout):
                    await self._detached.wait()  # the server answers closing "left"
            except ConnectionClosed:
                pass
        for scope in (self._conn_scope, self._backoff_scope):
            if scope is not None:
                scope.cancel()
        with trio.move_on_after(self._options.disconnect_timeout + 1.0):
            await self._done.wait()

    async def _command(self, message: ClientMessage) -> None:
        data = msgspec.json.encode(message)
        try:
            decode_client(data)  # the server's own validation, before anything is sent
        except ProtocolError as exc:
            raise ValueError(f"invalid {type(message).__name__}: {exc.message}") from None
        with trio.move_on_after(self._options.request_timeout):
            while self._ws is None and not self._closed:
                await self._attached.wait()
        if self._closed:
            raise SyncClosed("the client is closed", self.close_reason)
        if self._ws is None:
            raise SyncConnectionError("not connected (still reconnecting)")
        try:
            await self._ws.send_message(data.decode())
        except ConnectionClosed as exc:
            raise SyncConnectionError("the connection dropped while sending") from exc
