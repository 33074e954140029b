"""A dict-backed :class:`Repository`: the verified fake for tests and ``memory://``.

It passes the same contract suite as the SQL engines, so it reproduces what the
schema enforces (CHECK constraints, unique codes, foreign keys, cascades) and what
the databases do to values (UTC timestamps, floats, JSON round trips). Each method
checkpoints once and then runs without awaiting, which makes it atomic under
trio's cooperative scheduling, as a transaction is.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import trio

from syncplayd.core.queue import SLOW_POLICIES, Queue, QueueItem
from syncplayd.storage._queries import Window, attempt_budgets, charge_plan, check_attempt_window
from syncplayd.storage._sql import check_duration, first_item, new_item
from syncplayd.storage._sqlrepo import check_page
from syncplayd.storage.base import Repository
from syncplayd.storage.errors import (
    DuplicateCode,
    NotAParticipant,
    RoomEnded,
    RoomFull,
    RoomNotFound,
    StorageError,
    StorageUnavailable,
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


def _utc(value: datetime) -> datetime:
    # As stored by the databases: naive means UTC, and values come back in UTC.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


#: The schema's limit on a restriction's reason, in characters.
MAX_REASON_LENGTH = 500


def _check_room(
    name: str | None, max_participants: int | None, wait_for_slow_members: str | None = None
) -> None:
    # The schema's CHECK constraints.
    if name is not None and not 1 <= len(name) <= 200:
        raise StorageError("CHECK constraint failed: room name must be 1 to 200 characters")
    if max_participants is not None and max_participants < 1:
        raise StorageError("CHECK constraint failed: max_participants must be >= 1")
    if wait_for_slow_members is not None and wait_for_slow_members not in SLOW_POLICIES:
        raise StorageError("CHECK constraint failed: wait_for_slow_members")


def _stored_item(item: QueueItem) -> QueueItem:
    # As the databases give numbers back: floats.
    duration = None if item.duration is None else float(item.duration)
    return dataclasses.replace(item, duration=duration, shuffle_rank=float(item.shuffle_rank))


class MemoryRepository(Repository):
    """Keeps everything in dicts; nothing survives :meth:`aclose`."""

    def __init__(self) -> None:
        # Rooms are kept with participant_count 0; the count is computed on read.
        self._rooms: dict[UUID, Room] = {}
        self._members: dict[UUID, dict[UUID, Participant]] = {}
        self._chat: dict[UUID, ChatMessage] = {}
        self._events: list[tuple[Event, str]] = []  # payload kept as JSON text
        self._last_event_id = 0
        self._invitations: dict[str, Invitation] = {}
        # Keyed as the table's primary key: (room, kind, user).
        self._restrictions: dict[tuple[UUID, RestrictionKind, UUID], Restriction] = {}
        # Each room's queue (who added an item is not kept: nothing reads it back), and
        # the room of every item: item ids are one table's primary key.
        self._queues: dict[UUID, Queue] = {}
        self._item_rooms: dict[UUID, UUID] = {}
        self._nodes: dict[str, NodeRecord] = {}
        self._owners: dict[UUID, RoomOwner] = {}
        # (scope, key) -> (window_start, count), as the secret_attempts table keeps them.
        self._attempts: dict[tuple[str, str], Window] = {}
        self._closed = False

    async def _enter(self) -> None:
        await trio.lowlevel.checkpoint()
        if self._closed:
            raise StorageUnavailable("the repository is closed")

    def _room(self, room_id: UUID) -> Room | None:
        room = self._rooms.get(room_id)
        if room is None:
            return None
        return dataclasses.replace(room, participant_count=len(self._members[room_id]))

    # -- lifecycle ---------------------------------------------------------------------------
    async def ping(self) -> None:
        await self._enter()

    async def aclose(self) -> None:
        self._closed = True

    # -- rooms -------------------------------------------------------------------------------
    async def create_room(self, new: NewRoom) -> Room:
        await self._enter()
        _check_room(new.name, new.max_participants, new.wait_for_slow_members)
        if new.id in self._rooms:
            raise StorageError(f"UNIQUE constraint failed: room {new.id} exists")
        item = _stored_item(first_item(new))
        at = _utc(new.created_at)
        self._rooms[new.id] = Room(
            id=new.id,
            name=new.name,
            owner_id=new.owner_id,
            content_type=new.content_type,
            content_id=new.content_id,
            is_public=new.is_public,
            password_hash=new.password_hash,
            syncplay_password_hash=new.syncplay_password_hash,
            max_participants=new.max_participants,
            playback_control=new.playback_control,
            playback=Playback(),
            created_at=at,
            updated_at=at,
            ended_at=None,
            participant_count=0,
            current_item_id=item.id,
            wait_for_slow_members=new.wait_for_slow_members,
            start_when_ready=new.start_when_ready,
        )
        owner = Participant(new.id, new.owner_id, new.owner_name, Role.OWNER, False, at, at)
        self._members[new.id] = {new.owner_id: owner}
        self._queues[new.id] = Queue((item,), item.id)
        self._item_rooms[item.id] = new.id
        return self._must_room(new.id)

    def _must_room(self, room_id: UUID) -> Room:
        room = self._room(room_id)
        if room is None:
            raise RoomNotFound(str(room_id))
        return room

    async def get_room(self, room_id: UUID) -> Room | None:
        await self._enter()
        return self._room(room_id)

    def _matches(self, room: Room, f: RoomFilters) -> bool:
        def is_member(user: UUID) -> bool:
            return room.owner_id == user or user in self._members[room.id]

        return (
            (f.visible_to is None or room.is_public or is_member(f.visible_to))
            and (f.member is None or is_member(f.member))
            and (not f.public_only or room.is_public)
            and (f.content_type is None or room.content_type == f.content_type)
            and (f.content_id is None or room.content_id == f.content_id)
            and (f.active is None or f.active == (room.ended_at is None))
        )

    async def list_rooms(
        self, filters: RoomFilters, limit: int, offset: int
    ) -> tuple[list[Room], int]:
        check_page(limit, offset)
        await self._enter()
        found = [r for r in self._rooms.values() if self._matches(r, filters)]
        found.sort(key=lambda r: (r.created_at, r.id), reverse=True)
        return [self._must_room(r.id) for r in found[offset : offset + limit]], len(found)

    async def update_room(self, room_id: UUID, update: RoomUpdate) -> Room | None:
        await self._enter()
        room = self._rooms.get(room_id)
        if room is None:
            return None
        _check_room(update.name, update.max_participants, update.wait_for_slow_members)
        changes: dict[str, Any] = {
            name: getattr(update, name)
            for name in (
                "name",
                "content_type",
                "content_id",
                "is_public",
                "max_participants",
                "playback_control",
                "moderators_manage_moderators",
                "wait_for_slow_members",
                "start_when_ready",
            )
            if getattr(update, name) is not None
        }
        # As the SQL engines: a new password wins over clear_password, and its verifier
        # (or its lack of one) always replaces the old password's.
        if update.password_hash is not None:
            changes["password_hash"] = update.password_hash
            changes["syncplay_password_hash"] = update.syncplay_password_hash
        elif update.clear_password:
            changes["password_hash"] = changes["syncplay_password_hash"] = None
        room = dataclasses.replace(room, updated_at=_utc(update.updated_at), **changes)
        if update.content_type is not None or update.content_id is not None:
            room = self._content_to_current_item(room)
        self._rooms[room_id] = room
        return self._room(room_id)

    def _content_to_current_item(self, room: Room) -> Room:
        # As the SQL engines: the current item takes the room's new content, keeping its
        # id; title and duration go unless the content is the same; an empty queue gets
        # the content as its one item.
        queue = self._queues[room.id]
        content = (room.content_type, room.content_id)
        current = queue.current
        if current is None:
            item = _stored_item(new_item(*content))
            self._queues[room.id] = dataclasses.replace(queue, items=(item,), current_id=item.id)
            self._item_rooms[item.id] = room.id
            return dataclasses.replace(room, current_item_id=item.id)
        if (current.content_type, current.content_id) != content:
            changed = dataclasses.replace(
                current, content_type=content[0], content_id=content[1], title=None, duration=None
            )
            items = tuple(changed if i.id == current.id else i for i in queue.items)
            self._queues[room.id] = dataclasses.replace(queue, items=items)
        return room

    async def update_playback(self, room_id: UUID, playback: Playback) -> None:
        await self._enter()
        room = self._rooms.get(room_id)
        if room is None or playback.version < room.playback.version:
            return
        stored = dataclasses.replace(
            playback,
            position=float(playback.position),
            rate=float(playback.rate),
            updated_at=None if playback.updated_at is None else _utc(playback.updated_at),
        )
        self._rooms[room_id] = dataclasses.replace(room, playback=stored)

    async def end_room(self, room_id: UUID, ended_at: datetime) -> bool:
        await self._enter()
        room = self._rooms.get(room_id)
        if room is None or room.ended_at is not None:
            return False
        at = _utc(ended_at)
        self._rooms[room_id] = dataclasses.replace(room, ended_at=at, updated_at=at)
        members = self._members[room_id]
        for user_id, member in members.items():
            members[user_id] = dataclasses.replace(member, is_connected=False)
        return True

    async def delete_room(self, room_id: UUID) -> bool:
        await self._enter()
        if self._rooms.pop(room_id, None) is None:
            return False
        # ON DELETE CASCADE
        del self._members[room_id]
        self._owners.pop(room_id, None)
        self._drop_queues({room_id})
        self._chat = {k: m for k, m in self._chat.items() if m.room_id != room_id}
        self._events = [e for e in self._events if e[0].room_id != room_id]
        self._invitations = {k: i for k, i in self._invitations.items() if i.room_id != room_id}
        self._restrictions = {k: r for k, r in self._restrictions.items() if r.room_id != room_id}
        return True

    # -- the play queue ----------------------------------------------------------------------
    def _drop_queues(self, room_ids: set[UUID]) -> None:
        for room_id in room_ids:
            for item in self._queues.pop(room_id).items:
                del self._item_rooms[item.id]

    async def get_queue(self, room_id: UUID) -> Queue | None:
        await self._enter()
        return self._queues.get(room_id)

    async def save_queue(
        self, room_id: UUID, queue: Queue, now: datetime, *, added_by: UUID | None = None
    ) -> Room:
        await self._enter()
        room = self._must_room(room_id)
        if room.ended_at is not None:
            raise RoomEnded(str(room_id))
        for item in queue.items:
            if self._item_rooms.get(item.id, room_id) != room_id:
                raise StorageError(f"UNIQUE constraint failed: queue item {item.id} exists")
        old = self._queues[room_id]

        def kept(item: QueueItem) -> QueueItem:
            stored = old.find(item.id)
            if stored is not None and stored.duration is not None:  # first value wins
                item = dataclasses.replace(item, duration=stored.duration)
            return _stored_item(item)

        self._queues[room_id] = dataclasses.replace(
            queue, items=tuple(kept(item) for item in queue.items)
        )
        for item in old.items:
            del self._item_rooms[item.id]
        self._item_rooms.update((item.id, room_id) for item in queue.items)
        changes: dict[str, Any] = {"current_item_id": queue.current_id, "updated_at": _utc(now)}
        current = queue.current
        if current is not None:  # the room's content is what it plays
            changes.update(content_type=current.content_type, content_id=current.content_id)
        self._rooms[room_id] = dataclasses.replace(self._rooms[room_id], **changes)
        return self._must_room(room_id)

    async def set_item_duration(self, room_id: UUID, item_id: UUID, duration: float) -> bool:
        await self._enter()
        check_duration(duration)
        queue = self._queues.get(room_id)
        item = None if queue is None else queue.find(item_id)
        if queue is None or item is None or item.duration is not None:
            return False
        timed = dataclasses.replace(item, duration=float(duration))
        items = tuple(timed if i.id == item_id else i for i in queue.items)
        self._queues[room_id] = dataclasses.replace(queue, items=items)
        return True

    # -- participants ------------------------------------------------------------------------
    async def add_participant(
        self, room_id: UUID, user_id: UUID, user_name: str, role: Role, now: datetime
    ) -> tuple[Participant, bool]:
        await self._enter()
        room = self._must_room(room_id)
        if room.ended_at is not None:
            raise RoomEnded(str(room_id))
        members = self._members[room_id]
        existing = members.get(user_id)
        if existing is not None:
            members[user_id] = dataclasses.replace(existing, user_name=user_name)
            return members[user_id], False
        if len(members) >= room.max_participants:
            raise RoomFull(str(room_id))
        at = _utc(now)
        members[user_id] = Participant(room_id, user_id, user_name, role, False, at, at)
        return members[user_id], True

    async def admit_participant(
        self, room_id: UUID, user_id: UUID, user_name: str, role: Role, now: datetime
    ) -> tuple[Participant, Standing]:
        # Two steps with a checkpoint between, as the SQL backends' two transactions: what
        # runs between them (a ban, in the tests) is seen by the read.
        participant, _ = await self.add_participant(room_id, user_id, user_name, role, now)
        return participant, await self.get_standing(room_id, user_id)

    async def get_participant(self, room_id: UUID, user_id: UUID) -> Participant | None:
        await self._enter()
        return self._members.get(room_id, {}).get(user_id)

    async def get_standing(self, room_id: UUID, user_id: UUID) -> Standing:
        await self._enter()
        return Standing(
            room=self._room(room_id),
            participant=self._members.get(room_id, {}).get(user_id),
            restrictions=tuple(
                r
                for kind in sorted(RestrictionKind)
                if (r := self._restrictions.get((room_id, kind, user_id))) is not None
            ),
        )

    async def owner_names(self, room_ids: Sequence[UUID]) -> dict[UUID, str]:
        await self._enter()
        names: dict[UUID, str] = {}
        for room_id in room_ids:
            room = self._rooms.get(room_id)
            owner = self._members.get(room_id, {}).get(room.owner_id) if room else None
            if owner is not None:
                names[room_id] = owner.user_name
        return names

    async def list_participants(
        self, room_id: UUID, connected_only: bool = False
    ) -> list[Participant]:
        await self._enter()
        members = self._members.get(room_id, {}).values()
        found = [m for m in members if m.is_connected or not connected_only]
        return sorted(found, key=lambda m: (m.joined_at, m.user_id))

    async def update_participant(
        self,
        room_id: UUID,
        user_id: UUID,
        *,
        role: Role | None = None,
        is_connected: bool | None = None,
        last_seen_at: datetime | None = None,
    ) -> bool:
        await self._enter()
        members = self._members.get(room_id, {})
        member = members.get(user_id)
        if member is None:
            return False
        members[user_id] = dataclasses.replace(
            member,
            role=member.role if role is None else role,
            is_connected=member.is_connected if is_connected is None else is_connected,
            last_seen_at=member.last_seen_at if last_seen_at is None else _utc(last_seen_at),
        )
        return True

    async def remove_participant(self, room_id: UUID, user_id: UUID) -> bool:
        await self._enter()
        return self._members.get(room_id, {}).pop(user_id, None) is not None

    async def transfer_ownership(self, room_id: UUID, new_owner_id: UUID, now: datetime) -> Room:
        await self._enter()
        room = self._must_room(room_id)
        if room.ended_at is not None:
            raise RoomEnded(str(room_id))
        members = self._members[room_id]
        new_owner = members.get(new_owner_id)
        if new_owner is None:
            raise NotAParticipant(f"{new_owner_id} in room {room_id}")
        if room.owner_id == new_owner_id:
            return room
        old_owner = members.get(room.owner_id)
        if old_owner is not None:  # the previous owner may have left
            members[room.owner_id] = dataclasses.replace(old_owner, role=Role.MODERATOR)
        members[new_owner_id] = dataclasses.replace(new_owner, role=Role.OWNER)
        self._rooms[room_id] = dataclasses.replace(
            self._rooms[room_id], owner_id=new_owner_id, updated_at=_utc(now)
        )
        return self._must_room(room_id)

    # -- restrictions ------------------------------------------------------------------------
    async def set_restriction(self, restriction: Restriction) -> Restriction:
        await self._enter()
        if restriction.reason is not None and len(restriction.reason) > MAX_REASON_LENGTH:
            raise StorageError(f"CHECK constraint failed: reason over {MAX_REASON_LENGTH}")
        self._must_room(restriction.room_id)
        kind = RestrictionKind(restriction.kind)  # read back as the enum, as from the table
        stored = dataclasses.replace(
            restriction,
            kind=kind,
            created_at=_utc(restriction.created_at),
            expires_at=None if restriction.expires_at is None else _utc(restriction.expires_at),
        )
        self._restrictions[restriction.room_id, kind, restriction.user_id] = stored
        return stored

    async def get_restriction(
        self, room_id: UUID, user_id: UUID, kind: RestrictionKind
    ) -> Restriction | None:
        await self._enter()
        return self._restrictions.get((room_id, kind, user_id))

    async def list_restrictions(
        self, room_id: UUID, kind: RestrictionKind, active_at: datetime | None
    ) -> list[Restriction]:
        await self._enter()
        at = None if active_at is None else _utc(active_at)
        found = [
            r
            for r in self._restrictions.values()
            if r.room_id == room_id and r.kind == kind and (at is None or r.is_active(at))
        ]
        found.sort(key=lambda r: (r.created_at, r.user_id), reverse=True)
        return found

    async def delete_restriction(self, room_id: UUID, user_id: UUID, kind: RestrictionKind) -> bool:
        await self._enter()
        return self._restrictions.pop((room_id, kind, user_id), None) is not None

    async def purge_expired_restrictions(self, expired_before: datetime) -> int:
        await self._enter()
        cutoff = _utc(expired_before)
        expired = [
            key
            for key, r in self._restrictions.items()
            if r.expires_at is not None and r.expires_at < cutoff
        ]
        for key in expired:
            del self._restrictions[key]
        return len(expired)

    # -- chat and events ---------------------------------------------------------------------
    async def create_chat_message(self, message: ChatMessage) -> ChatMessage:
        await self._enter()
        if message.id in self._chat:
            raise StorageError(f"UNIQUE constraint failed: chat message {message.id} exists")
        self._must_room(message.room_id)
        stored = dataclasses.replace(message, created_at=_utc(message.created_at))
        self._chat[message.id] = stored
        return stored

    async def list_chat_messages(
        self, room_id: UUID, limit: int, offset: int
    ) -> tuple[list[ChatMessage], int]:
        check_page(limit, offset)
        await self._enter()
        found = [m for m in self._chat.values() if m.room_id == room_id]
        found.sort(key=lambda m: (m.created_at, m.id), reverse=True)
        return found[offset : offset + limit], len(found)

    async def get_chat_message(self, message_id: UUID) -> ChatMessage | None:
        await self._enter()
        return self._chat.get(message_id)

    async def delete_chat_message(self, message_id: UUID) -> bool:
        await self._enter()
        return self._chat.pop(message_id, None) is not None

    async def record_presence(self, updates: Sequence[PresenceUpdate]) -> None:
        await self._enter()
        for update in updates:
            members = self._members.get(update.room_id, {})
            member = members.get(update.user_id)
            if member is not None:
                members[update.user_id] = dataclasses.replace(
                    member, is_connected=update.is_connected, last_seen_at=_utc(update.seen_at)
                )

    async def log_events(self, events: Sequence[NewEvent]) -> None:
        await self._enter()
        for event in events:  # all or nothing, as one transaction
            self._must_room(event.room_id)
        encoded = [json.dumps(event.payload) for event in events]
        for event, payload in zip(events, encoded, strict=True):
            self._last_event_id += 1
            stored = Event(
                self._last_event_id, event.room_id, event.type, _utc(event.created_at),
                event.user_id, {},
            )  # fmt: skip
            self._events.append((stored, payload))

    async def list_events(self, room_id: UUID, limit: int, offset: int) -> tuple[list[Event], int]:
        check_page(limit, offset)
        await self._enter()
        # Appended in id order, so newest first is the reverse.
        found = [e for e in reversed(self._events) if e[0].room_id == room_id]
        page = [
            dataclasses.replace(event, payload=json.loads(payload))
            for event, payload in found[offset : offset + limit]
        ]
        return page, len(found)

    async def list_events_after(self, room_id: UUID, after: int, limit: int) -> list[Event]:
        check_page(limit, 0)
        await self._enter()
        found = [e for e in self._events if e[0].room_id == room_id and e[0].id > after]
        return [
            dataclasses.replace(event, payload=json.loads(payload))
            for event, payload in found[:limit]
        ]

    # -- invitations -------------------------------------------------------------------------
    async def create_invitation(
        self, invitation: Invitation, *, max_live: int | None = None
    ) -> Invitation:
        await self._enter()
        if max_live is not None:
            self._must_room(invitation.room_id)
            now = _utc(invitation.created_at)
            live = sum(
                i.room_id == invitation.room_id and not i.is_expired(now) and not i.is_used_up
                for i in self._invitations.values()
            )
            if live >= max_live:
                raise TooManyInvitations(str(invitation.room_id))
        if invitation.code in self._invitations:
            raise DuplicateCode(invitation.code)
        if any(i.id == invitation.id for i in self._invitations.values()):
            raise StorageError(f"UNIQUE constraint failed: invitation {invitation.id} exists")
        if invitation.max_uses is not None and invitation.max_uses < 1:
            raise StorageError("CHECK constraint failed: max_uses must be >= 1")
        self._must_room(invitation.room_id)
        stored = dataclasses.replace(
            invitation,
            expires_at=_utc(invitation.expires_at),
            created_at=_utc(invitation.created_at),
        )
        self._invitations[invitation.code] = stored
        return stored

    async def get_invitation(self, code: str) -> Invitation | None:
        await self._enter()
        return self._invitations.get(code)

    async def list_invitations(
        self, room_id: UUID | None, limit: int, offset: int
    ) -> tuple[list[Invitation], int]:
        check_page(limit, offset)
        await self._enter()
        found = [i for i in self._invitations.values() if room_id in (None, i.room_id)]
        found.sort(key=lambda i: (i.created_at, i.id), reverse=True)
        return found[offset : offset + limit], len(found)

    async def consume_invitation(self, code: str, now: datetime) -> Invitation | None:
        await self._enter()
        invitation = self._invitations.get(code)
        if invitation is None or invitation.is_expired(_utc(now)) or invitation.is_used_up:
            return None
        used = dataclasses.replace(invitation, use_count=invitation.use_count + 1)
        self._invitations[code] = used
        return used

    async def release_invitation(self, code: str) -> None:
        await self._enter()
        invitation = self._invitations.get(code)
        if invitation is not None and invitation.use_count > 0:
            released = dataclasses.replace(invitation, use_count=invitation.use_count - 1)
            self._invitations[code] = released

    async def delete_invitation(self, invitation_id: UUID) -> bool:
        await self._enter()
        for code, invitation in self._invitations.items():
            if invitation.id == invitation_id:
                del self._invitations[code]
                return True
        return False

    async def list_inactive_rooms(self, idle_since: datetime, limit: int) -> list[UUID]:
        await self._enter()
        cutoff = _utc(idle_since)

        def last(room: Room) -> datetime:
            played = room.playback.updated_at
            return played if played is not None and played > room.updated_at else room.updated_at

        idle = sorted((r for r in self._rooms.values() if r.ended_at is None), key=last)
        return [room.id for room in idle if last(room) < cutoff][:limit]

    async def purge_expired_invitations(self, expired_before: datetime) -> int:
        await self._enter()
        cutoff = _utc(expired_before)
        expired = [c for c, i in self._invitations.items() if i.expires_at < cutoff]
        for code in expired:
            del self._invitations[code]
        return len(expired)

    async def purge_ended_rooms(self, ended_before: datetime, limit: int) -> int:
        check_page(limit, 0)
        await self._enter()
        cutoff = _utc(ended_before)
        ended = sorted(
            (r for r in self._rooms.values() if r.ended_at is not None and r.ended_at < cutoff),
            key=lambda r: (r.ended_at, r.id),
        )[:limit]
        gone = {room.id for room in ended}
        for room_id in gone:  # ON DELETE CASCADE
            del self._rooms[room_id], self._members[room_id]
            self._owners.pop(room_id, None)
        self._drop_queues(gone)
        self._chat = {k: m for k, m in self._chat.items() if m.room_id not in gone}
        self._events = [e for e in self._events if e[0].room_id not in gone]
        self._invitations = {k: i for k, i in self._invitations.items() if i.room_id not in gone}
        self._restrictions = {k: r for k, r in self._restrictions.items() if r.room_id not in gone}
        return len(gone)

    async def purge_events(self, created_before: datetime, keep_per_room: int) -> int:
        check_page(keep_per_room, 0)
        await self._enter()
        cutoff = _utc(created_before)
        kept: list[tuple[Event, str]] = []
        per_room: dict[UUID, int] = {}
        for entry in reversed(self._events):  # newest first
            event = entry[0]
            if event.created_at < cutoff:
                continue
            seen = per_room.get(event.room_id, 0)
            if seen < keep_per_room:
                per_room[event.room_id] = seen + 1
                kept.append(entry)
        purged = len(self._events) - len(kept)
        kept.reverse()
        self._events = kept
        return purged

    # -- the cluster -------------------------------------------------------------------------
    async def upsert_node(self, node: NodeRecord) -> None:
        await self._enter()
        self._nodes[node.node_id] = dataclasses.replace(
            node, started_at=_utc(node.started_at), heartbeat_at=_utc(node.heartbeat_at)
        )

    async def touch_node(self, node_id: str, at: datetime) -> bool:
        await self._enter()
        node = self._nodes.get(node_id)
        if node is None:
            return False
        self._nodes[node_id] = dataclasses.replace(node, heartbeat_at=_utc(at))
        return True

    async def remove_node(self, node_id: str) -> bool:
        await self._enter()
        return self._nodes.pop(node_id, None) is not None

    async def list_nodes(self) -> list[NodeRecord]:
        await self._enter()
        return sorted(self._nodes.values(), key=lambda n: (n.started_at, n.node_id))

    async def set_room_owner(self, room_id: UUID, node_id: str, since: datetime) -> None:
        await self._enter()
        self._must_room(room_id)  # the foreign key
        self._owners[room_id] = RoomOwner(room_id, node_id, _utc(since))

    async def clear_room_owner(self, room_id: UUID, node_id: str) -> bool:
        await self._enter()
        owner = self._owners.get(room_id)
        if owner is None or owner.node_id != node_id:
            return False
        del self._owners[room_id]
        return True

    async def clear_node_rooms(self, node_id: str) -> int:
        await self._enter()
        mine = [room_id for room_id, o in self._owners.items() if o.node_id == node_id]
        for room_id in mine:
            del self._owners[room_id]
        return len(mine)

    async def room_owner(self, room_id: UUID) -> RoomOwner | None:
        await self._enter()
        return self._owners.get(room_id)

    async def room_owners(self) -> list[RoomOwner]:
        await self._enter()
        return sorted(self._owners.values(), key=lambda o: (o.since, o.room_id))

    # -- failed-attempt budgets --------------------------------------------------------------
    async def charge_attempts(
        self, budgets: Sequence[AttemptBudget], now: datetime, window_seconds: float
    ) -> float:
        check_attempt_window(window_seconds)
        ordered = attempt_budgets(budgets)
        await self._enter()
        windows = [self._attempts.get((b.scope, b.key)) for b in ordered]
        wait, after = charge_plan(ordered, windows, _utc(now), window_seconds)
        if wait > 0:
            return wait
        for b, window in zip(ordered, after, strict=True):
            self._attempts[b.scope, b.key] = window
        return 0.0

    async def refund_attempts(self, budgets: Sequence[AttemptBudget]) -> None:
        await self._enter()
        for b in attempt_budgets(budgets):
            window = self._attempts.get((b.scope, b.key))
            if window is not None and window[1] > 0:
                self._attempts[b.scope, b.key] = (window[0], window[1] - 1)

    async def purge_attempts(self, started_before: datetime) -> int:
        await self._enter()
        cutoff = _utc(started_before)
        old = [scope_key for scope_key, (start, _) in self._attempts.items() if start < cutoff]
        for scope_key in old:
            del self._attempts[scope_key]
        return len(old)
