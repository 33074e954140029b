"""Whole stories told through :class:`syncplayd.testing.RoomHarness` (and the harness itself)."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest

from syncplayd.core import protocol
from syncplayd.core.room import (
    Advance,
    Broadcast,
    Buffering,
    CloseSession,
    Connect,
    Disconnect,
    Ended,
    Heartbeat,
    Leave,
    LoadItem,
    Pause,
    Play,
    Ready,
    Refused,
    RttSample,
    Seek,
    SetControl,
    SetMuted,
    SetRole,
    SyncConfig,
    Tick,
    WakeAt,
    end_time,
    members,
    new_room,
)
from syncplayd.testing import RoomHarness, assert_invariants, of_type

CONFIG = SyncConfig(ready_timeout_seconds=10.0, disconnect_timeout_seconds=30.0)


def three_friends() -> RoomHarness:
    """Ann, Bob and Cat in a paused room at t=0; Ann's RTT is 0.2 s (a 0.25 s lead)."""
    harness = RoomHarness(config=CONFIG)
    for name in ("ann", "bob", "cat"):
        harness.connect(0.0, name, name=name.capitalize())
    harness.apply(0.0, RttSample("ann", 0.2))
    return harness


def state_of(room: RoomHarness) -> str:
    """The playback state (a function, so that mypy does not narrow it across applies)."""
    return room.state.playback.state


def wake_of(room: RoomHarness) -> float | None:
    """The pending wake-up (a function for the same reason)."""
    return room.wake


def test_buffering_makes_the_room_wait_and_ready_resumes() -> None:
    room = three_friends()
    room.run([(1.0, Play("ann")), (5.0, Buffering("bob"))])
    assert state_of(room) == "waiting"
    assert room.position(5.0) == pytest.approx(3.75)  # stopped where Bob stalled
    assert room.position(9.0) == pytest.approx(3.75)
    room.run([(7.0, Ready("bob"))])
    reasons = [c.reason for c in room.broadcasts(protocol.PlaybackChanged)]
    assert reasons == ["play", "waiting", "resume"]
    assert room.state.playback.anchor == pytest.approx(7.25)
    assert room.position(8.25) == pytest.approx(4.75)
    assert [p.event for p in room.presence()][-2:] == ["buffering", "ready"]


def test_a_member_who_never_gets_ready_is_named_and_left_behind() -> None:
    room = three_friends()
    room.run([(1.0, Play("ann")), (2.0, Buffering("cat"))])
    room.run([(5.0, Heartbeat(s, 0.0, 5.0, 2)) for s in ("ann", "bob", "cat")])
    assert room.wake == 12.0  # the ready timeout, before anyone is idle
    room.advance(12.0)
    [named] = room.presence("not_ready_timeout")
    assert named.detail == "Cat" and named.member.user_name == "Cat"
    assert state_of(room) == "playing"
    assert room.state.sessions["cat"].skipped
    # The room does not wait for Cat again: ready and buffering again stall nobody, so
    # no member holds the room longer than one ready timeout, however often it tries.
    room.run([(13.0, Buffering("cat")), (14.0, Ready("cat")), (15.0, Buffering("cat"))])
    assert state_of(room) == "playing"
    room.run([(16.0, Ready("cat")), (17.0, Buffering("cat")), (40.0, Tick())])
    assert state_of(room) == "playing"
    assert len(room.presence("not_ready_timeout")) == 1


def test_in_a_moderators_room_a_member_holds_nobody() -> None:
    room = three_friends()
    room.run([(0.5, SetControl("moderators")), (1.0, SetRole("ann", "owner"))])
    room.run([(1.5, Play("ann")), (2.0, Buffering("cat"))])
    assert state_of(room) == "playing"  # Cat catches up on its own
    room.run([(2.5, Buffering("ann"))])
    assert state_of(room) == "waiting"  # the owner's player is waited for
    room.run([(3.0, Ready("ann"))])
    assert state_of(room) == "playing"
    # Promoting a buffering member makes it someone the room waits for, at once.
    room.run([(4.0, SetRole("cat", "moderator"))])
    assert state_of(room) == "waiting"
    # And handing control back to a mode where Cat counts no more resumes the room.
    room.run([(5.0, SetRole("cat", "member"))])
    assert state_of(room) == "playing"


def test_a_muted_member_keeps_watching_and_the_mute_survives_a_reconnect() -> None:
    room = three_friends()
    room.run([(1.0, Play("ann")), (2.0, SetMuted("cat", True))])
    [muted] = room.presence("muted")
    assert muted.member.user_id == "cat" and muted.member.muted
    assert state_of(room) == "playing"
    # Cat's connection drops; the shell reads the mute from storage as Cat comes back.
    room.run(
        [(3.0, Disconnect("cat")), (4.0, Connect("cat", "cat", "Cat", resume=True, muted=True))]
    )
    [back] = room.presence("reconnected")
    assert back.member.muted
    # A mute is not a control matter: Cat still blocks an everyone room while loading.
    room.run([(4.5, Ready("cat")), (5.0, Buffering("cat"))])
    assert state_of(room) == "waiting"
    room.run([(6.0, SetMuted("cat", False)), (7.0, Ready("cat"))])
    assert [p.event for p in room.presence() if p.event in ("muted", "unmuted")] == [
        "muted",
        "unmuted",
    ]
    assert state_of(room) == "playing"
    assert not members(room.state)[2].muted


def test_a_late_joiner_never_stalls_the_room() -> None:
    room = three_friends()
    room.apply(1.0, Play("ann"))
    room.connect(20.0, "dan", name="Dan")
    room.run([(20.1, Buffering("dan")), (25.0, Heartbeat("dan", 0.0, 25.0, 1))])
    assert state_of(room) == "playing"
    assert room.sent_to("dan") == []  # buffering: no seek loop while it loads
    room.apply(30.0, Ready("dan"))
    room.apply(31.0, Buffering("dan"))  # now a full member
    assert state_of(room) == "waiting"


def test_drift_beyond_the_threshold_gets_a_sync_and_below_it_does_not() -> None:
    room = three_friends()
    room.apply(1.0, Play("ann"))  # anchored at 1.25
    room.apply(11.0, Heartbeat("bob", 9.75 - 3.0, 11.0, 1))
    room.apply(11.0, Heartbeat("cat", 9.75 + 1.0, 11.0, 1))
    [sync] = room.sent_to("bob")
    assert isinstance(sync, protocol.SyncCommand)
    assert sync.offset == pytest.approx(-3.0)
    assert room.sent_to("cat") == []


def test_a_seek_lands_everyone_on_the_target_together() -> None:
    room = three_friends()
    room.run([(1.0, Play("ann")), (25.0, Seek("bob", 600.0))])
    change = room.broadcasts(protocol.PlaybackChanged)[-1]
    assert change.reason == "seek"
    assert change.execute_at == pytest.approx(25.25)
    assert room.position(25.1) == 600.0
    assert room.position(change.execute_at + 2.0) == pytest.approx(602.0)


def test_idle_members_are_closed_and_the_rest_go_on() -> None:
    room = three_friends()
    room.run([(1.0, Play("ann")), (2.0, Buffering("bob"))])
    # Ann and Cat keep heartbeating; Bob falls silent while buffering.
    for t in (10.0, 20.0, 29.0):
        room.run([(t, Heartbeat(s, 0.0, t, 2)) for s in ("ann", "cat")])
    assert room.presence("not_ready_timeout")[0].detail == "Bob"  # at 12
    room.advance(31.0)
    closed = of_type(room.effects, CloseSession)
    assert [(c.session_id, c.reason) for c in closed] == [("bob", "idle-timeout")]
    assert not room.state.sessions["bob"].connected
    assert state_of(room) == "playing"


def test_refused_commands_are_not_recorded() -> None:
    room = three_friends()
    steps = len(room.steps)
    with pytest.raises(Refused):
        room.apply(1.0, Pause("ghost"))
    assert len(room.steps) == steps


def test_leaving_closes_the_session() -> None:
    room = three_friends()
    effects = room.apply(1.0, Leave("cat"))
    assert CloseSession("cat", "left", "you left the room") in effects
    assert room.presence("left")[0].member.user_id == "cat"


# -- the harness itself ----------------------------------------------------------------


def test_time_only_goes_forward() -> None:
    room = three_friends()
    room.apply(5.0, Tick())
    with pytest.raises(ValueError, match="forward"):
        room.apply(4.0, Tick())


def test_harness_follows_wake_requests_like_the_shell() -> None:
    room = three_friends()
    assert room.wake == 30.0 == room.deadline()
    room.apply(10.0, RttSample("ann", 0.2))  # Ann's deadline moves; no new request
    assert room.wake == 30.0
    ticks = room.advance(45.0)  # Bob and Cat idle at 30; Ann at 40
    assert [e.time for e in of_type(ticks, WakeAt)] == [40.0]
    assert wake_of(room) is None and room.deadline() is None
    assert room.now == 45.0
    assert room.advance(50.0) == []


def test_harness_connect_defaults_to_the_session_id() -> None:
    room = RoomHarness()
    room.connect(0.0, "eve")
    room.connect(0.0, "eve-tv", user_id="eve")
    assert [(m.user_id, m.user_name, m.sessions) for m in members(room.state)] == [
        ("eve", "eve", 2)
    ]


def test_harness_starts_from_any_state() -> None:
    state = new_room("r9", config=CONFIG)
    room = RoomHarness(state)
    assert room.state is state
    assert room.effects == [] and room.position() == 0.0


def test_harness_collects_by_type() -> None:
    room = three_friends()
    assert len(room.broadcasts(protocol.Presence)) == 3
    assert room.broadcasts(protocol.PlaybackChanged) == []
    assert all(isinstance(e, Broadcast | WakeAt) or e.type == "joined" for e in room.effects)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "broken",
    [
        lambda s: replace(s, resume_playing=True),
        lambda s: replace(s, playback=replace(s.playback, version=-1)),
        lambda s: replace(s, playback=replace(s.playback, position=-1.0)),
        lambda s: replace(s, playback=replace(s.playback, rate=0.0)),
        lambda s: replace(
            s,
            playback=replace(s.playback, state="playing"),
            sessions={"x": replace(s.sessions["ann"], buffering=True, buffering_since=0.0)},
        ),
        lambda s: replace(s, sessions={"x": s.sessions["ann"]}),
        lambda s: replace(s, sessions={"ann": replace(s.sessions["ann"], buffering=True)}),
    ],
)
def test_invariant_violations_are_caught(broken: object) -> None:
    state = three_friends().state
    assert_invariants(state)
    with pytest.raises(AssertionError):
        assert_invariants(broken(state))  # type: ignore[operator]


def test_an_unchecked_harness_tolerates_a_broken_room() -> None:
    broken = replace(new_room("r1"), resume_playing=True)
    RoomHarness(broken, check=False).apply(0.0, Tick())
    with pytest.raises(AssertionError, match="resume_playing"):
        RoomHarness(broken).apply(0.0, Tick())


def test_a_film_night_of_two_episodes() -> None:
    """Two 20 s episodes: the room stops at each end, waits for everyone's end, asks the
    queue to move on once, and starts the next episode together; Cat's slow connection is
    no longer waited for after two stalls; nobody ever goes back within an episode."""
    config = replace(CONFIG, disconnect_timeout_seconds=600.0, slow_member_waits=2)
    room = RoomHarness(new_room("r", config=config, item_id="e1", duration=20.0))
    for name in ("ann", "bob", "cat"):
        room.connect(0.0, name, name=name.capitalize())
    room.run([(1.0, Play("ann"))])
    for t in (3.0, 6.0):  # Cat stalls twice: the room waits each time
        room.run([(t, Buffering("cat")), (t + 0.5, Ready("cat"))])
    room.run([(9.0, Buffering("cat"))])  # the third time it plays on
    assert state_of(room) == "playing"
    [slow] = room.presence("slow")
    assert slow.detail == "Cat" and slow.member.behind
    room.run([(9.5, Ready("cat"))])
    assert any(isinstance(m, protocol.SyncCommand) for m in room.sent_to("cat"))
    # The end of the first episode: at 20 s of media, on the server's clock.
    end = end_time(room.state)
    assert end == pytest.approx(1.15 + 20.0 + 2 * 0.65)  # started at 1.15, held twice
    room.advance(end)
    assert room.state.playback.ended and room.position(end + 5.0) == 20.0
    assert [p.event for p in room.presence()][-1] != "ended"
    room.run([(end + 0.2, Ended("ann", "e1"))])
    assert not of_type(room.effects, Advance)  # Bob has not finished yet
    # Bob's end completes it: Cat, slow, catches up alone and is not waited for.
    room.run([(end + 0.3, Ended("bob", "e1")), (end + 0.4, Ended("cat", "e1"))])
    assert of_type(room.effects, Advance) == [Advance("e1")]
    # The queue answers with the next episode: everyone starts it together.
    room.run([(end + 0.5, LoadItem("e2", 20.0))])
    start = room.broadcasts(protocol.PlaybackChanged)[-1]
    assert (start.reason, start.playback.item_id, start.playback.position) == ("item", "e2", 0.0)
    assert start.execute_at > end + 0.5
    # Within an episode nobody was ever sent backwards.
    changes = room.broadcasts(protocol.PlaybackChanged)
    for before, after in itertools.pairwise(changes):
        if after.playback.item_id == before.playback.item_id:
            assert after.playback.position >= before.playback.position
