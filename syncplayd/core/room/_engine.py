"""The room state machine: every transition of a room lives in this module.

Theory of operation
===================

A room is a value (:class:`RoomState`); ``apply(state, command, now)`` returns
the next value and a list of effects, and does nothing else. ``now`` is the
server clock, passed in; nothing here reads a clock, touches a socket or
awaits. The shell (``syncplayd.server``) turns socket events and timers into
commands, applies them one at a time per room, and carries out the effects in
order. A command the room refuses raises :class:`Refused` and the caller keeps
the old state: nothing was changed because values are frozen.

Playback. The authoritative :class:`Playback` is ``playing``, ``paused`` or
``waiting``; ``position`` holds at server time ``anchor`` and, while playing,
advances at ``rate`` from there (``clock.position_at``). Every authoritative
change bumps ``version`` by exactly one and produces the same trio of effects:
``Broadcast(PlaybackChanged)``, ``PersistPlayback`` and ``LogEvent("playback")``.
Clients apply a change at its ``execute_at``; heartbeats carry the version the
client has applied, and a heartbeat with an older version is not compared
(the change is still on its way), which replaces Syncplay's "ignoring on the
fly" counters.

Scheduling. Starting playback (play, a seek while playing, a resume) anchors
the new playback ``lead_time`` in the future: the worst member round trip
plus a margin, clamped to ``[min_lead, max_lead]``, so the message reaches
everyone before the moment everyone starts. Until the anchor the position
holds. Pauses and rate changes take effect at ``now``: a pause cannot be
un-played, and a rate change anchored in the future would hold the position
for the lead time and then jump back; at ``now`` the position stays
continuous and a late receiver is off by only ``latency * delta_rate``.

Waiting. A session *blocks* when it is connected, buffering, and neither a
late joiner (``catching_up``, until its first ``ready``) nor ``skipped`` (once
the ready timeout ran out for it, for as long as the session lasts); the room
waits for a blocking session only if it may control playback (anyone in an
``everyone`` room; owners and moderators in a ``moderators`` room), so no
member holds the room longer than one ready timeout, and in a ``moderators``
room a member does not hold it at all.
The invariants, checked by the property tests:

* ``playing`` implies nobody blocks (a play with blockers goes to
  ``waiting``; a session that starts to block sends a playing room to
  ``waiting``);
* ``waiting`` if and only if ``resume_playing``;
* when the last blocker goes away (``ready``, disconnect, leave, ready timeout,
  or it becomes a late joiner by reconnecting) a waiting room resumes.

Timeouts. Deadlines are data: a connected session is idle at ``last_seen +
disconnect_timeout``; in a waiting room a blocker is skipped at
``buffering_since + ready_timeout`` (and named, so the room knows who it no
longer waits for). A deadline is due when ``now >= deadline``. ``apply`` ends
with ``WakeAt(t)`` whenever the earliest deadline changed, and always after a
:class:`Tick`; the shell keeps only the latest request and applies ``Tick``
then. Heartbeats and RTT samples only ever move a deadline later, so they
skip the O(sessions) deadline scan and never emit ``WakeAt``: the shell wakes
a little early, and that ``Tick`` finds nothing due and re-arms.

Sessions. One connection of one user; a user may have several (phone and
TV). ``Connect`` with a known session id resumes it (ids are checked against
the user); a fresh session of a user drops that user's disconnected ones,
which a fresh connection supersedes. ``Disconnect`` keeps the session for a
resume; ``Leave`` removes it. Both are idempotent because the shell may see a
socket close after a leave. Replacing a still-connected session's socket is
the shell's job (``Closing("replaced")``); the engine just marks it again.
A session that (re)connects while the room is not paused is ``catching_up``.

Rules by command (``_playback`` and ``_membership`` implement them; every
session command first needs a connected session, else ``Refused("not-joined")``;
"control" means ``Refused("not-allowed")`` for plain members of a
moderators-only room):

========== ===================================================================
Play       control. Playing: no-op. Else from ``position`` (default: where the
           room stands): waiting if anyone blocks, else scheduled (``play``).
Pause      control. Paused at the same position: no-op. Else paused at
           ``position`` (default: where the room stands), now (``pause``).
Seek       control. Paused: stays paused at the target, now. Else like Play
           from the target (``seek``).
SetRate    control. Same rate: no-op. Else re-anchored at now (a scheduled
           start keeps its time), new rate (``rate``).
Buffering  Marks the session (repeats are no-ops). A blocker sends a playing
           room to ``waiting`` at the live position.
Ready      Clears buffering and ``catching_up`` (not ``skipped``); may resume.
Heartbeat  ``last_seen``. Compared unless stale, waiting or buffering: beyond
           the threshold a ``sync`` goes to that session; in step, a late
           joiner counts as caught up.
RttSample  EMA of the RTT, ``last_seen``; one ``latency`` presence when half
           the RTT passes ``max_latency_ms``, re-armed below 80 % of it.
Connect    New or resumed session; presence ``joined``/``reconnected``.
Disconnect Keeps the session; presence ``disconnected``; may resume.
Leave      Removes the session, closes its socket; presence ``left``; may resume.
RemoveUser Leave for every session of a user, closed with the given reason
           (``left``, ``kicked``, ``banned``): how a REST leave, a kick or a ban
           reaches the room.
Tick       Idle sessions: closed and disconnected. Waiting: overdue blockers
           skipped and named. May resume.
SetControl Who may control playback (the shell checks who may ask).
SetRole    A user's role in all of their sessions; presence ``role`` (to everyone,
           the user included). Not logged here: the service logs who changed it.
SetMuted   A user's ``muted`` in all of their sessions; presence ``muted`` or
           ``unmuted`` (to everyone, the user included). Logged by the service too.
========== ===================================================================
"""

from __future__ import annotations

import math
from typing import assert_never

from syncplayd.core.room import _membership, _playback
from syncplayd.core.room._events import (
    Buffering,
    Command,
    Connect,
    Disconnect,
    Heartbeat,
    Leave,
    Pause,
    Play,
    Ready,
    RemoveUser,
    RttSample,
    Seek,
    SetControl,
    SetMuted,
    SetRate,
    SetRole,
    Tick,
    WakeAt,
)
from syncplayd.core.room._state import RoomState
from syncplayd.core.room._transitions import Result
from syncplayd.core.room._views import next_deadline


def apply(state: RoomState, command: Command, now: float) -> Result:
    """Apply one command to a room.

    Args:
        state: the room before.
        command: what happened.
        now: the server clock, seconds.

    Returns:
        The room after, and the effects for the shell to carry out in order.
        A command that changes nothing returns ``state`` itself and no effects.

    Raises:
        Refused: the command is not allowed or not valid; ``state`` is unchanged.
        ValueError: ``now`` is not finite (a bug in the caller, not the client).
    """
    if not math.isfinite(now):
        raise ValueError(f"now must be finite, not {now!r}")
    now = float(now)  # an int from a test would otherwise leak into anchors and frames
    match command:
        # The frequent ones skip the deadline bookkeeping (see the module docstring).
        case Heartbeat():
            return _playback.heartbeat(state, command, now)
        case RttSample():
            return _playback.rtt_sample(state, command, now)
        case Tick():
            new, effects = _membership.tick(state, now)
            deadline = next_deadline(new)
            if deadline is not None:
                effects.append(WakeAt(deadline))
            return new, effects
        case _:
            new, effects = _dispatch(state, command, now)
    if new is not state:
        deadline = next_deadline(new)
        if deadline is not None and deadline != next_deadline(state):
            effects.append(WakeAt(deadline))
    return new, effects


def _dispatch(state: RoomState, command: Command, now: float) -> Result:
    match command:
        case Connect():
            return _membership.connect(state, command, now)
        case Disconnect():
            return _membership.disconnect(state, command, now)
        case Leave():
            return _membership.leave(state, command, now)
        case RemoveUser():
            return _membership.remove_user(state, command, now)
        case Play():
            return _playback.play(state, command, now)
        case Pause():
            return _playback.pause(state, command, now)
        case Seek():
            return _playback.seek(state, command, now)
        case SetRate():
            return _playback.set_rate(state, command, now)
        case Buffering():
            return _playback.buffering(state, command, now)
        case Ready():
            return _playback.ready(state, command, now)
        case SetControl():
            return _membership.set_control(state, command, now)
        case SetRole():
            return _membership.set_role(state, command, now)
        case SetMuted():
            return _membership.set_muted(state, command)
        case Heartbeat() | RttSample() | Tick():  # pragma: no cover - apply() handles these
            raise AssertionError("handled by apply()")
        case _:  # pragma: no cover - exhaustiveness, checked by mypy
            assert_never(command)
