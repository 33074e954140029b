"""Plain, frozen records exchanged with the repositories.

Repositories speak in these values only: never engine objects, never wire dicts.
All timestamps are timezone-aware UTC datetimes; ids are UUIDs (content ids are
opaque strings because media servers use many id schemes).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from syncplayd.core.queue import SlowPolicy
from syncplayd.core.roles import Role

__all__ = [
    "AttemptBudget",
    "ChatMessage",
    "Event",
    "Invitation",
    "NewEvent",
    "NewRoom",
    "NodeRecord",
    "Participant",
    "Playback",
    "PlaybackControl",
    "PlaybackState",
    "PresenceUpdate",
    "Restriction",
    "RestrictionKind",
    "Role",
    "Room",
    "RoomFilters",
    "RoomOwner",
    "RoomUpdate",
    "SlowPolicy",
]


class PlaybackControl(enum.StrEnum):
    """Who may play, pause, seek and change the rate of a room."""

    EVERYONE = "everyone"
    MODERATORS = "moderators"  # the owner and moderators


class PlaybackState(enum.StrEnum):
    """The room's authoritative playback state."""

    PAUSED = "paused"
    PLAYING = "playing"
    WAITING = "waiting"


@dataclass(frozen=True, slots=True)
class Playback:
    """Where the room's playback stood at ``updated_at`` (the anchor time).

    While playing, the live position is ``position + (now - updated_at) * rate``.
    ``version`` increases with every authoritative change.
    """

    state: PlaybackState = PlaybackState.PAUSED
    position: float = 0.0
    rate: float = 1.0
    version: int = 0
    updated_at: datetime | None = None
    updated_by: UUID | None = None


@dataclass(frozen=True, slots=True)
class Room:
    """A watch-together room as stored, with its live participant count."""

    id: UUID
    name: str
    owner_id: UUID
    content_type: str
    content_id: str
    is_public: bool
    password_hash: str | None
    max_participants: int
    playback: Playback
    created_at: datetime
    updated_at: datetime
    ended_at: datetime | None
    participant_count: int
    playback_control: PlaybackControl = PlaybackControl.EVERYONE
    #: Whether moderators may kick, ban and mute other moderators (never the owner).
    moderators_manage_moderators: bool = False
    #: The queue's current item (its ``content_type``/``content_id`` are the room's);
    #: ``None`` only when the queue is empty (the room keeps the last content it had).
    current_item_id: UUID | None = None
    #: Whether the room waits for a member whose buffering holds it up.
    wait_for_slow_members: SlowPolicy = "policy"
    #: Whether a plain member's play waits until every connected member is ready.
    start_when_ready: bool = False
    #: An argon2id hash of the MD5 hex of the password, which is what Syncplay desktop
    #: clients send instead of the password. Set and cleared with ``password_hash``;
    #: ``None`` in a room whose password was set before syncplayd stored it. Kept out of
    #: the repr, which ends up in logs and test reports.
    syncplay_password_hash: str | None = field(default=None, repr=False)

    @property
    def has_password(self) -> bool:
        return self.password_hash is not None

    @property
    def is_active(self) -> bool:
        return self.ended_at is None


@dataclass(frozen=True, slots=True)
class NewRoom:
    """Everything needed to create a room.

    In the same transaction its owner joins, and the room gets a one-item queue of its
    content (``content_title`` and ``content_duration`` are that item's, both optional),
    which becomes the current item. Storage draws the item's id (a UUID 4) and shuffle
    rank; read them back as ``Room.current_item_id`` and from ``get_queue``.

    ``syncplay_password_hash`` (see :class:`Room`) needs ``password_hash``.

    Raises:
        ValueError: a ``syncplay_password_hash`` without a ``password_hash``.
    """

    id: UUID
    name: str
    owner_id: UUID
    owner_name: str
    content_type: str
    content_id: str
    is_public: bool
    password_hash: str | None
    max_participants: int
    created_at: datetime
    playback_control: PlaybackControl = PlaybackControl.EVERYONE
    content_title: str | None = None
    content_duration: float | None = None
    wait_for_slow_members: SlowPolicy = "policy"
    start_when_ready: bool = False
    syncplay_password_hash: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        _check_verifier(self.password_hash, self.syncplay_password_hash)


@dataclass(frozen=True, slots=True)
class RoomUpdate:
    """A partial update: ``None`` leaves a field unchanged.

    ``clear_password`` removes the password (``password_hash`` sets a new one).
    ``syncplay_password_hash`` travels with ``password_hash``: a new password replaces the
    room's verifier with this one (``None``: the room has none, never the old password's
    verifier), and a cleared password clears it.
    ``content_type``/``content_id`` change the queue's current item in place (same id)
    and, when the content is really different, clear its title and duration; in a room
    whose queue is empty they make a new one-item queue.

    Raises:
        ValueError: a ``syncplay_password_hash`` without a ``password_hash``.
    """

    updated_at: datetime
    name: str | None = None
    content_type: str | None = None
    content_id: str | None = None
    is_public: bool | None = None
    password_hash: str | None = None
    clear_password: bool = False
    max_participants: int | None = None
    playback_control: PlaybackControl | None = None
    moderators_manage_moderators: bool | None = None
    wait_for_slow_members: SlowPolicy | None = None
    start_when_ready: bool | None = None
    syncplay_password_hash: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        _check_verifier(self.password_hash, self.syncplay_password_hash)


def _check_verifier(password_hash: str | None, syncplay_password_hash: str | None) -> None:
    # A verifier is only ever made from a password being set: alone, it would be a bug
    # (and the schema's check refuses it too).
    if syncplay_password_hash is not None and password_hash is None:
        raise ValueError("a syncplay_password_hash needs the password_hash it was made with")


@dataclass(frozen=True, slots=True)
class RoomFilters:
    """Which rooms a listing returns.

    ``visible_to``: only rooms that are public or that this user owns or has joined;
    ``None`` means every room (admins). ``member``: only rooms this user owns or has
    joined ("mine"). ``active``: ``True`` for rooms not ended, ``False`` for ended ones,
    ``None`` for both.
    """

    visible_to: UUID | None = None
    member: UUID | None = None
    public_only: bool = False
    content_type: str | None = None
    content_id: str | None = None
    active: bool | None = True


@dataclass(frozen=True, slots=True)
class Participant:
    """A user's membership of a room."""

    room_id: UUID
    user_id: UUID
    user_name: str
    role: Role
    is_connected: bool
    joined_at: datetime
    last_seen_at: datetime
    #: Filled in by the service from the room's mutes; storage always says ``False``.
    muted: bool = False


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One chat message; the service assigns ``id`` and ``created_at``."""

    id: UUID
    room_id: UUID
    user_id: UUID
    user_name: str
    message: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An entry for a room's event log (written behind, in batches)."""

    room_id: UUID
    type: str
    created_at: datetime
    user_id: UUID | None = None
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PresenceUpdate:
    """A member's connection state as the live room last saw it (written behind, in batches)."""

    room_id: UUID
    user_id: UUID
    is_connected: bool
    seen_at: datetime


@dataclass(frozen=True, slots=True)
class Event:
    """A stored event; ``id`` orders a room's events."""

    id: int
    room_id: UUID
    type: str
    created_at: datetime
    user_id: UUID | None
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Invitation:
    """An invitation code to a room.

    ``max_uses`` of ``None`` means any number of uses until ``expires_at``.
    """

    id: UUID
    code: str
    room_id: UUID
    created_by: UUID
    invited_user_id: UUID | None
    expires_at: datetime
    max_uses: int | None
    use_count: int
    created_at: datetime

    def is_expired(self, now: datetime) -> bool:
        return now >= self.expires_at

    @property
    def is_used_up(self) -> bool:
        return self.max_uses is not None and self.use_count >= self.max_uses


class RestrictionKind(enum.StrEnum):
    """What a restriction keeps a user from doing in one room."""

    BAN = "ban"  # joining (and so everything else)
    MUTE = "mute"  # posting chat; the user stays and watches


@dataclass(frozen=True, slots=True)
class Restriction:
    """A ban or a mute of one user in one room, kept when the user leaves.

    ``expires_at`` of ``None`` means until it is lifted. ``user_name`` is the
    name the user had in the room when it was made (``None`` for a user who was
    never a member).
    """

    room_id: UUID
    user_id: UUID
    kind: RestrictionKind
    user_name: str | None
    reason: str | None
    created_by: UUID
    created_at: datetime
    expires_at: datetime | None

    def is_active(self, now: datetime) -> bool:
        return self.expires_at is None or now < self.expires_at


@dataclass(frozen=True, slots=True)
class Standing:
    """Where one user stands in one room, read at one instant (a join's preconditions).

    ``room`` is ``None`` if the room does not exist, ``participant`` if the user is
    not a member; ``restrictions`` are the user's ban and mute in the room, expired
    or not (at most one of each kind).
    """

    room: Room | None
    participant: Participant | None
    restrictions: tuple[Restriction, ...]

    def active(self, kind: RestrictionKind, now: datetime) -> Restriction | None:
        """The user's restriction of ``kind`` in force at ``now``, if any."""
        for restriction in self.restrictions:
            if restriction.kind == kind and restriction.is_active(now):
                return restriction
        return None


@dataclass(frozen=True, slots=True)
class NodeRecord:
    """A syncplayd node in the cluster registry.

    ``url`` is where other nodes and operators reach it (its HTTP listener); ``pid`` its
    process id on its machine; ``heartbeat_at`` the last time it said it was alive.
    ``syncplay_bridge`` is where the other nodes reach its Syncplay-protocol listener, to
    forward a Syncplay client whose room runs on it: ``HOST:PORT``, an IPv6 host in
    brackets (``[::1]:8999``); ``None`` when the node runs no such listener.
    """

    node_id: str
    url: str
    pid: int
    started_at: datetime
    heartbeat_at: datetime
    syncplay_bridge: str | None = None


@dataclass(frozen=True, slots=True)
class RoomOwner:
    """Which node runs a live room, and since when.

    A mirror for people and routing hints: the owner's advisory lock decides who runs the
    room, and a node that died leaves its rows behind until they are cleared.
    """

    room_id: UUID
    node_id: str
    since: datetime


@dataclass(frozen=True, slots=True)
class AttemptBudget:
    """One failed-attempt budget an attempt is charged to: ``budget`` attempts per window for
    ``key`` within ``scope`` (the service's scopes: ``"user"``, ``"address"``)."""

    scope: str
    key: str
    budget: int
