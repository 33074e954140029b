"""What operators may read and tidy across every room: the admin API's own operations.

The rules that change a live room (kick, end, update, chat) are the room
service's, shared by every transport; this is the rest of what ``syncplayctl``
needs: searching every room, the whole chat history and event log of a room,
any invitation (expired and used-up ones included), the names that stand for
user ids in what it prints, and the housekeeping of invitations. Every method
refuses a caller who is not an administrator.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

from syncplayd.core import access
from syncplayd.core.codes import normalize_code
from syncplayd.identity import Principal
from syncplayd.service.errors import forbidden, not_found
from syncplayd.storage.base import Repository
from syncplayd.storage.records import (
    ChatMessage,
    Event,
    Invitation,
    NodeRecord,
    Room,
    RoomFilters,
    RoomOwner,
)

#: The longest invitation code looked up; longer input cannot be a code.
MAX_CODE_LENGTH = 64


class AdminQueries:
    """Server-wide reads and housekeeping for administrators."""

    def __init__(self, repo: Repository) -> None:
        self._repo = repo

    async def ping_database(self) -> None:
        """Raises ``StorageUnavailable`` when the database does not answer."""
        await self._repo.ping()

    async def cluster_nodes(self) -> tuple[list[NodeRecord], list[RoomOwner]]:
        """The registered nodes and which rooms each runs (multi-node mode)."""
        return await self._repo.list_nodes(), await self._repo.room_owners()

    async def list_rooms(
        self, principal: Principal, filters: RoomFilters, limit: int, offset: int
    ) -> tuple[list[Room], int]:
        """Every room matching ``filters``, private ones included."""
        _require_admin(principal)
        return await self._repo.list_rooms(filters, limit, offset)

    async def owner_names(self, principal: Principal, rooms: Sequence[Room]) -> dict[UUID, str]:
        """The display name of each room's owner, where the owner is still a participant."""
        _require_admin(principal)
        return await self._repo.owner_names([room.id for room in rooms])

    async def member_names(self, principal: Principal, room_id: UUID) -> dict[UUID, str]:
        """The display names of a room's participants, by user id (empty for no room)."""
        _require_admin(principal)
        return {p.user_id: p.user_name for p in await self._repo.list_participants(room_id)}

    async def chat_log(
        self, principal: Principal, room_id: UUID, limit: int, offset: int
    ) -> tuple[list[ChatMessage], int]:
        """A page of a room's chat, newest first, also when chat is switched off."""
        _require_admin(principal)
        await self._room(room_id)
        return await self._repo.list_chat_messages(room_id, limit, offset)

    async def events(
        self, principal: Principal, room_id: UUID, limit: int, offset: int
    ) -> tuple[list[Event], int]:
        """A page of a room's event log, newest first, and the total."""
        _require_admin(principal)
        await self._room(room_id)
        return await self._repo.list_events(room_id, limit, offset)

    async def events_after(
        self, principal: Principal, room_id: UUID, after: int, limit: int
    ) -> tuple[list[Event], int]:
        """Up to ``limit`` events with an id above ``after``, oldest first, and the log's total."""
        _require_admin(principal)
        await self._room(room_id)
        _, total = await self._repo.list_events(room_id, 0, 0)
        return await self._repo.list_events_after(room_id, after, limit), total

    async def find_invitation(
        self, principal: Principal, code: str
    ) -> tuple[Invitation, Room | None]:
        """Any invitation by its code, with its room (``None`` once the room is purged)."""
        _require_admin(principal)
        if len(code) > MAX_CODE_LENGTH or "\x00" in code:
            raise not_found("invitation")
        invitation = await self._repo.get_invitation(normalize_code(code))
        if invitation is None:
            raise not_found("invitation")
        return invitation, await self._repo.get_room(invitation.room_id)

    async def invitations(
        self, principal: Principal, room_id: UUID | None, limit: int, offset: int
    ) -> tuple[list[Invitation], int]:
        """A page of a room's invitations (every room's with ``None``), newest first,
        expired and used-up ones included, and the total."""
        _require_admin(principal)
        if room_id is not None:
            await self._room(room_id)
        return await self._repo.list_invitations(room_id, limit, offset)

    async def revoke_invitation(self, principal: Principal, code: str) -> Invitation:
        """Delete an invitation: joining with it fails from now on."""
        invitation, _ = await self.find_invitation(principal, code)
        await self._repo.delete_invitation(invitation.id)
        return invitation

    async def purge_invitations(self, principal: Principal, expired_before: datetime) -> int:
        """Delete the invitations that expired before ``expired_before``; return how many."""
        _require_admin(principal)
        return await self._repo.purge_expired_invitations(expired_before)

    async def _room(self, room_id: UUID) -> Room:
        room = await self._repo.get_room(room_id)
        if room is None:
            raise not_found("room")
        return room


def _require_admin(principal: Principal) -> None:
    caller = access.Caller(is_admin=principal.is_admin, role=None, is_owner=False)
    if not access.can_audit(caller):
        raise forbidden("this is for administrators")
