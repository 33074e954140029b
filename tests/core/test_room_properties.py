"""Properties of the room engine over random scripts (hypothesis).

A script is a list of actions by four sessions (Ann on two devices, Bob, Cat the
moderator) at random intervals; :class:`RoomHarness` applies it, ticks at every
``WakeAt`` and checks the invariants after every step. Each property below is
then checked on every step of every script. The room plays queue item ``i1`` of
60 s at first; scripts load other items (of 5 s to 80 s, or of no known length),
report durations and ends (for the current item or a stale one), say they are
ready, and change the waiting rules.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syncplayd.core import protocol
from syncplayd.core.clock import position_at
from syncplayd.core.room import (
    ROLES,
    Advance,
    Broadcast,
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
    PersistPlayback,
    Play,
    Playback,
    Readiness,
    Ready,
    Refused,
    RemoveUser,
    Role,
    RoomState,
    RttSample,
    Seek,
    SendTo,
    SetControl,
    SetDuration,
    SetMuted,
    SetRate,
    SetRole,
    SetRoomRules,
    SlowPolicy,
    SyncConfig,
    Tick,
    new_room,
    next_deadline,
)
from syncplayd.testing import RoomHarness, Step, of_type

USERS: dict[str, tuple[str, str, Role]] = {
    "a": ("u1", "Ann", "owner"),
    "b": ("u2", "Bob", "member"),
    "c": ("u3", "Cat", "moderator"),
}
USERS["d"] = USERS["a"]  # Ann's second device
KINDS = [
    "connect", "disconnect", "leave", "remove", "play", "pause", "seek", "rate", "buffering",
    "ready", "heartbeat", "rtt", "tick", "control", "role", "mute", "media", "ended", "load",
    "duration", "readiness", "rules",
]  # fmt: skip
RATES = [0.5, 1.0, 1.25, 2.0]
ITEMS = ["i1", "i2", "i3"]
DURATIONS = [None, 5.0, 30.0, 80.0]
POLICIES: list[SlowPolicy] = ["always", "policy", "never"]
CONFIG = SyncConfig(
    ready_timeout_seconds=8.0,
    disconnect_timeout_seconds=60.0,
    slow_member_waits=2,
    slow_member_window_seconds=30.0,
)

Action = tuple[float, str, str, float, bool, int]
actions = st.tuples(
    # Mostly quick succession, sometimes long enough for a ready or idle timeout.
    st.sampled_from([0.0, 0.01, 0.3, 1.0, 1.0, 4.0, 4.0, 9.0, 25.0]),
    st.sampled_from([*KINDS, "play", "pause", "seek", "buffering", "buffering", "ready", "ready"]),
    st.sampled_from(sorted(USERS)),
    st.floats(min_value=0.0, max_value=100.0),
    st.booleans(),
    st.integers(min_value=0, max_value=11),
)
scripts = st.lists(actions, max_size=40)
# What the queue, slow members and readiness are about, often enough to meet: stalls
# in quick succession, everyone ready, items running to their ends.
WATCH_KINDS = [
    "play", "play", "pause", "buffering", "buffering", "buffering", "ready", "ready",
    "readiness", "readiness", "readiness", "rules", "ended", "media", "load", "heartbeat",
    "tick", "seek", "disconnect", "connect",
]  # fmt: skip
watch_actions = st.tuples(
    st.sampled_from([0.0, 0.3, 1.0, 1.0, 2.0, 4.0, 9.0]),
    st.sampled_from(WATCH_KINDS),
    st.sampled_from(["a", "b", "b", "b", "c", "d"]),  # Bob stalls most
    st.floats(min_value=0.0, max_value=100.0),
    st.booleans(),
    st.integers(min_value=0, max_value=11),
)
watch_scripts = st.lists(watch_actions, max_size=40)


def build(action: Action, state: RoomState, t: float) -> Command:
    """The command an action stands for, given the room it is applied to."""
    _, kind, sid, x, flag, n = action
    user, name, role = USERS[sid]
    playback = state.playback
    match kind:
        case "connect":
            # The shell reads the mute from storage: it may have changed while away.
            return Connect(sid, user, name, role, resume=flag, muted=n % 3 == 0)
        case "disconnect":
            return Disconnect(sid)
        case "leave":
            return Leave(sid)
        case "remove":
            return RemoveUser(user, "kicked" if flag else "left", "removed")
        case "play":
            return Play(sid, x if flag else None)
        case "pause":
            return Pause(sid, x if flag else None)
        case "seek":
            return Seek(sid, x)
        case "rate":
            return SetRate(sid, RATES[n % len(RATES)])
        case "buffering":
            return Buffering(sid)
        case "ready":
            return Ready(sid)
        case "heartbeat":
            # Near the truth or far off; sampled a little earlier; sometimes stale.
            sampled = t - 0.05 * (n % 3)
            drift = (x - 50.0) / 10.0 if flag else (x - 50.0) / 500.0
            position = max(0.0, position_at(playback, sampled) + drift)
            return Heartbeat(sid, position, sampled, max(0, playback.version - n % 2))
        case "rtt":
            return RttSample(sid, x / 50.0)
        case "tick":
            return Tick()
        case "control":
            return SetControl("moderators" if flag else "everyone")
        case "mute":
            return SetMuted(user, flag)
        case "media":
            item = state.item_id if flag and state.item_id else ITEMS[n % len(ITEMS)]
            return Media(sid, item, DURATIONS[n % len(DURATIONS)])
        case "ended":
            return Ended(sid, state.item_id if flag and state.item_id else ITEMS[n % len(ITEMS)])
        case "load":
            # As the queue does it: after an end (the shell's advance) or at anyone's "next".
            return LoadItem(None if n == 11 else ITEMS[n % len(ITEMS)], DURATIONS[n % 4])
        case "duration":
            return SetDuration(state.item_id if flag else "i9", DURATIONS[n % len(DURATIONS)])
        case "readiness":
            return Readiness(sid, flag)
        case "rules":
            return SetRoomRules(POLICIES[n % len(POLICIES)], flag)
        case _:
            return SetRole(user, ROLES[n % len(ROLES)])


def explicit_position(command: Command) -> bool:
    """Whether the command moves the position on purpose (so continuity does not apply)."""
    return isinstance(command, Seek | LoadItem) or (
        isinstance(command, Play | Pause) and command.position is not None
    )


def play_script(script: list[Action]) -> tuple[RoomHarness, list[tuple[RoomState, Step]]]:
    """Run ``script``; return the harness and every step with the state before it."""
    harness = RoomHarness(new_room("room", config=CONFIG, item_id="i1", duration=60.0))
    for sid in "abc":  # start with three members; scripts may add Ann's second device
        user, name, role = USERS[sid]
        harness.connect(0.0, sid, user_id=user, name=name, role=role)
    initial, skip = harness.state, len(harness.steps)
    for action in script:
        t = harness.now + action[0]
        harness.advance(t)
        # Every deadline due by now has been handled.
        deadline = next_deadline(harness.state)
        assert deadline is None or deadline > t
        command = build(action, harness.state, t)
        before = harness.state
        try:
            harness.apply(t, command)
        except Refused:
            assert harness.state is before
        # The shell's timer is never later than the room's earliest deadline.
        deadline = next_deadline(harness.state)
        if deadline is not None:
            assert harness.wake is not None and harness.wake <= deadline
    steps = harness.steps[skip:]
    befores = [initial, *(step.state for step in steps)]
    return harness, list(zip(befores, steps, strict=False))


def playback_changes(effects: Iterable[Effect]) -> list[protocol.PlaybackChanged]:
    """The playback broadcasts among ``effects``."""
    return of_type((b.message for b in of_type(effects, Broadcast)), protocol.PlaybackChanged)


@settings(max_examples=300, deadline=None)
@given(scripts)
def test_random_scripts_keep_every_rule(script: list[Action]) -> None:
    check_every_rule(script)


@settings(max_examples=300, deadline=None)
@given(watch_scripts)
def test_random_watch_sessions_keep_every_rule(script: list[Action]) -> None:
    check_every_rule(script)


def check_every_rule(script: list[Action]) -> None:
    """Play ``script`` and check every property on every step."""
    _, steps = play_script(script)
    for before, step in steps:
        t, command, new = step.time, step.command, step.state
        old_pb, new_pb = before.playback, new.playback
        changes = playback_changes(step.effects)
        persisted = of_type(step.effects, PersistPlayback)

        # Every authoritative change bumps the version by one, and is announced and stored.
        assert new_pb.version - old_pb.version in (0, 1)
        if new_pb != old_pb:
            assert new_pb.version == old_pb.version + 1
            assert [c.playback.version for c in changes] == [new_pb.version]
            assert [p.playback for p in persisted] == [new_pb]
        else:
            assert changes == [] and persisted == []

        # The position is continuous unless someone moved it on purpose, or an ended
        # room started over; it stops at the end (a duration may just have become known).
        if not explicit_position(command) and not (old_pb.ended and not new_pb.ended):
            expected = position_at(old_pb, t)
            if new.duration is not None:
                expected = min(expected, new.duration)
            assert position_at(new_pb, t) == pytest.approx(expected, abs=1e-9)

        # The position never exceeds the duration: now, until the next wake-up, on the wire.
        if new.duration is not None:
            assert position_at(new_pb, t) <= new.duration + 1e-9
            assert new_pb.state != "playing" or new_pb.position < new.duration
        for change in changes:
            wire = change.playback
            assert wire.item_id == new.item_id and wire.duration == new.duration
            assert wire.duration is None or wire.position <= wire.duration

        # The end is a pause at the duration, and the room waits for the ends only then.
        if new_pb.ended:
            assert new_pb.state == "paused" and new_pb.position == new.duration
        assert new.end_wait_until is None or new_pb.ended

        # Asked to advance once per end, for the item that ended.
        advances = of_type(step.effects, Advance)
        if advances:
            assert advances == [Advance(str(new.item_id))]
            assert new_pb.ended and new.end_wait_until is None
            assert before.end_wait_until is not None or not old_pb.ended

        # A report about another item changes nothing.
        if isinstance(command, Media | Ended) and command.item_id != before.item_id:
            assert new is before and not step.effects

        # Scheduled starts are a bounded lead ahead; pauses and waits are immediate.
        for change in changes:
            scheduled = ("play", "seek", "resume", "item", "all_ready")
            if change.reason in scheduled and change.playback.state == "playing":
                lead = change.execute_at - t
                assert CONFIG.min_lead - 1e-9 <= lead <= CONFIG.max_lead + 1e-9
            elif change.reason != "rate":
                assert change.execute_at == t

        # Heartbeats never move the room, and stale ones are never answered.
        if isinstance(command, Heartbeat):
            assert new_pb == old_pb
            if command.version < old_pb.version:
                assert of_type(step.effects, SendTo) == []

        # A late joiner's, a skipped or slow member's buffering never stalls the room,
        # nor anyone's in a room that waits for nobody.
        if isinstance(command, Buffering):
            actor = before.sessions[command.session_id]
            if actor.catching_up or actor.skipped or actor.slow:
                assert new_pb == old_pb
            if before.wait_for_slow_members == "never":
                assert new_pb == old_pb

        # Nobody is ever slow where the room always waits; the slow are told to everyone.
        if new.wait_for_slow_members == "always":
            assert not any(s.slow for s in new.sessions.values())
        for slow in [b.message for b in of_type(step.effects, Broadcast)]:
            if isinstance(slow, protocol.Presence) and slow.event == "slow":
                assert slow.detail == slow.member.user_name and slow.member.behind

        # Role, name, mute and readiness belong to the user: all of their sessions agree.
        standing: dict[str, set[tuple[str, str, bool, bool]]] = {}
        for s in new.sessions.values():
            standing.setdefault(s.user_id, set()).add((s.role, s.user_name, s.muted, s.ready))
        assert all(len(found) == 1 for found in standing.values())

        # Where everyone must be ready, a plain member starts nothing before they are,
        # and the room starts by itself only once they are.
        if isinstance(command, Play) and before.start_when_ready and old_pb.state == "paused":
            actor = before.sessions.get(command.session_id)
            unready = any(s.connected and not s.ready for s in before.sessions.values())
            if actor is not None and actor.role == "member" and unready:
                assert new is before
        if any(c.reason == "all_ready" for c in changes):
            assert new.start_when_ready
            assert all(s.ready for s in new.sessions.values() if s.connected)

        # Every pause leaves nobody ready.
        if any(c.reason in ("pause", "ended") for c in changes):
            assert not any(s.ready for s in new.sessions.values())

        # A mute changes nobody's playback, and is told to everyone (the user too) once.
        if isinstance(command, SetMuted):
            assert new_pb == old_pb and of_type(step.effects, PersistPlayback) == []
            told = [
                b
                for b in of_type(step.effects, Broadcast)
                if isinstance(b.message, protocol.Presence)
            ]
            was = {s.muted for s in before.sessions.values() if s.user_id == command.user_id}
            if was and was != {command.muted}:
                [broadcast] = told
                assert isinstance(broadcast.message, protocol.Presence)
                assert broadcast.exclude is None
                assert broadcast.message.event == ("muted" if command.muted else "unmuted")
                assert broadcast.message.member.muted is command.muted
            else:
                assert not step.effects and new is before

        # Whoever is no longer waited for is named.
        broadcast = [b.message for b in of_type(step.effects, Broadcast)]
        for presence in of_type(broadcast, protocol.Presence):
            if presence.event == "not_ready_timeout":
                assert presence.detail == presence.member.user_name


@settings(max_examples=200, deadline=None)
@given(scripts, st.floats(min_value=0.0, max_value=protocol.MAX_POSITION), st.sampled_from("abc"))
def test_seek_then_read_gives_the_target(script: list[Action], target: float, who: str) -> None:
    harness, _ = play_script(script)
    t = harness.now + 1.0
    harness.advance(t)
    harness.apply(t, SetControl("everyone"))
    if who not in harness.state.sessions or not harness.state.sessions[who].connected:
        harness.connect(t, who, user_id=USERS[who][0], name=USERS[who][1], role="owner")
    before = harness.state.playback
    changes = playback_changes(harness.apply(t, Seek(who, target)))
    after = harness.state.playback
    duration = harness.state.duration
    if duration is not None and target >= duration:  # a seek to or past the end ends there
        assert (after.state, after.position, after.ended) == ("paused", duration, True)
        assert after.version == before.version + (0 if before.ended else 1)
        return
    if not changes:  # already waiting right there
        assert after == before and (after.state, after.position) == ("waiting", target)
        return
    change = changes[-1]
    assert after.version == before.version + 1
    if after.state == "paused":
        assert harness.position(t) == target
        assert harness.position(t + 100.0) == target
    elif after.state == "playing":
        assert change.execute_at > t
        assert position_at(after, change.execute_at) == target
        assert harness.position(t) == target  # holding until everyone starts together
    else:
        assert after.position == target


@settings(max_examples=200, deadline=None)
@given(scripts, st.integers(min_value=1, max_value=5), st.floats(min_value=0.0, max_value=1e5))
def test_an_old_version_heartbeat_never_changes_anything_but_liveness(
    script: list[Action], behind: int, position: float
) -> None:
    harness, _ = play_script(script)
    state = harness.state
    live = [s for s in state.sessions.values() if s.connected]
    if not live or state.playback.version < behind:
        return
    t = harness.now
    stale = Heartbeat(live[0].session_id, position, t, state.playback.version - behind)
    effects = harness.apply(t, stale)
    assert effects == []
    assert harness.state.playback == state.playback
    assert harness.state.sessions[live[0].session_id].last_offset == live[0].last_offset


@given(st.lists(st.floats(min_value=0.0, max_value=5.0), min_size=1, max_size=6))
def test_the_lead_grows_with_the_worst_rtt(rtts: list[float]) -> None:
    leads = []
    for worst in (0.0, 0.2, 0.6, 1.0, 3.0):
        harness = RoomHarness(config=CONFIG)
        for i, rtt in enumerate([*rtts, worst]):
            harness.connect(0.0, f"s{i}")
            harness.apply(0.0, RttSample(f"s{i}", rtt))
        [change] = playback_changes(harness.apply(1.0, Play("s0")))
        lead = change.execute_at - 1.0
        assert CONFIG.min_lead - 1e-9 <= lead <= CONFIG.max_lead + 1e-9
        assert lead >= min(CONFIG.max_lead, max(rtts) + CONFIG.lead_margin) - 1e-9
        leads.append(lead)
    assert leads == sorted(leads)


@pytest.mark.parametrize("command", [Play("b"), Pause("b", 3.0), Seek("b", 3.0), SetRate("b", 2.0)])
@given(scripts)
def test_moderators_only_control_refuses_members(command: Command, script: list[Action]) -> None:
    harness, _ = play_script(script)
    t = harness.now
    harness.apply(t, SetControl("moderators"))
    harness.connect(t, "b", user_id="u2", name="Bob", role="member")
    before = harness.state
    with pytest.raises(Refused) as refused:
        harness.apply(t, command)
    assert refused.value.code == "not-allowed"
    assert harness.state is before


def test_position_continuity_example() -> None:
    """A readable instance of the continuity property."""
    harness = RoomHarness(config=CONFIG)
    harness.connect(0.0, "a")
    harness.apply(1.0, Play("a"))
    script: list[tuple[float, Command]] = [
        (5.0, SetRate("a", 2.0)),
        (7.0, Pause("a")),
        (9.0, Play("a")),
    ]
    for t, command in script:
        before = harness.position(t)
        harness.apply(t, command)
        assert harness.position(t) == before
    assert harness.state.playback == Playback("playing", 7.85, 2.0, 9.15, 4, "a")
    assert math.isclose(harness.position(10.15), 9.85)


# A throttled connection: members stall (buffering, then ready) again and again, and
# the owner sometimes switches between waiting within the policy and always waiting.
stalls = st.lists(
    st.tuples(
        st.sampled_from([0.5, 1.0, 3.0, 5.0, 12.0]),  # playing this long first
        st.sampled_from(["a", "b", "b", "b", "c"]),
        st.sampled_from([0.2, 1.0, 3.0, 9.0]),  # stalled this long (9 > the ready timeout)
        st.sampled_from([None, None, None, None, None, "policy", "always"]),
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(stalls)
def test_no_member_stalls_a_policy_room_more_than_n_times_in_a_window(
    script: list[tuple[float, str, float, SlowPolicy | None]],
) -> None:
    """The slow-viewer rule as the issue states it: a member's buffering stops a playing
    room at most ``slow_member_waits`` times within ``slow_member_window_seconds``
    while the room's policy is ``policy`` (the room plays no item: nothing ends)."""
    # Nobody idles out here: the stalls are the point.
    config = dataclasses.replace(CONFIG, disconnect_timeout_seconds=1e6)
    harness = RoomHarness(new_room("room", config=config))
    for sid in "abc":
        user, name, role = USERS[sid]
        harness.connect(0.0, sid, user_id=user, name=name, role=role)
    harness.apply(0.0, Play("a"))
    stops: dict[str, list[float]] = {}
    for gap, who, length, policy in script:
        t = harness.now + gap
        if policy is not None:
            harness.run([(t, SetRoomRules(policy, False))])
            if policy == "always":
                stops.clear()  # the owner chose to wait for everyone: counting starts over
        before = harness.state.playback.state
        harness.run([(t, Buffering(who))])
        stopped = before == "playing" and harness.state.playback.state == "waiting"
        if stopped and harness.state.wait_for_slow_members == "policy":
            stops.setdefault(who, []).append(t)
        harness.run([(t + length, Ready(who))])
        if harness.state.playback.state == "paused":
            harness.run([(harness.now, Play("a"))])
    window, most = CONFIG.slow_member_window_seconds, CONFIG.slow_member_waits
    for times in stops.values():
        for i, t in enumerate(times):
            assert sum(1 for u in times[: i + 1] if u > t - window) <= most
