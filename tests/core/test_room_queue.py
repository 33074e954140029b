"""The room engine with a queue: media with an end, items, durations, slow viewers, readiness.

Rule by rule, as ``test_room.py``: rooms at ``NOW = 110`` with Ann (RTT 200 ms, so the
lead is 0.25 s) and Bob, playing item ``i1`` of 30 s unless a test says otherwise (the
fixtures' playing room is at 20.0 at ``NOW``, so it ends at 120). Flows over time use
:class:`~syncplayd.testing.RoomHarness`, which ticks at every ``WakeAt``.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from syncplayd.core import protocol
from syncplayd.core.room import (
    Advance,
    Buffering,
    Connect,
    Disconnect,
    Ended,
    Heartbeat,
    Leave,
    LoadItem,
    Media,
    Pause,
    Play,
    Playback,
    Readiness,
    Ready,
    RecordDuration,
    Refused,
    RoomState,
    Seek,
    SendTo,
    SetControl,
    SetDuration,
    SetRate,
    SetRoomRules,
    SyncConfig,
    Tick,
    WakeAt,
    apply,
    end_time,
    live_position,
    member,
    new_room,
    restore_playback,
    snapshot,
    sync_settings,
)
from syncplayd.testing import RoomHarness, of_type
from tests.core.roomkit import (
    ANN,
    BOB,
    BOB_BUFFERING,
    MOD,
    NOW,
    PAUSED,
    PLAYING,
    WAITING,
    describe_all,
    room,
    session,
)

ITEM = {"item_id": "i1", "duration": 30.0}
ENDED = Playback("paused", 30.0, 1.0, 100.0, 5, None, ended=True)
TRIO = ["persist:v6", "log:playback"]


def playing_item(*sessions: object, **rest: object) -> RoomState:
    """The fixtures' playing room (20.0 at NOW) on item i1 of 30 s."""
    return room(PLAYING, *sessions, **{**ITEM, **rest})  # type: ignore[arg-type]


def ended_room(*sessions: object, **rest: object) -> RoomState:
    """Item i1 ended at 100 (the end wait runs until 130)."""
    fields = {**ITEM, "end_wait_until": 130.0, **rest}
    return room(ENDED, *sessions, **fields)  # type: ignore[arg-type]


def changes(effects: list[object]) -> list[protocol.PlaybackChanged]:
    return [
        e.message  # type: ignore[attr-defined]
        for e in effects
        if isinstance(getattr(e, "message", None), protocol.PlaybackChanged)
    ]


# -- the end of the media ---------------------------------------------------------------------
def test_a_playing_room_asks_to_be_woken_at_the_end() -> None:
    state = room(PAUSED, config=SyncConfig(disconnect_timeout_seconds=600.0), **ITEM)
    assert end_time(state) is None
    new, effects = apply(state, Play("ann"), NOW)
    # Scheduled at 110.25 from 10: the end is 20 s of media later.
    assert end_time(new) == 130.25
    assert describe_all(effects)[-1] == "wake@130.25"


def test_at_the_end_the_room_stops_at_the_duration_ended() -> None:
    state = playing_item()
    new, effects = apply(state, Tick(), 120.0)
    assert new.playback == Playback("paused", 30.0, 1.0, 120.0, 6, None, ended=True)
    [change] = changes(effects)
    assert (change.reason, change.execute_at) == ("ended", 120.0)
    assert change.playback.ended and change.playback.item_id == "i1"
    assert change.playback.duration == 30.0
    assert "persist:v6" in describe_all(effects)
    # Now it waits a ready timeout (30 s) for the members to report the end.
    assert new.end_wait_until == 150.0
    assert describe_all(effects)[-1] == "wake@130"  # idle sessions come first


def test_a_late_tick_or_any_command_finds_the_room_at_its_end_not_past_it() -> None:
    state = playing_item()
    assert live_position(state, 125.0) == 30.0  # read late: still the end
    assert snapshot(state, 125.0).position == 30.0
    new, effects = apply(state, Heartbeat("bob", 30.0, 125.0, 5), 125.0)
    assert new.playback.ended and new.playback.anchor == 125.0
    assert [c.reason for c in changes(effects)] == ["ended"]
    # The heartbeat came with the old version: not compared, no sync.
    assert of_type(effects, SendTo) == []


def test_clamped_comparison_sends_no_sync_to_a_player_at_the_end() -> None:
    # 30.5 s playing room of 31 s: Bob's player stopped at 31, the room would be at 32.
    state = room(PLAYING, ANN, BOB, item_id="i1", duration=31.0)
    new, effects = apply(state, Heartbeat("bob", 31.0, 121.0, 5), 120.5)
    assert of_type(effects, SendTo) == []
    assert new.sessions["bob"].last_offset == 0.0


@pytest.mark.parametrize(
    ("command", "by"),
    [
        (Seek("ann", 30.0), "Ann"),
        (Seek("ann", 99.0), "Ann"),
        (Play("ann", 45.0), "Ann"),
        (Pause("ann", 31.0), "Ann"),
    ],
)
@pytest.mark.parametrize("playback", [PAUSED, PLAYING])
def test_a_move_to_or_past_the_end_ends(
    command: Seek | Play | Pause, by: str, playback: Playback
) -> None:
    state = room(playback, **ITEM)
    if isinstance(command, Play) and playback.state == "playing":
        return  # a play on a playing room is a no-op
    new, effects = apply(state, command, NOW)
    assert new.playback == Playback("paused", 30.0, 1.0, NOW, 6, by, ended=True)
    assert [c.reason for c in changes(effects)] == ["ended"]
    # At the end already: a second move there changes nothing.
    assert apply(new, command, NOW + 1) == (new, [])


def test_play_on_an_ended_room_starts_over_from_zero() -> None:
    new, effects = apply(ended_room(), Play("ann"), NOW)
    assert new.playback == Playback("playing", 0.0, 1.0, 110.25, 6, "Ann")
    assert new.end_wait_until is None  # no advance once it plays again
    assert describe_all(effects)[:3] == ["playback:play@110.25", *TRIO]


def test_a_rate_change_moves_the_end() -> None:
    new, effects = apply(playing_item(), SetRate("ann", 2.0), NOW)
    assert end_time(new) == 115.0  # 10 s of media left at 2x
    assert describe_all(effects)[-1] == "wake@115"


def test_the_end_resets_everyones_readiness() -> None:
    state = playing_item(replace(ANN, ready=True), replace(BOB, ready=True))
    new, effects = apply(state, Tick(), 120.0)
    assert not any(s.ready for s in new.sessions.values())
    assert describe_all(effects).count("presence:readiness:ann") == 1


def test_a_room_without_a_duration_never_ends() -> None:
    state = room(PLAYING, item_id="i1")
    new, _ = apply(state, Tick(), 1e6)
    assert new.playback.state == "playing"


# -- waiting for everyone's end, then advancing ----------------------------------------------
def test_the_room_advances_once_every_member_reported_the_end() -> None:
    state = ended_room()
    state, effects = apply(state, Ended("ann", "i1"), NOW)
    assert describe_all(effects) == ["presence:ended:ann -ann"]
    assert state.end_wait_until == 130.0
    assert member(state, "ann").ended and not member(state, "bob").ended
    state, effects = apply(state, Ended("bob", "i1"), NOW)
    assert describe_all(effects) == ["presence:ended:bob -bob", "advance:i1"]
    assert state.end_wait_until is None
    # Once: nothing more comes of more reports.
    assert apply(state, Ended("bob", "i1"), NOW) == (state, [])


def test_an_end_reported_early_counts_once_the_room_ends() -> None:
    state = playing_item()
    state, _ = apply(state, Ended("ann", "i1"), 119.9)  # Ann's player runs a little ahead
    state, _ = apply(state, Ended("bob", "i1"), 119.95)
    assert state.playback.state == "playing"  # the room's own clock decides the end
    state, effects = apply(state, Tick(), 120.0)
    assert "advance:i1" in describe_all(effects)


def test_another_items_end_changes_nothing() -> None:
    state = ended_room()
    assert apply(state, Ended("ann", "i0"), NOW) == (state, [])


def test_a_heartbeat_standing_at_the_end_counts_as_the_end() -> None:
    state = ended_room(replace(ANN, ended=True), BOB)
    new, effects = apply(state, Heartbeat("bob", 29.5, NOW, 5), NOW)
    assert describe_all(effects) == ["presence:ended:bob -bob", "advance:i1"]
    assert new.sessions["bob"].ended
    # Stale, or far off (gets a sync instead): not the end.
    far, effects = apply(state, Heartbeat("bob", 3.0, NOW, 5), NOW)
    assert not far.sessions["bob"].ended and describe_all(effects) == ["sync->bob:-27"]
    stale, _ = apply(state, Heartbeat("bob", 30.0, NOW, 4), NOW)
    assert not stale.sessions["bob"].ended


def test_after_the_ready_timeout_the_room_names_who_did_not_finish_and_advances() -> None:
    config = SyncConfig(disconnect_timeout_seconds=600.0)
    harness = RoomHarness(
        new_room("r", Playback("paused", 25.0), config, item_id="i1", duration=30.0)
    )
    harness.connect(0.0, "ann")
    harness.connect(0.0, "bob")
    harness.run([(0.0, Play("ann")), (5.2, Ended("ann", "i1"))])
    harness.advance(35.1)
    assert harness.state.playback.ended and not of_type(harness.effects, Advance)
    effects = harness.advance(35.15)  # the end at 5.15 plus the 30 s ready timeout
    assert describe_all(effects)[:3] == [
        "presence:not_ready_timeout:bob:bob",
        "log:not_ready_timeout",
        "advance:i1",
    ]


def test_the_members_who_go_are_not_waited_for() -> None:
    state = ended_room(replace(ANN, ended=True), BOB)
    for gone in (Leave("bob"), Disconnect("bob")):
        _, effects = apply(state, gone, NOW)
        assert "advance:i1" in describe_all(effects)


def test_who_the_end_waits_for_follows_the_rules() -> None:
    late = session("cat", catching_up=True)
    state = ended_room(replace(ANN, ended=True), late, replace(BOB, slow=True))
    # A late joiner and a slow member hold nobody: the only one held for has ended.
    state, effects = apply(state, Tick(), NOW)
    assert "advance:i1" in describe_all(effects)
    # In a moderators room a plain member does not hold the end either.
    members_room = ended_room(replace(ANN, ended=True), BOB)
    _, effects = apply(members_room, SetControl("moderators"), NOW)
    assert "advance:i1" in describe_all(effects)
    # And a room that waits for nobody advances at its end.
    state, effects = apply(room(PLAYING, wait_for_slow_members="never", **ITEM), Tick(), 120.0)
    assert state.playback.ended and state.end_wait_until is None
    assert "advance:i1" in describe_all(effects)
    # Choosing "never" at the end stops the wait too.
    _, effects = apply(ended_room(), SetRoomRules("never", False), NOW)
    assert describe_all(effects) == ["advance:i1"]


def test_a_player_joining_an_ended_room_has_ended_too() -> None:
    state = ended_room(replace(ANN, ended=True))
    new, effects = apply(state, Connect("bob", "bob", "Bob"), NOW)
    assert new.sessions["bob"].ended
    assert "advance:i1" in describe_all(effects)


# -- loading an item ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("before", "expected", "execute_at"),
    [
        (PLAYING, Playback("playing", 0.0, 1.0, 110.25, 6, None), 110.25),
        (ENDED, Playback("playing", 0.0, 1.0, 110.25, 6, None), 110.25),
        (PAUSED, Playback("paused", 0.0, 1.0, NOW, 6, None), NOW),
    ],
)
def test_a_new_item_starts_from_zero_playing_if_the_room_was(
    before: Playback, expected: Playback, execute_at: float
) -> None:
    state = room(before, replace(ANN, ended=True), BOB, **ITEM)
    new, effects = apply(state, LoadItem("i2", 45.0), NOW)
    assert (new.item_id, new.duration, new.playback) == ("i2", 45.0, expected)
    [change] = changes(effects)
    assert (change.reason, change.execute_at, change.playback.item_id) == ("item", execute_at, "i2")
    assert change.playback.duration == 45.0 and not change.playback.ended
    assert all(not s.ended and s.loading for s in new.sessions.values())
    assert new.end_wait_until is None


def test_a_new_item_in_a_waiting_room_waits_at_zero_with_a_new_version() -> None:
    state = room(replace(WAITING, position=0.0), ANN, BOB_BUFFERING, **ITEM)
    new, effects = apply(state, LoadItem("i2"), NOW)
    assert new.playback == Playback("waiting", 0.0, 1.0, NOW, 6, None)
    assert [c.reason for c in changes(effects)] == ["item"]


def test_an_empty_queue_stops_the_room() -> None:
    new, _ = apply(playing_item(), LoadItem(None), NOW)
    assert (new.item_id, new.duration, new.playback.state) == (None, None, "paused")


def test_the_same_item_again_restarts_it() -> None:  # repeat one
    new, effects = apply(ended_room(), LoadItem("i1", 30.0), NOW)
    assert new.playback == Playback("playing", 0.0, 1.0, 110.25, 6, None)
    assert [c.reason for c in changes(effects)] == ["item"]


# -- durations ------------------------------------------------------------------------------------
def test_the_first_trustworthy_duration_wins_and_is_stored() -> None:
    state = room(PLAYING, item_id="i1")
    new, effects = apply(state, Media("bob", "i1", 1500.0), NOW)
    assert new.duration == 1500.0
    assert describe_all(effects) == ["duration:i1:1500"]  # the idle deadline comes first
    assert end_time(new) == 100.0 + 1490.0
    # Later reports change nothing: the first value won.
    assert apply(new, Media("ann", "i1", 1400.0), NOW) == (new, [])


@pytest.mark.parametrize(
    ("state", "command"),
    [
        (room(PLAYING, item_id="i1"), Media("bob", "i0", 60.0)),  # another item
        (room(PLAYING, item_id="i1"), Media("bob", "i1", None)),  # not known
        (room(PLAYING, item_id="i1", control="moderators"), Media("bob", "i1", 60.0)),
        (room(PLAYING, item_id="i1"), Media("bob", "i1", float("nan"))),
        (room(PLAYING, item_id="i1"), Media("bob", "i1", 0.0)),
        (room(PLAYING, item_id="i1"), Media("bob", "i1", protocol.MAX_POSITION + 1)),
    ],
)
def test_an_untrustworthy_duration_is_ignored(state: RoomState, command: Media) -> None:
    assert apply(state, command, NOW) == (state, [])


def test_a_duration_the_room_is_already_past_ends_it_at_once() -> None:
    new, effects = apply(room(PLAYING, item_id="i1"), Media("ann", "i1", 15.0), NOW)
    assert new.playback == Playback("paused", 15.0, 1.0, NOW, 6, None, ended=True)
    assert describe_all(effects)[:2] == ["duration:i1:15", "playback:ended@110"]


def test_the_stored_duration_wins_and_may_be_cleared() -> None:
    state = playing_item()
    longer, effects = apply(state, SetDuration("i1", 60.0), NOW)
    assert longer.duration == 60.0 and describe_all(effects) == ["wake@130"]
    assert apply(state, SetDuration("i9", 60.0), NOW) == (state, [])  # another item
    # New content in place: an ended room is no longer at its end.
    cleared, effects = apply(ended_room(), SetDuration("i1", None), NOW)
    assert cleared.duration is None and not cleared.playback.ended
    assert cleared.playback.position == 30.0 and cleared.end_wait_until is None
    assert [c.reason for c in changes(effects)] == ["duration"]
    shorter, effects = apply(ended_room(), SetDuration("i1", 20.0), NOW)
    assert shorter.playback == Playback("paused", 20.0, 1.0, NOW, 6, None, ended=True)
    assert shorter.end_wait_until == 130.0  # the end's wait goes on, not begun again
    # The end was handled (the room asked to advance): a shorter duration asks nothing again.
    handled = ended_room(end_wait_until=None)
    _, effects = apply(handled, SetDuration("i1", 20.0), NOW)
    assert [c.reason for c in changes(effects)] == ["duration"]
    assert not [e for e in effects if isinstance(e, Advance)]
    with pytest.raises(Refused):
        apply(state, SetDuration("i1", -1.0), NOW)


# -- slow viewers ---------------------------------------------------------------------------------
SLOW = SyncConfig(
    ready_timeout_seconds=10.0,
    disconnect_timeout_seconds=600.0,
    slow_member_waits=2,
    slow_member_window_seconds=60.0,
)


def stall(harness: RoomHarness, t: float, who: str = "bob") -> list[object]:
    """``who`` buffers at ``t`` and is ready 1 s later."""
    return [*harness.run([(t, Buffering(who))]), *harness.run([(t + 1.0, Ready(who))])]


def slow_room(policy: str = "policy") -> RoomHarness:
    harness = RoomHarness(new_room("r", config=SLOW, wait_for_slow_members=policy))  # type: ignore[arg-type]
    harness.connect(0.0, "ann")
    harness.connect(0.0, "bob")
    harness.run([(1.0, Play("ann"))])
    return harness


def test_a_member_who_stalls_the_room_too_often_is_no_longer_waited_for() -> None:
    harness = slow_room()
    for t in (5.0, 15.0):  # two stalls: the room waits each time
        stall(harness, t)
    assert [c.reason for c in harness.broadcasts(protocol.PlaybackChanged)][-4:] == [
        "waiting", "resume", "waiting", "resume",
    ]  # fmt: skip
    version = harness.state.playback.version
    effects = harness.run([(25.0, Buffering("bob"))])
    # The third: the room plays on, and everyone is told, Bob included.
    assert harness.state.playback.version == version
    [slow] = harness.presence("slow")
    assert (slow.member.user_name, slow.detail, slow.member.behind) == ("bob", "bob", True)
    assert [e for e in describe_all(effects) if e.startswith("presence:slow")] == [
        "presence:slow:bob:bob"
    ]
    assert harness.state.sessions["bob"].slow
    # Ready again: a sync to the live position at once; it catches up alone.
    effects = harness.run([(26.0, Ready("bob", 24.0))])
    [sync] = [e for e in effects if isinstance(e, SendTo)]
    assert isinstance(sync.message, protocol.SyncCommand)
    # Played from 1.15, held 0.15 s after each of two 1 s stalls.
    assert sync.message.playback.position == pytest.approx(26.0 - 1.15 - 2 * 1.15)
    assert sync.message.offset == pytest.approx(24.0 - sync.message.playback.position)
    # And it never stalls the room again while the session lasts.
    harness.run([(30.0, Buffering("bob"))])
    assert harness.state.playback.state == "playing"


def test_only_waits_within_the_window_count() -> None:
    harness = slow_room()
    stall(harness, 5.0)
    stall(harness, 70.0)  # the first is older than the 60 s window by now
    harness.run([(75.0, Buffering("bob"))])
    assert harness.state.playback.state == "waiting"
    assert not harness.presence("slow")


def test_loading_a_new_item_is_not_a_slow_connection() -> None:
    harness = slow_room()
    for t in (5.0, 15.0):
        harness.run([(t, LoadItem(f"i{t:g}"))])
        stall(harness, t + 0.5)  # each is the first wait after a load: not counted
    harness.run([(25.0, Buffering("bob"))])
    assert harness.state.playback.state == "waiting"
    assert not harness.presence("slow")


def test_always_waits_up_to_the_ready_timeout_every_time() -> None:
    harness = slow_room("always")
    for t in (5.0, 15.0, 25.0, 35.0):
        stall(harness, t)
    assert not harness.presence("slow")
    assert [c.reason for c in harness.broadcasts(protocol.PlaybackChanged)].count("waiting") == 4


def test_never_waits_for_nobody_and_shows_who_is_behind() -> None:
    harness = slow_room("never")
    harness.run([(5.0, Buffering("bob"))])
    assert harness.state.playback.state == "playing"
    assert member(harness.state, "bob").behind and not member(harness.state, "ann").behind
    effects = harness.run([(6.0, Ready("bob"))])
    assert [e.session_id for e in of_type(effects, SendTo)] == ["bob"]


def test_choosing_always_forgives_the_slow() -> None:
    state = playing_item(ANN, replace(BOB_BUFFERING, slow=True, waits=(1.0, 2.0)))
    assert state.playback.state == "playing"
    new, effects = apply(state, SetRoomRules("always", False), NOW)
    assert not new.sessions["bob"].slow and new.sessions["bob"].waits == ()
    assert new.playback.state == "waiting"  # Bob buffers: waited for again
    assert [c.reason for c in changes(effects)] == ["waiting"]
    assert apply(new, SetRoomRules("always", False), NOW) == (new, [])
    with pytest.raises(Refused):
        apply(state, SetRoomRules("sometimes", False), NOW)  # type: ignore[arg-type]


# -- readiness ---------------------------------------------------------------------------------
def test_readiness_belongs_to_the_user_and_everyone_is_told() -> None:
    phone, tv = session("p", user_id="bob"), session("t", user_id="bob")
    state = room(PAUSED, ANN, phone, tv)
    new, effects = apply(state, Readiness("p", True), NOW)
    assert new.sessions["p"].ready and new.sessions["t"].ready
    assert describe_all(effects) == ["presence:readiness:bob"]
    assert member(new, "t").ready
    assert apply(new, Readiness("t", True), NOW) == (new, [])
    # A new device of a ready user is ready too.
    joined, _ = apply(new, Connect("x", "bob", "Bob"), NOW)
    assert joined.sessions["x"].ready


def test_start_when_ready_refuses_a_members_play_until_everyone_is_ready() -> None:
    state = room(PAUSED, ANN, BOB, MOD, start_when_ready=True)
    with pytest.raises(Refused) as refused:
        apply(state, Play("bob"), NOW)
    assert refused.value.code == "not-ready"
    assert refused.value.message == "not everyone is ready: waiting for Ann, Bob, Mod"
    # The hosts may start anyway.
    for host in (replace(ANN, role="owner"), MOD):
        started, _ = apply(put_session(state, host), Play(host.session_id), NOW)
        assert started.playback.state == "playing"


def put_session(state: RoomState, s: object) -> RoomState:
    sessions = dict(state.sessions)
    sessions[s.session_id] = s  # type: ignore[attr-defined]
    return replace(state, sessions=sessions)


def test_the_last_one_ready_starts_the_room() -> None:
    state = room(PAUSED, ANN, BOB, start_when_ready=True)
    state, effects = apply(state, Readiness("ann", True), NOW)
    assert state.playback.state == "paused"
    state, effects = apply(state, Readiness("bob", True), NOW)
    assert state.playback == Playback("playing", 10.0, 1.0, 110.25, 6, "Bob")
    assert [c.reason for c in changes(effects)] == ["all_ready"]
    # Without the room option, readiness starts nothing.
    plain = room(PAUSED, replace(ANN, ready=True), BOB)
    assert apply(plain, Readiness("bob", True), NOW)[0].playback == PAUSED


def test_an_ended_room_ready_again_starts_from_zero() -> None:
    state = ended_room(replace(ANN, ready=True), BOB, start_when_ready=True)
    new, effects = apply(state, Readiness("bob", True), NOW)
    assert (new.playback.state, new.playback.position) == ("playing", 0.0)
    assert [c.reason for c in changes(effects)] == ["all_ready"]


def test_every_pause_makes_everyone_not_ready() -> None:
    state = room(PLAYING, replace(ANN, ready=True), replace(BOB, ready=True))
    new, effects = apply(state, Pause("ann"), NOW)
    assert not any(s.ready for s in new.sessions.values())
    assert describe_all(effects)[3:] == ["presence:readiness:ann", "presence:readiness:bob"]
    # A play does not.
    ready = room(PAUSED, replace(ANN, ready=True), BOB)
    assert apply(ready, Play("ann"), NOW)[0].sessions["ann"].ready


# -- views and restoring ---------------------------------------------------------------------------
def test_the_wire_carries_the_item_its_duration_and_the_end() -> None:
    state = ended_room()
    wire = snapshot(state, NOW)
    assert (wire.item_id, wire.duration, wire.ended, wire.state) == ("i1", 30.0, True, "paused")
    settings = sync_settings(
        replace(state, wait_for_slow_members="never", start_when_ready=True), heartbeat_interval=5
    )
    assert (settings.wait_for_slow_members, settings.start_when_ready) == ("never", True)


def test_a_late_joiner_is_behind_until_ready() -> None:
    state = room(PLAYING, ANN, session("bob", catching_up=True))
    assert member(state, "bob").behind and not member(state, "ann").behind
    new, _ = apply(state, Ready("bob"), NOW)
    assert not member(new, "bob").behind


@pytest.mark.parametrize(
    ("state", "position", "elapsed", "expected"),
    [
        ("playing", 20.0, 5.0, Playback("playing", 25.0, 1.0, 7.0, 4)),
        ("playing", 20.0, 50.0, Playback("paused", 30.0, 1.0, 7.0, 4, ended=True)),
        ("paused", 30.0, 0.0, Playback("paused", 30.0, 1.0, 7.0, 4, ended=True)),
        ("waiting", 31.0, 0.0, Playback("paused", 30.0, 1.0, 7.0, 4, ended=True)),
    ],
)
def test_a_room_restored_at_or_past_its_end_comes_back_ended(
    state: str, position: float, elapsed: float, expected: Playback
) -> None:
    restored = restore_playback(
        state=state,
        position=position,
        rate=1.0,
        version=3,
        elapsed_seconds=elapsed,
        now=7.0,
        duration=30.0,
    )
    assert restored == expected
    fresh = new_room("r", restored, item_id="i1", duration=30.0)
    assert fresh.end_wait_until is None  # no advance asked for on a restore


@pytest.mark.parametrize(
    ("playback", "duration"),
    [
        (Playback("playing", 30.0), 30.0),
        (Playback("paused", 31.0), 30.0),
        (Playback("paused", 20.0, ended=True), 30.0),
        (Playback("paused", 30.0, ended=True), None),
        (Playback(), 0.0),
    ],
)
def test_a_new_room_refuses_a_playback_past_its_end(
    playback: Playback, duration: float | None
) -> None:
    with pytest.raises(ValueError, match=r"end|duration"):
        new_room("r", playback, duration=duration)


def test_record_duration_and_advance_are_the_only_new_effects_of_a_full_item() -> None:
    """A whole item through the harness: what the shell must carry out, in order."""
    harness = RoomHarness(new_room("r", item_id="i1"))
    harness.connect(0.0, "ann", role="owner")
    harness.run([(0.5, Media("ann", "i1", 10.0)), (1.0, Play("ann"))])
    harness.advance(11.15)
    harness.run([(11.2, Ended("ann", "i1"))])
    assert of_type(harness.effects, RecordDuration) == [RecordDuration("i1", 10.0)]
    assert of_type(harness.effects, Advance) == [Advance("i1")]
    assert harness.state.playback.ended and harness.state.playback.position == 10.0
    assert [w.time for w in of_type(harness.effects, WakeAt)].count(11.15) == 1
