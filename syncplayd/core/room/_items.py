"""Transitions of the media itself: the queue item, its duration, its end, readiness.

The rules are described in ``_engine`` ("Theory of operation"): a room plays one
queue item at a time; once it knows the item's duration it stops there (ended),
waits for the members it holds for to report the end, and asks the shell to
advance the queue, which answers with :class:`LoadItem`. Each function here takes
the room, one command (and ``now``) and returns ``(room, effects)``.
"""

from __future__ import annotations

import math

from syncplayd.core import protocol
from syncplayd.core.room._copy import evolve
from syncplayd.core.room._events import (
    Effect,
    LoadItem,
    LogEvent,
    Media,
    Readiness,
    RecordDuration,
    SetDuration,
)
from syncplayd.core.room._sessions import SessionTable
from syncplayd.core.room._state import Playback, Refused, RoomState
from syncplayd.core.room._transitions import (
    Result,
    advance,
    change_playback,
    end_playback,
    live_session,
    presence,
    put,
    room_lead,
    skip_overdue,
    start,
    unfinished,
)
from syncplayd.core.room._views import any_blocking, end_time, live_position


def _check_duration(duration: float | None) -> None:
    if duration is not None and not (
        math.isfinite(duration) and 0.0 < duration <= protocol.MAX_POSITION
    ):
        limit = protocol.MAX_POSITION
        raise Refused("bad-message", f"a duration must be over 0 and at most {limit:g} s")


def reach_end(state: RoomState, now: float) -> Result:
    """A playing room at or past the end of its item ends there (``Tick`` or any command).

    Applied before every command, so that nothing ever sees a playing room beyond
    its end, however late the shell's timer fires.
    """
    end = end_time(state)
    if end is None or now < end:
        return state, []
    return end_playback(state, by=None, now=now)


def end_wait_over(state: RoomState, now: float) -> Result:
    """The ready timeout after the end ran out: name who did not finish, and advance."""
    if state.end_wait_until is None or now < state.end_wait_until:
        return state, []
    effects: list[Effect] = []
    for session in unfinished(state):
        name = session.user_name
        effects.append(presence(state, "not_ready_timeout", session, exclude=None, detail=name))
        payload = {"session_id": session.session_id, "item_id": state.item_id}
        effects.append(LogEvent("not_ready_timeout", session.user_id, payload))
    state, advanced = advance(state)
    return state, effects + advanced


def _past_end(state: RoomState, now: float) -> Result:
    """A room that just learnt its duration and stands at or past it ends now."""
    duration = state.duration
    if duration is None or state.playback.ended:
        return state, []
    if live_position(state, now) < duration:
        return state, []
    return end_playback(state, by=None, now=now)


def media(state: RoomState, command: Media, now: float) -> Result:
    """A player loaded the current item: its duration, if trustworthy, is the room's.

    Trustworthy: the first value (the room knows none yet), for the current item,
    finite and within ``0 < d <= MAX_POSITION``, from a session that may control
    playback (anyone else could end the room by claiming a short duration). The
    others are ignored, not refused: a player reporting what it sees is no error.
    """
    session = live_session(state, command.session_id)
    duration = command.duration
    if (
        command.item_id != state.item_id
        or state.duration is not None
        or duration is None
        or not (math.isfinite(duration) and 0.0 < duration <= protocol.MAX_POSITION)
        or (state.control == "moderators" and session.role == "member")
    ):
        return state, []
    state = evolve(state, duration=duration)
    effects: list[Effect] = [RecordDuration(command.item_id, duration)]
    state, ended = _past_end(state, now)
    return state, effects + ended


def set_duration(state: RoomState, command: SetDuration, now: float) -> Result:
    """Storage says what the current item's duration is (it wins over the room's)."""
    _check_duration(command.duration)
    if command.item_id != state.item_id or command.duration == state.duration:
        return state, []
    new_duration = command.duration
    current = state.playback
    state = evolve(state, duration=new_duration)
    if not current.ended:
        return _past_end(state, now)
    if new_duration is not None and new_duration <= current.position:
        # Still at the end, now the shorter one's. The end itself was handled already (the
        # wait for everyone's end, or the advance): begun again, it would ask to advance twice.
        clamped = evolve(
            current, position=new_duration, anchor=now, version=current.version + 1, set_by=None
        )
        return change_playback(state, clamped, reason="duration", execute_at=now, by=None)
    # New media in place, or a longer one: no longer at the end, paused where it stood.
    paused = evolve(current, ended=False, anchor=now, version=current.version + 1, set_by=None)
    return change_playback(state, paused, reason="duration", execute_at=now, by=None)


def load_item(state: RoomState, command: LoadItem, now: float) -> Result:
    """Another item is current (or the same one again): its playback from 0, reason ``item``.

    It plays at once (a lead ahead, or waiting for whoever blocks) when the room
    was playing, waiting, or at the end of the previous item; a paused room (or an
    empty queue) stays paused. Everyone starts the item afresh: nobody has ended it, and each
    session's first wait while loading it is not counted as slow.
    """
    _check_duration(command.duration)
    current = state.playback
    # An empty queue has nothing to play: the room stops at 0.
    autoplay = command.item_id is not None and (current.state != "paused" or current.ended)
    fresh = {sid: evolve(s, ended=False, loading=True) for sid, s in state.sessions.items()}
    state = evolve(
        state,
        item_id=command.item_id,
        duration=command.duration,
        end_wait_until=None,
        sessions=SessionTable.of(fresh),
    )
    effects: list[Effect] = []
    version = current.version + 1
    if not autoplay:
        playback = Playback("paused", 0.0, current.rate, now, version, None)
        execute_at = now
    else:
        state, effects = skip_overdue(state, now)
        if any_blocking(state):
            playback = Playback("waiting", 0.0, current.rate, now, version, None)
            execute_at = now
        else:
            execute_at = now + room_lead(state)
            playback = Playback("playing", 0.0, current.rate, execute_at, version, None)
    state, changed = change_playback(state, playback, reason="item", execute_at=execute_at, by=None)
    return state, effects + changed


def readiness(state: RoomState, command: Readiness, now: float) -> Result:
    """The user's manual readiness, in all of their sessions; presence ``readiness``.

    In a ``start_when_ready`` room, the last connected member to become ready starts
    a paused room (reason ``all_ready``; an ended one from 0).
    """
    session = live_session(state, command.session_id)
    if session.ready == command.ready:
        return state, []
    mine = [evolve(s, ready=command.ready) for s in state.table.of_user(session.user_id)]
    state = put(state, *mine)
    session = state.sessions[session.session_id]
    effects: list[Effect] = [presence(state, "readiness", session, exclude=None)]
    everyone = state.table.tally.unready == 0  # every connected session is ready
    if command.ready and everyone and state.start_when_ready and state.playback.state == "paused":
        position = 0.0 if state.playback.ended else state.playback.position
        state, started = start(
            state, position, reason="all_ready", waiting_reason="all_ready", by=session, now=now
        )
        effects += started
    return state, effects
