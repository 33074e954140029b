"""What the client knows about its room, kept up to date from server messages (no I/O)."""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from types import MappingProxyType

from syncplayd.core.protocol import (
    ChatDeleted,
    ChatEntry,
    ChatOut,
    Closing,
    Joined,
    Member,
    PlaybackChanged,
    PlaybackWire,
    Presence,
    PresenceBatch,
    QueueChanged,
    QueueInfo,
    QueueItemInfo,
    RoomChanged,
    RoomInfo,
    ServerMessage,
    SyncCommand,
    SyncSettings,
)

__all__ = ["RoomView"]


class RoomView:
    """The ``joined`` snapshot plus the changes broadcast since (``joined`` itself stays
    as received; ``room``, ``settings``, the members, the queue and the chat follow the
    changes).

    Sizes are bounded by the server (one :class:`Member` per user of the room) or
    here (``chat_history`` messages).
    """

    def __init__(self, chat_history: int) -> None:
        self.joined: Joined | None = None
        self.playback: PlaybackWire | None = None
        self.last_change: PlaybackChanged | None = None
        self.closing: Closing | None = None
        self.chat: deque[ChatEntry] = deque(maxlen=chat_history)
        self._room: RoomInfo | None = None
        self._settings: SyncSettings | None = None
        self._members: dict[str, Member] = {}
        self._you: Member | None = None
        self._queue: QueueInfo | None = None

    # -- read side ---------------------------------------------------------------------
    @property
    def session_id(self) -> str | None:
        """This connection's session id (``None`` before the first ``joined``)."""
        return self.joined.session_id if self.joined else None

    @property
    def settings(self) -> SyncSettings | None:
        """The room's sync settings: from ``joined``, then from each ``room`` message."""
        return self._settings

    @property
    def room(self) -> RoomInfo | None:
        """The room: from ``joined``, then from each ``room`` message (``None`` before)."""
        return self._room

    @property
    def queue(self) -> QueueInfo | None:
        """The room's play queue: from ``joined``, then from each ``queue`` message."""
        return self._queue

    def item(self, item_id: str | None) -> QueueItemInfo | None:
        """The queue's item ``item_id``, if the queue holds it."""
        if self._queue is None or item_id is None:
            return None
        return next((item for item in self._queue.items if item.id == item_id), None)

    @property
    def participants(self) -> Mapping[str, Member]:
        """Members by user id, read-only and live."""
        return MappingProxyType(self._members)

    @property
    def you(self) -> Member | None:
        """This user's own :class:`Member` entry."""
        return self._you

    # -- write side --------------------------------------------------------------------
    def install(self, joined: Joined) -> None:
        """Replace everything with a (re)join snapshot."""
        self.joined = joined
        self.playback = joined.playback
        self.last_change = None
        self.closing = None
        self._room = joined.room
        self._settings = joined.settings
        self._members.clear()  # in place: ``participants`` views stay live
        self._members.update((m.user_id, m) for m in joined.participants)
        self._you = joined.you
        self._queue = joined.queue
        self.chat.clear()
        self.chat.extend(joined.chat)

    def apply(self, message: ServerMessage) -> PlaybackWire | None:
        """Fold one message in; returns the playback when it is newer or the same version."""
        if isinstance(message, PlaybackChanged | SyncCommand):
            if self.playback is not None and message.playback.version < self.playback.version:
                return None
            self.playback = message.playback
            if isinstance(message, PlaybackChanged):
                self.last_change = message
            return message.playback
        if isinstance(message, Presence):
            self._presence(message)
        elif isinstance(message, PresenceBatch):
            for presence in message.events:  # in order: a later entry replaces an earlier one
                self._presence(presence)
        elif isinstance(message, ChatOut):
            self.chat.append(message.message)
        elif isinstance(message, ChatDeleted):
            self._forget_chat(message.message_id)
        elif isinstance(message, RoomChanged):
            self._room, self._settings = message.room, message.settings
        elif isinstance(message, QueueChanged):
            self._queue = message.queue
        elif isinstance(message, Closing):
            self.closing = message
        return None

    def _forget_chat(self, message_id: str) -> None:
        kept = [entry for entry in self.chat if entry.id != message_id]
        if len(kept) != len(self.chat):
            # In place: ``chat_history`` hands out this deque itself.
            self.chat.clear()
            self.chat.extend(kept)

    def _presence(self, message: Presence) -> None:
        member = message.member
        if message.event == "left" and member.sessions == 0:
            self._members.pop(member.user_id, None)
        else:
            self._members[member.user_id] = member
        if self._you is not None and member.user_id == self._you.user_id:
            self._you = member
