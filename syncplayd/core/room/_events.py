"""Commands into the room engine and effects out of it.

Commands are facts the shell observed (a client message, a closed socket, a
timer firing); effects are what the shell must do about them. Both are frozen
values, so a test can compare them with ``==`` and a log can print them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from syncplayd.core import protocol
from syncplayd.core.protocol import CloseReason as CloseReason
from syncplayd.core.queue import SlowPolicy
from syncplayd.core.room._state import ControlMode, Playback, Role

# -- commands -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Connect:
    """A session joins the room, or comes back.

    Attributes:
        session_id: a fresh id, or the id of a session to resume.
        user_id: the authenticated user.
        user_name: the display name.
        role: the user's role in the room (from storage).
        resume: the client asked to resume ``session_id``.
        muted: the user is muted in the room (from storage).
        desktop: a desktop player through the Syncplay bridge, not a syncplayd client.
    """

    session_id: str
    user_id: str
    user_name: str
    role: Role = "member"
    resume: bool = False
    muted: bool = False
    desktop: bool = False


@dataclass(frozen=True, slots=True)
class Disconnect:
    """The session's socket is gone (it may resume); idempotent."""

    session_id: str


@dataclass(frozen=True, slots=True)
class Leave:
    """The session left the room for good; idempotent."""

    session_id: str


@dataclass(frozen=True, slots=True)
class RemoveUser:
    """Every session of a user leaves the room: the user left or was removed.

    Each connected session's socket is closed with ``reason`` (``left``, ``kicked``
    or ``banned``); the others see presence ``left``. Idempotent: a user with no
    session changes nothing.
    """

    user_id: str
    reason: CloseReason = "left"
    message: str = "you left the room"


@dataclass(frozen=True, slots=True)
class Play:
    """Start (or resume) playback, at ``position`` or where the room stands."""

    session_id: str
    position: float | None = None


@dataclass(frozen=True, slots=True)
class Pause:
    """Pause, at ``position`` (the sender's player) or where the room stands."""

    session_id: str
    position: float | None = None


@dataclass(frozen=True, slots=True)
class Seek:
    """Move playback to ``position``."""

    session_id: str
    position: float


@dataclass(frozen=True, slots=True)
class SetRate:
    """Change the playback speed."""

    session_id: str
    rate: float


@dataclass(frozen=True, slots=True)
class Buffering:
    """The session's player is loading; ``position`` is informational."""

    session_id: str
    position: float | None = None


@dataclass(frozen=True, slots=True)
class Ready:
    """The session's player can play; ``position`` is informational."""

    session_id: str
    position: float | None = None


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """The session's player stood at ``position`` at ``server_time`` (its clock estimate).

    Attributes:
        session_id: the reporting session.
        position: its media position, seconds.
        server_time: when the position was sampled, on the server clock as the client estimates it.
        version: the playback version the client has applied.
        playing: whether its player is playing (informational).
        rtt: a ping round trip measured with it, seconds: the heartbeat then does first
            what an :class:`RttSample` of it does, in the same pass (one copy of the
            session and of the room for both, as the client sends them in one frame).
    """

    session_id: str
    position: float
    server_time: float
    version: int
    playing: bool = False
    rtt: float | None = None


@dataclass(frozen=True, slots=True)
class RttSample:
    """A measured ping round trip of the session, seconds."""

    session_id: str
    rtt: float


@dataclass(frozen=True, slots=True)
class Tick:
    """Time passed: handle the deadlines due at ``now`` (applied at each ``WakeAt``)."""


@dataclass(frozen=True, slots=True)
class SetControl:
    """Change who may control playback (an owner's or admin's decision, checked by the shell)."""

    mode: ControlMode


@dataclass(frozen=True, slots=True)
class SetRole:
    """Change a user's role for all of their sessions (decided and logged by the service)."""

    user_id: str
    role: Role


@dataclass(frozen=True, slots=True)
class SetMuted:
    """Mute or unmute a user in all of their sessions (decided and logged by the service)."""

    user_id: str
    muted: bool


@dataclass(frozen=True, slots=True)
class SetRoomRules:
    """The room's waiting rules changed (an owner's decision, checked and stored by the service).

    Attributes:
        wait_for_slow_members: ``always``, ``policy`` or ``never``.
        start_when_ready: whether a plain member's play waits for everyone's readiness.
    """

    wait_for_slow_members: SlowPolicy
    start_when_ready: bool


@dataclass(frozen=True, slots=True)
class Media:
    """The session's player loaded ``item_id``, and measured ``duration`` (``None``: unknown)."""

    session_id: str
    item_id: str
    duration: float | None = None


@dataclass(frozen=True, slots=True)
class Ended:
    """The session's player reached the end of ``item_id``."""

    session_id: str
    item_id: str


@dataclass(frozen=True, slots=True)
class Readiness:
    """The session's user says they are ready (or not): the manual "I'm ready"."""

    session_id: str
    ready: bool


@dataclass(frozen=True, slots=True)
class LoadItem:
    """Another queue item is current (or the same one starts again): play it from 0.

    Attributes:
        item_id: the item; ``None`` when the queue became empty.
        duration: its length as stored, if known.
    """

    item_id: str | None
    duration: float | None = None


@dataclass(frozen=True, slots=True)
class SetDuration:
    """The stored duration of the current item (storage is the authority: first value wins).

    Ignored unless ``item_id`` is the room's item; ``None`` clears it (new content in place).
    """

    item_id: str | None
    duration: float | None


Command = (
    Connect
    | Disconnect
    | Leave
    | RemoveUser
    | Play
    | Pause
    | Seek
    | SetRate
    | Buffering
    | Ready
    | Heartbeat
    | RttSample
    | Tick
    | SetControl
    | SetRole
    | SetMuted
    | SetRoomRules
    | Media
    | Ended
    | Readiness
    | LoadItem
    | SetDuration
)
"""Everything :func:`~syncplayd.core.room.apply` accepts."""

# -- effects --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Broadcast:
    """Send ``message`` to every connected session of the room except ``exclude``."""

    message: protocol.ServerMessage
    exclude: str | None = None


@dataclass(frozen=True, slots=True)
class SendTo:
    """Send ``message`` to one session."""

    session_id: str
    message: protocol.ServerMessage


@dataclass(frozen=True, slots=True)
class PersistPlayback:
    """Store the room's playback (write-behind; the writer may coalesce).

    Attributes:
        playback: the new playback. A playing playback may be anchored in the
            future (a scheduled start); its position holds until then.
        user_id: who caused the change, ``None`` for the server.
    """

    playback: Playback
    user_id: str | None = None


@dataclass(frozen=True, slots=True)
class LogEvent:
    """Append to the room's event log.

    Attributes:
        type: ``playback``, ``joined``, ``reconnected``, ``disconnected``, ``left``,
            ``not_ready_timeout``, ``idle_timeout``, ``slow`` or ``control`` (roles, mutes
            and the queue are logged by the service, which knows who changed them).
        user_id: the user concerned, ``None`` for the server.
        payload: JSON-ready details (strings, numbers, booleans, ``None``).
    """

    type: str
    user_id: str | None
    payload: Mapping[str, str | float | bool | None] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CloseSession:
    """Close the session's socket with a ``closing`` frame (the engine has already let it go)."""

    session_id: str
    reason: CloseReason
    message: str


@dataclass(frozen=True, slots=True)
class WakeAt:
    """Apply :class:`Tick` at server time ``time`` (replaces any earlier request)."""

    time: float


@dataclass(frozen=True, slots=True)
class Advance:
    """The current item ended for everyone the room waits for: move the queue on after it.

    The shell asks the queue (``service.queue.advance``), which is idempotent by
    ``item_id``; the new item comes back as :class:`LoadItem`.
    """

    item_id: str


@dataclass(frozen=True, slots=True)
class RecordDuration:
    """Store the duration a trusted player measured for ``item_id`` (first value wins)."""

    item_id: str
    duration: float


Effect = (
    Broadcast
    | SendTo
    | PersistPlayback
    | LogEvent
    | CloseSession
    | WakeAt
    | Advance
    | RecordDuration
)
"""Everything :func:`~syncplayd.core.room.apply` returns."""
