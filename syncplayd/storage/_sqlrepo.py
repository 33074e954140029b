"""The async :class:`Repository` methods shared by the SQLite and PostgreSQL engines.

Every method is one call to a transaction function of :mod:`._queries`; an engine
decides only how a transaction runs (which connection, which thread, which lock)
by implementing :meth:`SqlRepository._write` and :meth:`SqlRepository._read`.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TypeVar, TypeVarTuple
from uuid import UUID

from syncplayd.core.queue import Queue
from syncplayd.storage import _queries as q
from syncplayd.storage._sql import Tx
from syncplayd.storage.base import Repository
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

T = TypeVar("T")
U = TypeVar("U")
Ts = TypeVarTuple("Ts")


def check_page(limit: int, offset: int) -> None:
    """Refuse negative paging (SQLite reads ``LIMIT -1`` as "no limit").

    Raises:
        ValueError: ``limit`` or ``offset`` is negative.
    """
    if limit < 0 or offset < 0:
        raise ValueError(f"limit and offset must be >= 0, not {limit} and {offset}")


class SqlRepository(Repository, abc.ABC):
    """A :class:`Repository` over the shared SQL transactions."""

    @abc.abstractmethod
    async def _write(self, fn: Callable[[Tx, *Ts], T], *args: *Ts) -> T:
        """Run ``fn(tx, *args)`` as one read-write transaction."""

    @abc.abstractmethod
    async def _read(self, fn: Callable[[Tx, *Ts], T], *args: *Ts) -> T:
        """Run ``fn(tx, *args)`` as one read-only transaction."""

    @abc.abstractmethod
    async def _write_then_read(
        self, write: Callable[[Tx], T], read: Callable[[Tx], U]
    ) -> tuple[T, U]:
        """Run ``write`` as a read-write transaction, then, once it has committed, ``read`` as
        a read-only one: in one worker-thread call (each hop costs the event loop a thread
        wake-up). ``read`` does not run if ``write`` raised."""

    async def ping(self) -> None:
        await self._read(q.ping)

    # -- rooms -----------------------------------------------------------------------------
    async def create_room(self, new: NewRoom) -> Room:
        return await self._write(q.create_room, new)

    async def get_room(self, room_id: UUID) -> Room | None:
        return await self._read(q.get_room, room_id)

    async def list_rooms(
        self, filters: RoomFilters, limit: int, offset: int
    ) -> tuple[list[Room], int]:
        check_page(limit, offset)
        return await self._read(q.list_rooms, filters, limit, offset)

    async def update_room(self, room_id: UUID, update: RoomUpdate) -> Room | None:
        return await self._write(q.update_room, room_id, update)

    async def update_playback(self, room_id: UUID, playback: Playback) -> None:
        await self._write(q.update_playback, room_id, playback)

    async def end_room(self, room_id: UUID, ended_at: datetime) -> bool:
        return await self._write(q.end_room, room_id, ended_at)

    async def delete_room(self, room_id: UUID) -> bool:
        return await self._write(q.delete_room, room_id)

    # -- the play queue ----------------------------------------------------------------------
    async def get_queue(self, room_id: UUID) -> Queue | None:
        return await self._read(q.get_queue, room_id)

    async def save_queue(
        self, room_id: UUID, queue: Queue, now: datetime, *, added_by: UUID | None = None
    ) -> Room:
        return await self._write(q.save_queue, room_id, queue, now, added_by)

    async def set_item_duration(self, room_id: UUID, item_id: UUID, duration: float) -> bool:
        return await self._write(q.set_item_duration, room_id, item_id, duration)

    # -- participants ------------------------------------------------------------------------
    async def add_participant(
        self, room_id: UUID, user_id: UUID, user_name: str, role: Role, now: datetime
    ) -> tuple[Participant, bool]:
        return await self._write(q.add_participant, room_id, user_id, user_name, role, now)

    async def admit_participant(
        self, room_id: UUID, user_id: UUID, user_name: str, role: Role, now: datetime
    ) -> tuple[Participant, Standing]:
        return await self._write_then_read(
            lambda tx: q.add_participant(tx, room_id, user_id, user_name, role, now)[0],
            lambda tx: q.get_standing(tx, room_id, user_id),
        )

    async def get_participant(self, room_id: UUID, user_id: UUID) -> Participant | None:
        return await self._read(q.get_participant, room_id, user_id)

    async def get_standing(self, room_id: UUID, user_id: UUID) -> Standing:
        return await self._read(q.get_standing, room_id, user_id)

    async def owner_names(self, room_ids: Sequence[UUID]) -> dict[UUID, str]:
        return await self._read(q.owner_names, room_ids) if room_ids else {}

    async def list_participants(
        self, room_id: UUID, connected_only: bool = False
    ) -> list[Participant]:
        return await self._read(q.list_participants, room_id, connected_only)

    async def update_participant(
        self,
        room_id: UUID,
        user_id: UUID,
        *,
        role: Role | None = None,
        is_connected: bool | None = None,
        last_seen_at: datetime | None = None,
    ) -> bool:
        return await self._write(
            q.update_participant, room_id, user_id, role, is_connected, last_seen_at
        )

    async def record_presence(self, updates: Sequence[PresenceUpdate]) -> None:
        if updates:
            await self._write(q.record_presence, updates)

    async def remove_participant(self, room_id: UUID, user_id: UUID) -> bool:
        return await self._write(q.remove_participant, room_id, user_id)

    async def transfer_ownership(self, room_id: UUID, new_owner_id: UUID, now: datetime) -> Room:
        return await self._write(q.transfer_ownership, room_id, new_owner_id, now)

    # -- restrictions ------------------------------------------------------------------------
    async def set_restriction(self, restriction: Restriction) -> Restriction:
        return await self._write(q.set_restriction, restriction)

    async def get_restriction(
        self, room_id: UUID, user_id: UUID, kind: RestrictionKind
    ) -> Restriction | None:
        return await self._read(q.get_restriction, room_id, user_id, kind)

    async def list_restrictions(
        self, room_id: UUID, kind: RestrictionKind, active_at: datetime | None
    ) -> list[Restriction]:
        return await self._read(q.list_restrictions, room_id, kind, active_at)

    async def delete_restriction(self, room_id: UUID, user_id: UUID, kind: RestrictionKind) -> bool:
        return await self._write(q.delete_restriction, room_id, user_id, kind)

    async def purge_expired_restrictions(self, expired_before: datetime) -> int:
        return await self._write(q.purge_expired_restrictions, expired_before)

    # -- chat and events ---------------------------------------------------------------------
    async def create_chat_message(self, message: ChatMessage) -> ChatMessage:
        return await self._write(q.create_chat_message, message)

    async def list_chat_messages(
        self, room_id: UUID, limit: int, offset: int
    ) -> tuple[list[ChatMessage], int]:
        check_page(limit, offset)
        return await self._read(q.list_chat_messages, room_id, limit, offset)

    async def get_chat_message(self, message_id: UUID) -> ChatMessage | None:
        return await self._read(q.get_chat_message, message_id)

    async def delete_chat_message(self, message_id: UUID) -> bool:
        return await self._write(q.delete_chat_message, message_id)

    async def log_events(self, events: Sequence[NewEvent]) -> None:
        if events:
            await self._write(q.log_events, events)

    async def list_events(self, room_id: UUID, limit: int, offset: int) -> tuple[list[Event], int]:
        check_page(limit, offset)
        return await self._read(q.list_events, room_id, limit, offset)

    async def list_events_after(self, room_id: UUID, after: int, limit: int) -> list[Event]:
        check_page(limit, 0)
        return await self._read(q.list_events_after, room_id, after, limit)

    # -- invitations -------------------------------------------------------------------------
    async def create_invitation(
        self, invitation: Invitation, *, max_live: int | None = None
    ) -> Invitation:
        return await self._write(q.create_invitation, invitation, max_live)

    async def get_invitation(self, code: str) -> Invitation | None:
        return await self._read(q.get_invitation, code)

    async def list_invitations(
        self, room_id: UUID | None, limit: int, offset: int
    ) -> tuple[list[Invitation], int]:
        check_page(limit, offset)
        return await self._read(q.list_invitations, room_id, limit, offset)

    async def consume_invitation(self, code: str, now: datetime) -> Invitation | None:
        return await self._write(q.consume_invitation, code, now)

    async def release_invitation(self, code: str) -> None:
        await self._write(q.release_invitation, code)

    async def delete_invitation(self, invitation_id: UUID) -> bool:
        return await self._write(q.delete_invitation, invitation_id)

    async def list_inactive_rooms(self, idle_since: datetime, limit: int) -> list[UUID]:
        return await self._read(q.list_inactive_rooms, idle_since, limit)

    async def purge_expired_invitations(self, expired_before: datetime) -> int:
        return await self._write(q.purge_expired_invitations, expired_before)

    async def purge_ended_rooms(self, ended_before: datetime, limit: int) -> int:
        check_page(limit, 0)
        return await self._write(q.purge_ended_rooms, ended_before, limit)

    async def purge_events(self, created_before: datetime, keep_per_room: int) -> int:
        check_page(keep_per_room, 0)
        return await self._write(q.purge_events, created_before, keep_per_room)

    # -- the cluster -------------------------------------------------------------------------
    async def upsert_node(self, node: NodeRecord) -> None:
        await self._write(q.upsert_node, node)

    async def touch_node(self, node_id: str, at: datetime) -> bool:
        return await self._write(q.touch_node, node_id, at)

    async def remove_node(self, node_id: str) -> bool:
        return await self._write(q.remove_node, node_id)

    async def list_nodes(self) -> list[NodeRecord]:
        return await self._read(q.list_nodes)

    async def set_room_owner(self, room_id: UUID, node_id: str, since: datetime) -> None:
        await self._write(q.set_room_owner, room_id, node_id, since)

    async def clear_room_owner(self, room_id: UUID, node_id: str) -> bool:
        return await self._write(q.clear_room_owner, room_id, node_id)

    async def clear_node_rooms(self, node_id: str) -> int:
        return await self._write(q.clear_node_rooms, node_id)

    async def room_owner(self, room_id: UUID) -> RoomOwner | None:
        return await self._read(q.room_owner, room_id)

    async def room_owners(self) -> list[RoomOwner]:
        return await self._read(q.room_owners)

    # -- failed-attempt budgets --------------------------------------------------------------
    async def charge_attempts(
        self, budgets: Sequence[AttemptBudget], now: datetime, window_seconds: float
    ) -> float:
        q.check_attempt_window(window_seconds)
        if not budgets:
            return 0.0
        return await self._write(q.charge_attempts, budgets, now, window_seconds)

    async def refund_attempts(self, budgets: Sequence[AttemptBudget]) -> None:
        if budgets:
            await self._write(q.refund_attempts, budgets)

    async def purge_attempts(self, started_before: datetime) -> int:
        return await self._write(q.purge_attempts, started_before)
