"""Reading a room: wire snapshots, member lists, deadlines; building and restoring rooms.

These never change a room; the shell uses them to build ``joined`` frames and
the admin API, and the engine uses them to fill its messages.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from syncplayd.core import protocol
from syncplayd.core.clock import position_at
from syncplayd.core.queue import SlowPolicy
from syncplayd.core.room._copy import evolve
from syncplayd.core.room._state import (
    ControlMode,
    Playback,
    RoomState,
    Session,
    SyncConfig,
)


def wire(state: RoomState, playback: Playback) -> protocol.PlaybackWire:
    """``playback`` of ``state``'s item as sent on the wire, unchanged."""
    return protocol.PlaybackWire(
        state=playback.state,
        position=playback.position,
        rate=playback.rate,
        anchor=playback.anchor,
        version=playback.version,
        set_by=playback.set_by,
        item_id=state.item_id,
        duration=state.duration,
        ended=playback.ended,
    )


def live_position(state: RoomState, now: float) -> float:
    """The room's position at ``now``: its playback's, never past the item's end.

    A playing room ends at its duration (``Tick`` at :func:`end_time`); until that
    tick is applied, a room read a moment late still stands at the end, not beyond.
    """
    position = position_at(state.playback, now)
    if state.duration is not None:
        return min(position, state.duration)
    return position


def end_time(state: RoomState) -> float | None:
    """When a playing room reaches the end of its item (server time); ``None`` if it does not.

    Counted from the anchor, so a scheduled start ends its lead later.
    """
    playback, duration = state.playback, state.duration
    if playback.state != "playing" or duration is None:
        return None
    return playback.anchor + max(0.0, duration - playback.position) / playback.rate


def snapshot(state: RoomState, now: float) -> protocol.PlaybackWire:
    """The room's playback for a client joining (or re-syncing) at ``now``.

    A playing playback whose anchor has passed is re-anchored at ``now`` (same
    meaning, and a naive client that ignores ``anchor`` still lands close); a
    scheduled start (anchor in the future) is sent as it is, since re-anchoring
    it would drop the wait.

    Args:
        state: the room.
        now: server time.

    Returns:
        A ``PlaybackWire``; ``version`` is the room's.
    """
    playback = state.playback
    if playback.state == "playing" and playback.anchor < now:
        return protocol.PlaybackWire(
            state="playing",
            position=live_position(state, now),
            rate=playback.rate,
            anchor=now,
            version=playback.version,
            set_by=playback.set_by,
            item_id=state.item_id,
            duration=state.duration,
            ended=False,
        )
    return wire(state, playback)


def _latency_ms(rtt: float) -> float:
    # One way is half the round trip; one decimal is finer than anyone can notice.
    return round(rtt * 1000 / 2, 1)


def behind(state: RoomState, session: Session) -> bool:
    """Whether ``session`` catches up alone: a late joiner, or buffering while the room
    does not wait for it (skipped, slow, a member of a ``moderators`` room, a room that
    waits for nobody)."""
    if not session.connected:
        return False
    return session.catching_up or (session.buffering and not state.waits_for(session))


def _member_of(state: RoomState, sessions: Iterable[Session]) -> protocol.Member:
    group = list(sessions)
    first = group[0]
    live = [s for s in group if s.connected]
    rtts = [s.rtt for s in live if s.rtt is not None]
    return protocol.Member(
        user_id=first.user_id,
        user_name=first.user_name,
        role=first.role,
        is_connected=bool(live),
        sessions=len(live),
        buffering=any(s.buffering for s in live),
        latency_ms=_latency_ms(max(rtts)) if rtts else None,
        muted=first.muted,
        ready=first.ready,
        ended=any(s.ended for s in live),
        behind=any(behind(state, s) for s in live),
        desktop=any(s.desktop for s in group),
    )


def members(state: RoomState) -> list[protocol.Member]:
    """One ``Member`` per user in the room, in order of arrival.

    A user's sessions are folded together: ``is_connected`` if any is,
    ``sessions`` counts the connected ones, ``buffering``, ``ended`` and
    ``behind`` if any connected one is, ``latency_ms`` is the worst connected
    one's (half its smoothed RTT); ``muted``, ``role`` and ``ready`` belong to
    the user.
    """
    by_user: dict[str, list[Session]] = {}
    for session in state.sessions.values():
        by_user.setdefault(session.user_id, []).append(session)
    return [_member_of(state, group) for group in by_user.values()]


def member(state: RoomState, session_id: str) -> protocol.Member:
    """The ``Member`` of the user who owns ``session_id`` (all of that user's sessions).

    Raises:
        KeyError: no such session.
    """
    # O(sessions of the user), through the table's index, not a scan of the room.
    return _member_of(state, state.table.of_user(state.sessions[session_id].user_id))


def member_with(state: RoomState, session: Session) -> protocol.Member:
    """The member view of ``session``'s user were ``session`` to replace its namesake in
    ``state``: what :func:`member` would show after putting it, without building that room."""
    key = session.session_id
    group = state.table.of_user(session.user_id)
    return _member_of(state, [session if s.session_id == key else s for s in group])


def member_after(state: RoomState, gone: Session) -> protocol.Member:
    """The member view of ``gone``'s user once ``gone`` is no longer in ``state``."""
    rest = state.table.of_user(gone.user_id)
    # With no session left the user is simply not connected any more.
    return _member_of(state, rest or [evolve(gone, connected=False)])


def _held(state: RoomState, hosts: int, members: int) -> int:
    # How many of the tallied sessions the room holds for (``RoomState.holds``): the tally
    # counts only sessions that count; the rules decide whether plain members are held for.
    if state.wait_for_slow_members == "never":
        return 0
    return hosts + members if state.control == "everyone" else hosts


def any_blocking(state: RoomState) -> bool:
    """Whether anyone blocks (:func:`blocking` is not empty), without a scan."""
    tally = state.table.tally
    return _held(state, tally.blocking_hosts, tally.blocking_members) > 0


def any_unfinished(state: RoomState) -> bool:
    """Whether anyone the room holds for has not reached the end of the item, without a scan."""
    tally = state.table.tally
    return _held(state, tally.unended_hosts, tally.unended_members) > 0


def blocking(state: RoomState) -> list[Session]:
    """The sessions the room waits for (:meth:`RoomState.waits_for`)."""
    if not any_blocking(state):
        return []
    return [s for s in state.sessions.values() if state.waits_for(s)]


def next_deadline(state: RoomState) -> float | None:
    """The earliest time a :class:`~syncplayd.core.room.Tick` would change something.

    Idle sessions (``last_seen + disconnect_timeout``), while waiting the ready
    timeout of each blocking session, while playing the end of the item
    (:func:`end_time`), and at the end the time the room stops waiting for the
    members' ``ended``. ``None``: nothing is pending.
    """
    # Each in O(1) from the table's queues, not a scan: it runs after every command.
    config, table = state.config, state.table
    times: list[float] = []
    seen = table.oldest_seen()
    if seen is not None:
        times.append(seen + config.disconnect_timeout_seconds)
    # The room waits for exactly the blockers it holds for (``RoomState.waits_for``).
    if state.playback.state == "waiting" and state.wait_for_slow_members != "never":
        stalled = table.first_stall(hosts_only=state.control != "everyone")
        if stalled is not None:
            times.append(stalled + config.ready_timeout_seconds)
    end = end_time(state)
    if end is not None:
        times.append(end)
    if state.end_wait_until is not None:
        times.append(state.end_wait_until)
    return min(times, default=None)


def sync_settings(state: RoomState, *, heartbeat_interval: float) -> protocol.SyncSettings:
    """The ``settings`` block of a ``joined`` frame for this room."""
    config = state.config
    return protocol.SyncSettings(
        heartbeat_interval=heartbeat_interval,
        threshold_seconds=config.threshold_seconds,
        max_latency_ms=config.max_latency_ms,
        ready_timeout_seconds=config.ready_timeout_seconds,
        disconnect_timeout_seconds=config.disconnect_timeout_seconds,
        max_rate_correction=config.max_rate_correction,
        control=state.control,
        wait_for_slow_members=state.wait_for_slow_members,
        start_when_ready=state.start_when_ready,
    )


def new_room(
    room_id: str,
    playback: Playback | None = None,
    config: SyncConfig | None = None,
    control: ControlMode = "everyone",
    *,
    item_id: str | None = None,
    duration: float | None = None,
    wait_for_slow_members: SlowPolicy = "policy",
    start_when_ready: bool = False,
) -> RoomState:
    """A room with nobody in it.

    Args:
        room_id: the room's id.
        playback: where playback stands (default: paused at 0, version 0); use
            :func:`restore_playback` for one loaded from storage.
        config: the tunables (default: :class:`SyncConfig` defaults).
        control: who may control playback.
        item_id: the queue item it plays.
        duration: that item's length, if known.
        wait_for_slow_members: the room's slow-member policy.
        start_when_ready: the room's readiness rule.

    Raises:
        ValueError: ``playback`` is ``waiting`` (an empty room has nobody to wait for),
            runs past ``duration`` or ends without one, or ``duration`` is not positive.
    """
    playback = Playback() if playback is None else playback
    if playback.state == "waiting":
        raise ValueError("an empty room cannot be waiting; restore it with restore_playback()")
    if duration is not None and not (math.isfinite(duration) and duration > 0):
        raise ValueError(f"a duration must be a positive number, not {duration!r}")
    if duration is None and playback.ended:
        raise ValueError("a playback ends at a duration")
    if duration is not None and (
        playback.position > duration
        or (playback.state == "playing" and playback.position >= duration)
        or (playback.ended and (playback.state, playback.position) != ("paused", duration))
    ):
        raise ValueError("the playback runs past the end; restore it with restore_playback()")
    return RoomState(
        room_id=room_id,
        playback=playback,
        control=control,
        config=SyncConfig() if config is None else config,
        item_id=item_id,
        duration=duration,
        wait_for_slow_members=wait_for_slow_members,
        start_when_ready=start_when_ready,
    )


def restore_playback(
    *,
    state: str,
    position: float,
    rate: float,
    version: int,
    elapsed_seconds: float,
    now: float,
    set_by: str | None = None,
    duration: float | None = None,
) -> Playback:
    """The playback of a room loaded from storage (after a restart or on another node).

    A room that was playing keeps playing as if the server had never stopped:
    its position moves on by ``elapsed_seconds * rate`` and is anchored at
    ``now``. A room that was waiting comes back paused: the members it waited
    for lost their connections too, and playing on could run past someone who
    was still loading. With a ``duration``, a room at or past it comes back
    ended (paused at the duration): it ran to the end while the server was
    away, or had ended already. The version goes up by one, so the restored
    state supersedes anything a client still holds.

    Args:
        state: the stored state, ``playing``, ``paused`` or ``waiting``
            (``storage.records.PlaybackState`` members work as they are).
        position: the stored position, seconds, at the stored anchor time.
        rate: the stored rate.
        version: the stored version.
        elapsed_seconds: wall-clock seconds from the stored anchor time
            (``updated_at``) to now; a negative value (a start that was still
            scheduled, or clock skew) counts as zero.
        now: the server time to anchor at.
        set_by: the name to show as the last changer.
        duration: the current item's length, if known.

    Raises:
        ValueError: ``state`` is not a playback state.
    """
    if state not in ("playing", "paused", "waiting"):
        raise ValueError(f"unknown playback state {state!r}")
    if state == "playing":
        moved = position + max(0.0, elapsed_seconds) * rate
        position = moved
    if duration is not None and position >= duration:
        return Playback(
            state="paused",
            position=duration,
            rate=rate,
            anchor=now,
            version=version + 1,
            set_by=set_by,
            ended=True,
        )
    if state == "playing":
        return Playback(
            state="playing",
            position=min(protocol.MAX_POSITION, position),
            rate=rate,
            anchor=now,
            version=version + 1,
            set_by=set_by,
        )
    return Playback(
        state="paused", position=position, rate=rate, anchor=now, version=version + 1, set_by=set_by
    )
