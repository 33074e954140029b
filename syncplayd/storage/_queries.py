"""The repository's transactions, written once for every SQL engine.

Each function is the body of one transaction: it gets a :class:`~._sql.Tx` (an open
transaction on one engine) and runs to completion on a worker thread. The SQL uses
``?`` placeholders and only syntax that SQLite and PostgreSQL share.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from syncplayd.core.queue import Queue, QueueItem
from syncplayd.storage._sql import (
    ROOM_COLUMNS,
    Tx,
    chat_from_row,
    check_duration,
    event_from_row,
    first_item,
    invitation_from_row,
    new_item,
    node_from_row,
    opt_id,
    opt_ts,
    owner_from_row,
    participant_from_row,
    queue_item_from_row,
    restriction_from_row,
    room_from_row,
)
from syncplayd.storage.errors import (
    NotAParticipant,
    RoomEnded,
    RoomFull,
    RoomNotFound,
    StorageError,
    TooManyInvitations,
)
from syncplayd.storage.records import (
    AttemptBudget,
    ChatMessage,
    Event,
    Invitation,
    NewEvent,
    NewRoom,
    NodeRecord,
    Participant,
    Playback,
    PresenceUpdate,
    Restriction,
    RestrictionKind,
    Role,
    Room,
    RoomFilters,
    RoomOwner,
    RoomUpdate,
    Standing,
)


def _vanished(what: str) -> StorageError:
    # Only reachable if the database broke its own transaction guarantees.
    return StorageError(f"{what} vanished inside its own transaction")


# -- lifecycle and rooms ---------------------------------------------------------------
def ping(tx: Tx) -> None:
    tx.execute("SELECT 1").fetchone()


def get_room(tx: Tx, room_id: UUID) -> Room | None:
    row = tx.execute(f"SELECT {ROOM_COLUMNS} FROM rooms r WHERE r.id = ?", [tx.id(room_id)])  # noqa: S608 (constant)  # nosec B608
    found = row.fetchone()
    return None if found is None else room_from_row(tx, found)


def create_room(tx: Tx, new: NewRoom) -> Room:
    at = tx.ts(new.created_at)
    item = first_item(new)
    tx.execute(
        "INSERT INTO rooms (id, name, owner_id, content_type, content_id, is_public,"
        " password_hash, syncplay_password_hash, max_participants, playback_control,"
        " current_item_id, wait_for_slow_members, start_when_ready, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [tx.id(new.id), new.name, tx.id(new.owner_id), new.content_type, new.content_id,
         new.is_public, new.password_hash, new.syncplay_password_hash, new.max_participants,
         new.playback_control.value, tx.id(item.id), new.wait_for_slow_members,
         new.start_when_ready, at, at],
    )  # fmt: skip
    tx.execute(
        "INSERT INTO participants (room_id, user_id, user_name, role, is_connected, joined_at,"
        " last_seen_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [tx.id(new.id), tx.id(new.owner_id), new.owner_name, Role.OWNER.value, False, at, at],
    )
    _insert_items(tx, new.id, [(item, tx.id(new.owner_id), at)])
    room = get_room(tx, new.id)
    if room is None:  # pragma: no cover
        raise _vanished("room")
    return room


def _room_where(tx: Tx, filters: RoomFilters) -> tuple[str, list[object]]:
    clauses: list[str] = []
    params: list[object] = []
    member = (
        "(r.owner_id = ? OR EXISTS (SELECT 1 FROM participants p"
        " WHERE p.room_id = r.id AND p.user_id = ?))"
    )
    if filters.visible_to is not None:
        clauses.append(f"(r.is_public = ? OR {member})")
        params += [True, tx.id(filters.visible_to), tx.id(filters.visible_to)]
    if filters.member is not None:
        clauses.append(member)
        params += [tx.id(filters.member), tx.id(filters.member)]
    if filters.public_only:
        clauses.append("r.is_public = ?")
        params.append(True)
    if filters.content_type is not None:
        clauses.append("r.content_type = ?")
        params.append(filters.content_type)
    if filters.content_id is not None:
        clauses.append("r.content_id = ?")
        params.append(filters.content_id)
    if filters.active is not None:
        clauses.append("r.ended_at IS NULL" if filters.active else "r.ended_at IS NOT NULL")
    return " AND ".join(clauses) or "1 = 1", params


def list_rooms(tx: Tx, filters: RoomFilters, limit: int, offset: int) -> tuple[list[Room], int]:
    where, params = _room_where(tx, filters)
    # Clauses are fixed fragments; values always travel as parameters.
    count = tx.execute(f"SELECT count(*) AS n FROM rooms r WHERE {where}", params)  # noqa: S608  # nosec B608
    rows = tx.execute(
        f"SELECT {ROOM_COLUMNS} FROM rooms r WHERE {where}"  # noqa: S608  # nosec B608
        " ORDER BY r.created_at DESC, r.id DESC LIMIT ? OFFSET ?",
        [*params, limit, offset],
    ).fetchall()
    return [room_from_row(tx, row) for row in rows], count.fetchone()["n"]


def update_room(tx: Tx, room_id: UUID, update: RoomUpdate) -> Room | None:
    sets, params = ["updated_at = ?"], [tx.ts(update.updated_at)]
    for column in (
        "name",
        "content_type",
        "content_id",
        "is_public",
        "max_participants",
        "moderators_manage_moderators",
        "wait_for_slow_members",
        "start_when_ready",
    ):
        value = getattr(update, column)
        if value is not None:
            sets.append(f"{column} = ?")
            params.append(value)
    if update.playback_control is not None:
        sets.append("playback_control = ?")
        params.append(update.playback_control.value)
    # A new password wins over clear_password. Its verifier always goes with it, even
    # when there is none: the old one would still let the old password in.
    if update.password_hash is not None:
        sets += ["password_hash = ?", "syncplay_password_hash = ?"]
        params += [update.password_hash, update.syncplay_password_hash]
    elif update.clear_password:
        sets += ["password_hash = NULL", "syncplay_password_hash = NULL"]
    sql = f"UPDATE rooms SET {', '.join(sets)} WHERE id = ?"  # noqa: S608 (fixed column names)  # nosec B608
    if not tx.execute(sql, [*params, tx.id(room_id)]).rowcount:
        return None
    if update.content_type is not None or update.content_id is not None:
        _content_to_current_item(tx, room_id, update.updated_at)
    return get_room(tx, room_id)


def _content_to_current_item(tx: Tx, room_id: UUID, now: datetime) -> None:
    # The room's content was just set: the queue's current item follows, keeping its id
    # (what plays is the same entry, now of other content). A title and duration were
    # the old content's, so they go, unless the content is in fact the same.
    sql = "SELECT current_item_id, content_type, content_id FROM rooms WHERE id = ?"
    room = tx.execute(sql, [tx.id(room_id)]).fetchone()
    content = [room["content_type"], room["content_id"]]
    if room["current_item_id"] is None:  # an empty queue: the content becomes its item
        item = new_item(room["content_type"], room["content_id"])
        _insert_items(tx, room_id, [(item, None, tx.ts(now))])
        sql = "UPDATE rooms SET current_item_id = ? WHERE id = ?"
        tx.execute(sql, [tx.id(item.id), tx.id(room_id)])
        return
    tx.execute(
        "UPDATE queue_items SET content_type = ?, content_id = ?, title = NULL, duration = NULL"
        " WHERE id = ? AND NOT (content_type = ? AND content_id = ?)",
        [*content, room["current_item_id"], *content],
    )


def update_playback(tx: Tx, room_id: UUID, playback: Playback) -> None:
    # Equal versions are stored: a writer re-persisting the same state is harmless.
    tx.execute(
        "UPDATE rooms SET playback_state = ?, playback_position = ?, playback_rate = ?,"
        " playback_version = ?, playback_updated_at = ?, playback_updated_by = ?"
        " WHERE id = ? AND playback_version <= ?",
        [playback.state.value, playback.position, playback.rate, playback.version,
         opt_ts(tx, playback.updated_at), opt_id(tx, playback.updated_by), tx.id(room_id),
         playback.version],
    )  # fmt: skip


def end_room(tx: Tx, room_id: UUID, ended_at: datetime) -> bool:
    at = tx.ts(ended_at)
    sql = "UPDATE rooms SET ended_at = ?, updated_at = ? WHERE id = ? AND ended_at IS NULL"
    if not tx.execute(sql, [at, at, tx.id(room_id)]).rowcount:
        return False
    sql = "UPDATE participants SET is_connected = ? WHERE room_id = ?"
    tx.execute(sql, [False, tx.id(room_id)])
    return True


def delete_room(tx: Tx, room_id: UUID) -> bool:
    return bool(tx.execute("DELETE FROM rooms WHERE id = ?", [tx.id(room_id)]).rowcount)


# -- the play queue --------------------------------------------------------------------
def _insert_items(tx: Tx, room_id: UUID, rows: Sequence[tuple[QueueItem, object, object]]) -> None:
    # rows: (item, added_by, added_at), both already in the engine's form; ord follows.
    tx.executemany(
        "INSERT INTO queue_items (id, room_id, ord, content_type, content_id, title, duration,"
        " shuffle_rank, added_by, added_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [[tx.id(item.id), tx.id(room_id), index, item.content_type, item.content_id,
          item.title, item.duration, item.shuffle_rank, added_by, added_at]
         for index, (item, added_by, added_at) in enumerate(rows)],
    )  # fmt: skip


def get_queue(tx: Tx, room_id: UUID) -> Queue | None:
    sql = "SELECT current_item_id, queue_repeat, queue_shuffle FROM rooms WHERE id = ?"
    room = tx.execute(sql, [tx.id(room_id)]).fetchone()
    if room is None:
        return None
    sql = "SELECT * FROM queue_items WHERE room_id = ? ORDER BY ord"
    rows = tx.execute(sql, [tx.id(room_id)]).fetchall()
    current = room["current_item_id"]
    return Queue(
        items=tuple(queue_item_from_row(tx, row) for row in rows),
        current_id=None if current is None else tx.read_id(current),
        repeat=room["queue_repeat"],
        shuffle=bool(room["queue_shuffle"]),
    )


def save_queue(tx: Tx, room_id: UUID, queue: Queue, now: datetime, added_by: UUID | None) -> Room:
    # Lock the room row first: saves, duration reports and content changes of one room
    # then run one after the other, and each reads the items the previous one left.
    sql = f"SELECT ended_at FROM rooms WHERE id = ?{tx.for_update}"  # noqa: S608  # nosec B608
    room = tx.execute(sql, [tx.id(room_id)]).fetchone()
    if room is None:
        raise RoomNotFound(str(room_id))
    if room["ended_at"] is not None:
        raise RoomEnded(str(room_id))
    sql = "SELECT id, duration, added_by, added_at FROM queue_items WHERE room_id = ?"
    stored = {tx.read_id(row["id"]): row for row in tx.execute(sql, [tx.id(room_id)]).fetchall()}
    # Rewritten whole: at most MAX_QUEUE_ITEMS rows, and ord stays dense and unique.
    tx.execute("DELETE FROM queue_items WHERE room_id = ?", [tx.id(room_id)])
    rows: list[tuple[QueueItem, object, object]] = []
    for item in queue.items:
        old = stored.get(item.id)
        if old is None:
            rows.append((item, opt_id(tx, added_by), tx.ts(now)))
            continue
        if old["duration"] is not None:  # first value wins
            item = dataclasses.replace(item, duration=float(old["duration"]))
        rows.append((item, old["added_by"], old["added_at"]))
    _insert_items(tx, room_id, rows)
    sets = "current_item_id = ?, queue_repeat = ?, queue_shuffle = ?, updated_at = ?"
    params = [opt_id(tx, queue.current_id), queue.repeat, queue.shuffle, tx.ts(now)]
    current = queue.current
    if current is not None:  # the room's content is what it plays
        sets += ", content_type = ?, content_id = ?"
        params += [current.content_type, current.content_id]
    tx.execute(f"UPDATE rooms SET {sets} WHERE id = ?", [*params, tx.id(room_id)])  # noqa: S608 (constant)  # nosec B608
    saved = get_room(tx, room_id)
    if saved is None:  # pragma: no cover
        raise _vanished("room")
    return saved


def set_item_duration(tx: Tx, room_id: UUID, item_id: UUID, duration: float) -> bool:
    check_duration(duration)
    # The room lock orders this with save_queue, which rewrites the rows.
    sql = f"SELECT id FROM rooms WHERE id = ?{tx.for_update}"  # noqa: S608  # nosec B608
    if tx.execute(sql, [tx.id(room_id)]).fetchone() is None:
        return False
    return bool(
        tx.execute(
            "UPDATE queue_items SET duration = ? WHERE room_id = ? AND id = ? AND duration IS NULL",
            [duration, tx.id(room_id), tx.id(item_id)],
        ).rowcount
    )


# -- participants ----------------------------------------------------------------------
def get_participant(tx: Tx, room_id: UUID, user_id: UUID) -> Participant | None:
    sql = "SELECT * FROM participants WHERE room_id = ? AND user_id = ?"
    row = tx.execute(sql, [tx.id(room_id), tx.id(user_id)]).fetchone()
    return None if row is None else participant_from_row(tx, row)


def get_standing(tx: Tx, room_id: UUID, user_id: UUID) -> Standing:
    rows = tx.execute(
        "SELECT * FROM room_restrictions WHERE room_id = ? AND user_id = ? ORDER BY kind",
        [tx.id(room_id), tx.id(user_id)],
    ).fetchall()
    return Standing(
        room=get_room(tx, room_id),
        participant=get_participant(tx, room_id, user_id),
        restrictions=tuple(restriction_from_row(tx, row) for row in rows),
    )


def owner_names(tx: Tx, room_ids: Sequence[UUID]) -> dict[UUID, str]:
    names: dict[UUID, str] = {}
    # In slices, well under SQLite's limit of bound parameters per statement.
    for start in range(0, len(room_ids), 500):
        chunk = [tx.id(room_id) for room_id in room_ids[start : start + 500]]
        marks = ", ".join("?" * len(chunk))
        rows = tx.execute(
            f"SELECT r.id AS id, p.user_name AS user_name FROM rooms r JOIN participants p"  # noqa: S608 (placeholders only)  # nosec B608
            f" ON p.room_id = r.id AND p.user_id = r.owner_id WHERE r.id IN ({marks})",
            chunk,
        ).fetchall()
        names.update((tx.read_id(row["id"]), row["user_name"]) for row in rows)
    return names


def add_participant(
    tx: Tx, room_id: UUID, user_id: UUID, user_name: str, role: Role, now: datetime
) -> tuple[Participant, bool]:
    # Lock the room row first: concurrent joins to one room queue here, and each
    # then counts (in a statement after the lock, so it sees the others' rows).
    sql = f"SELECT ended_at, max_participants FROM rooms WHERE id = ?{tx.for_update}"  # noqa: S608  # nosec B608
    room = tx.execute(sql, [tx.id(room_id)]).fetchone()
    if room is None:
        raise RoomNotFound(str(room_id))
    if room["ended_at"] is not None:
        raise RoomEnded(str(room_id))
    key = [tx.id(room_id), tx.id(user_id)]
    if get_participant(tx, room_id, user_id) is not None:
        sql = "UPDATE participants SET user_name = ? WHERE room_id = ? AND user_id = ?"
        tx.execute(sql, [user_name, *key])
        added = False
    else:
        sql = "SELECT count(*) AS n FROM participants WHERE room_id = ?"
        if tx.execute(sql, key[:1]).fetchone()["n"] >= room["max_participants"]:
            raise RoomFull(str(room_id))
        tx.execute(
            "INSERT INTO participants (room_id, user_id, user_name, role, is_connected,"
            " joined_at, last_seen_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [*key, user_name, role.value, False, tx.ts(now), tx.ts(now)],
        )
        added = True
    participant = get_participant(tx, room_id, user_id)
    if participant is None:  # pragma: no cover
        raise _vanished("participant")
    return participant, added


def list_participants(tx: Tx, room_id: UUID, connected_only: bool) -> list[Participant]:
    where, params = "room_id = ?", [tx.id(room_id)]
    if connected_only:
        where += " AND is_connected = ?"
        params.append(True)
    sql = f"SELECT * FROM participants WHERE {where} ORDER BY joined_at, user_id"  # noqa: S608 (constant)  # nosec B608
    rows = tx.execute(sql, params).fetchall()
    return [participant_from_row(tx, row) for row in rows]


def update_participant(
    tx: Tx,
    room_id: UUID,
    user_id: UUID,
    role: Role | None,
    is_connected: bool | None,
    last_seen_at: datetime | None,
) -> bool:
    sets: list[str] = []
    params: list[object] = []
    if role is not None:
        sets.append("role = ?")
        params.append(role.value)
    if is_connected is not None:
        sets.append("is_connected = ?")
        params.append(is_connected)
    if last_seen_at is not None:
        sets.append("last_seen_at = ?")
        params.append(tx.ts(last_seen_at))
    if not sets:
        return get_participant(tx, room_id, user_id) is not None
    sql = f"UPDATE participants SET {', '.join(sets)} WHERE room_id = ? AND user_id = ?"  # noqa: S608 (fixed column names)  # nosec B608
    return bool(tx.execute(sql, [*params, tx.id(room_id), tx.id(user_id)]).rowcount)


def record_presence(tx: Tx, updates: Sequence[PresenceUpdate]) -> None:
    # Rows locked in one order (a stable sort: of two changes to a member the later still
    # lands last): two nodes writing a room's presence around its hand-over cannot each
    # hold a row the other waits for.
    ordered = sorted(updates, key=lambda u: (str(u.room_id), str(u.user_id)))
    tx.executemany(
        "UPDATE participants SET is_connected = ?, last_seen_at = ? "
        "WHERE room_id = ? AND user_id = ?",
        [[u.is_connected, tx.ts(u.seen_at), tx.id(u.room_id), tx.id(u.user_id)] for u in ordered],
    )


def remove_participant(tx: Tx, room_id: UUID, user_id: UUID) -> bool:
    sql = "DELETE FROM participants WHERE room_id = ? AND user_id = ?"
    return bool(tx.execute(sql, [tx.id(room_id), tx.id(user_id)]).rowcount)


def transfer_ownership(tx: Tx, room_id: UUID, new_owner_id: UUID, now: datetime) -> Room:
    # Lock the room row first: of two concurrent transfers the second then reads the
    # owner the first made, and demotes that one (never two owners).
    sql = f"SELECT owner_id, ended_at FROM rooms WHERE id = ?{tx.for_update}"  # noqa: S608  # nosec B608
    row = tx.execute(sql, [tx.id(room_id)]).fetchone()
    if row is None:
        raise RoomNotFound(str(room_id))
    if row["ended_at"] is not None:
        raise RoomEnded(str(room_id))
    if get_participant(tx, room_id, new_owner_id) is None:
        raise NotAParticipant(f"{new_owner_id} in room {room_id}")
    old_owner_id = tx.read_id(row["owner_id"])
    if old_owner_id != new_owner_id:
        sql = "UPDATE participants SET role = ? WHERE room_id = ? AND user_id = ?"
        # The previous owner may have left: then there is no row to demote.
        tx.execute(sql, [Role.MODERATOR.value, tx.id(room_id), tx.id(old_owner_id)])
        tx.execute(sql, [Role.OWNER.value, tx.id(room_id), tx.id(new_owner_id)])
        tx.execute(
            "UPDATE rooms SET owner_id = ?, updated_at = ? WHERE id = ?",
            [tx.id(new_owner_id), tx.ts(now), tx.id(room_id)],
        )
    room = get_room(tx, room_id)
    if room is None:  # pragma: no cover
        raise _vanished("room")
    return room


# -- restrictions ----------------------------------------------------------------------
def set_restriction(tx: Tx, r: Restriction) -> Restriction:
    # A missing room fails the foreign key (RoomNotFound); the key is (room, kind, user),
    # so a second ban or mute of the same user replaces the first.
    row = tx.execute(
        "INSERT INTO room_restrictions (room_id, user_id, kind, user_name, reason, created_by,"
        " created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (room_id, kind, user_id) DO UPDATE SET user_name = excluded.user_name,"
        " reason = excluded.reason, created_by = excluded.created_by,"
        " created_at = excluded.created_at, expires_at = excluded.expires_at RETURNING *",
        [tx.id(r.room_id), tx.id(r.user_id), r.kind.value, r.user_name, r.reason,
         tx.id(r.created_by), tx.ts(r.created_at), opt_ts(tx, r.expires_at)],
    ).fetchone()  # fmt: skip
    return restriction_from_row(tx, row)


def get_restriction(
    tx: Tx, room_id: UUID, user_id: UUID, kind: RestrictionKind
) -> Restriction | None:
    row = tx.execute(
        "SELECT * FROM room_restrictions WHERE room_id = ? AND kind = ? AND user_id = ?",
        [tx.id(room_id), kind.value, tx.id(user_id)],
    ).fetchone()
    return None if row is None else restriction_from_row(tx, row)


def list_restrictions(
    tx: Tx, room_id: UUID, kind: RestrictionKind, active_at: datetime | None
) -> list[Restriction]:
    where, params = "room_id = ? AND kind = ?", [tx.id(room_id), kind.value]
    if active_at is not None:
        where += " AND (expires_at IS NULL OR expires_at > ?)"
        params.append(tx.ts(active_at))
    rows = tx.execute(
        f"SELECT * FROM room_restrictions WHERE {where}"  # noqa: S608 (constant)  # nosec B608
        " ORDER BY created_at DESC, user_id DESC",
        params,
    ).fetchall()
    return [restriction_from_row(tx, row) for row in rows]


def delete_restriction(tx: Tx, room_id: UUID, user_id: UUID, kind: RestrictionKind) -> bool:
    sql = "DELETE FROM room_restrictions WHERE room_id = ? AND kind = ? AND user_id = ?"
    return bool(tx.execute(sql, [tx.id(room_id), kind.value, tx.id(user_id)]).rowcount)


def purge_expired_restrictions(tx: Tx, expired_before: datetime) -> int:
    # A NULL expires_at (until lifted) never compares below: those stay.
    sql = "DELETE FROM room_restrictions WHERE expires_at < ?"
    return tx.execute(sql, [tx.ts(expired_before)]).rowcount


# -- chat and events -------------------------------------------------------------------
def create_chat_message(tx: Tx, m: ChatMessage) -> ChatMessage:
    row = tx.execute(
        "INSERT INTO chat_messages (id, room_id, user_id, user_name, message, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?) RETURNING *",
        [tx.id(m.id), tx.id(m.room_id), tx.id(m.user_id), m.user_name, m.message,
         tx.ts(m.created_at)],
    ).fetchone()  # fmt: skip
    return chat_from_row(tx, row)


def _page(
    tx: Tx, table: str, order: str, room_id: UUID, limit: int, offset: int
) -> tuple[list[Any], int]:
    # table and order are constants of this module, never caller input.
    key = [tx.id(room_id)]
    count = tx.execute(f"SELECT count(*) AS n FROM {table} WHERE room_id = ?", key)  # noqa: S608  # nosec B608
    rows = tx.execute(
        f"SELECT * FROM {table} WHERE room_id = ? ORDER BY {order} LIMIT ? OFFSET ?",  # noqa: S608  # nosec B608
        [*key, limit, offset],
    ).fetchall()
    return rows, count.fetchone()["n"]


def list_chat_messages(
    tx: Tx, room_id: UUID, limit: int, offset: int
) -> tuple[list[ChatMessage], int]:
    rows, total = _page(tx, "chat_messages", "created_at DESC, id DESC", room_id, limit, offset)
    return [chat_from_row(tx, row) for row in rows], total


def get_chat_message(tx: Tx, message_id: UUID) -> ChatMessage | None:
    row = tx.execute("SELECT * FROM chat_messages WHERE id = ?", [tx.id(message_id)]).fetchone()
    return None if row is None else chat_from_row(tx, row)


def delete_chat_message(tx: Tx, message_id: UUID) -> bool:
    sql = "DELETE FROM chat_messages WHERE id = ?"
    return bool(tx.execute(sql, [tx.id(message_id)]).rowcount)


def log_events(tx: Tx, events: Sequence[NewEvent]) -> None:
    tx.executemany(
        "INSERT INTO events (room_id, user_id, type, payload, created_at) VALUES (?, ?, ?, ?, ?)",
        [[tx.id(e.room_id), opt_id(tx, e.user_id), e.type, tx.json(e.payload),
          tx.ts(e.created_at)] for e in events],
    )  # fmt: skip


def list_events(tx: Tx, room_id: UUID, limit: int, offset: int) -> tuple[list[Event], int]:
    rows, total = _page(tx, "events", "id DESC", room_id, limit, offset)
    return [event_from_row(tx, row) for row in rows], total


def list_events_after(tx: Tx, room_id: UUID, after: int, limit: int) -> list[Event]:
    rows = tx.execute(
        "SELECT * FROM events WHERE room_id = ? AND id > ? ORDER BY id LIMIT ?",
        [tx.id(room_id), after, limit],
    ).fetchall()
    return [event_from_row(tx, row) for row in rows]


# -- invitations -----------------------------------------------------------------------
def create_invitation(tx: Tx, i: Invitation, max_live: int | None) -> Invitation:
    if max_live is not None:
        # Lock the room row first, as add_participant does: concurrent creates for one
        # room queue here, and each then counts the others' rows.
        sql = f"SELECT id FROM rooms WHERE id = ?{tx.for_update}"  # noqa: S608  # nosec B608
        if tx.execute(sql, [tx.id(i.room_id)]).fetchone() is None:
            raise RoomNotFound(str(i.room_id))
        live = tx.execute(
            "SELECT count(*) AS n FROM invitations WHERE room_id = ? AND expires_at > ?"
            " AND (max_uses IS NULL OR use_count < max_uses)",
            [tx.id(i.room_id), tx.ts(i.created_at)],
        ).fetchone()["n"]
        if live >= max_live:
            raise TooManyInvitations(str(i.room_id))
    row = tx.execute(
        "INSERT INTO invitations (id, code, room_id, created_by, invited_user_id, expires_at,"
        " max_uses, use_count, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING *",
        [tx.id(i.id), i.code, tx.id(i.room_id), tx.id(i.created_by),
         opt_id(tx, i.invited_user_id), tx.ts(i.expires_at), i.max_uses, i.use_count,
         tx.ts(i.created_at)],
    ).fetchone()  # fmt: skip
    return invitation_from_row(tx, row)


def get_invitation(tx: Tx, code: str) -> Invitation | None:
    row = tx.execute("SELECT * FROM invitations WHERE code = ?", [code]).fetchone()
    return None if row is None else invitation_from_row(tx, row)


def list_invitations(
    tx: Tx, room_id: UUID | None, limit: int, offset: int
) -> tuple[list[Invitation], int]:
    where, params = ("", []) if room_id is None else ("WHERE room_id = ?", [tx.id(room_id)])
    total = tx.execute(f"SELECT count(*) AS n FROM invitations {where}", params).fetchone()["n"]  # noqa: S608 (constant)  # nosec B608
    rows = tx.execute(
        f"SELECT * FROM invitations {where} ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?",  # noqa: S608 (constant)  # nosec B608
        [*params, limit, offset],
    ).fetchall()
    return [invitation_from_row(tx, row) for row in rows], total


def consume_invitation(tx: Tx, code: str, now: datetime) -> Invitation | None:
    # One conditional UPDATE: concurrent consumers serialise on the row lock and
    # PostgreSQL re-checks the condition against the row the winner left.
    row = tx.execute(
        "UPDATE invitations SET use_count = use_count + 1 WHERE code = ? AND expires_at > ?"
        " AND (max_uses IS NULL OR use_count < max_uses) RETURNING *",
        [code, tx.ts(now)],
    ).fetchone()
    return None if row is None else invitation_from_row(tx, row)


def release_invitation(tx: Tx, code: str) -> None:
    sql = "UPDATE invitations SET use_count = use_count - 1 WHERE code = ? AND use_count > 0"
    tx.execute(sql, [code])


def delete_invitation(tx: Tx, invitation_id: UUID) -> bool:
    sql = "DELETE FROM invitations WHERE id = ?"
    return bool(tx.execute(sql, [tx.id(invitation_id)]).rowcount)


def list_inactive_rooms(tx: Tx, idle_since: datetime, limit: int) -> list[UUID]:
    # A room's last activity: its last settings change or playback change.
    last = (
        "CASE WHEN playback_updated_at IS NOT NULL AND playback_updated_at > updated_at"
        " THEN playback_updated_at ELSE updated_at END"
    )
    rows = tx.execute(
        f"SELECT id FROM rooms WHERE ended_at IS NULL AND {last} < ?"  # noqa: S608 (constant)  # nosec B608
        f" ORDER BY {last} LIMIT ?",
        [tx.ts(idle_since), limit],
    ).fetchall()
    return [tx.read_id(row["id"]) for row in rows]


def purge_expired_invitations(tx: Tx, expired_before: datetime) -> int:
    sql = "DELETE FROM invitations WHERE expires_at < ?"
    return tx.execute(sql, [tx.ts(expired_before)]).rowcount


def purge_ended_rooms(tx: Tx, ended_before: datetime, limit: int) -> int:
    # The cascades delete the rooms' participants, chat, events, invitations,
    # restrictions and queue items.
    return tx.execute(
        "DELETE FROM rooms WHERE id IN (SELECT id FROM rooms WHERE ended_at IS NOT NULL"
        " AND ended_at < ? ORDER BY ended_at, id LIMIT ?)",
        [tx.ts(ended_before), limit],
    ).rowcount


def purge_events(tx: Tx, created_before: datetime, keep_per_room: int) -> int:
    old = tx.execute("DELETE FROM events WHERE created_at < ?", [tx.ts(created_before)]).rowcount
    # Rooms over the cap, then per room everything up to its (keep+1)-th newest id: both
    # walk the (room_id, id) index.
    crowded = tx.execute(
        "SELECT room_id FROM events GROUP BY room_id HAVING count(*) > ?", [keep_per_room]
    ).fetchall()
    trimmed = 0
    for row in crowded:
        trimmed += tx.execute(
            "DELETE FROM events WHERE room_id = ? AND id <= (SELECT id FROM events"
            " WHERE room_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?)",
            [row["room_id"], row["room_id"], keep_per_room],
        ).rowcount
    return old + trimmed


# -- the cluster: nodes and room owners ------------------------------------------------
def upsert_node(tx: Tx, node: NodeRecord) -> None:
    tx.execute(
        "INSERT INTO nodes (node_id, url, pid, started_at, heartbeat_at, syncplay_bridge)"
        " VALUES (?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (node_id) DO UPDATE SET url = excluded.url, pid = excluded.pid,"
        " started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at,"
        " syncplay_bridge = excluded.syncplay_bridge",
        [
            node.node_id,
            node.url,
            node.pid,
            tx.ts(node.started_at),
            tx.ts(node.heartbeat_at),
            node.syncplay_bridge,
        ],
    )


def touch_node(tx: Tx, node_id: str, at: datetime) -> bool:
    sql = "UPDATE nodes SET heartbeat_at = ? WHERE node_id = ?"
    return bool(tx.execute(sql, [tx.ts(at), node_id]).rowcount)


def remove_node(tx: Tx, node_id: str) -> bool:
    return bool(tx.execute("DELETE FROM nodes WHERE node_id = ?", [node_id]).rowcount)


def list_nodes(tx: Tx) -> list[NodeRecord]:
    # Not ordered by node_id alone: text order follows PostgreSQL's collation, SQLite's
    # is bytewise, and the engines must agree.
    rows = tx.execute("SELECT * FROM nodes ORDER BY started_at, node_id").fetchall()
    return [node_from_row(tx, row) for row in rows]


def set_room_owner(tx: Tx, room_id: UUID, node_id: str, since: datetime) -> None:
    # A missing room fails the foreign key (RoomNotFound).
    tx.execute(
        "INSERT INTO room_owners (room_id, node_id, since) VALUES (?, ?, ?)"
        " ON CONFLICT (room_id) DO UPDATE SET node_id = excluded.node_id, since = excluded.since",
        [tx.id(room_id), node_id, tx.ts(since)],
    )


def clear_room_owner(tx: Tx, room_id: UUID, node_id: str) -> bool:
    # Conditional: a node letting go late must not erase the row of the node that took
    # the room from it in the meantime.
    sql = "DELETE FROM room_owners WHERE room_id = ? AND node_id = ?"
    return bool(tx.execute(sql, [tx.id(room_id), node_id]).rowcount)


def clear_node_rooms(tx: Tx, node_id: str) -> int:
    return tx.execute("DELETE FROM room_owners WHERE node_id = ?", [node_id]).rowcount


def room_owner(tx: Tx, room_id: UUID) -> RoomOwner | None:
    row = tx.execute("SELECT * FROM room_owners WHERE room_id = ?", [tx.id(room_id)]).fetchone()
    return None if row is None else owner_from_row(tx, row)


def room_owners(tx: Tx) -> list[RoomOwner]:
    rows = tx.execute("SELECT * FROM room_owners ORDER BY since, room_id").fetchall()
    return [owner_from_row(tx, row) for row in rows]


# -- failed-attempt budgets (multi-node mode) -------------------------------------------
# Theory of operation: one row per (scope, key), the fixed window it is in (window_start)
# and the attempts charged in it (count), as AttemptLimiter in syncplayd/core/ratelimit.py
# keeps them in memory. A charge makes sure that each of its rows exists and locks it, one
# row after the other in (scope, key) order, decides, then writes: all or none, and the
# charges of every node queue on the row locks. Every transaction that locks several rows
# (a charge, a refund, the purge) takes them in that one order, so that no two of them can
# each hold a row that the other waits for (a deadlock between nodes). Python's order of
# str is the columns' (bytewise: COLLATE "C" on PostgreSQL, SQLite's default). On SQLite
# the write transaction holds the whole database already (tx.for_update is empty).
#
# The helpers below are shared with the memory fake, so that both count alike.
def attempt_budgets(budgets: Sequence[AttemptBudget]) -> list[AttemptBudget]:
    """Each (scope, key) once, with the smallest of its budgets, in (scope, key) order: the
    order in which rows are locked."""
    smallest: dict[tuple[str, str], AttemptBudget] = {}
    for budget in budgets:
        seen = smallest.get((budget.scope, budget.key))
        if seen is None or budget.budget < seen.budget:
            smallest[budget.scope, budget.key] = budget
    return [smallest[scope_key] for scope_key in sorted(smallest)]


def check_attempt_window(window_seconds: float) -> None:
    """Refuse a window that cannot end or has no length.

    Raises:
        ValueError: ``window_seconds`` is not finite or not over 0.
    """
    if not (math.isfinite(window_seconds) and window_seconds > 0):
        raise ValueError(f"window_seconds must be finite and > 0, not {window_seconds!r}")


Window = tuple[datetime, int]
"""A (scope, key)'s window: when it opened, and the attempts charged in it."""


def window_wait(
    start: datetime, count: int, budget: int, now: datetime, window_seconds: float
) -> float:
    """Seconds until a window with ``count`` of ``budget`` attempts spent ends, if it is
    spent and still open at ``now``; else 0.0 (an ended window counts as none)."""
    elapsed = (now - start).total_seconds()
    if elapsed >= window_seconds or count < budget:
        return 0.0
    return window_seconds - elapsed


def charge_plan(
    budgets: Sequence[AttemptBudget],
    windows: Sequence[Window | None],
    now: datetime,
    window_seconds: float,
) -> tuple[float, list[Window]]:
    """One charge, decided over its budgets' current windows (``None``: none yet), all or
    none: the seconds to wait and no windows when a budget is spent; else ``0.0`` and each
    budget's window after the charge (one attempt more, or a new window when it has ended).
    """
    wait = max(
        (
            window_wait(*window, b.budget, now, window_seconds)
            for b, window in zip(budgets, windows, strict=True)
            if window is not None
        ),
        default=0.0,
    )
    if wait > 0:
        return wait, []
    return 0.0, [
        (window[0], window[1] + 1)
        if window is not None and (now - window[0]).total_seconds() < window_seconds
        else (now, 1)
        for window in windows
    ]


_NEW_ATTEMPT_ROW = (
    "INSERT INTO secret_attempts (scope, key, window_start, count) VALUES (?, ?, ?, 0)"
    " ON CONFLICT (scope, key) DO NOTHING"
)
_DROP_ATTEMPT_ROW = "DELETE FROM secret_attempts WHERE scope = ? AND key = ?"
_SET_WINDOW = "UPDATE secret_attempts SET window_start = ?, count = ? WHERE scope = ? AND key = ?"
_REFUND_ATTEMPT = (
    "UPDATE secret_attempts SET count = count - 1 WHERE scope = ? AND key = ? AND count > 0"
)

#: A charge's row deleted by a purge between the statements that make sure it exists and
#: lock it is inserted again; a purge deletes only old windows, so once is all it takes.
_LOCK_TRIES = 3


def _lock_attempt_row(tx: Tx, scope: str, key: str, now: datetime) -> tuple[datetime, int] | None:
    """Lock the row of (scope, key), inserting it first if there is none; return its window
    start and count, or ``None`` if it was inserted here (no window yet)."""
    select = f"SELECT * FROM secret_attempts WHERE scope = ? AND key = ?{tx.for_update}"  # noqa: S608  # nosec B608
    for _ in range(_LOCK_TRIES):
        # An insert that conflicts with another transaction's new row waits for it.
        inserted = tx.execute(_NEW_ATTEMPT_ROW, [scope, key, tx.ts(now)]).rowcount == 1
        row = tx.execute(select, [scope, key]).fetchone()
        if row is not None:
            return None if inserted else (tx.read_ts(row["window_start"]), row["count"])
    raise StorageError(f"the failed-attempt row ({scope!r}, {key!r}) kept being deleted")


def charge_attempts(
    tx: Tx, budgets: Sequence[AttemptBudget], now: datetime, window_seconds: float
) -> float:
    now = now if now.tzinfo is not None else now.replace(tzinfo=UTC)
    ordered = attempt_budgets(budgets)
    windows = [_lock_attempt_row(tx, b.scope, b.key, now) for b in ordered]
    wait, after = charge_plan(ordered, windows, now, window_seconds)
    if wait > 0:
        # Refused: the rows made for this charge go again, and no count changes.
        for b, window in zip(ordered, windows, strict=True):
            if window is None:
                tx.execute(_DROP_ATTEMPT_ROW, [b.scope, b.key])
        return wait
    # The rows are locked: writing the decided windows is the same as counting in SQL.
    for b, (start, count) in zip(ordered, after, strict=True):
        tx.execute(_SET_WINDOW, [tx.ts(start), count, b.scope, b.key])
    return 0.0


def refund_attempts(tx: Tx, budgets: Sequence[AttemptBudget]) -> None:
    # One row per statement, in the charges' order.
    for b in attempt_budgets(budgets):
        tx.execute(_REFUND_ATTEMPT, [b.scope, b.key])


def purge_attempts(tx: Tx, started_before: datetime) -> int:
    # The rows are locked in the charges' order before they go (see above).
    sql = (
        "DELETE FROM secret_attempts WHERE (scope, key) IN (SELECT scope, key FROM secret_attempts"  # noqa: S608 (constant)  # nosec B608
        f" WHERE window_start < ? ORDER BY scope, key{tx.for_update})"
    )
    return tx.execute(sql, [tx.ts(started_before)]).rowcount
