"""The repository contract every storage backend implements.

Methods are async for the trio shell; implementations run their blocking driver
calls in worker threads. Each method is one transaction: a method either fully
happens or raises.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol
from uuid import UUID

from syncplayd.core.queue import Queue
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


class Repository(Protocol):
    """Durable storage for rooms, participants, chat, events and invitations, the
    cluster's registry of nodes and room owners, and the failed-attempt budgets that the
    nodes share."""

    # -- lifecycle -----------------------------------------------------------
    async def ping(self) -> None:
        """Raise :class:`StorageUnavailable` unless the database answers."""

    async def aclose(self) -> None:
        """Release connections and threads."""

    # -- rooms -----------------------------------------------------------------
    async def create_room(self, new: NewRoom) -> Room:
        """Create a room and make its owner a participant with role ``owner``."""

    async def get_room(self, room_id: UUID) -> Room | None:
        """Return the room, or ``None`` if it does not exist."""

    async def list_rooms(
        self, filters: RoomFilters, limit: int, offset: int
    ) -> tuple[list[Room], int]:
        """Return one page of matching rooms (newest first) and the total count."""

    async def update_room(self, room_id: UUID, update: RoomUpdate) -> Room | None:
        """Apply a partial update; ``None`` if the room does not exist."""

    async def update_playback(self, room_id: UUID, playback: Playback) -> None:
        """Store the room's playback state (ignored if ``playback.version`` is older)."""

    async def end_room(self, room_id: UUID, ended_at: datetime) -> bool:
        """Mark the room ended and disconnect its participants; ``False`` if unknown
        or already ended."""

    async def delete_room(self, room_id: UUID) -> bool:
        """Delete the room and everything in it; ``False`` if it did not exist."""

    # -- the play queue ----------------------------------------------------------------
    async def get_queue(self, room_id: UUID) -> Queue | None:
        """The room's queue (of an ended room too); ``None`` if the room does not exist."""

    async def save_queue(
        self, room_id: UUID, queue: Queue, now: datetime, *, added_by: UUID | None = None
    ) -> Room:
        """Replace the room's queue with ``queue``, in one transaction.

        The items, their order, the current item and the modes become ``queue``'s; the
        room's ``content_type``/``content_id`` become the current item's (an empty queue
        leaves them as they were), its ``current_item_id`` the current item's id, and
        its ``updated_at`` ``now``. Items new to the room are recorded as added by
        ``added_by`` at ``now``; the others keep who added them and when. A stored
        duration wins over the queue's (first value wins: a duration recorded by
        :meth:`set_item_duration` since the queue was read is kept).

        Raises:
            RoomNotFound: the room does not exist.
            RoomEnded: the room has ended.
            StorageError: an item of ``queue`` is another room's.
        """

    async def set_item_duration(self, room_id: UUID, item_id: UUID, duration: float) -> bool:
        """Store an item's duration if it has none yet (first value wins); ``True`` if
        stored, ``False`` if the item (of that room) is unknown or has one already.

        Raises:
            StorageError: the duration is not finite, not over 0, or over
                :data:`~syncplayd.core.queue.MAX_DURATION` (the schema's CHECK).
        """

    # -- participants ------------------------------------------------------------
    async def add_participant(
        self, room_id: UUID, user_id: UUID, user_name: str, role: Role, now: datetime
    ) -> tuple[Participant, bool]:
        """Add a participant atomically against the room's capacity.

        Returns the participant and whether it was newly added (an existing member
        is returned unchanged, apart from ``user_name``).

        Raises:
            RoomNotFound: the room does not exist.
            RoomEnded: the room has ended.
            RoomFull: the room has ``max_participants`` participants already.
        """

    async def admit_participant(
        self, room_id: UUID, user_id: UUID, user_name: str, role: Role, now: datetime
    ) -> tuple[Participant, Standing]:
        """:meth:`add_participant`, then :meth:`get_standing` once the membership is stored:
        a join's write and its check after it, in one call (one worker-thread hop, not two).

        The read is a transaction of its own, begun after the write's commit: a ban stored
        before it is seen, and one stored after it finds the membership stored and removes
        it (as a ban removes the members it finds). One transaction would not do that on
        PostgreSQL, where a ban's removal does not see a membership not yet committed.

        Raises:
            RoomNotFound, RoomEnded, RoomFull: as :meth:`add_participant`.
        """

    async def get_participant(self, room_id: UUID, user_id: UUID) -> Participant | None:
        """Return the membership, or ``None``."""

    async def get_standing(self, room_id: UUID, user_id: UUID) -> Standing:
        """The room, the user's membership and the user's restrictions in it, in one read.

        What a join checks before and after storing the membership: one call (one
        round trip, one transaction) instead of three or four.
        """

    async def owner_names(self, room_ids: Sequence[UUID]) -> dict[UUID, str]:
        """Each room's owner's display name as a participant, by room id; rooms that do not
        exist or whose owner is no longer a participant are left out."""

    async def list_participants(
        self, room_id: UUID, connected_only: bool = False
    ) -> list[Participant]:
        """Return the room's participants in the order they joined."""

    async def update_participant(
        self,
        room_id: UUID,
        user_id: UUID,
        *,
        role: Role | None = None,
        is_connected: bool | None = None,
        last_seen_at: datetime | None = None,
    ) -> bool:
        """Change a participant's role or connection state; ``False`` if not a member."""

    async def record_presence(self, updates: Sequence[PresenceUpdate]) -> None:
        """Set each listed member's ``is_connected`` and ``last_seen_at``, in one transaction
        (a member who is not one any more is skipped)."""

    async def remove_participant(self, room_id: UUID, user_id: UUID) -> bool:
        """Remove a participant; ``False`` if not a member."""

    async def transfer_ownership(self, room_id: UUID, new_owner_id: UUID, now: datetime) -> Room:
        """Make a participant the room's owner, in one transaction.

        The room's ``owner_id`` becomes ``new_owner_id``, that participant's role
        ``owner``, and the previous owner's participation (if any) ``moderator``;
        ``updated_at`` becomes ``now``. Transferring to the current owner changes nothing.

        Raises:
            RoomNotFound: the room does not exist.
            RoomEnded: the room has ended.
            NotAParticipant: ``new_owner_id`` is not a participant of the room.
        """

    # -- restrictions (bans and mutes) ------------------------------------------------
    async def set_restriction(self, restriction: Restriction) -> Restriction:
        """Store a ban or mute, replacing the user's existing one of that kind in the room.

        Raises:
            RoomNotFound: the room does not exist.
        """

    async def get_restriction(
        self, room_id: UUID, user_id: UUID, kind: RestrictionKind
    ) -> Restriction | None:
        """The user's restriction of that kind in the room, expired or not; ``None`` if none."""

    async def list_restrictions(
        self, room_id: UUID, kind: RestrictionKind, active_at: datetime | None
    ) -> list[Restriction]:
        """The room's restrictions of that kind, newest first; with ``active_at``, only
        those not expired at that time."""

    async def delete_restriction(self, room_id: UUID, user_id: UUID, kind: RestrictionKind) -> bool:
        """Lift a restriction; ``False`` if there was none."""

    async def purge_expired_restrictions(self, expired_before: datetime) -> int:
        """Delete restrictions that expired before the given time; return how many."""

    # -- chat --------------------------------------------------------------------
    async def create_chat_message(self, message: ChatMessage) -> ChatMessage:
        """Store a chat message (durable once this returns)."""

    async def list_chat_messages(
        self, room_id: UUID, limit: int, offset: int
    ) -> tuple[list[ChatMessage], int]:
        """Return a page of the room's chat, newest first, and the total count."""

    async def get_chat_message(self, message_id: UUID) -> ChatMessage | None:
        """Return one message, or ``None``."""

    async def delete_chat_message(self, message_id: UUID) -> bool:
        """Delete one message; ``False`` if it did not exist."""

    # -- events ------------------------------------------------------------------
    async def log_events(self, events: Sequence[NewEvent]) -> None:
        """Append a batch of events in one transaction."""

    async def list_events(self, room_id: UUID, limit: int, offset: int) -> tuple[list[Event], int]:
        """Return a page of the room's events, newest first, and the total count."""

    async def list_events_after(self, room_id: UUID, after: int, limit: int) -> list[Event]:
        """Return up to ``limit`` of the room's events with an id above ``after``, oldest first."""

    # -- invitations -------------------------------------------------------------
    async def create_invitation(
        self, invitation: Invitation, *, max_live: int | None = None
    ) -> Invitation:
        """Store an invitation, atomically against the room's live invitations.

        With ``max_live``, the room may have at most that many live invitations (not
        expired at ``invitation.created_at`` and not used up) before this one; concurrent
        creates are counted one after the other.

        Raises:
            DuplicateCode: the code is taken; draw another.
            RoomNotFound: the room does not exist.
            TooManyInvitations: the room has ``max_live`` live invitations already.
        """

    async def get_invitation(self, code: str) -> Invitation | None:
        """Return the invitation with this code, or ``None``."""

    async def list_invitations(
        self, room_id: UUID | None, limit: int, offset: int
    ) -> tuple[list[Invitation], int]:
        """Return a page of the room's invitations (every room's with ``None``), expired
        and used-up ones included, newest first, and the total count."""

    async def consume_invitation(self, code: str, now: datetime) -> Invitation | None:
        """Atomically count one use of a valid invitation.

        Returns the updated invitation, or ``None`` if it does not exist, has expired
        or is used up.
        """

    async def release_invitation(self, code: str) -> None:
        """Give back one use taken by :meth:`consume_invitation` (a join that failed)."""

    async def delete_invitation(self, invitation_id: UUID) -> bool:
        """Delete an invitation; ``False`` if it did not exist."""

    async def list_inactive_rooms(self, idle_since: datetime, limit: int) -> list[UUID]:
        """Active rooms with no settings or playback change since ``idle_since`` (oldest first)."""

    async def purge_expired_invitations(self, expired_before: datetime) -> int:
        """Delete invitations that expired before the given time; return how many."""

    async def purge_ended_rooms(self, ended_before: datetime, limit: int) -> int:
        """Delete up to ``limit`` rooms that ended before the given time, oldest first,
        with their participants, chat, events, invitations, restrictions and queues; return
        how many rooms."""

    async def purge_events(self, created_before: datetime, keep_per_room: int) -> int:
        """Delete events created before the given time, and every room's events beyond its
        newest ``keep_per_room``; return how many. Ids are never reused."""

    # -- the cluster: nodes and room owners --------------------------------------------
    async def upsert_node(self, node: NodeRecord) -> None:
        """Register a node, or replace its row (a node restarting under the same id)."""

    async def touch_node(self, node_id: str, at: datetime) -> bool:
        """Set the node's ``heartbeat_at``; ``False`` if it has no row (it was removed,
        and should register again)."""

    async def remove_node(self, node_id: str) -> bool:
        """Delete the node's row (its room owner rows stay: see :meth:`clear_node_rooms`);
        ``False`` if it had none."""

    async def list_nodes(self) -> list[NodeRecord]:
        """Every registered node, stale ones too, oldest ``started_at`` first (then by id)."""

    async def set_room_owner(self, room_id: UUID, node_id: str, since: datetime) -> None:
        """Record ``node_id`` as the room's owner since ``since``, replacing any other
        (the row says the latest owner).

        Raises:
            RoomNotFound: the room does not exist.
        """

    async def clear_room_owner(self, room_id: UUID, node_id: str) -> bool:
        """Delete the room's owner row if it names ``node_id``; ``False`` if there was no
        row or it names another node (which took the room since: its row stays)."""

    async def clear_node_rooms(self, node_id: str) -> int:
        """Delete every owner row naming ``node_id``; return how many."""

    async def room_owner(self, room_id: UUID) -> RoomOwner | None:
        """The room's owner row, or ``None``."""

    async def room_owners(self) -> list[RoomOwner]:
        """Every owner row, oldest ``since`` first (then by room id). Deleting a room
        deletes its row."""

    # -- failed-attempt budgets (multi-node mode) --------------------------------------
    async def charge_attempts(
        self, budgets: Sequence[AttemptBudget], now: datetime, window_seconds: float
    ) -> float:
        """Charge one attempt to every budget, all or none.

        Each (scope, key) has a fixed window that opens at its first charge (``now``) and lasts
        ``window_seconds``; once it has ended, the next charge opens a new one with a count of 1.
        Returns 0.0 when charged. When any budget's window is still open with ``count >= budget``,
        nothing is charged and the result is the seconds until the last of those spent windows
        ends (``> 0``). Atomic across concurrent callers, nodes included: with a budget of B,
        of any number of concurrent charges exactly B succeed within one window.

        A (scope, key) named twice is charged once, against the smaller budget; no budgets,
        nothing to charge (0.0).

        Raises:
            ValueError: ``window_seconds`` is not finite or not over 0.
        """

    async def refund_attempts(self, budgets: Sequence[AttemptBudget]) -> None:
        """Give back one attempt of each budget's current window (it was a correct guess):
        count - 1, never below 0; no row, nothing to do."""

    async def purge_attempts(self, started_before: datetime) -> int:
        """Delete the windows that opened before ``started_before``; return how many."""
