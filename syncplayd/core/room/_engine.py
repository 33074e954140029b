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

The item and its end. The room plays one queue item (``item_id``; the queue
itself is the service's) and, once known, its ``duration``. The position never
passes the duration: every reading is clamped (``live_position``), a playing
room wakes at its end (``end_time``, a deadline like the others) and, at that
``Tick`` or before any command that comes later, becomes ``paused`` at the
duration with ``ended`` set (reason ``ended``); a play, pause or seek to or past
the end ends it the same way, and a play without a position on an ended room
starts from 0. The end is a pause: everyone's readiness is reset. Then the room
waits for every session it *holds* for (below) to report the end (``Ended``, or
a heartbeat standing there), at most ``ready_timeout`` (``end_wait_until``),
naming those who did not finish (``not_ready_timeout``), and emits
``Advance(item_id)`` once; the shell asks the queue, which is idempotent by
item id, and answers with ``LoadItem``. ``LoadItem`` starts the item at 0
(reason ``item``): playing (or waiting for blockers) when the room was playing,
waiting or ended, else paused; every session's ``ended`` is cleared and its
first wait while loading is not counted as slow. A duration comes from storage
(``LoadItem``, ``SetDuration``: storage wins) or from a player (``Media``): the
first value from a session that may control playback, finite and within
``MAX_POSITION``, becomes the room's and is sent back to be stored
(``RecordDuration``); it is not broadcast as a playback change (clients hear it
in the ``queue`` message and in the next playback). A room whose duration is
unknown never ends by itself.

Scheduling. Starting playback (play, a seek while playing, a resume) anchors
the new playback ``lead_time`` in the future: the worst member round trip
plus a margin, clamped to ``[min_lead, max_lead]``, so the message reaches
everyone before the moment everyone starts. Until the anchor the position
holds. Pauses and rate changes take effect at ``now``: a pause cannot be
un-played, and a rate change anchored in the future would hold the position
for the lead time and then jump back; at ``now`` the position stays
continuous and a late receiver is off by only ``latency * delta_rate``.

Waiting. The room *holds* for a session (:meth:`RoomState.holds`) when it is
connected, neither a late joiner (``catching_up``, until its first ``ready``
or an in-step heartbeat), ``skipped`` (the ready timeout ran out for it) nor
``slow`` (below), may control playback (anyone in an ``everyone`` room; owners
and moderators in a ``moderators`` room), and the room's
``wait_for_slow_members`` is not ``never``. It *blocks* (the room waits for it)
when it is held for and buffering. So no member holds the room longer than one
ready timeout, and in a ``moderators`` room a plain member does not hold it at
all. Slow viewers: with ``wait_for_slow_members: policy``, each time a session's
buffering stops the playing room is counted (not while it loads a new item);
once ``slow_member_waits`` such waits lie within ``slow_member_window_seconds``,
its next buffering does not stop the room: the session is ``slow`` for as long
as it lasts, and everyone, the member included, gets presence ``slow``. With
``always`` nobody is ever slow (only the ready timeout bounds a wait); with
``never`` the room waits for nobody. A session the room does not hold for that
becomes ready while the room plays gets a ``sync`` at once: it catches up
alone (``Member.behind`` shows it meanwhile).
The invariants, checked by the property tests:

* ``playing`` implies nobody blocks (a play with blockers goes to
  ``waiting``; a session that starts to block sends a playing room to
  ``waiting``);
* ``waiting`` if and only if ``resume_playing``;
* when the last blocker goes away (``ready``, disconnect, leave, ready timeout,
  or it becomes a late joiner by reconnecting) a waiting room resumes;
* the position never exceeds the duration; ``ended`` means paused at the
  duration; ``end_wait_until`` is set only while ended.

Readiness. ``ready`` is the user's manual "I'm ready" (all of their sessions
agree); every pause, the end included, clears everyone's. In a
``start_when_ready`` room a plain member's ``Play`` on a paused room is refused
(``not-ready``) while a connected member is not ready (owners and moderators
start anyway), and the last connected member to become ready starts a paused
room by itself (reason ``all_ready``).

Timeouts. Deadlines are data: a connected session is idle at ``last_seen +
disconnect_timeout``; in a waiting room a blocker is skipped at
``buffering_since + ready_timeout`` (and named, so the room knows who it no
longer waits for); a playing room ends at ``end_time``; an ended room stops
waiting for the members' ends at ``end_wait_until``. A deadline is due when
``now >= deadline``. ``apply`` ends with ``WakeAt(t)`` whenever the earliest
deadline changed, and always after a :class:`Tick`; the shell keeps only the
latest request and applies ``Tick`` then. Heartbeats and RTT samples only ever
move a deadline later, so they skip the deadline bookkeeping and never emit
``WakeAt`` (unless the end was reached on their way in): the shell wakes a
little early, and that ``Tick`` finds nothing due and re-arms.

Cost. A room may hold thousands of sessions, each heartbeating every few
seconds, so what one session does must not cost in proportion to the room.
The sessions are a persistent map (``_sessions.SessionTable``): replacing one
copies O(log N) nodes and the old room stays valid; it also keeps each user's
sessions, counts of the sessions that block, have not ended or are not ready,
and the earliest ``last_seen`` and ``buffering_since``. So a heartbeat or an
RTT sample, a member's view, "does anyone block?" and the next deadline are
O(1) or O(log N) in the room's size; a join or a leave adds a copy of the
arrival order (N pointers). What is about everyone stays O(N): the member
list, a play's lead (the worst round trip), a pause's readiness reset, a new
item, and ``Tick``'s look for idle sessions.

Sessions. One connection of one user; a user may have several (phone and
TV). ``Connect`` with a known session id resumes it (ids are checked against
the user); a fresh session of a user drops that user's disconnected ones,
which a fresh connection supersedes. ``Disconnect`` keeps the session for a
resume; ``Leave`` removes it. Both are idempotent because the shell may see a
socket close after a leave. Replacing a still-connected session's socket is
the shell's job (``Closing("replaced")``); the engine just marks it again.
A session that (re)connects while the room is not paused is ``catching_up``;
one that joins an ended room has ended too.

Rules by command (``_playback``, ``_membership`` and ``_items`` implement them;
every session command first needs a connected session, else
``Refused("not-joined")``; "control" means ``Refused("not-allowed")`` for plain
members of a moderators-only room):

============ ==================================================================
Play         control. Playing: no-op. Paused in a ``start_when_ready`` room: a
             plain member needs everyone ready (``not-ready``). Else from
             ``position`` (default: where the room stands, 0 if ended): waiting
             if anyone blocks, else scheduled (``play``); at the end: ended.
Pause        control. Paused at the same position: no-op. At or past the end:
             ended. Else paused at ``position`` (default: where the room
             stands), now (``pause``); readiness reset.
Seek         control. Paused: stays paused at the target, now; at or past the
             end: ended. Else like Play from the target (``seek``).
SetRate      control. Same rate: no-op. Else re-anchored at now (a scheduled
             start keeps its time), new rate (``rate``).
Buffering    Marks the session (repeats are no-ops); the slow tally (above). A
             blocker sends a playing room to ``waiting`` at the live position.
Ready        Clears buffering, ``catching_up`` and ``loading`` (not ``skipped``
             nor ``slow``); one not held for gets a ``sync`` while playing; may
             resume.
Heartbeat    ``last_seen``. Compared unless stale, waiting or buffering: beyond
             the threshold a ``sync`` goes to that session; in step, a late
             joiner counts as caught up, and in an ended room it has ended.
             With an ``rtt``: first what ``RttSample`` does, in the same pass
             (its refusal and effects first; a refusal of either changes nothing).
RttSample    EMA of the RTT, ``last_seen``; one ``latency`` presence when half
             the RTT passes ``max_latency_ms``, re-armed below 80 % of it.
Connect      New or resumed session; presence ``joined``/``reconnected``.
Disconnect   Keeps the session; presence ``disconnected``; may resume or advance.
Leave        Removes the session, closes its socket; presence ``left``; may
             resume or advance.
RemoveUser   Leave for every session of a user, closed with the given reason
             (``left``, ``kicked``, ``banned``): how a REST leave, a kick or a ban
             reaches the room.
Tick         Idle sessions: closed and disconnected. Waiting: overdue blockers
             skipped and named. Ended: the end wait's timeout. May resume.
SetControl   Who may control playback (the shell checks who may ask).
SetRole      A user's role in all of their sessions; presence ``role`` (to
             everyone, the user included). Not logged here: the service logs who
             changed it.
SetMuted     A user's ``muted`` in all of their sessions; presence ``muted`` or
             ``unmuted`` (to everyone, the user included). Logged by the service too.
SetRoomRules ``wait_for_slow_members`` and ``start_when_ready`` (decided and
             logged by the service); ``always`` forgives the slow.
Media        The first trustworthy duration of the current item (see above);
             ``RecordDuration``; ends a room already past it. Else ignored.
Ended        The session reached the end of the current item (another item's:
             ignored); presence ``ended``; may advance.
Readiness    The user's ``ready``; presence ``readiness`` (to everyone); may
             start the room (``all_ready``).
LoadItem     The queue's current item changed: playback at 0 (``item``).
SetDuration  The stored duration of the current item (another item's: ignored).
============ ==================================================================
"""

from __future__ import annotations

import math
from typing import assert_never

from syncplayd.core.room import _items, _membership, _playback
from syncplayd.core.room._copy import evolve
from syncplayd.core.room._events import (
    Buffering,
    Command,
    Connect,
    Disconnect,
    Effect,
    Ended,
    Heartbeat,
    Leave,
    LoadItem,
    Media,
    Pause,
    Play,
    Readiness,
    Ready,
    RemoveUser,
    RttSample,
    Seek,
    SetControl,
    SetDuration,
    SetMuted,
    SetRate,
    SetRole,
    SetRoomRules,
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
    # Whatever comes, a playing room past its end has ended first: a late timer
    # never lets a command see (or a client be sent) a position beyond the end.
    before = state
    state, effects = _items.reach_end(state, now)
    match command:
        # The frequent ones skip the deadline bookkeeping (see the module docstring)
        # unless the end was just reached.
        case Heartbeat():
            if state is before:
                return _playback.heartbeat(state, command, now)
            if command.rtt is not None:
                return _past_end(before, state, effects, command, command.rtt, now)
            new, more = _playback.heartbeat(state, command, now)
        case RttSample():
            new, more = _playback.rtt_sample(state, command, now)
            if state is before:
                return new, more
        case Tick():
            new, more = _membership.tick(state, now)
            new, over = _items.end_wait_over(new, now)
            effects += more + over
            deadline = next_deadline(new)
            if deadline is not None:
                effects.append(WakeAt(deadline))
            return new, effects
        case _:
            new, more = _dispatch(state, command, now)
    effects += more
    _wake(before, new, effects)
    return new, effects


def _wake(before: RoomState, new: RoomState, effects: list[Effect]) -> None:
    """Ask for a ``Tick`` at ``new``'s earliest deadline, if it is not ``before``'s."""
    if new is not before:
        deadline = next_deadline(new)
        if deadline is not None and deadline != next_deadline(before):
            effects.append(WakeAt(deadline))


def _past_end(
    before: RoomState,
    state: RoomState,
    effects: list[Effect],
    command: Heartbeat,
    rtt: float,
    now: float,
) -> Result:
    """A heartbeat with ``rtt`` to a room that reached its end on the way in (``state``).

    Rare, so done as the two commands it folds (an ``RttSample``, then the heartbeat)
    would do it, with the sample's ``WakeAt`` between the two; but a refusal of the
    heartbeat refuses the sample too, as it does in the usual single pass.
    """
    sampled, more = _playback.rtt_sample(state, RttSample(command.session_id, rtt), now)
    effects += more
    _wake(before, sampled, effects)
    new, more = _playback.heartbeat(sampled, evolve(command, rtt=None), now)
    return new, effects + more


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
        case SetRoomRules():
            return _membership.set_room_rules(state, command, now)
        case Media():
            return _items.media(state, command, now)
        case Ended(session_id=session_id, item_id=item_id):
            return _playback.ended(state, session_id, item_id)
        case Readiness():
            return _items.readiness(state, command, now)
        case LoadItem():
            return _items.load_item(state, command, now)
        case SetDuration():
            return _items.set_duration(state, command, now)
        case Heartbeat() | RttSample() | Tick():  # pragma: no cover - apply() handles these
            raise AssertionError("handled by apply()")
        case _:  # pragma: no cover - exhaustiveness, checked by mypy
            assert_never(command)
