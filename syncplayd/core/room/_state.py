"""The values a room is made of: playback, sessions, settings and the room itself.

All frozen: a transition builds new values (``_copy.evolve``, a faster
``dataclasses.replace``) and the old state stays valid, so a refused command can
never leave a half-changed room.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal, TypeGuard, get_args

from syncplayd.core.protocol import ProtocolError
from syncplayd.core.queue import SLOW_POLICIES
from syncplayd.core.queue import SlowPolicy as SlowPolicy
from syncplayd.core.room._sessions import EMPTY, SessionTable

PlayState = Literal["playing", "paused", "waiting"]
"""``waiting``: stopped until the buffering members are ready, then playing again."""

Role = Literal["owner", "moderator", "member"]
"""A participant's role (the same strings as ``storage.records.Role``)."""

ControlMode = Literal["everyone", "moderators"]
"""Who may play, pause, seek and change the rate."""

ROLES: tuple[Role, ...] = get_args(Role)
"""Every role, most powerful first."""
CONTROL_MODES: tuple[ControlMode, ...] = get_args(ControlMode)
"""Every control mode."""


def is_role(value: str) -> TypeGuard[Role]:
    """Whether ``value`` is a role name (accepts ``storage.records.Role`` members too)."""
    return value in ROLES


def is_control_mode(value: str) -> TypeGuard[ControlMode]:
    """Whether ``value`` is a control mode."""
    return value in CONTROL_MODES


def is_slow_policy(value: str) -> TypeGuard[SlowPolicy]:
    """Whether ``value`` is a ``wait_for_slow_members`` setting."""
    return value in SLOW_POLICIES


class Refused(ProtocolError):
    """A command the room refuses; the state is unchanged.

    The client's fault (h11's ``RemoteProtocolError``): the shell answers with an
    ``error`` frame carrying ``code``. It is a :class:`~syncplayd.core.protocol.ProtocolError`
    so one handler covers codec and engine refusals.

    Codes: ``not-allowed`` (control is for moderators), ``not-ready`` (a plain
    member's play in a ``start_when_ready`` room while someone is not ready),
    ``not-joined`` (no such connected session), ``bad-resume`` (resuming another
    user's session), ``bad-message`` (a value out of range).
    """


@dataclass(frozen=True, slots=True)
class Playback:
    """The room's authoritative playback: ``position`` holds at server time ``anchor``.

    While ``playing``, the position at time ``t`` is
    ``position + max(0, t - anchor) * rate`` (see :func:`~syncplayd.core.clock.position_at`);
    an anchor in the future is a scheduled start. ``version`` grows by one with
    every authoritative change; ``set_by`` names who caused it (``None``: the server).
    ``ended``: the media reached its end; the playback is then ``paused`` at the
    item's duration (:class:`RoomState` knows the item and its duration).
    """

    state: PlayState = "paused"
    position: float = 0.0
    rate: float = 1.0
    anchor: float = 0.0
    version: int = 0
    set_by: str | None = None
    ended: bool = False


@dataclass(frozen=True, slots=True)
class Session:
    """One device connection of a user in the room (a user may have several).

    Attributes:
        session_id: the shell's id for the connection; survives a resume.
        user_id: the user (the token's ``sub``).
        user_name: the display name.
        role: the user's role in the room.
        muted: the user may not chat in the room (shown to everyone in ``Member.muted``).
        connected: whether a socket is attached (a disconnected session may resume).
        buffering: the player reported it is loading.
        buffering_since: when it started buffering (for the ready timeout).
        catching_up: a late joiner; its buffering stalls nobody until its first ``ready``.
        skipped: it outlived the ready timeout; the room does not wait for it again
            while the session lasts (it catches up on its own), so that no member can
            stall the room over and over.
        slow: its buffering made the room wait ``slow_member_waits`` times within the
            window (``wait_for_slow_members: policy``); like ``skipped``, the room no
            longer waits for it while the session lasts.
        waits: when its buffering sent the playing room to ``waiting``, within the
            window (oldest first): the slow-member tally.
        loading: it has not been ready since the current item was loaded; waits it
            causes then are the item's start, not a slow connection, and are not counted.
        ready: the user said "I'm ready" (belongs to the user: all of their sessions agree).
        ended: its player reported the end of the current item (or stood there).
        rtt: smoothed ping round trip, seconds.
        last_seen: server time of the last heartbeat or ping report.
        last_offset: its position minus the room's at its last heartbeat, seconds.
        latency_warned: the room was told this session lags; not repeated until it recovers.
        desktop: a Syncplay desktop client through the bridge (shown in ``Member.desktop``).
    """

    session_id: str
    user_id: str
    user_name: str
    role: Role = "member"
    muted: bool = False
    connected: bool = True
    buffering: bool = False
    buffering_since: float | None = None
    catching_up: bool = False
    skipped: bool = False
    slow: bool = False
    waits: tuple[float, ...] = ()
    loading: bool = False
    ready: bool = False
    ended: bool = False
    rtt: float | None = None
    last_seen: float = 0.0
    last_offset: float | None = None
    latency_warned: bool = False
    desktop: bool = False

    @property
    def counts(self) -> bool:
        """Whether the room may wait for it at all: connected, neither late, skipped nor slow
        (see :meth:`RoomState.holds`)."""
        return self.connected and not (self.catching_up or self.skipped or self.slow)

    @property
    def blocks(self) -> bool:
        """Whether it stalls the room (see :meth:`RoomState.waits_for`): it counts and is
        buffering."""
        return self.buffering and self.counts


@dataclass(frozen=True, slots=True, kw_only=True)
class SyncConfig:
    """The engine's tunables (the shell fills them from ``config.SyncSettings``).

    Attributes:
        threshold_seconds: a heartbeat further off than this gets a ``sync`` (seek) command.
        ready_timeout_seconds: how long a waiting room waits for a buffering member.
        disconnect_timeout_seconds: silence after which a session is closed as idle.
        max_latency_ms: one-way latency (half the smoothed RTT) above which the room is told.
        min_lead: the shortest delay before a scheduled play/seek takes effect, seconds.
        max_lead: the longest such delay, seconds.
        lead_margin: added to the worst round trip when computing the delay, seconds.
        max_rate_correction: the largest speed change clients use to correct drift.
        slow_member_waits: in a ``policy`` room, how many waits one member's buffering may
            cause within ``slow_member_window_seconds`` before the room stops waiting for it.
        slow_member_window_seconds: the window of that count, seconds.
    """

    threshold_seconds: float = 2.0
    ready_timeout_seconds: float = 30.0
    disconnect_timeout_seconds: float = 30.0
    max_latency_ms: float = 500.0
    min_lead: float = 0.15
    max_lead: float = 1.5
    lead_margin: float = 0.05
    max_rate_correction: float = 0.05
    slow_member_waits: int = 3
    slow_member_window_seconds: float = 120.0

    def __post_init__(self) -> None:
        positive = {
            "threshold_seconds": self.threshold_seconds,
            "ready_timeout_seconds": self.ready_timeout_seconds,
            "disconnect_timeout_seconds": self.disconnect_timeout_seconds,
            "max_latency_ms": self.max_latency_ms,
            "slow_member_window_seconds": self.slow_member_window_seconds,
        }
        for name, value in positive.items():
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number, not {value!r}")
        if not (0 <= self.min_lead <= self.max_lead < math.inf):
            raise ValueError("need 0 <= min_lead <= max_lead (finite)")
        if not (0 <= self.lead_margin < math.inf):
            raise ValueError("lead_margin must be a finite number >= 0")
        if not (0 < self.max_rate_correction < 1):
            raise ValueError("max_rate_correction must be between 0 and 1")
        if self.slow_member_waits < 1:
            raise ValueError("slow_member_waits must be at least 1")


def _no_sessions() -> Mapping[str, Session]:
    return MappingProxyType(EMPTY)


def _table_of(sessions: Mapping[str, Session]) -> tuple[SessionTable, Mapping[str, Session]]:
    """The table behind ``sessions`` and the read-only view to show, without a copy when
    ``sessions`` is already a room's view (a copy changing another field)."""
    if type(sessions) is SessionTable:  # what ``put`` passes, at every heartbeat
        return sessions, MappingProxyType(sessions)
    if isinstance(sessions, MappingProxyType):
        inner: object = sessions.copy()  # a table's copy() is the table itself
        if isinstance(inner, SessionTable):
            return inner, sessions
    table = SessionTable.of(sessions)
    return table, MappingProxyType(table)


@dataclass(frozen=True, slots=True, kw_only=True)
class RoomState:
    """Everything the engine knows about one room.

    Attributes:
        room_id: the room's id (opaque to the engine).
        playback: the authoritative playback.
        sessions: session id -> session, in order of first connection (read-only).
        table: the same sessions as the engine keeps them (:class:`SessionTable`: a
            persistent map, each user's sessions, counts by kind); derived from
            ``sessions``, not compared.
        resume_playing: in ``waiting``, play again once nobody blocks (always true
            while waiting today; kept explicit so a future "wait while paused" fits).
        control: who may change playback.
        config: the tunables.
        item_id: the queue item the room plays (``None``: the queue is empty, or unknown).
        duration: that item's length, seconds, once known: the playback ends there.
        wait_for_slow_members: ``always`` (up to the ready timeout), ``policy`` (and no
            more than ``slow_member_waits`` times per member in the window), ``never``.
        start_when_ready: a plain member's play waits until every connected member is
            ready, and the room starts by itself once they are.
        end_wait_until: while the playback has ended, when the room stops waiting for
            the members' ``ended`` and advances anyway; ``None`` once it asked to
            advance (or was not asked to: a room restored at its end).
    """

    room_id: str
    playback: Playback = field(default_factory=Playback)
    sessions: Mapping[str, Session] = field(default_factory=_no_sessions)
    resume_playing: bool = False
    control: ControlMode = "everyone"
    config: SyncConfig = field(default_factory=SyncConfig)
    item_id: str | None = None
    duration: float | None = None
    wait_for_slow_members: SlowPolicy = "policy"
    start_when_ready: bool = False
    end_wait_until: float | None = None
    table: SessionTable = field(init=False, repr=False, compare=False)

    def holds(self, session: Session) -> bool:
        """Whether the room may wait for ``session`` (its buffering, its end of the media).

        Only those who may control playback can hold it: in a ``moderators`` room a
        member's buffering stalls nobody (the member catches up on its own), since a
        member there may not pause the room either. A room that waits for nobody
        (``wait_for_slow_members: never``) holds for nobody.
        """
        return (
            session.counts
            and self.wait_for_slow_members != "never"
            and (self.control == "everyone" or session.role != "member")
        )

    def waits_for(self, session: Session) -> bool:
        """Whether the room waits for ``session``'s player: it holds the room and buffers."""
        return session.buffering and self.holds(session)

    def __post_init__(self) -> None:
        # A caller's dict must not be able to change the room behind its back: it is
        # copied into a table, and only a read-only view of that is shown.
        table, view = _table_of(self.sessions)
        object.__setattr__(self, "table", table)
        if view is not self.sessions:
            object.__setattr__(self, "sessions", view)
