"""Transitions of the room's membership: sessions coming and going, timeouts, roles, mutes.

The rules are described in ``_engine`` ("Theory of operation"); each function
here takes the room, one command (and ``now``) and returns ``(room, effects)``.
"""

from __future__ import annotations

from syncplayd.core.room._copy import evolve
from syncplayd.core.room._events import (
    CloseReason,
    CloseSession,
    Connect,
    Disconnect,
    Effect,
    Leave,
    LogEvent,
    RemoveUser,
    SetControl,
    SetMuted,
    SetRole,
    SetRoomRules,
)
from syncplayd.core.room._state import (
    Refused,
    RoomState,
    Session,
    is_control_mode,
    is_role,
    is_slow_policy,
)
from syncplayd.core.room._transitions import (
    PresenceEvent,
    Result,
    maybe_wait,
    presence,
    put,
    settle,
    skip_overdue,
)


def connect(state: RoomState, command: Connect, now: float) -> Result:
    """A new session joins, or a known one comes back."""
    if not is_role(command.role):
        raise Refused("bad-message", f"unknown role {command.role!r}")
    existing = state.sessions.get(command.session_id)
    if existing is not None and existing.user_id != command.user_id:
        raise Refused("bad-resume", "that session belongs to someone else")
    # A (re)joiner must load and seek first; it stalls nobody until it is ready.
    late = state.playback.state != "paused"
    siblings = state.table.of_user(command.user_id)
    event: PresenceEvent | None
    if existing is not None:
        # A still-connected session got a new socket: nothing changed for the others.
        event = None if existing.connected else "reconnected"
        session = evolve(
            existing,
            user_name=command.user_name,
            role=command.role,
            muted=command.muted,
            connected=True,
            catching_up=existing.catching_up or late,
            last_seen=now,
        )
        kept = state.table
    else:
        event = "reconnected" if command.resume or siblings else "joined"
        session = Session(
            session_id=command.session_id,
            user_id=command.user_id,
            user_name=command.user_name,
            role=command.role,
            muted=command.muted,
            catching_up=late,
            # Readiness is the user's; a player joining an ended room has nothing left to play.
            ready=any(s.ready for s in siblings),
            ended=state.playback.ended,
            last_seen=now,
            desktop=command.desktop,
        )
        # A fresh connection supersedes the user's dead ones (a later resume of
        # one of them simply comes back as a new session).
        dead = [s.session_id for s in siblings if not s.connected]
        kept = state.table.without(*dead)
    # Name, role and mute belong to the user, so all of their sessions follow the newest connect.
    follow = [
        evolve(sibling, user_name=command.user_name, role=command.role, muted=command.muted)
        for sibling in siblings
        if sibling.session_id in kept
    ]
    state = evolve(state, sessions=kept.put(*follow, session))
    effects: list[Effect] = []
    if event is not None:
        effects.append(presence(state, event, session, exclude=session.session_id))
        effects.append(LogEvent(event, session.user_id, {"session_id": session.session_id}))
    # Re-marking a blocker as a late joiner may have removed the last blocker.
    state, resumed = settle(state, by=None, now=now)
    return state, effects + resumed


def _drop_connection(state: RoomState, session: Session) -> Result:
    """Mark ``session`` disconnected and tell the others (no resume check)."""
    state = put(state, evolve(session, connected=False))
    return state, [presence(state, "disconnected", session, exclude=session.session_id)]


def disconnect(state: RoomState, command: Disconnect, now: float) -> Result:
    """The socket is gone; the session stays for a resume. Idempotent."""
    session = state.sessions.get(command.session_id)
    if session is None or not session.connected:
        return state, []
    state, effects = _drop_connection(state, session)
    effects.append(LogEvent("disconnected", session.user_id, {"session_id": session.session_id}))
    state, resumed = settle(state, by=None, now=now)
    return state, effects + resumed


def leave(state: RoomState, command: Leave, now: float) -> Result:
    """The session leaves the room (its socket is closed). Idempotent."""
    return _remove(state, command.session_id, "left", "you left the room", now)


def remove_user(state: RoomState, command: RemoveUser, now: float) -> Result:
    """Every session of the user leaves, closed with the command's reason. Idempotent."""
    effects: list[Effect] = []
    for session in state.table.of_user(command.user_id):
        state, removed = _remove(state, session.session_id, command.reason, command.message, now)
        effects += removed
    return state, effects


def _remove(
    state: RoomState, session_id: str, reason: CloseReason, message: str, now: float
) -> Result:
    session = state.sessions.get(session_id)
    if session is None:
        return state, []
    state = evolve(state, sessions=state.table.without(session.session_id))
    effects: list[Effect] = [
        presence(state, "left", session, exclude=session.session_id),
        LogEvent("left", session.user_id, {"session_id": session.session_id}),
    ]
    if session.connected:
        effects.append(CloseSession(session.session_id, reason, message))
    state, resumed = settle(state, by=None, now=now)
    return state, effects + resumed


def tick(state: RoomState, now: float) -> Result:
    """Handle the deadlines due at ``now``: idle sessions, then ready timeouts.

    (The end of the item is reached before any command, ``Tick`` included; the wait
    for the members' ends is the engine's last step of a tick.)
    """
    effects: list[Effect] = []
    timeout = state.config.disconnect_timeout_seconds
    # Idle sessions first: one that is both idle and blocking is gone, not late. The
    # earliest ``last_seen`` says without a scan whether anyone is idle at all (a timer
    # that fires a little early, after heartbeats moved the deadline, finds nobody).
    oldest = state.table.oldest_seen()
    idle: list[Session] = []
    if oldest is not None and now >= oldest + timeout:
        idle = [s for s in state.sessions.values() if s.connected and now >= s.last_seen + timeout]
    for session in idle:
        message = f"nothing heard for {timeout:g} s"
        effects.append(CloseSession(session.session_id, "idle-timeout", message))
        state, dropped = _drop_connection(state, session)
        effects += dropped
        effects.append(
            LogEvent("idle_timeout", session.user_id, {"session_id": session.session_id})
        )
    # Ready deadlines only run while the room waits; a paused room waits for nobody.
    if state.playback.state == "waiting":
        state, skipped = skip_overdue(state, now)
        effects += skipped
    state, resumed = settle(state, by=None, now=now)
    return state, effects + resumed


def set_control(state: RoomState, command: SetControl, now: float) -> Result:
    """Change who may control playback."""
    if not is_control_mode(command.mode):
        raise Refused("bad-message", f"unknown control mode {command.mode!r}")
    if command.mode == state.control:
        return state, []
    state = evolve(state, control=command.mode)
    effects: list[Effect] = [LogEvent("control", None, {"control": command.mode})]
    # Who the room waits for depends on the control mode.
    state, waiting = maybe_wait(state, now)
    state, resumed = settle(state, by=None, now=now)
    return state, effects + waiting + resumed


def set_role(state: RoomState, command: SetRole, now: float) -> Result:
    """Change a user's role in all of their sessions; a no-op for a user with none."""
    if not is_role(command.role):
        raise Refused("bad-message", f"unknown role {command.role!r}")
    changed = [
        evolve(s, role=command.role)
        for s in state.table.of_user(command.user_id)
        if s.role != command.role
    ]
    if not changed:
        return state, []
    state = put(state, *changed)
    # Not logged here: the service logs the change with who made it.
    effects: list[Effect] = [presence(state, "role", changed[0], exclude=None, detail=command.role)]
    # Who the room waits for depends on the role in a ``moderators`` room.
    state, waiting = maybe_wait(state, now)
    state, resumed = settle(state, by=None, now=now)
    return state, effects + waiting + resumed


def set_room_rules(state: RoomState, command: SetRoomRules, now: float) -> Result:
    """Change the slow-member policy and the readiness rule (logged by the service).

    ``always`` forgives the members marked slow (the owner chose to wait for
    everyone); ``never`` stops every wait. Who the room waits for may change
    either way, so a wait may start or end, and an ended room may advance.
    """
    policy = command.wait_for_slow_members
    if not is_slow_policy(policy):
        raise Refused("bad-message", f"unknown wait_for_slow_members {policy!r}")
    if (policy, command.start_when_ready) == (state.wait_for_slow_members, state.start_when_ready):
        return state, []
    state = evolve(state, wait_for_slow_members=policy, start_when_ready=command.start_when_ready)
    if policy == "always":
        forgiven = [evolve(s, slow=False, waits=()) for s in state.sessions.values() if s.slow]
        state = put(state, *forgiven)
    state, waiting = maybe_wait(state, now)
    state, resumed = settle(state, by=None, now=now)
    return state, waiting + resumed


def set_muted(state: RoomState, command: SetMuted) -> Result:
    """Mute or unmute a user in all of their sessions; a no-op for a user with none.

    Chat is refused by the service, not here; the room only tells everyone (the
    user too, so that their client can say why chat is closed).
    """
    changed = [
        evolve(s, muted=command.muted)
        for s in state.table.of_user(command.user_id)
        if s.muted != command.muted
    ]
    if not changed:
        return state, []
    state = put(state, *changed)
    event: PresenceEvent = "muted" if command.muted else "unmuted"
    return state, [presence(state, event, changed[0], exclude=None)]
