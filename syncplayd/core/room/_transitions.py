"""Building blocks shared by the transitions (see ``_engine`` for the rules they serve).

Each returns new values and the effects that announce them; none of them
decides *whether* something happens except where its docstring says so.
"""

from __future__ import annotations

import math
from typing import Literal

from syncplayd.core import protocol
from syncplayd.core.clock import lead_time
from syncplayd.core.room._copy import evolve, evolve_room
from syncplayd.core.room._events import Advance, Broadcast, Effect, LogEvent, PersistPlayback
from syncplayd.core.room._state import Playback, Refused, RoomState, Session
from syncplayd.core.room._views import (
    any_blocking,
    any_unfinished,
    blocking,
    live_position,
    member,
    member_after,
    wire,
)

Result = tuple[RoomState, list[Effect]]
"""What every transition returns: the room after, and the effects in order."""

PresenceEvent = Literal[
    "joined", "left", "disconnected", "reconnected", "buffering", "ready",
    "not_ready_timeout", "latency", "role", "muted", "unmuted", "ended", "slow", "readiness",
]  # fmt: skip


def live_session(state: RoomState, session_id: str) -> Session:
    """The connected session ``session_id``.

    Raises:
        Refused: ``not-joined``, when there is no such connected session.
    """
    session = state.sessions.get(session_id)
    if session is None or not session.connected:
        raise Refused("not-joined", f"session {session_id!r} is not connected to this room")
    return session


def check_control(state: RoomState, session: Session) -> None:
    """Refuse playback control to plain members of a moderators-only room.

    Raises:
        Refused: ``not-allowed``.
    """
    if state.control == "moderators" and session.role == "member":
        raise Refused("not-allowed", "only moderators control playback in this room")


def check_position(position: float) -> float:
    """``position`` if it is a valid media position.

    Raises:
        Refused: ``bad-message``, for NaN, infinities, negatives and absurdly large values.
    """
    if not (math.isfinite(position) and 0.0 <= position <= protocol.MAX_POSITION):
        raise Refused("bad-message", f"position must be within 0..{protocol.MAX_POSITION:g} s")
    return position


def put(state: RoomState, *sessions: Session) -> RoomState:
    """``state`` with ``sessions`` added or replaced (by id): O(log N) each, not a copy."""
    return evolve_room(state, sessions=state.table.put(*sessions))


def room_lead(state: RoomState) -> float:
    """The scheduling lead for this room from its connected members' round trips."""
    config = state.config
    # Only the worst round trip counts, and the table keeps it: no scan of the room.
    worst = state.table.worst_rtt()
    return lead_time(
        () if worst is None else (worst,),
        minimum=config.min_lead,
        maximum=config.max_lead,
        margin=config.lead_margin,
    )


def change_playback(
    state: RoomState,
    playback: Playback,
    *,
    reason: str,
    execute_at: float,
    by: Session | None,
) -> Result:
    """Install ``playback`` (its version already bumped by the caller) and announce it.

    Every authoritative change goes through here, so it always comes with the
    same broadcast, persist and log effects, ``resume_playing`` always follows
    the state (``waiting`` means "play again when nobody blocks"), and a
    playback that is no longer at its end stops the wait for the members' ends.
    """
    end_wait = state.end_wait_until if playback.ended else None
    new = evolve(
        state,
        playback=playback,
        resume_playing=playback.state == "waiting",
        end_wait_until=end_wait,
    )
    user_id = None if by is None else by.user_id
    payload: dict[str, str | float | bool | None] = {
        "reason": reason,
        "state": playback.state,
        "position": playback.position,
        "rate": playback.rate,
        "version": playback.version,
        "execute_at": execute_at,
        "item_id": state.item_id,
        "ended": playback.ended,
    }
    changed = protocol.PlaybackChanged(
        playback=wire(new, playback), execute_at=execute_at, reason=reason
    )
    return new, [
        Broadcast(changed),
        PersistPlayback(playback, user_id),
        LogEvent("playback", user_id, payload),
    ]


def presence(
    state: RoomState,
    event: PresenceEvent,
    session: Session,
    *,
    exclude: str | None,
    detail: str | None = None,
) -> Broadcast:
    """A presence broadcast about ``session``'s user (who may have just left ``state``)."""
    if session.session_id in state.sessions:
        view = member(state, session.session_id)
    else:
        view = member_after(state, session)
    return Broadcast(protocol.Presence(event=event, member=view, detail=detail), exclude=exclude)


def skip_overdue(state: RoomState, now: float) -> Result:
    """Stop waiting for blockers whose ready timeout has run out, naming each one.

    The name goes out in ``detail`` so the room learns *who* it no longer waits
    for, instead of Jellyfin's anonymous "waiting for others" that never ends.
    """
    timeout = state.config.ready_timeout_seconds
    # The earliest stall tells without a scan whether anyone is overdue at all.
    first = state.table.first_stall(hosts_only=state.control != "everyone")
    if first is None or now < first + timeout:
        return state, []
    effects: list[Effect] = []
    for session in blocking(state):
        since = session.buffering_since
        if since is not None and now >= since + timeout:
            skipped = evolve(session, skipped=True)
            state = put(state, skipped)
            name = skipped.user_name
            effects.append(presence(state, "not_ready_timeout", skipped, exclude=None, detail=name))
            effects.append(
                LogEvent("not_ready_timeout", skipped.user_id, {"session_id": skipped.session_id})
            )
    return state, effects


def start(
    state: RoomState,
    position: float,
    *,
    reason: str,
    waiting_reason: str,
    by: Session | None,
    now: float,
) -> Result:
    """Play from ``position``: scheduled a lead ahead, or ``waiting`` while anyone blocks.

    A room already waiting at ``position`` stays as it is (no version bump). A
    position at or past the item's end ends the playback instead (already ended
    there: nothing changes).
    """
    if state.duration is not None and position >= state.duration:
        if state.playback.ended:
            return state, []
        return end_playback(state, by=by, now=now)
    # Blockers already past their timeout would be skipped by the next Tick anyway;
    # doing it now avoids announcing a wait that ends a moment later.
    state, effects = skip_overdue(state, now)
    current = state.playback
    name = None if by is None else by.user_name
    if any_blocking(state):
        if current.state == "waiting" and current.position == position:
            return state, effects
        waiting = Playback("waiting", position, current.rate, now, current.version + 1, name)
        state, changed = change_playback(
            state, waiting, reason=waiting_reason, execute_at=now, by=by
        )
        return state, effects + changed
    execute_at = now + room_lead(state)
    playing = Playback("playing", position, current.rate, execute_at, current.version + 1, name)
    state, changed = change_playback(state, playing, reason=reason, execute_at=execute_at, by=by)
    return state, effects + changed


def maybe_wait(state: RoomState, now: float) -> Result:
    """A playing room that now has someone to wait for goes to ``waiting`` at the live position.

    A session starting to buffer, or a change of control or role that makes a
    buffering session one the room waits for.
    """
    current = state.playback
    # Not playing: nothing to stop, and no need to look for the first blocker.
    if current.state != "playing" or not any_blocking(state):
        return state, []
    first = blocking(state)[0]
    at = live_position(state, now)
    waiting = Playback("waiting", at, current.rate, now, current.version + 1, first.user_name)
    return change_playback(state, waiting, reason="waiting", execute_at=now, by=first)


def maybe_resume(state: RoomState, *, by: Session | None, now: float) -> Result:
    """A waiting room whose last blocker went away plays again (reason ``resume``)."""
    if state.playback.state != "waiting" or not state.resume_playing or any_blocking(state):
        return state, []
    position = state.playback.position
    return start(state, position, reason="resume", waiting_reason="resume", by=by, now=now)


def settle(state: RoomState, *, by: Session | None, now: float) -> Result:
    """After the sessions the room waits for changed: a wait may end, an end may advance."""
    state, resumed = maybe_resume(state, by=by, now=now)
    state, advanced = maybe_advance(state)
    return state, resumed + advanced


def end_playback(state: RoomState, *, by: Session | None, now: float) -> Result:
    """The media reached its end: paused at the duration, ``ended`` (reason ``ended``).

    The room then waits for the members it holds for to report the end, at most a
    ready timeout (:func:`maybe_advance`, and ``Tick`` for the timeout). Like every
    pause, the end makes everyone not ready again.
    """
    duration = state.duration
    if duration is None:  # pragma: no cover - callers check; a room without a length never ends
        raise AssertionError("end_playback needs a duration")
    current = state.playback
    name = None if by is None else by.user_name
    ended = Playback("paused", duration, current.rate, now, current.version + 1, name, ended=True)
    state, effects = change_playback(state, ended, reason="ended", execute_at=now, by=by)
    state = evolve(state, end_wait_until=now + state.config.ready_timeout_seconds)
    state, unready = reset_readiness(state)
    state, advanced = maybe_advance(state)
    return state, effects + unready + advanced


def unfinished(state: RoomState) -> list[Session]:
    """The sessions the ended room still waits for: held for, and not at the end yet."""
    if not any_unfinished(state):
        return []
    return [s for s in state.sessions.values() if state.holds(s) and not s.ended]


def maybe_advance(state: RoomState) -> Result:
    """An ended room whose members are all at the end asks to advance, once.

    ``end_wait_until`` goes back to ``None``, so that the request is made once per
    end; the next item arrives as ``LoadItem``, or nothing follows and the room
    stays ended.
    """
    if state.end_wait_until is None or not state.playback.ended or any_unfinished(state):
        return state, []
    return advance(state)


def advance(state: RoomState) -> Result:
    """Ask the shell to move the queue on (no item: just stop waiting)."""
    state = evolve(state, end_wait_until=None)
    if state.item_id is None:  # pragma: no cover - a room without an item has no duration
        return state, []
    return state, [Advance(state.item_id)]


def reset_readiness(state: RoomState) -> Result:
    """Every pause makes everyone not ready: one ``readiness`` presence per user who was."""
    if not state.table.tally.ready:
        return state, []
    ready = [s for s in state.sessions.values() if s.ready]
    if not ready:
        return state, []
    state = put(state, *(evolve(s, ready=False) for s in ready))
    effects: list[Effect] = []
    told: set[str] = set()
    for session in ready:
        if session.user_id not in told:
            told.add(session.user_id)
            effects.append(presence(state, "readiness", session, exclude=None))
    return state, effects
