"""A heartbeat with an rtt is an ``RttSample`` then a ``Heartbeat``, in one command.

The shell applies one command per client heartbeat (one copy of the session and of
the room instead of two of each). Whatever the room, the session and the values,
it must give what the two commands give one after the other: the same room (and the
same indexes of its sessions) and the same effects in the same order; and where
either of the two is refused, the same refusal, with nothing changed.
"""

from __future__ import annotations

import math
from dataclasses import replace
from types import MappingProxyType
from typing import Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syncplayd.core import protocol
from syncplayd.core.clock import position_at
from syncplayd.core.room import (
    Broadcast,
    Effect,
    Heartbeat,
    Playback,
    PlayState,
    Refused,
    Role,
    RoomState,
    RttSample,
    Session,
    SyncConfig,
    apply,
    blocking,
    end_time,
    next_deadline,
)
from syncplayd.testing import assert_invariants
from tests.core.roomkit import ANN, NOW, PLAYING, describe_all, room, session
from tests.core.test_room_properties import Action, play_script, scripts

USERS: dict[str, Role] = {"u1": "owner", "u2": "member", "u3": "moderator"}
DURATION = 60.0
# Round trips on both sides of a 100 ms and a 500 ms one-way limit, and of 80 % of each
# (where a warning is re-armed), besides anything else.
RTTS = st.one_of(
    st.sampled_from([0.0, 0.1, 0.16, 0.2, 0.21, 0.3, 0.79, 0.8, 0.81, 1.0, 1.01, 1.2, 2.0]),
    st.floats(min_value=0.0, max_value=5.0),
)
BAD_RTTS = st.sampled_from([-0.1, -math.inf, math.inf, math.nan])


@st.composite
def sessions(draw: st.DrawFn, index: int) -> Session:
    """One session of one of three users, in any state the engine can leave it in."""
    user = draw(st.sampled_from(sorted(USERS)))
    buffering = draw(st.sampled_from([False, False, True]))
    return Session(
        session_id=f"s{index}",
        user_id=user,
        user_name=user.upper(),
        role=USERS[user],
        muted=user == "u2",
        connected=draw(st.sampled_from([True, True, True, False])),
        buffering=buffering,
        buffering_since=draw(st.floats(90.0, NOW)) if buffering else None,
        catching_up=draw(st.booleans()),
        skipped=draw(st.booleans()),
        slow=draw(st.booleans()),
        loading=draw(st.booleans()),
        ready=user == "u3",  # the user's: every session of the user agrees
        ended=draw(st.booleans()),
        rtt=draw(st.none() | RTTS),
        last_seen=draw(st.floats(50.0, NOW)),
        last_offset=draw(st.none() | st.floats(-5.0, 5.0)),
        latency_warned=draw(st.booleans()),
        desktop=draw(st.booleans()),
    )


@st.composite
def rooms(draw: st.DrawFn) -> RoomState:
    """A room the engine could be in: playing, paused (at its end or not) or waiting,
    with one to five sessions; ``playing`` only while nobody blocks."""
    members = [draw(sessions(i)) for i in range(draw(st.integers(1, 5)))]
    states: list[PlayState] = ["playing", "paused", "paused", "waiting"]
    state = draw(st.sampled_from(states))
    ended = state == "paused" and draw(st.booleans())
    duration = DURATION if ended else draw(st.sampled_from([None, DURATION]))
    position = DURATION if ended else draw(st.floats(0.0, DURATION - 1.0))
    # A playing room's anchor may lie ahead (a scheduled start) or behind.
    anchor = draw(st.floats(NOW - 70.0, NOW + 1.0))
    rate = draw(st.sampled_from([0.5, 1.0, 2.0]))
    playback = Playback(state, position, rate, anchor, 5, "Ann", ended=ended)
    end_wait = draw(st.none() | st.floats(NOW, NOW + 30.0)) if ended else None
    built = RoomState(
        room_id="r",
        playback=playback,
        sessions=MappingProxyType({s.session_id: s for s in members}),
        resume_playing=state == "waiting",
        control=draw(st.sampled_from(["everyone", "moderators"])),
        config=SyncConfig(max_latency_ms=draw(st.sampled_from([100.0, 500.0]))),
        item_id="i1",
        duration=duration,
        wait_for_slow_members=draw(st.sampled_from(["always", "policy", "never"])),
        start_when_ready=draw(st.booleans()),
        end_wait_until=end_wait,
    )
    if state == "playing" and blocking(built):
        built = replace(built, playback=replace(playback, state="waiting"), resume_playing=True)
    assert_invariants(built)
    return built


@st.composite
def heartbeats(draw: st.DrawFn, state: RoomState, after: float) -> tuple[Heartbeat, float]:
    """A heartbeat with an rtt from a session of ``state`` (or a stranger), and when
    (not before ``after``).

    In step or off it, stale, current or ahead in version, sampled a little before
    ``now``; sometimes invalid in one of its values; ``now`` sometimes past the end of
    a playing room (which then ends on the way in).
    """
    live = [key for key, s in state.sessions.items() if s.connected]
    if draw(st.integers(0, 5)) > 0 and live:
        sid = draw(st.sampled_from(live))
    else:
        sid = draw(st.sampled_from([*state.sessions, "ghost"]))
    now = after + draw(st.sampled_from([0.0, 0.5, 3.0]))
    end = end_time(state)
    if end is not None and draw(st.booleans()):
        now = max(now, end + draw(st.sampled_from([0.0, 0.2, 5.0])))
    server_time = now - draw(st.sampled_from([0.0, 0.05, 0.3]))
    room_position = position_at(state.playback, server_time)
    if state.duration is not None:
        room_position = min(room_position, state.duration)
    drift = draw(st.sampled_from([0.0, 0.3, -1.9, 2.5, -4.0]) | st.floats(-10.0, 10.0))
    position = max(0.0, room_position + drift)
    rtt = draw(RTTS)
    version = state.playback.version + draw(st.sampled_from([-2, -1, 0, 0, 1]))
    broken = draw(st.sampled_from(["none"] * 9 + ["rtt", "position", "time"]))
    if broken == "rtt":
        rtt = draw(BAD_RTTS)
    elif broken == "position":
        position = draw(st.sampled_from([-1.0, math.nan, math.inf, 1e12]))
    elif broken == "time":
        server_time = draw(st.sampled_from([math.inf, math.nan]))
    return Heartbeat(sid, position, server_time, version, draw(st.booleans()), rtt=rtt), now


def two_commands(state: RoomState, beat: Heartbeat, now: float) -> tuple[RoomState, list[Effect]]:
    """What the shell applied for a heartbeat with an rtt: an ``RttSample``, then the rest."""
    assert beat.rtt is not None
    sid = beat.session_id
    state, first = apply(state, RttSample(sid, beat.rtt), now)
    alone = Heartbeat(sid, beat.position, beat.server_time, beat.version, beat.playing)
    state, second = apply(state, alone, now)
    return state, first + second


Outcome = tuple[Literal["ok"], RoomState, list[Effect]] | tuple[Literal["refused"], str, str]


def outcome(state: RoomState, beat: Heartbeat, now: float, *, folded: bool) -> Outcome:
    try:
        new, effects = apply(state, beat, now) if folded else two_commands(state, beat, now)
    except Refused as refused:
        return "refused", refused.code, str(refused)
    return "ok", new, effects


def check_same(state: RoomState, beat: Heartbeat, now: float) -> None:
    """The folded heartbeat against the two commands, on ``state``."""
    sessions_before = dict(state.sessions)
    expected = outcome(state, beat, now, folded=False)
    got = outcome(state, beat, now, folded=True)
    # The command never changes the room it is given (refused or not).
    assert dict(state.sessions) == sessions_before
    if expected[0] == "refused":
        assert got == expected
        return
    assert got[0] == "ok"
    new, effects = got[1], got[2]
    want, want_effects = expected[1], expected[2]
    assert new == want
    assert effects == want_effects
    # The indexes kept beside the sessions agree too (``RoomState`` does not compare them).
    assert new.table.tally == want.table.tally
    assert new.table.oldest_seen() == want.table.oldest_seen()
    for hosts_only in (False, True):
        assert new.table.first_stall(hosts_only=hosts_only) == want.table.first_stall(
            hosts_only=hosts_only
        )
    assert new.table.worst_rtt() == want.table.worst_rtt()
    assert next_deadline(new) == next_deadline(want)
    assert_invariants(new)


@settings(max_examples=1500, deadline=None)
@given(st.data())
def test_a_heartbeat_with_an_rtt_is_the_two_commands_in_any_room(data: st.DataObject) -> None:
    state = data.draw(rooms())
    beat, now = data.draw(heartbeats(state, NOW))
    check_same(state, beat, now)


@settings(max_examples=150, deadline=None)
@given(scripts, st.data())
def test_a_heartbeat_with_an_rtt_is_the_two_commands_after_any_script(
    script: list[Action], data: st.DataObject
) -> None:
    # Rooms as real scripts leave them (slow members, items that ended, latency warned).
    harness, _ = play_script(script)
    beat, now = data.draw(heartbeats(harness.state, harness.now))
    check_same(harness.state, beat, now)


# -- the cases the properties must meet, spelled out ------------------------------------------

LAGGING = 1.2  # EMA from ANN's 0.2: 0.4 s, a one-way 200 ms over the 100 ms limit
LIMITED = SyncConfig(max_latency_ms=100.0)
ENDED = Playback("paused", 60.0, 1.0, 100.0, 5, "Ann", ended=True)


WARNED = "presence:latency:ann:200 ms"


@pytest.mark.parametrize(
    ("state", "beat", "now", "expected"),
    [
        pytest.param(
            room(PLAYING, config=LIMITED),
            Heartbeat("ann", 20.0, NOW, 5, rtt=LAGGING),
            NOW,
            [WARNED],
            id="the first warning",
        ),
        pytest.param(
            room(PLAYING, config=LIMITED),
            Heartbeat("ann", 30.0, NOW, 5, rtt=LAGGING),
            NOW,
            [WARNED, "sync->ann:10"],
            id="a warning, then a sync",
        ),
        pytest.param(
            room(PLAYING, session("ann", rtt=0.2, latency_warned=True), config=LIMITED),
            Heartbeat("ann", 20.0, NOW, 5, rtt=0.0),
            NOW,
            [],
            id="recovered below 80 %: silently",
        ),
        pytest.param(
            room(PLAYING, ANN, session("bob", catching_up=True, rtt=0.3), config=LIMITED),
            Heartbeat("bob", 20.0, NOW, 5, rtt=2.0),
            NOW,
            ["presence:latency:bob:320 ms"],
            id="a late joiner in step, warned",
        ),
        pytest.param(
            room(ENDED, ANN, config=LIMITED, duration=60.0, item_id="i1", end_wait_until=130.0),
            Heartbeat("ann", 60.0, NOW, 5, rtt=LAGGING),
            NOW,
            [WARNED, "presence:ended:ann -ann", "advance:i1"],
            id="at the end of an ended room, warned",
        ),
        pytest.param(
            room(PLAYING, ANN, session("bob"), config=LIMITED, duration=30.0, item_id="i1"),
            Heartbeat("ann", 30.0, 125.0, 6, rtt=LAGGING),
            125.0,
            # The end first, the sample's wake-up between the sample and the heartbeat.
            [
                "playback:ended@125",
                "persist:v6",
                "log:playback",
                WARNED,
                "wake@130",
                "presence:ended:ann -ann",
            ],
            id="the end reached on the way in, warned",
        ),
        pytest.param(
            room(PLAYING, config=LIMITED),
            Heartbeat("ann", 3.0, NOW, 4, rtt=LAGGING),
            NOW,
            [WARNED],
            id="a stale version, warned",
        ),
    ],
)
def test_cases(state: RoomState, beat: Heartbeat, now: float, expected: list[str]) -> None:
    check_same(state, beat, now)
    _, effects = apply(state, beat, now)
    assert describe_all(effects) == expected


def test_the_warning_shows_the_member_as_the_sample_alone_leaves_it() -> None:
    # Bob is still a late joiner when his round trip is announced; the heartbeat that
    # follows finds him in step and caught up.
    state = room(PLAYING, ANN, session("bob", catching_up=True), config=LIMITED)
    new, effects = apply(state, Heartbeat("bob", 20.0, NOW, 5, rtt=2.0), NOW)
    [warning] = effects
    assert isinstance(warning, Broadcast) and isinstance(warning.message, protocol.Presence)
    assert warning.message.member.behind
    assert warning.message.member.latency_ms == 1000.0
    assert not new.sessions["bob"].catching_up
    assert new.sessions["bob"].latency_warned


def test_a_heartbeat_without_an_rtt_leaves_the_round_trip_alone() -> None:
    state = room(PLAYING)
    new, effects = apply(state, Heartbeat("ann", 20.0, NOW, 5), NOW)
    assert effects == []
    assert new.sessions["ann"].rtt == ANN.rtt
    assert new.sessions["ann"].last_seen == NOW


@pytest.mark.parametrize(
    ("beat", "code", "text"),
    [
        (Heartbeat("ann", 20.0, NOW, 5, rtt=-0.1), "bad-message", "rtt must be"),
        (Heartbeat("ann", 20.0, NOW, 5, rtt=math.nan), "bad-message", "rtt must be"),
        (Heartbeat("ann", math.nan, NOW, 5, rtt=0.1), "bad-message", "position must be"),
        (Heartbeat("ann", 20.0, math.inf, 5, rtt=0.1), "bad-message", "server_time must be"),
        (Heartbeat("ghost", 20.0, NOW, 5, rtt=0.1), "not-joined", "not connected"),
        # Both wrong: the rtt's refusal, as the RttSample came first.
        (Heartbeat("ann", math.nan, NOW, 5, rtt=-1.0), "bad-message", "rtt must be"),
    ],
)
def test_a_refused_part_refuses_the_whole(beat: Heartbeat, code: str, text: str) -> None:
    state = room(PLAYING)
    with pytest.raises(Refused, match=text) as refused:
        apply(state, beat, NOW)
    assert refused.value.code == code
    assert state.sessions["ann"] == ANN
