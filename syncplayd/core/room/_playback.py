"""Transitions driven by a member's player: control, readiness, heartbeats, pings.

The rules are described in ``_engine`` ("Theory of operation"); each function
here takes the room, one command and ``now`` and returns ``(room, effects)``.
"""

from __future__ import annotations

import math
from dataclasses import replace

from syncplayd.core import protocol
from syncplayd.core.clock import ema, position_at
from syncplayd.core.room._events import (
    Buffering,
    Effect,
    Heartbeat,
    Pause,
    Play,
    Ready,
    RttSample,
    Seek,
    SendTo,
    SetRate,
)
from syncplayd.core.room._state import Playback, Refused, RoomState
from syncplayd.core.room._transitions import (
    Result,
    change_playback,
    check_control,
    check_position,
    live_session,
    maybe_resume,
    maybe_wait,
    presence,
    put,
    start,
)
from syncplayd.core.room._views import snapshot

# A latency warning is re-armed only once the latency falls clearly below the
# limit; without the gap a member hovering at the limit would be announced on
# every other ping.
LATENCY_RECOVERY = 0.8


def play(state: RoomState, command: Play, now: float) -> Result:
    """Start playing; a no-op when already playing."""
    session = live_session(state, command.session_id)
    check_control(state, session)
    if command.position is not None:
        check_position(command.position)
    if state.playback.state == "playing":
        return state, []
    position = command.position
    if position is None:
        position = position_at(state.playback, now)
    return start(state, position, reason="play", waiting_reason="waiting", by=session, now=now)


def pause(state: RoomState, command: Pause, now: float) -> Result:
    """Pause now; a no-op when already paused at that position."""
    session = live_session(state, command.session_id)
    check_control(state, session)
    current = state.playback
    if command.position is None:
        position = position_at(current, now)
    else:
        position = check_position(command.position)
    if current.state == "paused" and position == current.position:
        return state, []
    paused = Playback("paused", position, current.rate, now, current.version + 1, session.user_name)
    return change_playback(state, paused, reason="pause", execute_at=now, by=session)


def seek(state: RoomState, command: Seek, now: float) -> Result:
    """Move to a position: a paused room stays paused, otherwise play from there."""
    session = live_session(state, command.session_id)
    check_control(state, session)
    position = check_position(command.position)
    current = state.playback
    if current.state == "paused":
        name = session.user_name
        paused = Playback("paused", position, current.rate, now, current.version + 1, name)
        return change_playback(state, paused, reason="seek", execute_at=now, by=session)
    return start(state, position, reason="seek", waiting_reason="seek", by=session, now=now)


def set_rate(state: RoomState, command: SetRate, now: float) -> Result:
    """Change the speed at ``now`` (a scheduled start stays scheduled)."""
    session = live_session(state, command.session_id)
    check_control(state, session)
    rate = command.rate
    if not (math.isfinite(rate) and protocol.MIN_RATE <= rate <= protocol.MAX_RATE):
        low, high = protocol.MIN_RATE, protocol.MAX_RATE
        raise Refused("bad-message", f"rate must be within {low}..{high}")
    current = state.playback
    if rate == current.rate:
        return state, []
    # Re-anchor at now so the position is continuous, but keep a scheduled start
    # in the future (the position holds until then either way).
    anchor = max(now, current.anchor)
    changed = replace(
        current,
        position=position_at(current, now),
        rate=rate,
        anchor=anchor,
        version=current.version + 1,
        set_by=session.user_name,
    )
    return change_playback(state, changed, reason="rate", execute_at=anchor, by=session)


def buffering(state: RoomState, command: Buffering, now: float) -> Result:
    """Mark the session buffering; a playing room waits for it if it blocks."""
    session = live_session(state, command.session_id)
    if command.position is not None:
        check_position(command.position)
    if session.buffering:
        # Repeats must not push buffering_since (and so the ready timeout) back.
        return state, []
    session = replace(session, buffering=True, buffering_since=now)
    state = put(state, session)
    effects: list[Effect] = [presence(state, "buffering", session, exclude=session.session_id)]
    state, waiting = maybe_wait(state, now)
    return state, effects + waiting


def ready(state: RoomState, command: Ready, now: float) -> Result:
    """The session can play: it blocks nobody now, and a wait may end."""
    session = live_session(state, command.session_id)
    if command.position is not None:
        check_position(command.position)
    if not (session.buffering or session.catching_up):
        return state, []
    was_buffering = session.buffering
    # ``skipped`` stays: a member the room stopped waiting for is not waited for again.
    session = replace(session, buffering=False, buffering_since=None, catching_up=False)
    state = put(state, session)
    effects: list[Effect] = []
    if was_buffering:
        effects.append(presence(state, "ready", session, exclude=session.session_id))
    state, resumed = maybe_resume(state, by=session, now=now)
    return state, effects + resumed


def heartbeat(state: RoomState, command: Heartbeat, now: float) -> Result:
    """Note that the session is alive and send it a ``sync`` if it drifted too far."""
    session = live_session(state, command.session_id)
    check_position(command.position)
    if not math.isfinite(command.server_time):
        raise Refused("bad-message", "server_time must be a finite number")
    current = state.playback
    session = replace(session, last_seen=now)
    # An older version means a change is still on its way to the client; a
    # waiting room or a buffering player has no meaningful position to compare.
    if command.version < current.version or current.state == "waiting" or session.buffering:
        return put(state, session), []
    # Compare at the client's own idea of the time: an error in its clock
    # estimate then cancels out instead of looking like drift.
    offset = command.position - position_at(current, command.server_time)
    session = replace(session, last_offset=offset)
    effects: list[Effect] = []
    if abs(offset) > state.config.threshold_seconds:
        sync = protocol.SyncCommand(playback=snapshot(state, now), offset=offset)
        effects.append(SendTo(session.session_id, sync))
    elif session.catching_up:
        # In step without having said "ready": it has caught up all the same, and
        # from now on its buffering counts like everyone's.
        session = replace(session, catching_up=False)
    return put(state, session), effects


def rtt_sample(state: RoomState, command: RttSample, now: float) -> Result:
    """Smooth the session's round trip; tell the room once when it lags."""
    session = live_session(state, command.session_id)
    if not (math.isfinite(command.rtt) and command.rtt >= 0):
        raise Refused("bad-message", "rtt must be a finite number >= 0")
    rtt = ema(session.rtt, command.rtt)
    session = replace(session, rtt=rtt, last_seen=now)
    one_way_ms = rtt * 1000 / 2
    limit = state.config.max_latency_ms
    if one_way_ms > limit and not session.latency_warned:
        state = put(state, replace(session, latency_warned=True))
        detail = f"{round(one_way_ms)} ms"
        return state, [presence(state, "latency", session, exclude=None, detail=detail)]
    if session.latency_warned and one_way_ms <= limit * LATENCY_RECOVERY:
        session = replace(session, latency_warned=False)
    return put(state, session), []
