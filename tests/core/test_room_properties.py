"""Properties of the room engine over random scripts (hypothesis).

A script is a list of actions by four sessions (Ann on two devices, Bob, Cat the
moderator) at random intervals; :class:`RoomHarness` applies it, ticks at every
``WakeAt`` and checks the invariants after every step. Each property below is
then checked on every step of every script.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syncplayd.core import protocol
from syncplayd.core.clock import position_at
from syncplayd.core.room import (
    ROLES,
    Broadcast,
    Buffering,
    Command,
    Connect,
    Disconnect,
    Effect,
    Heartbeat,
    Leave,
    Pause,
    PersistPlayback,
    Play,
    Playback,
    Ready,
    Refused,
    RemoveUser,
    Role,
    RoomState,
    RttSample,
    Seek,
    SendTo,
    SetControl,
    SetMuted,
    SetRate,
    SetRole,
    SyncConfig,
    Tick,
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
    "ready", "heartbeat", "rtt", "tick", "control", "role", "mute",
]  # fmt: skip
RATES = [0.5, 1.0, 1.25, 2.0]
CONFIG = SyncConfig(ready_timeout_seconds=8.0, disconnect_timeout_seconds=60.0)

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
        case _:
            return SetRole(user, ROLES[n % len(ROLES)])


def explicit_position(command: Command) -> bool:
    """Whether the command moves the position on purpose (so continuity does not apply)."""
    return isinstance(command, Seek) or (
        isinstance(command, Play | Pause) and command.position is not None
    )


def play_script(script: list[Action]) -> tuple[RoomHarness, list[tuple[RoomState, Step]]]:
    """Run ``script``; return the harness and every step with the state before it."""
    harness = RoomHarness(config=CONFIG)
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

        # The position is continuous unless someone moved it on purpose.
        if not explicit_position(command):
            assert position_at(new_pb, t) == position_at(old_pb, t)

        # Scheduled starts are a bounded lead ahead; pauses and waits are immediate.
        for change in changes:
            if change.reason in ("play", "seek", "resume") and change.playback.state == "playing":
                lead = change.execute_at - t
                assert CONFIG.min_lead - 1e-9 <= lead <= CONFIG.max_lead + 1e-9
            elif change.reason != "rate":
                assert change.execute_at == t

        # Heartbeats never move the room, and stale ones are never answered.
        if isinstance(command, Heartbeat):
            assert new_pb == old_pb
            if command.version < old_pb.version:
                assert of_type(step.effects, SendTo) == []

        # A late joiner's buffering never stalls the room.
        if isinstance(command, Buffering):
            actor = before.sessions[command.session_id]
            if actor.catching_up or actor.skipped:
                assert new_pb == old_pb

        # Role, name and mute belong to the user: all of a user's sessions agree on them.
        standing: dict[str, set[tuple[str, str, bool]]] = {}
        for s in new.sessions.values():
            standing.setdefault(s.user_id, set()).add((s.role, s.user_name, s.muted))
        assert all(len(found) == 1 for found in standing.values())

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
