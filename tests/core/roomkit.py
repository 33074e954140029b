"""Shared fixtures for the room engine tests: compact states and effect summaries."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

from syncplayd.core import protocol
from syncplayd.core.room import (
    Advance,
    Broadcast,
    CloseSession,
    ControlMode,
    Effect,
    LogEvent,
    PersistPlayback,
    Playback,
    RecordDuration,
    RoomState,
    SendTo,
    Session,
    SyncConfig,
    WakeAt,
)

NOW = 110.0
PAUSED = Playback("paused", 10.0, 1.0, 100.0, 5, "Ann")
PLAYING = Playback("playing", 10.0, 1.0, 100.0, 5, "Ann")  # at NOW: 20.0
SCHEDULED = Playback("playing", 10.0, 1.0, 115.0, 5, "Ann")  # starts at 115
WAITING = Playback("waiting", 10.0, 1.0, 100.0, 5, "Bob")


def session(session_id: str, **changes: Any) -> Session:
    """A connected session seen at 100.0; user id = session id, name = capitalised id."""
    fields: dict[str, Any] = {
        "user_id": session_id,
        "user_name": session_id.capitalize(),
        "last_seen": 100.0,
    }
    fields.update(changes)
    if fields.get("buffering") and "buffering_since" not in fields:
        fields["buffering_since"] = 105.0
    return Session(session_id, **fields)


ANN = session("ann", rtt=0.2)  # the lead is 0.25 s while Ann is connected
BOB = session("bob")
MOD = session("mod", role="moderator")
BOB_BUFFERING = session("bob", buffering=True)


def room(
    playback: Playback = PAUSED,
    *sessions: Session,
    control: ControlMode = "everyone",
    config: SyncConfig | None = None,
    **rest: Any,
) -> RoomState:
    """A room with ``sessions`` (default: Ann and Bob), consistent ``resume_playing``;
    ``rest``: other ``RoomState`` fields (``item_id``, ``duration``...)."""
    chosen = sessions or (ANN, BOB)
    return RoomState(
        room_id="r1",
        playback=playback,
        sessions=MappingProxyType({s.session_id: s for s in chosen}),
        resume_playing=playback.state == "waiting",
        control=control,
        config=SyncConfig() if config is None else config,
        **rest,
    )


def describe(effect: Effect) -> str:
    """One effect as a short, readable string for table tests."""
    match effect:
        case Broadcast(message=protocol.PlaybackChanged() as changed, exclude=None):
            return f"playback:{changed.reason}@{changed.execute_at:g}"
        case Broadcast(message=protocol.Presence() as presence, exclude=exclude):
            text = f"presence:{presence.event}:{presence.member.user_id}"
            text += f":{presence.detail}" if presence.detail is not None else ""
            return text + (f" -{exclude}" if exclude is not None else "")
        case SendTo(session_id=target, message=protocol.SyncCommand() as sync):
            return f"sync->{target}:{sync.offset:g}"
        case PersistPlayback(playback=playback):
            return f"persist:v{playback.version}"
        case LogEvent(type=kind):
            return f"log:{kind}"
        case CloseSession(session_id=target, reason=reason):
            return f"close:{target}:{reason}"
        case WakeAt(time=time):
            return f"wake@{time:g}"
        case Advance(item_id=item_id):
            return f"advance:{item_id}"
        case RecordDuration(item_id=item_id, duration=duration):
            return f"duration:{item_id}:{duration:g}"
        case _:  # pragma: no cover - a new effect type needs a description here
            raise AssertionError(f"undescribed effect {effect!r}")


def describe_all(effects: list[Effect]) -> list[str]:
    """:func:`describe` for each effect."""
    return [describe(effect) for effect in effects]


def changed_playback(effects: list[Effect]) -> list[str]:
    """The ``playback`` trio as the three strings every change produces."""
    return [d for d in describe_all(effects) if d.split(":")[0] in ("playback", "persist")]
