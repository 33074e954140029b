"""Transitions driven by a member's player: control, readiness, heartbeats, pings.

The rules are described in ``_engine`` ("Theory of operation"); each function
here takes the room, one command and ``now`` and returns ``(room, effects)``.
"""

from __future__ import annotations

import math

from syncplayd.core import protocol
from syncplayd.core.clock import ema, position_at
from syncplayd.core.room._copy import evolve, evolve_session
from syncplayd.core.room._events import (
    Broadcast,
    Buffering,
    Effect,
    Heartbeat,
    LogEvent,
    Pause,
    Play,
    Ready,
    RttSample,
    Seek,
    SendTo,
    SetRate,
)
from syncplayd.core.room._state import Playback, Refused, RoomState, Session
from syncplayd.core.room._transitions import (
    Result,
    change_playback,
    check_control,
    check_position,
    end_playback,
    live_session,
    maybe_advance,
    maybe_resume,
    maybe_wait,
    presence,
    put,
    reset_readiness,
    start,
)
from syncplayd.core.room._views import live_position, member_with, snapshot

# A latency warning is re-armed only once the latency falls clearly below the
# limit; without the gap a member hovering at the limit would be announced on
# every other ping.
LATENCY_RECOVERY = 0.8


def play(state: RoomState, command: Play, now: float) -> Result:
    """Start playing; a no-op when already playing. An ended room starts over from 0."""
    session = live_session(state, command.session_id)
    check_control(state, session)
    if command.position is not None:
        check_position(command.position)
    if state.playback.state == "playing":
        return state, []
    if state.playback.state == "paused":
        check_readiness(state, session)
    position = command.position
    if position is None:
        position = 0.0 if state.playback.ended else live_position(state, now)
    return start(state, position, reason="play", waiting_reason="waiting", by=session, now=now)


def check_readiness(state: RoomState, session: Session) -> None:
    """In a ``start_when_ready`` room, refuse a plain member's start while someone is not ready.

    Owners and moderators may start anyway (the room's hosts decide).

    Raises:
        Refused: ``not-ready``, naming who is not ready.
    """
    if not state.start_when_ready or session.role != "member" or not state.table.tally.unready:
        return
    waiting = [s for s in state.sessions.values() if s.connected and not s.ready]
    if waiting:
        names = ", ".join(sorted({s.user_name for s in waiting}))
        raise Refused("not-ready", f"not everyone is ready: waiting for {names}")


def pause(state: RoomState, command: Pause, now: float) -> Result:
    """Pause now; a no-op when already paused at that position. At or past the end: the end."""
    session = live_session(state, command.session_id)
    check_control(state, session)
    current = state.playback
    if command.position is None:
        position = live_position(state, now)
    else:
        position = check_position(command.position)
    if current.state == "paused" and position == current.position:
        return state, []
    if state.duration is not None and position >= state.duration:
        return (state, []) if current.ended else end_playback(state, by=session, now=now)
    paused = Playback("paused", position, current.rate, now, current.version + 1, session.user_name)
    state, effects = change_playback(state, paused, reason="pause", execute_at=now, by=session)
    state, unready = reset_readiness(state)
    return state, effects + unready


def seek(state: RoomState, command: Seek, now: float) -> Result:
    """Move to a position: a paused room stays paused, otherwise play from there.

    A seek to or past the end ends the playback (``ended``).
    """
    session = live_session(state, command.session_id)
    check_control(state, session)
    position = check_position(command.position)
    current = state.playback
    if current.state == "paused":
        if state.duration is not None and position >= state.duration:
            return (state, []) if current.ended else end_playback(state, by=session, now=now)
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
    changed = evolve(
        current,
        position=live_position(state, now),
        rate=rate,
        anchor=anchor,
        version=current.version + 1,
        set_by=session.user_name,
    )
    return change_playback(state, changed, reason="rate", execute_at=anchor, by=session)


def buffering(state: RoomState, command: Buffering, now: float) -> Result:
    """Mark the session buffering; a playing room waits for it if it blocks.

    In a ``policy`` room, a session whose buffering already stopped the playing room
    ``slow_member_waits`` times within the window is not waited for again: it is
    marked ``slow`` and everyone (the member too) is told (presence ``slow``).
    """
    session = live_session(state, command.session_id)
    if command.position is not None:
        check_position(command.position)
    if session.buffering:
        # Repeats must not push buffering_since (and so the ready timeout) back.
        return state, []
    session = evolve(session, buffering=True, buffering_since=now)
    state = put(state, session)
    effects: list[Effect] = [presence(state, "buffering", session, exclude=session.session_id)]
    # Counted only when this buffering is what stops the room (a room already waiting
    # was stopped by someone else), and not while the member loads a new item.
    stops_room = state.playback.state == "playing" and state.waits_for(session)
    if stops_room and state.wait_for_slow_members == "policy" and not session.loading:
        config = state.config
        since = now - config.slow_member_window_seconds
        recent = tuple(t for t in session.waits if t > since)
        if len(recent) >= config.slow_member_waits:
            session = evolve(session, slow=True, waits=recent)
            state = put(state, session)
            name = session.user_name
            effects.append(presence(state, "slow", session, exclude=None, detail=name))
            payload: dict[str, str | float | bool | None] = {
                "session_id": session.session_id,
                "waits": len(recent),
            }
            effects.append(LogEvent("slow", session.user_id, payload))
        else:
            state = put(state, evolve(session, waits=(*recent, now)))
    state, waiting = maybe_wait(state, now)
    return state, effects + waiting


def ready(state: RoomState, command: Ready, now: float) -> Result:
    """The session can play: it blocks nobody now, and a wait may end.

    One the room does not wait for (skipped, slow, …) catches up alone: while the
    room plays it gets a ``sync`` to the live position at once.
    """
    session = live_session(state, command.session_id)
    if command.position is not None:
        check_position(command.position)
    if not (session.buffering or session.catching_up or session.loading):
        return state, []
    was_buffering = session.buffering
    # ``skipped`` and ``slow`` stay: a member the room stopped waiting for is not
    # waited for again.
    session = evolve(
        session, buffering=False, buffering_since=None, catching_up=False, loading=False
    )
    state = put(state, session)
    effects: list[Effect] = []
    if was_buffering:
        effects.append(presence(state, "ready", session, exclude=session.session_id))
        if state.playback.state == "playing" and not state.holds(session):
            live = snapshot(state, now)
            offset = 0.0 if command.position is None else command.position - live.position
            sync = protocol.SyncCommand(playback=live, offset=offset)
            effects.append(SendTo(session.session_id, sync))
    state, resumed = maybe_resume(state, by=session, now=now)
    return state, effects + resumed


def heartbeat(state: RoomState, command: Heartbeat, now: float) -> Result:
    """Note that the session is alive and send it a ``sync`` if it drifted too far.

    With an ``rtt``, first what :func:`rtt_sample` does with it (its refusal, its
    ``latency`` presence first among the effects), folded into the same single copy of
    the session and of the room: a client sends both in every heartbeat frame.
    """
    session = live_session(state, command.session_id)
    rtt, warned, latency = session.rtt, session.latency_warned, None
    if command.rtt is not None:
        rtt, warned, latency = _sampled(state, session, command.rtt)
    check_position(command.position)
    if not math.isfinite(command.server_time):
        raise Refused("bad-message", "server_time must be a finite number")
    effects: list[Effect] = []
    if latency is not None:
        # Shown as the sample alone leaves the member: an RttSample before the heartbeat.
        sampled = evolve_session(session, rtt=rtt, last_seen=now, latency_warned=warned)
        view = member_with(state, sampled)
        told = protocol.Presence(event="latency", member=view, detail=latency)
        effects.append(Broadcast(told, exclude=None))
    current = state.playback
    # An older version means a change is still on its way to the client; a
    # waiting room or a buffering player has no meaningful position to compare.
    if command.version < current.version or current.state == "waiting" or session.buffering:
        session = evolve_session(session, rtt=rtt, last_seen=now, latency_warned=warned)
        return put(state, session), effects
    # Compare at the client's own idea of the time: an error in its clock
    # estimate then cancels out instead of looking like drift.
    room_position = position_at(current, command.server_time)
    if state.duration is not None:
        room_position = min(room_position, state.duration)
    offset = command.position - room_position
    threshold = state.config.threshold_seconds
    far = abs(offset) > threshold
    if far:
        sync = protocol.SyncCommand(playback=snapshot(state, now), offset=offset)
        effects.append(SendTo(session.session_id, sync))
    # In step without having said "ready", a late joiner (or a loading player) has
    # caught up all the same, and from now on its buffering counts like everyone's.
    caught_up = not far and (session.catching_up or session.loading)
    session = evolve_session(
        session,
        rtt=rtt,
        last_seen=now,
        latency_warned=warned,
        last_offset=offset,
        catching_up=session.catching_up and not caught_up,
        loading=session.loading and not caught_up,
    )
    if current.ended and not session.ended and abs(offset) <= threshold:
        # A player that applied the end stands there: as good as its ``ended``
        # (a client that never sends one does not hold the room's advance).
        state, reached = _reached_end(state, session)
        return state, effects + reached
    return put(state, session), effects


def _reached_end(state: RoomState, session: Session) -> Result:
    """``session``'s player is at the end of the item: presence ``ended``; the room may advance."""
    session = evolve_session(session, ended=True)
    state = put(state, session)
    effects: list[Effect] = [presence(state, "ended", session, exclude=session.session_id)]
    state, advanced = maybe_advance(state)
    return state, effects + advanced


def ended(state: RoomState, session_id: str, item_id: str) -> Result:
    """The session's player reached the end of ``item_id`` (another item's end: ignored)."""
    session = live_session(state, session_id)
    if item_id != state.item_id or session.ended:
        return state, []
    return _reached_end(state, session)


def rtt_sample(state: RoomState, command: RttSample, now: float) -> Result:
    """Smooth the session's round trip; tell the room once when it lags."""
    session = live_session(state, command.session_id)
    rtt, warned, latency = _sampled(state, session, command.rtt)
    session = evolve_session(session, rtt=rtt, last_seen=now, latency_warned=warned)
    state = put(state, session)
    if latency is None:
        return state, []
    return state, [presence(state, "latency", session, exclude=None, detail=latency)]


def _sampled(state: RoomState, session: Session, sample: float) -> tuple[float, bool, str | None]:
    """``session``'s smoothed round trip with ``sample``, its ``latency_warned`` after it, and
    the detail of the ``latency`` presence to announce (``None``: none).

    Raises:
        Refused: ``bad-message``, for a negative or non-finite ``sample``.
    """
    if not (math.isfinite(sample) and sample >= 0):
        raise Refused("bad-message", "rtt must be a finite number >= 0")
    rtt = ema(session.rtt, sample)
    one_way_ms = rtt * 1000 / 2
    limit = state.config.max_latency_ms
    if one_way_ms > limit and not session.latency_warned:
        return rtt, True, f"{round(one_way_ms)} ms"
    if session.latency_warned and one_way_ms <= limit * LATENCY_RECOVERY:
        return rtt, False, None
    return rtt, session.latency_warned, None
