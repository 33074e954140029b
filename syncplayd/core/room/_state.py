"""The values a room is made of: playback, sessions, settings and the room itself.

All frozen: a transition builds new values (``dataclasses.replace``) and the old
state stays valid, so a refused command can never leave a half-changed room.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal, TypeGuard, get_args

from syncplayd.core.protocol import ProtocolError

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


class Refused(ProtocolError):
    """A command the room refuses; the state is unchanged.

    The client's fault (h11's ``RemoteProtocolError``): the shell answers with an
    ``error`` frame carrying ``code``. It is a :class:`~syncplayd.core.protocol.ProtocolError`
    so one handler covers codec and engine refusals.

    Codes: ``not-allowed`` (control is for moderators), ``not-joined`` (no such
    connected session), ``bad-resume`` (resuming another user's session),
    ``bad-message`` (a value out of range).
    """


@dataclass(frozen=True, slots=True)
class Playback:
    """The room's authoritative playback: ``position`` holds at server time ``anchor``.

    While ``playing``, the position at time ``t`` is
    ``position + max(0, t - anchor) * rate`` (see :func:`~syncplayd.core.clock.position_at`);
    an anchor in the future is a scheduled start. ``version`` grows by one with
    every authoritative change; ``set_by`` names who caused it (``None``: the server).
    """

    state: PlayState = "paused"
    position: float = 0.0
    rate: float = 1.0
    anchor: float = 0.0
    version: int = 0
    set_by: str | None = None


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
        rtt: smoothed ping round trip, seconds.
        last_seen: server time of the last heartbeat or ping report.
        last_offset: its position minus the room's at its last heartbeat, seconds.
        latency_warned: the room was told this session lags; not repeated until it recovers.
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
    rtt: float | None = None
    last_seen: float = 0.0
    last_offset: float | None = None
    latency_warned: bool = False

    @property
    def blocks(self) -> bool:
        """Whether it stalls the room (see :meth:`RoomState.waits_for`): connected, buffering,
        neither late nor skipped."""
        return self.connected and self.buffering and not (self.catching_up or self.skipped)


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
    """

    threshold_seconds: float = 2.0
    ready_timeout_seconds: float = 30.0
    disconnect_timeout_seconds: float = 30.0
    max_latency_ms: float = 500.0
    min_lead: float = 0.15
    max_lead: float = 1.5
    lead_margin: float = 0.05
    max_rate_correction: float = 0.05

    def __post_init__(self) -> None:
        positive = {
            "threshold_seconds": self.threshold_seconds,
            "ready_timeout_seconds": self.ready_timeout_seconds,
            "disconnect_timeout_seconds": self.disconnect_timeout_seconds,
            "max_latency_ms": self.max_latency_ms,
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


def _frozen_sessions(sessions: Mapping[str, Session]) -> Mapping[str, Session]:
    return MappingProxyType(dict(sessions))


@dataclass(frozen=True, slots=True, kw_only=True)
class RoomState:
    """Everything the engine knows about one room.

    Attributes:
        room_id: the room's id (opaque to the engine).
        playback: the authoritative playback.
        sessions: session id -> session, in order of first connection (read-only).
        resume_playing: in ``waiting``, play again once nobody blocks (always true
            while waiting today; kept explicit so a future "wait while paused" fits).
        control: who may change playback.
        config: the tunables.
    """

    room_id: str
    playback: Playback = field(default_factory=Playback)
    sessions: Mapping[str, Session] = field(default_factory=lambda: MappingProxyType({}))
    resume_playing: bool = False
    control: ControlMode = "everyone"
    config: SyncConfig = field(default_factory=SyncConfig)

    def waits_for(self, session: Session) -> bool:
        """Whether the room waits for ``session``'s player.

        Only those who may control playback can hold it: in a ``moderators`` room a
        member's buffering stalls nobody (the member catches up on its own), since a
        member there may not pause the room either.
        """
        return session.blocks and (self.control == "everyone" or session.role != "member")

    def __post_init__(self) -> None:
        # A caller's dict must not be able to change the room behind its back.
        if not isinstance(self.sessions, MappingProxyType):
            object.__setattr__(self, "sessions", _frozen_sessions(self.sessions))
