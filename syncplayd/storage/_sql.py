"""What the SQL engines must provide to the shared queries, and rows to records.

The repository's transactions (:mod:`syncplayd.storage._queries`) are written once
for SQLite and PostgreSQL. Everything that differs between the two (placeholder
style, row locking, how UUIDs, timestamps and JSON are stored) sits behind
:class:`Tx`, implemented once per engine module, as Synapse's ``BaseDatabaseEngine``
does: queries never ask which engine they run on.
"""

from __future__ import annotations

import math
import random
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

from syncplayd.core.queue import MAX_DURATION, QueueItem
from syncplayd.storage.errors import StorageError
from syncplayd.storage.records import (
    ChatMessage,
    Event,
    Invitation,
    NewRoom,
    NodeRecord,
    Participant,
    Playback,
    PlaybackControl,
    PlaybackState,
    Restriction,
    RestrictionKind,
    Role,
    Room,
    RoomOwner,
)


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...


class Tx(Protocol):
    """One open transaction: the engine's syntax and value codec.

    Rows come back indexable by column name.
    """

    for_update: str  # suffix that locks the selected rows until commit

    def execute(self, sql: str, params: Sequence[object] = ()) -> Cursor: ...
    def executemany(self, sql: str, rows: Sequence[Sequence[object]]) -> None: ...
    def id(self, value: UUID) -> object: ...
    def ts(self, value: datetime) -> object: ...
    def json(self, value: dict[str, Any]) -> object: ...
    def read_id(self, value: Any) -> UUID: ...
    def read_ts(self, value: Any) -> datetime: ...
    def read_json(self, value: Any) -> dict[str, Any]: ...


def opt_id(tx: Tx, value: UUID | None) -> object:
    return None if value is None else tx.id(value)


def opt_ts(tx: Tx, value: datetime | None) -> object:
    return None if value is None else tx.ts(value)


# -- values every engine (the memory fake too) checks or makes the same way ----------------
def check_duration(duration: float | None) -> None:
    """Refuse a duration the schema's CHECK refuses, and NaN, which SQLite would store
    as NULL (so that a bad value can never pass for "no duration yet").

    Raises:
        StorageError: not finite, not over 0, or over ``MAX_DURATION``.
    """
    if duration is not None and not (math.isfinite(duration) and 0 < duration <= MAX_DURATION):
        raise StorageError(f"CHECK constraint failed: duration {duration!r} out of range")


def new_item(
    content_type: str, content_id: str, title: str | None = None, duration: float | None = None
) -> QueueItem:
    """A queue item that storage makes itself (a new room's, or for content set on a room
    with an empty queue): a UUID 4 and a uniformly drawn shuffle rank.

    Raises:
        StorageError: ``duration`` is out of range.
    """
    check_duration(duration)
    rank = random.random()  # noqa: S311 (a place in a shuffle, not a secret)  # nosec B311
    return QueueItem(uuid.uuid4(), content_type, content_id, title, duration, rank)


def first_item(new: NewRoom) -> QueueItem:
    """The one item of a new room's queue, of the room's content."""
    return new_item(new.content_type, new.content_id, new.content_title, new.content_duration)


# -- rows to records (columns are read by name) ----------------------------------------
ROOM_COLUMNS = (
    "r.*, (SELECT count(*) FROM participants p WHERE p.room_id = r.id) AS participant_count"
)


def room_from_row(tx: Tx, row: Any) -> Room:
    updated_by, updated_at = row["playback_updated_by"], row["playback_updated_at"]
    current = row["current_item_id"]
    playback = Playback(
        state=PlaybackState(row["playback_state"]),
        position=float(row["playback_position"]),
        rate=float(row["playback_rate"]),
        version=row["playback_version"],
        updated_at=None if updated_at is None else tx.read_ts(updated_at),
        updated_by=None if updated_by is None else tx.read_id(updated_by),
    )
    return Room(
        id=tx.read_id(row["id"]),
        name=row["name"],
        owner_id=tx.read_id(row["owner_id"]),
        content_type=row["content_type"],
        content_id=row["content_id"],
        is_public=bool(row["is_public"]),
        password_hash=row["password_hash"],
        syncplay_password_hash=row["syncplay_password_hash"],
        max_participants=row["max_participants"],
        playback=playback,
        created_at=tx.read_ts(row["created_at"]),
        updated_at=tx.read_ts(row["updated_at"]),
        ended_at=None if row["ended_at"] is None else tx.read_ts(row["ended_at"]),
        participant_count=row["participant_count"],
        playback_control=PlaybackControl(row["playback_control"]),
        moderators_manage_moderators=bool(row["moderators_manage_moderators"]),
        current_item_id=None if current is None else tx.read_id(current),
        wait_for_slow_members=row["wait_for_slow_members"],
        start_when_ready=bool(row["start_when_ready"]),
    )


def queue_item_from_row(tx: Tx, row: Any) -> QueueItem:
    duration = row["duration"]
    return QueueItem(
        id=tx.read_id(row["id"]),
        content_type=row["content_type"],
        content_id=row["content_id"],
        title=row["title"],
        duration=None if duration is None else float(duration),
        shuffle_rank=float(row["shuffle_rank"]),
    )


def participant_from_row(tx: Tx, row: Any) -> Participant:
    return Participant(
        room_id=tx.read_id(row["room_id"]),
        user_id=tx.read_id(row["user_id"]),
        user_name=row["user_name"],
        role=Role(row["role"]),
        is_connected=bool(row["is_connected"]),
        joined_at=tx.read_ts(row["joined_at"]),
        last_seen_at=tx.read_ts(row["last_seen_at"]),
    )


def chat_from_row(tx: Tx, row: Any) -> ChatMessage:
    return ChatMessage(
        id=tx.read_id(row["id"]),
        room_id=tx.read_id(row["room_id"]),
        user_id=tx.read_id(row["user_id"]),
        user_name=row["user_name"],
        message=row["message"],
        created_at=tx.read_ts(row["created_at"]),
    )


def event_from_row(tx: Tx, row: Any) -> Event:
    return Event(
        id=row["id"],
        room_id=tx.read_id(row["room_id"]),
        type=row["type"],
        created_at=tx.read_ts(row["created_at"]),
        user_id=None if row["user_id"] is None else tx.read_id(row["user_id"]),
        payload=tx.read_json(row["payload"]),
    )


def invitation_from_row(tx: Tx, row: Any) -> Invitation:
    invited = row["invited_user_id"]
    return Invitation(
        id=tx.read_id(row["id"]),
        code=row["code"],
        room_id=tx.read_id(row["room_id"]),
        created_by=tx.read_id(row["created_by"]),
        invited_user_id=None if invited is None else tx.read_id(invited),
        expires_at=tx.read_ts(row["expires_at"]),
        max_uses=row["max_uses"],
        use_count=row["use_count"],
        created_at=tx.read_ts(row["created_at"]),
    )


def restriction_from_row(tx: Tx, row: Any) -> Restriction:
    expires = row["expires_at"]
    return Restriction(
        room_id=tx.read_id(row["room_id"]),
        user_id=tx.read_id(row["user_id"]),
        kind=RestrictionKind(row["kind"]),
        user_name=row["user_name"],
        reason=row["reason"],
        created_by=tx.read_id(row["created_by"]),
        created_at=tx.read_ts(row["created_at"]),
        expires_at=None if expires is None else tx.read_ts(expires),
    )


def node_from_row(tx: Tx, row: Any) -> NodeRecord:
    return NodeRecord(
        node_id=row["node_id"],
        url=row["url"],
        pid=row["pid"],
        started_at=tx.read_ts(row["started_at"]),
        heartbeat_at=tx.read_ts(row["heartbeat_at"]),
        syncplay_bridge=row["syncplay_bridge"],
    )


def owner_from_row(tx: Tx, row: Any) -> RoomOwner:
    return RoomOwner(
        room_id=tx.read_id(row["room_id"]),
        node_id=row["node_id"],
        since=tx.read_ts(row["since"]),
    )
