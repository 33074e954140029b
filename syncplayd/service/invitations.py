"""Invitations: the codes that open a room, with their rules and limits.

:class:`Invitations` is owned by :class:`~syncplayd.service.rooms.RoomService`,
whose public methods delegate to it, so transports keep calling the room
service. It shares the service's repository, clocks and failed-attempt budgets,
and reaches the room-level rules (does this room exist, may the caller see it,
may they create more) through the callables it is given.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from uuid import UUID, uuid4

from syncplayd.config import InvitationSettings
from syncplayd.core import access
from syncplayd.core.codes import new_code, normalize_code
from syncplayd.core.ratelimit import RateLimiter
from syncplayd.identity import Principal
from syncplayd.service.attempts import Budgets
from syncplayd.service.errors import ServiceError, forbidden, not_found, room_ended
from syncplayd.storage import errors as storage_errors
from syncplayd.storage.base import Repository
from syncplayd.storage.records import Invitation, Room

# How many fresh codes to draw when one collides with an existing code. With
# ~40 bits per code a second collision in a row means something else is wrong.
_CODE_ATTEMPTS = 5

#: A room by id, or ``404``.
RoomLookup = Callable[[UUID], Awaitable[Room]]
#: A room the caller may see, with the caller's standing in it; else ``404``/``403``.
VisibleRoom = Callable[[Principal, UUID], Awaitable[tuple[Room, access.Caller]]]
#: Take one from the caller's budget in a limiter, or raise ``429 rate-limited``.
RateCheck = Callable[[RateLimiter[UUID], Principal, str], None]
#: A per-user limiter allowing so many per hour.
HourlyLimiter = Callable[[int], RateLimiter[UUID]]


class Invitations:
    """Create, look up and check invitation codes."""

    def __init__(
        self,
        repo: Repository,
        settings: InvitationSettings,
        attempts: Budgets,
        *,
        room: RoomLookup,
        visible_room: VisibleRoom,
        rate: RateCheck,
        hourly: HourlyLimiter,
        wall_clock: Callable[[], datetime],
        randbelow: Callable[[int], int],
    ) -> None:
        self._repo = repo
        self._settings = settings
        self._attempts = attempts
        self._room = room
        self._visible_room = visible_room
        self._rate = rate
        self._hourly = hourly
        self._now = wall_clock
        self._randbelow = randbelow
        self._limiter = hourly(settings.creates_per_hour)

    def reconfigure(self, settings: InvitationSettings) -> None:
        """Take new settings (SIGHUP); the create limiter restarts only if its rate changed."""
        if settings.creates_per_hour != self._settings.creates_per_hour:
            self._limiter = self._hourly(settings.creates_per_hour)
        self._settings = settings

    async def create(
        self,
        principal: Principal,
        room_id: UUID,
        *,
        invited_user_id: UUID | None = None,
        expires_in_hours: float | None = None,
        max_uses: int | None = None,
    ) -> Invitation:
        """Create an invitation (owner, moderators and admins)."""
        room, caller = await self._visible_room(principal, room_id)
        if not access.can_invite(caller):
            raise forbidden("only the owner and moderators can invite")
        if not room.is_active:
            raise room_ended()
        settings = self._settings
        now = self._now()
        hours = expires_in_hours if expires_in_hours is not None else settings.default_expiry_hours
        if max_uses is None and invited_user_id is not None:
            max_uses = 1  # an invitation for one person is for one join
        self._rate(self._limiter, principal, "invitations created")
        for _ in range(_CODE_ATTEMPTS):
            try:
                return await self._repo.create_invitation(
                    Invitation(
                        id=uuid4(),
                        code=new_code(settings.code_length, self._randbelow),
                        room_id=room_id,
                        created_by=principal.user_id,
                        invited_user_id=invited_user_id,
                        expires_at=now + timedelta(hours=hours),
                        max_uses=max_uses,
                        use_count=0,
                        created_at=now,
                    ),
                    max_live=settings.max_live_per_room,
                )
            except storage_errors.DuplicateCode:
                continue
            except storage_errors.TooManyInvitations:
                raise ServiceError(
                    409,
                    "too-many-invitations",
                    f"the room has {settings.max_live_per_room} invitations that are neither"
                    " expired nor used up; wait for some to expire or be used",
                ) from None
            except storage_errors.RoomNotFound:
                raise not_found("room") from None  # purged while we were here
        # Five collisions in a row at ~40 bits each: the code space is not the problem.
        raise ServiceError(503, "unavailable", "could not draw a free invitation code; retry")

    async def get(
        self, principal: Principal, code: str, *, address: str | None = None
    ) -> tuple[Invitation, Room]:
        """Look up an invitation and the room it opens.

        A lookup tells whether a code exists, so a miss counts against the same
        failed-attempt budgets as a wrong code at join.
        """
        async with self._attempts.attempt(principal.user_id, address):
            invitation = await self._repo.get_invitation(normalize_code(code))
            if invitation is None or (
                invitation.invited_user_id is not None
                and invitation.invited_user_id != principal.user_id
                and not principal.is_admin
            ):
                # Someone else's personal invitation looks like no invitation at all.
                raise not_found("invitation")
            self._check_usable(invitation)
        # An ended room's invitation is still shown (with ``ended_at``), so that
        # the invitee learns why joining will fail.
        return invitation, await self._room(invitation.room_id)

    async def valid(self, principal: Principal, code: str, room_id: UUID) -> Invitation:
        """The invitation ``code`` if it lets the caller join ``room_id`` now.

        The caller charges the attempt budgets around this (a join does).
        """
        invitation = await self._repo.get_invitation(normalize_code(code))
        if (
            invitation is None
            or invitation.room_id != room_id
            or (
                invitation.invited_user_id is not None
                and invitation.invited_user_id != principal.user_id
            )
        ):
            raise forbidden("the invitation code is not valid for this room", "invitation-invalid")
        self._check_usable(invitation)
        return invitation

    def _check_usable(self, invitation: Invitation) -> None:
        if invitation.is_expired(self._now()):
            raise ServiceError(410, "invitation-expired", "the invitation has expired")
        if invitation.is_used_up:
            raise ServiceError(410, "invitation-used-up", "the invitation has been used up")
