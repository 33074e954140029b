"""Running a room from inside it: roles, ownership, kicks, bans, mutes, chat deletion.

Every operation here is one path for every transport: the public API, the admin
API (``syncplayctl``) and the watch page all call these methods, so one rule in
:mod:`syncplayd.core.access` decides for all of them. Each method looks up the
caller's and the target's standing, asks :func:`~syncplayd.core.access.moderation_refusal`,
stores the change, logs an event naming who acted, and only then tells the live
room (:class:`~syncplayd.service.rooms.LiveRooms`), so that a socket never hears
of a change that is not durable.

Bans and mutes are restrictions stored apart from the membership, so that leaving
and joining again does not shed them. The join path reads the joiner's standing
(room, membership and restrictions in one read) and asks
:meth:`Moderation.refuse_banned_by` before anything else (REST, WebSocket, invitation
and resume all join through it), the chat path asks :meth:`Moderation.refuse_muted`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Literal
from uuid import UUID

from syncplayd.core import access
from syncplayd.core.roles import Role
from syncplayd.core.text import chat_refusal
from syncplayd.identity import Principal
from syncplayd.service.errors import ServiceError, forbidden, invalid, not_found, room_ended
from syncplayd.storage import errors as storage_errors
from syncplayd.storage.base import Repository
from syncplayd.storage.records import (
    ChatMessage,
    NewEvent,
    Participant,
    Restriction,
    RestrictionKind,
    Room,
    Standing,
)

if TYPE_CHECKING:
    from syncplayd.service.rooms import LiveRooms

#: Why a user's sessions leave a live room: they left, or someone removed them.
Removal = Literal["left", "kicked", "banned"]

#: The longest a reason may be (it is shown to the person and stored).
MAX_REASON_LENGTH = 500


@dataclass(frozen=True, slots=True)
class Kick:
    """What a kick did: the membership removed, and how many live sessions were closed."""

    removed: bool
    sessions_closed: int


class Moderation:
    """Roles, ownership and sanctions in one room, with who may do what to whom."""

    def __init__(
        self,
        repo: Repository,
        *,
        room: Callable[[UUID], Awaitable[Room]],
        visible_room: Callable[[Principal, UUID], Awaitable[tuple[Room, access.Caller]]],
        live: Callable[[], LiveRooms | None],
        wall_clock: Callable[[], datetime],
    ) -> None:
        self._repo = repo
        self._room = room
        self._visible_room = visible_room
        self._live = live
        self._now = wall_clock

    # -- what the other paths ask ---------------------------------------------------
    async def standing(self, room_id: UUID, user_id: UUID) -> Standing:
        """The user's standing in the room (room, membership, restrictions) in one read."""
        return await self._repo.get_standing(room_id, user_id)

    def refuse_banned_by(self, standing: Standing) -> None:
        """Raise ``403 banned`` if the standing's user is banned from the room now."""
        ban = standing.active(RestrictionKind.BAN, self._now())
        if ban is not None:
            raise forbidden(f"you are banned from this room{_terms(ban)}", "banned")

    def mute_by(self, standing: Standing) -> Restriction | None:
        """The standing's user's mute in force now, if any."""
        return standing.active(RestrictionKind.MUTE, self._now())

    def with_mute(self, standing: Standing, participant: Participant) -> Participant:
        """``participant`` with ``muted`` set from the standing's mute in force."""
        muted = self.mute_by(standing) is not None
        return replace(participant, muted=True) if muted else participant

    async def refuse_muted(self, room_id: UUID, user_id: UUID) -> None:
        """Raise ``403 muted`` if the user may not post chat in the room now."""
        mute = await self._active(room_id, user_id, RestrictionKind.MUTE)
        if mute is not None:
            raise forbidden(f"you are muted in this room{_terms(mute)}", "muted")

    async def is_muted(self, room_id: UUID, user_id: UUID) -> bool:
        return await self._active(room_id, user_id, RestrictionKind.MUTE) is not None

    async def with_mutes(self, room_id: UUID, people: list[Participant]) -> list[Participant]:
        """``people`` with ``muted`` set from the room's mutes in force."""
        muted = {
            m.user_id
            for m in await self._repo.list_restrictions(
                room_id, RestrictionKind.MUTE, active_at=self._now()
            )
        }
        return [replace(p, muted=True) if p.user_id in muted else p for p in people]

    # -- roles -------------------------------------------------------------------------
    async def set_role(
        self, principal: Principal, room_id: UUID, user_id: UUID, role: Role
    ) -> Participant:
        """Make a member a moderator or a moderator a member (the owner's right).

        Setting the role someone already has changes nothing and logs nothing.
        """
        if role is Role.OWNER:
            raise invalid("role", "use the ownership transfer to make someone the owner")
        action = access.Action.PROMOTE if role is Role.MODERATOR else access.Action.DEMOTE
        room, target, participant = await self._target(principal, room_id, user_id, action)
        if participant is None:
            raise _not_a_participant()
        # Storage never knows of mutes; the answer is a Participant, which says.
        participant = replace(participant, muted=await self.is_muted(room_id, user_id))
        if target is role:
            return participant
        if not await self._repo.update_participant(room_id, user_id, role=role):
            raise _not_a_participant()
        await self._log(room.id, "role", user_id, principal, {"role": role.value})
        live = self._live()
        if live is not None:
            live.role_changed(room_id, user_id, role)
        return replace(participant, role=role)

    async def transfer(self, principal: Principal, room_id: UUID, user_id: UUID) -> Room:
        """Hand the room to another participant; the old owner stays as a moderator."""
        room, _, participant = await self._target(
            principal, room_id, user_id, access.Action.TRANSFER, allow_self=True
        )
        if participant is None:
            raise _not_a_participant()
        if room.owner_id == user_id:
            return room
        try:
            updated = await self._repo.transfer_ownership(room_id, user_id, self._now())
        except storage_errors.RoomNotFound:
            raise not_found("room") from None
        except storage_errors.RoomEnded:
            raise room_ended() from None
        except storage_errors.NotAParticipant:
            raise _not_a_participant() from None
        payload = {"from": str(room.owner_id), "to": str(user_id)}
        await self._log(room_id, "owner", user_id, principal, payload)
        # Nobody mutes the owner, and an owner cannot unmute themselves: a mute the
        # new owner had as a member is lifted with the transfer.
        unmuted = await self._repo.delete_restriction(room_id, user_id, RestrictionKind.MUTE)
        if unmuted:
            await self._log(room_id, "unmuted", user_id, principal, {})
        live = self._live()
        if live is not None:
            live.role_changed(room_id, room.owner_id, Role.MODERATOR)
            live.role_changed(room_id, user_id, Role.OWNER)
            if unmuted:
                live.mute_changed(room_id, user_id, muted=False)
            live.room_updated(updated)
        return updated

    # -- sanctions ---------------------------------------------------------------------
    async def kick(
        self, principal: Principal, room_id: UUID, user_id: UUID, *, reason: str | None = None
    ) -> Kick:
        """Remove a member and close their live sessions with ``kicked``.

        A kick is not a ban: the user may join again if the room lets them.
        """
        reason = _clean_reason(reason)
        room, _, _ = await self._target(
            principal, room_id, user_id, access.Action.KICK, allow_ended=True
        )
        removed = await self._repo.remove_participant(room_id, user_id)
        closed = self._remove_live(room_id, user_id, "kicked", _told(principal, "removed", reason))
        if not removed and not closed:
            raise _not_a_participant()
        payload = {"sessions": closed, "reason": reason}
        await self._log(room.id, "kicked", user_id, principal, payload)
        return Kick(removed=removed, sessions_closed=closed)

    async def ban(
        self,
        principal: Principal,
        room_id: UUID,
        user_id: UUID,
        *,
        reason: str | None = None,
        expires_in: timedelta | None = None,
    ) -> Restriction:
        """Ban a user from the room (a member is removed at once); banning again replaces
        the terms. The user need not be a member: a ban may come before a visit."""
        reason = _clean_reason(reason)
        room, _, participant = await self._target(principal, room_id, user_id, access.Action.BAN)
        ban = await self._restrict(
            principal, room, user_id, participant, RestrictionKind.BAN, reason, expires_in
        )
        removed = await self._repo.remove_participant(room_id, user_id)
        closed = self._remove_live(
            room_id, user_id, "banned", _told(principal, "banned", reason, ban.expires_at)
        )
        payload = {
            "reason": reason,
            "expires_at": _iso(ban.expires_at),
            "removed": removed,
            "sessions": closed,
        }
        await self._log(room_id, "banned", user_id, principal, payload)
        return ban

    async def unban(self, principal: Principal, room_id: UUID, user_id: UUID) -> None:
        """Lift a ban; ``404 not-found`` when there is none."""
        await self._target(principal, room_id, user_id, access.Action.UNBAN)
        if not await self._lift(room_id, user_id, RestrictionKind.BAN):
            raise not_found("ban")
        await self._log(room_id, "unbanned", user_id, principal, {})

    async def bans(self, principal: Principal, room_id: UUID) -> list[Restriction]:
        """The bans in force, newest first (owner, moderators and admins)."""
        _, caller = await self._visible_room(principal, room_id)
        if not access.can_list_bans(caller):
            raise forbidden("only the room's owner and moderators can see its bans")
        return await self._repo.list_restrictions(room_id, RestrictionKind.BAN, self._now())

    async def mute(
        self,
        principal: Principal,
        room_id: UUID,
        user_id: UUID,
        *,
        reason: str | None = None,
        expires_in: timedelta | None = None,
    ) -> Restriction:
        """Keep a member from posting chat; they stay in the room and watch."""
        reason = _clean_reason(reason)
        room, _, participant = await self._target(principal, room_id, user_id, access.Action.MUTE)
        if participant is None:
            raise _not_a_participant()
        mute = await self._restrict(
            principal, room, user_id, participant, RestrictionKind.MUTE, reason, expires_in
        )
        payload = {"reason": reason, "expires_at": _iso(mute.expires_at)}
        await self._log(room_id, "muted", user_id, principal, payload)
        live = self._live()
        if live is not None:
            live.mute_changed(room_id, user_id, muted=True, until=mute.expires_at)
        return mute

    async def unmute(self, principal: Principal, room_id: UUID, user_id: UUID) -> None:
        """Let a muted user post again; ``404 not-found`` when they are not muted."""
        await self._target(principal, room_id, user_id, access.Action.UNMUTE)
        if not await self._lift(room_id, user_id, RestrictionKind.MUTE):
            raise not_found("mute")
        await self._log(room_id, "unmuted", user_id, principal, {})
        live = self._live()
        if live is not None:
            live.mute_changed(room_id, user_id, muted=False)

    async def delete_chat(
        self, principal: Principal, message_id: UUID, *, room_id: UUID | None = None
    ) -> ChatMessage:
        """Delete a chat message: the author their own, the owner and moderators others'.

        With ``room_id`` (the public API) the message must be in that room; the
        members see it disappear.
        """
        message = await self._repo.get_chat_message(message_id)
        if message is None or (room_id is not None and message.room_id != room_id):
            raise not_found("chat message")
        room, caller = await self._visible_room(principal, message.room_id)
        own = message.user_id == principal.user_id and caller.is_member
        if not own:
            author = await self._repo.get_participant(room.id, message.user_id)
            target = _rank(room, message.user_id, author)
            refusal = access.moderation_refusal(
                caller,
                access.Action.DELETE_CHAT,
                target,
                moderators_manage_moderators=room.moderators_manage_moderators,
            )
            if refusal is not None:
                raise forbidden(refusal)
        if not await self._repo.delete_chat_message(message_id):
            raise not_found("chat message")
        payload = {"message_id": str(message_id), "author": str(message.user_id)}
        await self._log(room.id, "chat_deleted", message.user_id, principal, payload)
        live = self._live()
        if live is not None:
            live.chat_deleted(room.id, message_id)
        return message

    # -- helpers -----------------------------------------------------------------------
    async def _target(
        self,
        principal: Principal,
        room_id: UUID,
        user_id: UUID,
        action: access.Action,
        *,
        allow_self: bool = False,
        allow_ended: bool = False,
    ) -> tuple[Room, Role | None, Participant | None]:
        """Check that the caller may take ``action`` against ``user_id`` in the room.

        Returns the room, the target's rank and membership. The order of the checks
        is the order of the refusals: no such room, private room, not yours to do,
        someone you may not touch, the room has ended.
        """
        room, caller = await self._visible_room(principal, room_id)
        if user_id == principal.user_id and not allow_self:
            raise invalid("user_id", "must be someone else (to leave, use leave)")
        participant = await self._repo.get_participant(room_id, user_id)
        target = _rank(room, user_id, participant)
        refusal = access.moderation_refusal(
            caller, action, target, moderators_manage_moderators=room.moderators_manage_moderators
        )
        if refusal is not None:
            raise forbidden(refusal)
        if not room.is_active and not allow_ended:
            raise room_ended()
        return room, target, participant

    async def _restrict(
        self,
        principal: Principal,
        room: Room,
        user_id: UUID,
        participant: Participant | None,
        kind: RestrictionKind,
        reason: str | None,
        expires_in: timedelta | None,
    ) -> Restriction:
        now = self._now()
        name: str | None
        if participant is not None:
            name = participant.user_name
        else:
            # Banning again someone the first ban removed: keep the name it recorded.
            earlier = await self._repo.get_restriction(room.id, user_id, kind)
            name = earlier.user_name if earlier is not None else None
        try:
            return await self._repo.set_restriction(
                Restriction(
                    room_id=room.id,
                    user_id=user_id,
                    kind=kind,
                    user_name=name,
                    reason=reason,
                    created_by=principal.user_id,
                    created_at=now,
                    expires_at=None if expires_in is None else now + expires_in,
                )
            )
        except storage_errors.RoomNotFound:
            raise not_found("room") from None

    async def _lift(self, room_id: UUID, user_id: UUID, kind: RestrictionKind) -> bool:
        """Delete the user's restriction of ``kind``; whether one was in force.

        One that ran out is deleted too (maintenance would purge it), but lifting it is
        not an unban or unmute: nothing is logged or told, and the caller says 404.
        """
        found = await self._active(room_id, user_id, kind)
        deleted = await self._repo.delete_restriction(room_id, user_id, kind)
        return deleted and found is not None

    async def _active(
        self, room_id: UUID, user_id: UUID, kind: RestrictionKind
    ) -> Restriction | None:
        found = await self._repo.get_restriction(room_id, user_id, kind)
        return found if found is not None and found.is_active(self._now()) else None

    def _remove_live(self, room_id: UUID, user_id: UUID, reason: Removal, message: str) -> int:
        live = self._live()
        return 0 if live is None else live.remove_user(room_id, user_id, reason, message)

    async def _log(
        self,
        room_id: UUID,
        kind: str,
        user_id: UUID,
        principal: Principal,
        payload: Mapping[str, object],
    ) -> None:
        event = NewEvent(room_id, kind, self._now(), user_id, {"by": str(principal.user_id)})
        event.payload.update(payload)
        await self._repo.log_events([event])


def _rank(room: Room, user_id: UUID, participant: Participant | None) -> Role | None:
    """Someone's standing in the room: the owner by ``owner_id``, else their role."""
    if room.owner_id == user_id:
        return Role.OWNER
    return participant.role if participant is not None else None


def _clean_reason(reason: str | None) -> str | None:
    if reason is None:
        return None
    refusal = chat_refusal(reason)
    if refusal is not None:
        raise invalid("reason", refusal)
    reason = " ".join(reason.split())
    if len(reason) > MAX_REASON_LENGTH:
        raise invalid("reason", f"must be at most {MAX_REASON_LENGTH} characters")
    return reason or None


def _told(
    principal: Principal, verb: str, reason: str | None, until: datetime | None = None
) -> str:
    """What the removed person reads (the ``closing`` message)."""
    who = "an administrator" if principal.is_admin else principal.name
    text = f"{who} {verb} you from the room"
    if verb == "banned":
        text += f" until {_iso(until)}" if until is not None else " for good"
    return f"{text}: {reason}" if reason else text


def _terms(restriction: Restriction) -> str:
    until = f" until {_iso(restriction.expires_at)}" if restriction.expires_at else ""
    because = f": {restriction.reason}" if restriction.reason else ""
    return until + because


def _iso(when: datetime | None) -> str | None:
    # To the second: it is read by people, in closing messages and refusals.
    return None if when is None else when.isoformat(timespec="seconds").replace("+00:00", "Z")


def _not_a_participant() -> ServiceError:
    return ServiceError(404, "not-a-member", "that user is not a participant of this room")
