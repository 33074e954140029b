"""Storage records as the values the WebSocket protocol sends.

``joined.room``, ``room.room``, ``joined.chat``, ``chat.message``, ``joined.queue`` and
``queue.queue`` carry the REST API's room, chat and queue objects. The live side builds
them here, from :mod:`syncplayd.storage.records`, without importing the HTTP layer;
the HTTP encoders (:mod:`syncplayd.server.http.payloads`) build their JSON from the
same structs, so the field list and the formats exist once.

Built field by field: nothing new on a record (a password hash) reaches the wire
unless it is added here.
"""

from __future__ import annotations

from datetime import datetime
from typing import overload
from uuid import UUID

from syncplayd.core import protocol
from syncplayd.core.queue import Queue, QueueItem
from syncplayd.storage.records import (
    ChatMessage,
    Playback,
    PlaybackControl,
    PlaybackState,
    Room,
)

__all__ = ["chat_entry", "queue_info", "queue_item_info", "room_info", "room_playback", "timestamp"]

# Spelled out rather than ``enum.value`` so that mypy checks them against the
# protocol's literals; a new enum member fails the messages tests until it is added.
_STATES: dict[PlaybackState, protocol.StoredState] = {
    PlaybackState.PLAYING: "playing",
    PlaybackState.PAUSED: "paused",
    PlaybackState.WAITING: "waiting",
}
_CONTROLS: dict[PlaybackControl, protocol.ControlMode] = {
    PlaybackControl.EVERYONE: "everyone",
    PlaybackControl.MODERATORS: "moderators",
}


@overload
def timestamp(value: datetime) -> str: ...
@overload
def timestamp(value: None) -> None: ...
@overload
def timestamp(value: datetime | None) -> str | None: ...
def timestamp(value: datetime | None) -> str | None:
    """RFC 3339, UTC, with a ``Z``: the one timestamp form on the wire (REST and WebSocket).

    Records hold aware UTC datetimes; the fraction is left out when it is zero.
    """
    if value is None:
        return None
    return value.isoformat().replace("+00:00", "Z")


def room_playback(playback: Playback) -> protocol.RoomPlayback:
    """The stored playback of a room (not the live one: that is the engine's)."""
    return protocol.RoomPlayback(
        state=_STATES[playback.state],
        position=playback.position,
        rate=playback.rate,
        version=playback.version,
        updated_at=timestamp(playback.updated_at),
    )


def room_info(room: Room) -> protocol.RoomInfo:
    """The room as ``joined.room`` and ``GET /rooms/{id}`` show it."""
    return protocol.RoomInfo(
        id=str(room.id),
        name=room.name,
        owner_id=str(room.owner_id),
        content_type=room.content_type,
        content_id=room.content_id,
        is_public=room.is_public,
        has_password=room.has_password,
        max_participants=room.max_participants,
        participant_count=room.participant_count,
        playback=room_playback(room.playback),
        playback_control=_CONTROLS[room.playback_control],
        created_at=timestamp(room.created_at),
        updated_at=timestamp(room.updated_at),
        ended_at=timestamp(room.ended_at),
        moderators_manage_moderators=room.moderators_manage_moderators,
        current_item_id=None if room.current_item_id is None else str(room.current_item_id),
        wait_for_slow_members=room.wait_for_slow_members,
        start_when_ready=room.start_when_ready,
    )


def queue_item_info(item: QueueItem) -> protocol.QueueItemInfo:
    """One queue item as REST and the WebSocket show it (its shuffle rank stays inside)."""
    return protocol.QueueItemInfo(
        id=str(item.id),
        content_type=item.content_type,
        content_id=item.content_id,
        title=item.title,
        duration=item.duration,
    )


def queue_info(room_id: UUID, queue: Queue) -> protocol.QueueInfo:
    """A room's queue as ``GET /rooms/{id}/queue``, ``joined.queue`` and ``queue.queue`` show it."""
    return protocol.QueueInfo(
        room_id=str(room_id),
        current_item_id=None if queue.current_id is None else str(queue.current_id),
        next_item_id=None if (following := queue.next_id()) is None else str(following),
        repeat=queue.repeat,
        shuffle=queue.shuffle,
        items=[queue_item_info(item) for item in queue.items],
    )


def chat_entry(message: ChatMessage) -> protocol.ChatEntry:
    """A stored chat message as ``joined.chat``, ``chat.message`` and REST show it."""
    return protocol.ChatEntry(
        id=str(message.id),
        room_id=str(message.room_id),
        user_id=str(message.user_id),
        user_name=message.user_name,
        message=message.message,
        created_at=timestamp(message.created_at),
    )
