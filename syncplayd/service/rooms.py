"""The room service: the API's business rules over a repository.

Every public method takes the authenticated :class:`Principal` first and either
returns records or raises :class:`ServiceError`. The permission rules themselves
live in :mod:`syncplayd.core.access`; this module looks up the facts they need,
applies them, and keeps the multi-step operations (join with an invitation)
consistent when they race. Invitation codes themselves are made and checked by
:class:`~syncplayd.service.invitations.Invitations`, which the service owns and
delegates to.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, TypedDict, Unpack
from uuid import UUID, uuid4

import trio

from syncplayd.clocks import monotonic, utc_now
from syncplayd.config import RoomSettings, SyncplaySettings
from syncplayd.core import access
from syncplayd.core.queue import Queue, SlowPolicy
from syncplayd.core.ratelimit import RateLimiter
from syncplayd.core.text import chat_refusal
from syncplayd.identity import Principal
from syncplayd.passwords import HashCost, Passwords
from syncplayd.service.admin import AdminQueries
from syncplayd.service.attempts import Budgets, SecretAttempts, SharedAttempts
from syncplayd.service.errors import ServiceError, forbidden, invalid, not_found, room_ended
from syncplayd.service.invitations import Invitations
from syncplayd.service.moderation import Moderation, Removal
from syncplayd.service.queue import PlayQueue, checked_duration, clean_title
from syncplayd.storage import errors as storage_errors
from syncplayd.storage.base import Repository
from syncplayd.storage.records import (
    ChatMessage,
    Invitation,
    NewRoom,
    Participant,
    PlaybackControl,
    Role,
    Room,
    RoomFilters,
    RoomUpdate,
    Standing,
)


class JoinOptions(TypedDict, total=False):
    """What a join may bring besides who and where (:meth:`RoomService.admit`)."""

    password: str | None
    invitation_code: str | None
    address: str | None
    syncplay_password: str | None


@dataclass(frozen=True, slots=True)
class Admission:
    """A join let in: the room, the membership (``muted`` set) and the standing last read.

    ``standing`` is the read the join decided by, after the membership was stored for a
    new member: the live room takes the joiner by it rather than reading it again, when
    no moderation reached the room since before that read (``LiveRoom.attach``).
    """

    room: Room
    participant: Participant
    standing: Standing


@dataclass(frozen=True, slots=True)
class RoomQuery:
    """The listing filters a caller asked for."""

    public: bool | None = None
    mine: bool = False
    content_type: str | None = None
    content_id: str | None = None
    active: bool | None = True
    limit: int = 20
    offset: int = 0


@dataclass(frozen=True, slots=True)
class RoomChanges:
    """A settings update; ``None`` leaves a field as it is."""

    name: str | None = None
    content_type: str | None = None
    content_id: str | None = None
    is_public: bool | None = None
    password: str | None = None
    clear_password: bool = False
    max_participants: int | None = None
    playback_control: PlaybackControl | None = None
    moderators_manage_moderators: bool | None = None
    wait_for_slow_members: SlowPolicy | None = None
    start_when_ready: bool | None = None


_LEFT_MESSAGE = "you left the room"
_NO_SYNCPLAY_VERIFIER = (
    "this room's password was set before desktop (Syncplay) clients were supported; "
    "its owner must set the password again before they can join with it"
)


class LiveRooms(Protocol):
    """The rooms that are live right now, as the service reaches them.

    The realtime side (the room supervisor) implements it. The service calls it
    after a change is durable, whichever transport asked for the change, so that
    a REST call, an admin command and a socket frame have one effect on a live
    room. Methods must not block; a room that is not live ignores them.
    """

    def chat_posted(self, message: ChatMessage) -> None: ...
    def chat_deleted(self, room_id: UUID, message_id: UUID) -> None: ...
    def room_ended(self, room_id: UUID) -> None: ...
    def room_updated(self, room: Room) -> None:
        """The room's settings (or owner) changed: every socket is told the new room."""
        ...

    def role_changed(self, room_id: UUID, user_id: UUID, role: Role) -> None: ...
    def mute_changed(
        self, room_id: UUID, user_id: UUID, *, muted: bool, until: datetime | None = None
    ) -> None:
        """The user was muted (``until`` a time, or until lifted) or unmuted."""
        ...

    def remove_user(self, room_id: UUID, user_id: UUID, reason: Removal, message: str) -> int:
        """Close the user's sessions in the live room with ``reason``; return how many."""
        ...

    def queue_changed(self, room: Room, queue: Queue, current_changed: bool) -> None:
        """The room's queue changed (``room`` as stored with it): every socket is told the
        queue; ``current_changed``: another item is current now (or the same one starts
        again, after its end with repeat), which the room loads from its beginning."""
        ...


class RoomService:
    """Rooms, membership, chat and invitations, with their permission rules."""

    #: Set by the daemon once the realtime side exists.
    live: LiveRooms | None = None

    def __init__(
        self,
        repo: Repository,
        settings: SyncplaySettings,
        *,
        wall_clock: Callable[[], datetime] = utc_now,
        monotonic: Callable[[], float] = monotonic,
        randbelow: Callable[[int], int] = secrets.randbelow,
        passwords: Passwords | None = None,
        shared_budgets: bool = False,
    ) -> None:
        """``shared_budgets``: count the failed-attempt budgets in the database, with the
        other nodes (multi-node mode), rather than in this process."""
        self._repo = repo
        self._settings = settings
        #: Server-wide reads and housekeeping for the admin API.
        self.admin = AdminQueries(repo)
        self._now = wall_clock
        self._monotonic = monotonic
        self._chat_limiter: RateLimiter[UUID] = RateLimiter(
            settings.chat.rate_limit_messages_per_minute
        )
        self._create_locks: dict[UUID, trio.Lock] = {}
        #: Per owner: rooms being created (quota passed, not stored yet).
        self._creating: dict[UUID, int] = {}
        rooms = settings.rooms
        #: Every hash and check of a room password, under one bound (see passwords.py).
        self._passwords = passwords or Passwords(_hash_cost(rooms), rooms.password_hash_concurrency)
        self._create_limiter = _hourly(rooms.creates_per_hour)
        self._password_limiter = _hourly(rooms.password_changes_per_hour)
        # Built once: a reload does not apply new budgets (a restart does), so
        # that a SIGHUP never hands a guesser a fresh budget.
        self._attempts: Budgets = (
            SharedAttempts(
                repo,
                rooms.failed_join_attempts,
                rooms.failed_join_attempts_per_address,
                rooms.failed_join_window_seconds,
                monotonic=monotonic,
                wall_clock=wall_clock,
            )
            if shared_budgets
            else SecretAttempts(
                rooms.failed_join_attempts,
                rooms.failed_join_attempts_per_address,
                rooms.failed_join_window_seconds,
                monotonic,
            )
        )
        self._invitations = Invitations(
            repo,
            settings.invitations,
            self._attempts,
            room=self._room,
            visible_room=self._visible_room,
            rate=self._rate,
            hourly=_hourly,
            wall_clock=wall_clock,
            randbelow=randbelow,
        )
        #: Roles, ownership, kicks, bans, mutes and chat deletion (``service.moderation``).
        self.moderation = Moderation(
            repo,
            room=self._room,
            visible_room=self._visible_room,
            live=lambda: self.live,
            wall_clock=wall_clock,
        )
        #: The rooms' play queues (``service.queue``).
        self.queue = PlayQueue(
            repo,
            visible_room=self._visible_room,
            live=lambda: self.live,
            wall_clock=wall_clock,
        )

    @property
    def settings(self) -> SyncplaySettings:
        return self._settings

    def reconfigure(self, settings: SyncplaySettings) -> None:
        """Take new limits (SIGHUP); the chat limiter restarts only if its rate changed."""
        if settings.chat.rate_limit_messages_per_minute != (
            self._settings.chat.rate_limit_messages_per_minute
        ):
            self._chat_limiter = RateLimiter(settings.chat.rate_limit_messages_per_minute)
        old, new = self._settings, settings
        if new.rooms.creates_per_hour != old.rooms.creates_per_hour:
            self._create_limiter = _hourly(new.rooms.creates_per_hour)
        if new.rooms.password_changes_per_hour != old.rooms.password_changes_per_hour:
            self._password_limiter = _hourly(new.rooms.password_changes_per_hour)
        self._invitations.reconfigure(new.invitations)
        self._passwords.reconfigure(_hash_cost(new.rooms), new.rooms.password_hash_concurrency)
        self._settings = settings

    # -- helpers ---------------------------------------------------------------
    async def _room(self, room_id: UUID) -> Room:
        return _found(await self._repo.get_room(room_id))

    def _rate(self, limiter: RateLimiter[UUID], principal: Principal, what: str) -> None:
        """Take one from the caller's budget, or raise ``429 rate-limited``; admins are exempt."""
        if principal.is_admin:
            return
        wait = limiter.hit(principal.user_id, self._monotonic())
        if wait > 0:
            raise ServiceError(
                429,
                "rate-limited",
                f"too many {what}; retry in {_ceil(wait)} s",
                retry_after=_ceil(wait),
            )

    async def _caller(
        self, principal: Principal, room: Room
    ) -> tuple[access.Caller, Participant | None]:
        participant = await self._repo.get_participant(room.id, principal.user_id)
        return _caller_of(principal, room, participant), participant

    async def _visible_room(
        self, principal: Principal, room_id: UUID
    ) -> tuple[Room, access.Caller]:
        room = await self._room(room_id)
        caller, _ = await self._caller(principal, room)
        if not access.can_view(caller, is_public=room.is_public):
            raise forbidden("this room is private; only its members can see it", "not-a-member")
        return room, caller

    # -- rooms -----------------------------------------------------------------
    async def create_room(
        self,
        principal: Principal,
        *,
        name: str,
        content_type: str,
        content_id: str,
        is_public: bool,
        password: str | None,
        max_participants: int | None,
        playback_control: PlaybackControl = PlaybackControl.EVERYONE,
        content_title: str | None = None,
        content_duration: float | None = None,
        wait_for_slow_members: SlowPolicy = "policy",
        start_when_ready: bool = False,
    ) -> Room:
        """Create a room owned by the caller, who joins it as ``owner``.

        The room's queue starts with one item, its content (with the title and duration
        given, if any), which is the current item.
        """
        rules = self._settings.rooms
        content_title = clean_title(content_title, "content_title")
        content_duration = checked_duration(content_duration, "content_duration")
        if is_public and not rules.allow_public:
            raise forbidden("public rooms are disabled on this server", "public-rooms-disabled")
        if password is not None and not rules.allow_password_protected:
            raise forbidden(
                "password-protected rooms are disabled on this server", "password-rooms-disabled"
            )
        name = _clean_name(name)
        _check_max_participants(max_participants, rules)
        owner = principal.user_id
        # Count under the owner's lock, and hold a place there for this room until it
        # is stored: checked concurrently, a burst of creates would all see the same
        # count and all pass the limit. The password is hashed outside the lock, but
        # only with a place held, so a burst makes the server hash (twice: the password
        # and its Syncplay verifier) only for the places the owner has free. (One daemon
        # per database is the supported set-up; several would need a database lock.)
        async with self._owner_lock(owner):
            await self._check_room_quota(owner, self._creating.get(owner, 0))
            self._rate(self._create_limiter, principal, "rooms created")
            self._creating[owner] = self._creating.get(owner, 0) + 1
        holding = True
        try:
            password_hash = syncplay_password_hash = None
            if password is not None:
                password_hash, syncplay_password_hash = await self._password_hashes(password)
            async with self._owner_lock(owner):
                # Stored before the lock is let go: the next count sees the room instead.
                self._give_back_place(owner)
                holding = False
                return await self._repo.create_room(
                    NewRoom(
                        id=uuid4(),
                        name=name,
                        owner_id=principal.user_id,
                        owner_name=principal.name,
                        content_type=content_type,
                        content_id=content_id,
                        is_public=is_public,
                        password_hash=password_hash,
                        syncplay_password_hash=syncplay_password_hash,
                        max_participants=max_participants or rules.default_max_participants,
                        created_at=self._now(),
                        playback_control=playback_control,
                        content_title=content_title,
                        content_duration=content_duration,
                        wait_for_slow_members=wait_for_slow_members,
                        start_when_ready=start_when_ready,
                    )
                )
        finally:
            if holding:
                self._give_back_place(owner)

    async def _password_hashes(self, password: str) -> tuple[str, str]:
        """The argon2id hashes of a new room password and of its Syncplay verifier.

        The verifier is what a Syncplay desktop client can be checked against: those
        clients only ever send :func:`syncplay_password_md5` of the password. That MD5
        lets anyone in through the Syncplay listener as the password would, so it is
        stored only as an argon2id hash, like the password.
        """
        password_hash = await self._passwords.hash(password)
        return password_hash, await self._passwords.hash(syncplay_password_md5(password))

    def _give_back_place(self, owner: UUID) -> None:
        left = self._creating.pop(owner) - 1
        if left:
            self._creating[owner] = left

    @asynccontextmanager
    async def _owner_lock(self, user_id: UUID) -> AsyncIterator[None]:
        # A lock exists only while someone holds or awaits it, so the table stays
        # as small as the number of concurrent creators.
        lock = self._create_locks.setdefault(user_id, trio.Lock())
        try:
            async with lock:
                yield
        finally:
            if not lock.locked() and not lock.statistics().tasks_waiting:
                self._create_locks.pop(user_id, None)

    async def _check_room_quota(self, user_id: UUID, creating: int) -> None:
        """Refuse a new room to a user who owns ``max_rooms_per_user`` active rooms,
        counting the ``creating`` ones not stored yet."""
        limit = self._settings.rooms.max_rooms_per_user
        # The member filter also returns rooms the user merely joined: page
        # through them rather than trusting the first page to hold every owned room.
        owned, offset, page = creating, 0, 500
        while owned < limit:
            rooms, total = await self._repo.list_rooms(
                RoomFilters(member=user_id, active=True), limit=page, offset=offset
            )
            owned += sum(room.owner_id == user_id for room in rooms)
            offset += len(rooms)
            if not rooms or offset >= total:
                break
        if owned >= limit:
            raise ServiceError(
                409, "too-many-rooms", f"you already own {limit} active rooms; end one first"
            )

    async def list_rooms(self, principal: Principal, query: RoomQuery) -> tuple[list[Room], int]:
        """Rooms the caller may see: public ones and their own (admins see all)."""
        filters = RoomFilters(
            visible_to=None if principal.is_admin else principal.user_id,
            member=principal.user_id if query.mine else None,
            public_only=query.public is True,
            content_type=query.content_type,
            content_id=query.content_id,
            active=query.active,
        )
        return await self._repo.list_rooms(filters, query.limit, query.offset)

    async def get_room(self, principal: Principal, room_id: UUID) -> Room:
        """One room, if the caller may see it."""
        room, _ = await self._visible_room(principal, room_id)
        return room

    async def update_room(self, principal: Principal, room_id: UUID, changes: RoomChanges) -> Room:
        """Change a room's settings (owner or admin only)."""
        room, caller = await self._visible_room(principal, room_id)
        if not access.can_manage(caller):
            raise forbidden("only the room's owner can change its settings")
        if not room.is_active:
            raise room_ended()
        rules = self._settings.rooms
        if changes.is_public and not room.is_public and not rules.allow_public:
            raise forbidden("public rooms are disabled on this server", "public-rooms-disabled")
        if changes.password is not None and not rules.allow_password_protected:
            raise forbidden(
                "password-protected rooms are disabled on this server", "password-rooms-disabled"
            )
        _check_max_participants(changes.max_participants, self._settings.rooms)
        password_hash = syncplay_password_hash = None
        if changes.password is not None:
            self._rate(self._password_limiter, principal, "password changes")
            password_hash, syncplay_password_hash = await self._password_hashes(changes.password)
        update = RoomUpdate(
            updated_at=self._now(),
            name=_clean_name(changes.name) if changes.name is not None else None,
            content_type=changes.content_type,
            content_id=changes.content_id,
            is_public=changes.is_public,
            password_hash=password_hash,
            syncplay_password_hash=syncplay_password_hash,
            clear_password=changes.clear_password,
            max_participants=changes.max_participants,
            playback_control=changes.playback_control,
            moderators_manage_moderators=changes.moderators_manage_moderators,
            wait_for_slow_members=changes.wait_for_slow_members,
            start_when_ready=changes.start_when_ready,
        )
        before = after = None
        if changes.content_type is None and changes.content_id is None:
            updated = await self._repo.update_room(room_id, update)
        else:
            # New content is the current item's, changed in place: under the queue's lock,
            # so that a queue change in flight does not write back the old content.
            async with self.queue.serialized(room_id):
                before = await self._repo.get_queue(room_id)
                updated = await self._repo.update_room(room_id, update)
                after = await self._repo.get_queue(room_id)
        if updated is None:
            raise not_found("room")
        if self.live is not None:
            self.live.room_updated(updated)
            if after is not None:
                # The current item keeps its id, with new media and no duration yet: the
                # room keeps its position, as before queues. Only an empty queue given
                # content this way has a new current item.
                was = None if before is None else before.current_id
                self.live.queue_changed(updated, after, was != after.current_id)
        return updated

    async def end_room(self, principal: Principal, room_id: UUID, *, purge: bool = False) -> bool:
        """End a room (owner or admin); ``purge`` also deletes it with its history.

        Returns whether this call ended it (``False``: it had ended already).
        """
        room, caller = await self._visible_room(principal, room_id)
        if not access.can_manage(caller):
            raise forbidden("only the room's owner can end it")
        ended = room.is_active and await self._repo.end_room(room_id, self._now())
        if purge:
            await self._repo.delete_room(room_id)
        if self.live is not None:
            self.live.room_ended(room_id)
        return ended

    # -- membership --------------------------------------------------------------
    async def join(
        self, principal: Principal, room_id: UUID, **given: Unpack[JoinOptions]
    ) -> tuple[Room, Participant]:
        """Join a room: :meth:`admit`'s room and membership."""
        admission = await self.admit(principal, room_id, **given)
        return admission.room, admission.participant

    async def admit(
        self,
        principal: Principal,
        room_id: UUID,
        *,
        password: str | None = None,
        invitation_code: str | None = None,
        address: str | None = None,
        syncplay_password: str | None = None,
    ) -> Admission:
        """Join a room, with its password or an invitation when it needs one.

        Joining again is harmless and returns the existing membership. A password
        or invitation code counts against the caller's failed-attempt budgets (per
        user and per client ``address``) unless it is right.

        ``syncplay_password`` is what a Syncplay desktop client sends for the password
        (:func:`syncplay_password_md5` of it), checked against the room's Syncplay
        verifier when no ``password`` is given, under the same budgets and with the same
        ``wrong-password`` refusal. A room whose password predates the verifier has none:
        its refusal says the owner must set the password again, and is not counted.
        """
        # The room, the caller's membership and restrictions: one read, not four.
        standing = await self._repo.get_standing(room_id, principal.user_id)
        room = _found(standing.room)
        if not room.is_active:
            raise room_ended()
        # First: a ban shuts every way in (REST, WebSocket, invitation, resume).
        self.moderation.refuse_banned_by(standing)
        participant = standing.participant
        caller = _caller_of(principal, room, participant)
        if participant is not None:
            return Admission(room, self.moderation.with_mute(standing, participant), standing)
        invitation = None
        if invitation_code is not None:
            async with self._attempts.attempt(principal.user_id, address):
                invitation = await self._invitations.valid(principal, invitation_code, room_id)
        else:
            need = access.join_requirement(
                caller, is_public=room.is_public, has_password=room.has_password
            )
            if need is access.JoinCheck.INVITATION:
                raise forbidden("this room is private; you need an invitation", "not-a-member")
            if need is access.JoinCheck.PASSWORD:
                stored, given = room.password_hash, password
                if password is None and syncplay_password is not None:
                    stored, given = room.syncplay_password_hash, syncplay_password
                    if stored is None:
                        # Nothing to check against, whatever was sent: not a guess.
                        raise forbidden(_NO_SYNCPLAY_VERIFIER, "wrong-password")
                if given is None:
                    # Not a guess: clients join without one first to learn that one is needed.
                    raise forbidden("wrong or missing room password", "wrong-password")
                async with self._attempts.attempt(principal.user_id, address):
                    if stored is None or not await self._passwords.verify(stored, given):
                        raise forbidden("wrong or missing room password", "wrong-password")
        if invitation is not None:
            consumed = await self._repo.consume_invitation(invitation.code, self._now())
            if consumed is None:
                # Lost a race for the last use (or it expired meanwhile).
                await self._invitations.valid(principal, invitation.code, room_id)
                raise ServiceError(410, "invitation-used-up", "the invitation has been used up")
        try:
            # The membership, then the standing read again once it is stored (one call).
            participant, after = await self._repo.admit_participant(
                room_id, principal.user_id, principal.name, access.role_on_join(caller), self._now()
            )
        except (
            storage_errors.RoomFull,
            storage_errors.RoomEnded,
            storage_errors.RoomNotFound,
        ) as exc:
            if invitation is not None:
                await self._repo.release_invitation(invitation.code)
            if isinstance(exc, storage_errors.RoomFull):
                raise ServiceError(409, "room-full", "the room is full") from None
            if isinstance(exc, storage_errors.RoomEnded):
                raise room_ended() from None
            raise not_found("room") from None
        try:
            # Again, now that the membership is stored: a ban made since the first check
            # stored itself before removing members, so it is seen here, and the
            # membership it could not remove is removed now.
            self.moderation.refuse_banned_by(after)
        except ServiceError:
            await self._repo.remove_participant(room_id, principal.user_id)
            raise
        # A mute outlives a membership: someone who left muted comes back muted.
        return Admission(_found(after.room), self.moderation.with_mute(after, participant), after)

    async def leave(self, principal: Principal, room_id: UUID) -> None:
        """Leave a room the caller is a member of; their live sessions leave with them."""
        await self._room(room_id)
        if not await self._repo.remove_participant(room_id, principal.user_id):
            raise ServiceError(404, "not-a-member", "you are not a member of this room")
        self._remove_live(room_id, principal.user_id, "left")

    def _remove_live(self, room_id: UUID, user_id: UUID, reason: Removal) -> int:
        if self.live is None:
            return 0
        return self.live.remove_user(room_id, user_id, reason, _LEFT_MESSAGE)

    async def participants(
        self, principal: Principal, room_id: UUID, *, connected_only: bool = False
    ) -> list[Participant]:
        """The room's participants, in joining order."""
        await self._visible_room(principal, room_id)
        people = await self._repo.list_participants(room_id, connected_only)
        return await self.moderation.with_mutes(room_id, people)

    # -- chat --------------------------------------------------------------------
    async def post_chat(self, principal: Principal, room_id: UUID, text: str) -> ChatMessage:
        """Store a chat message from a member; durable before this returns."""
        chat = self._settings.chat
        if not chat.enabled:
            raise forbidden("chat is disabled on this server", "chat-disabled")
        room = await self._room(room_id)
        caller, participant = await self._caller(principal, room)
        if participant is None:
            if not access.can_view(caller, is_public=room.is_public):
                raise forbidden("this room is private; only its members can see it", "not-a-member")
            raise forbidden("only members can chat in this room; join it first", "not-a-member")
        if not room.is_active:
            raise room_ended()
        await self.moderation.refuse_muted(room_id, principal.user_id)
        # Before the strip: a control character at either end is refused too, as by REST.
        refusal = chat_refusal(text)
        if refusal is not None:
            raise invalid("message", refusal)
        text = text.strip()
        if not text:
            raise invalid("message", "must not be blank")
        if len(text) > chat.max_message_length:
            raise invalid("message", f"must be at most {chat.max_message_length} characters")
        wait = self._chat_limiter.hit(principal.user_id, self._monotonic())
        if wait > 0:
            raise ServiceError(
                429, "rate-limited", "too many chat messages; slow down", retry_after=_ceil(wait)
            )
        stored = await self._repo.create_chat_message(
            ChatMessage(
                id=uuid4(),
                room_id=room_id,
                user_id=principal.user_id,
                user_name=participant.user_name,
                message=text,
                created_at=self._now(),
            )
        )
        if self.live is not None:
            self.live.chat_posted(stored)
        return stored

    async def recent_chat(self, room_id: UUID) -> list[ChatMessage]:
        """The newest ``chat.history_limit`` messages, oldest first, for a member who just joined.

        Empty when chat is off. The caller has just been admitted by :meth:`join`,
        so no permission is checked again.
        """
        chat = self._settings.chat
        if not chat.enabled:
            return []
        items, _ = await self._repo.list_chat_messages(room_id, chat.history_limit, 0)
        items.reverse()
        return items

    async def chat_history(
        self, principal: Principal, room_id: UUID, *, limit: int | None, offset: int
    ) -> tuple[list[ChatMessage], int, int]:
        """A page of chat, newest first; returns items, total and the limit applied.

        The page size is capped at ``chat.history_limit``.
        """
        if not self._settings.chat.enabled:
            raise forbidden("chat is disabled on this server", "chat-disabled")
        await self._visible_room(principal, room_id)
        cap = self._settings.chat.history_limit
        effective = cap if limit is None else min(limit, cap)
        items, total = await self._repo.list_chat_messages(room_id, effective, offset)
        return items, total, effective

    # -- invitations -------------------------------------------------------------
    async def create_invitation(
        self,
        principal: Principal,
        room_id: UUID,
        *,
        invited_user_id: UUID | None = None,
        expires_in_hours: float | None = None,
        max_uses: int | None = None,
    ) -> Invitation:
        """Create an invitation (owner, moderators and admins)."""
        return await self._invitations.create(
            principal,
            room_id,
            invited_user_id=invited_user_id,
            expires_in_hours=expires_in_hours,
            max_uses=max_uses,
        )

    async def get_invitation(
        self, principal: Principal, code: str, *, address: str | None = None
    ) -> tuple[Invitation, Room]:
        """Look up an invitation and the room it opens (a miss is a failed attempt).

        Raises:
            ServiceError: as ``Invitations.get``; ``banned`` when the caller is banned
                from the room (the join would refuse them: the invite page says so first).
        """
        invitation, room = await self._invitations.get(principal, code, address=address)
        standing = await self._repo.get_standing(room.id, principal.user_id)
        self.moderation.refuse_banned_by(standing)
        return invitation, room


def syncplay_password_md5(password: str) -> str:
    """What a Syncplay desktop client sends for ``password``: its MD5, as 32 lowercase hex
    digits (``hashlib.md5(password.encode("utf-8")).hexdigest()`` in Syncplay's client)."""
    # Syncplay's protocol, not our choice of hash: the MD5 is only the form the client
    # presents the password in; what is stored and checked is an argon2id hash of it.
    return hashlib.md5(password.encode("utf-8"), usedforsecurity=False).hexdigest()


def _check_max_participants(value: int | None, rules: RoomSettings) -> None:
    """Refuse a participant limit above the operator's ``rooms.max_participants_limit``."""
    if value is not None and value > rules.max_participants_limit:
        raise invalid(
            "max_participants",
            f"at most {rules.max_participants_limit} on this server (rooms.max_participants_limit)",
        )


def _clean_name(name: str) -> str:
    cleaned = " ".join(name.split())
    if not cleaned:
        raise invalid("name", "must not be blank")
    return cleaned


def _hash_cost(rooms: RoomSettings) -> HashCost:
    return HashCost(
        memory_kib=rooms.password_hash_memory_kib,
        time_cost=rooms.password_hash_time_cost,
        parallelism=rooms.password_hash_parallelism,
    )


def _hourly(per_hour: int) -> RateLimiter[UUID]:
    """A per-user budget of ``per_hour``: a burst of that many, then one every 60/N minutes."""
    return RateLimiter(per_hour / 60.0, burst=float(per_hour))


def _ceil(seconds: float) -> int:
    return max(1, int(-(-seconds // 1)))


def _found(room: Room | None) -> Room:
    if room is None:
        raise not_found("room")
    return room


def _caller_of(principal: Principal, room: Room, participant: Participant | None) -> access.Caller:
    return access.Caller(
        is_admin=principal.is_admin,
        role=participant.role if participant else None,
        is_owner=room.owner_id == principal.user_id,
    )
