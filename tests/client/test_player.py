"""The client's pure parts: the local playback model, drift decisions, and the bounded helpers.

No sockets: the player gets explicit local times, the server clock is a fixed
offset (``server = local + OFFSET``), and the room's playback is built by hand.
"""

from __future__ import annotations

import random
from typing import Any

import msgspec
import pytest
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st

from syncplayd.client import (
    ClientCore,
    ClientOptions,
    LocalPlayer,
    PlayerChange,
    SyncClosed,
    backoff_delay,
    drift_action,
)
from syncplayd.client._events import EventHub, Predicate
from syncplayd.client._room import RoomView
from syncplayd.core.clock import (
    DriftAction,
    DriftNone,
    DriftRate,
    DriftSeek,
    ntp_sample,
    position_at,
)
from syncplayd.core.protocol import (
    ChatEntry,
    ChatOut,
    Closing,
    Joined,
    Member,
    PlaybackChanged,
    PlaybackWire,
    Presence,
    RoomInfo,
    RoomPlayback,
    ServerMessage,
    SyncCommand,
    SyncSettings,
)

OFFSET = 1000.0  # server clock minus local clock


def to_local(server_time: float) -> float:
    return server_time - OFFSET


def wire(
    state: str = "playing",
    position: float = 0.0,
    *,
    anchor: float = OFFSET,
    rate: float = 1.0,
    version: int = 1,
) -> PlaybackWire:
    return PlaybackWire(state, position, rate, anchor, version, "Ada")  # type: ignore[arg-type]


SETTINGS = SyncSettings(
    heartbeat_interval=1.0,
    threshold_seconds=2.0,
    max_latency_ms=500.0,
    ready_timeout_seconds=10.0,
    disconnect_timeout_seconds=30.0,
    max_rate_correction=0.05,
    control="everyone",
)


class Recorder(LocalPlayer):
    """What an adapter sees: every change notice."""

    def __init__(self) -> None:
        super().__init__(clock=lambda: 0.0)
        self.changes: list[PlayerChange] = []

    def on_change(self, change: PlayerChange) -> None:
        self.changes.append(change)


# -- the playback model ----------------------------------------------------------------
def test_a_new_player_is_paused_at_zero() -> None:
    player = LocalPlayer(clock=lambda: 5.0)
    assert player.position() == 0.0
    assert not player.playing
    assert player.version == 0
    assert player.pending_at is None


def test_a_scheduled_play_starts_at_execute_at_on_the_local_clock() -> None:
    player = LocalPlayer()
    # play from 10 s at server time 1000.5 == local 0.5
    assert player.apply_playback(wire(position=10.0, anchor=1000.5), 1000.5, to_local)
    assert player.pending_at == pytest.approx(0.5)
    assert player.position(0.2) == 0.0  # the old state holds until then
    assert not player.is_playing(0.2)
    assert player.position(0.5) == pytest.approx(10.0)
    assert player.position(2.5) == pytest.approx(12.0)
    assert player.is_playing(2.5)
    assert player.state_at(2.5).version == 1


def test_queries_are_pure_and_update_commits() -> None:
    player = Recorder()
    player.apply_playback(wire(position=3.0, anchor=1001.0), 1001.0, to_local)
    assert player.position(2.0) == pytest.approx(4.0)
    assert player.state.version == 0  # nothing committed by a query
    assert player.changes == []
    assert player.update(0.5) == []  # not due yet
    (change,) = player.update(2.0)  # the scheduler woke late: reports the position *now*
    assert player.state.version == 1
    assert change.time == 2.0
    assert change.position == pytest.approx(4.0)
    assert change.jump == pytest.approx(4.0)
    assert change.playing
    assert change.reason == "playback"
    assert player.changes == [change]
    assert player.pending_at is None


def test_a_late_message_lands_on_the_live_position() -> None:
    player = LocalPlayer()
    # started at server 1000 from 0; the message is applied at local 3 (server 1003)
    player.apply_playback(wire(position=0.0, anchor=1000.0, rate=2.0), 1000.0, to_local)
    assert player.position(3.0) == pytest.approx(6.0)


@pytest.mark.parametrize("state", ["paused", "waiting"])
def test_paused_and_waiting_hold_their_position(state: str) -> None:
    player = LocalPlayer()
    player.apply_playback(wire(state, 42.0, anchor=1000.0), 1000.0, to_local)
    assert player.position(0.0) == player.position(50.0) == 42.0
    assert not player.is_playing(50.0)


def test_an_older_version_is_ignored_and_the_same_version_resyncs() -> None:
    player = LocalPlayer()
    player.apply_playback(wire(position=5.0, version=3), 1000.0, to_local)
    assert not player.apply_playback(wire(position=99.0, version=2), 1000.0, to_local)
    assert player.position(1.0) == pytest.approx(6.0)
    # a sync command carries the current version: it re-anchors the player
    assert player.apply_playback(
        wire(position=5.5, anchor=1001.0, version=3), 1001.0, to_local, reason="sync"
    )
    assert player.position(2.0) == pytest.approx(6.5)
    assert player.state_at(2.0).reason == "sync"


def test_a_newer_change_supersedes_later_pending_ones_but_keeps_earlier_ones() -> None:
    player = LocalPlayer()
    player.apply_playback(wire(position=0.0, anchor=1001.0, version=1), 1001.0, to_local)
    # a seek scheduled after the play: both happen, in order
    player.apply_playback(wire(position=50.0, anchor=1002.0, version=2), 1002.0, to_local)
    assert player.position(1.5) == pytest.approx(0.5)
    assert player.position(3.0) == pytest.approx(51.0)
    # a pause executed before the seek: the seek is dropped, the play kept
    player.apply_playback(wire("paused", 0.8, anchor=1001.8, version=3), 1001.8, to_local)
    assert player.position(1.5) == pytest.approx(0.5)
    assert player.position(3.0) == pytest.approx(0.8)
    assert [c.version for c in player.update(5.0)] == [1, 3]


def test_a_join_snapshot_forces_any_version_and_drops_pending_changes() -> None:
    player = LocalPlayer()
    player.apply_playback(wire(version=9, anchor=1005.0), 1005.0, to_local)
    snapshot = wire("paused", 7.0, version=2)
    assert player.apply_playback(snapshot, 1000.0, to_local, force=True)
    player.update(0.0)
    assert player.pending_at is None
    assert player.position(10.0) == 7.0
    assert player.state_at(10.0).version == 2


def test_pending_changes_are_bounded() -> None:
    player = Recorder()
    for version in range(1, 21):
        at = 1000.0 + version
        player.apply_playback(wire(position=version, anchor=at, version=version), at, to_local)
    assert len(player._pending) <= 8
    assert [c.version for c in player.changes] == list(range(1, 13))  # committed early, in order


def test_local_operations_rebase_continuously() -> None:
    player = Recorder()
    player.apply_playback(wire(position=10.0), 1000.0, to_local)
    player.update(0.0)
    change = player.set_rate(2.0, now=4.0)
    assert change.reason == "local"
    assert change.jump == pytest.approx(0.0)
    assert player.position(5.0) == pytest.approx(16.0)
    player.pause(now=5.0)
    assert player.position(9.0) == pytest.approx(16.0)
    player.seek(3.0, now=9.0)
    assert player.position(20.0) == 3.0
    player.play(now=20.0)
    assert player.position(21.0) == pytest.approx(5.0)
    assert player.seek(-4.0, now=21.0).position == 0.0


def test_a_local_operation_first_commits_due_room_changes() -> None:
    player = Recorder()
    player.apply_playback(wire(position=10.0, anchor=1001.0), 1001.0, to_local)
    player.pause(now=3.0)
    assert [c.reason for c in player.changes] == ["playback", "local"]
    assert player.position(9.0) == pytest.approx(12.0)


def test_correction_scales_the_rate_and_keeps_the_position_continuous() -> None:
    player = Recorder()
    player.apply_playback(wire(position=0.0, rate=1.5), 1000.0, to_local)
    player.update(0.0)
    change = player.set_correction(0.96, now=10.0)
    assert change is not None
    assert change.reason == "correction"
    assert change.rate == pytest.approx(1.44)
    assert player.state_at(10.0).nominal_rate == 1.5
    assert player.position(10.0) == pytest.approx(15.0)
    assert player.position(20.0) == pytest.approx(15.0 + 14.4)
    assert player.set_correction(0.96, now=20.0) is None
    # a new room change resets the correction
    player.apply_playback(wire(position=40.0, anchor=1021.0, version=2), 1021.0, to_local)
    assert player.state_at(22.0).correction == 1.0


def test_a_correction_before_a_scheduled_start_keeps_the_start() -> None:
    player = LocalPlayer()
    player.apply_playback(wire(position=4.0, anchor=1010.0), 1000.0, to_local)
    player.update(0.0)
    player.set_correction(1.05, now=1.0)
    assert player.position(9.0) == 4.0
    assert player.position(12.0) == pytest.approx(4.0 + 2 * 1.05)


def test_the_default_clock_is_used_when_now_is_omitted() -> None:
    now = [0.0]
    player = LocalPlayer(clock=lambda: now[0])
    player.apply_playback(wire(position=1.0, anchor=1002.0), 1002.0, to_local)
    assert player.position() == 0.0
    now[0] = 4.0
    assert player.position() == pytest.approx(3.0)
    assert player.playing
    assert player.rate == player.effective_rate == 1.0
    assert player.version == 1
    assert [c.version for c in player.update()] == [1]


operations = st.lists(
    st.tuples(
        st.sampled_from(["play", "pause", "rate", "correction", "room"]),
        st.floats(min_value=0.25, max_value=4.0),
        st.floats(min_value=0.0, max_value=5.0),
    ),
    max_size=25,
)


@given(operations)
def test_position_is_continuous_across_rate_and_state_changes(
    ops: list[tuple[str, float, float]],
) -> None:
    """Everything but a seek or a new room position keeps the position where it was."""
    player = LocalPlayer()
    t, version = 0.0, 1
    for op, value, dt in ops:
        t += dt
        before = player.position(t)
        if op == "play":
            player.play(now=t)
        elif op == "pause":
            player.pause(now=t)
        elif op == "rate":
            player.set_rate(value, now=t)
        elif op == "correction":
            player.set_correction(1.0 + (value - 2.0) / 100, now=t)
        else:  # the room plays on from exactly where this player is
            version += 1
            at = t + OFFSET
            player.apply_playback(wire(position=before, anchor=at, version=version), at, to_local)
            player.update(t)
        assert player.position(t) == pytest.approx(before, abs=1e-9)
        assert player.position(t + 1.0) >= player.position(t)


# -- drift decisions -------------------------------------------------------------------
def following(room: PlaybackWire, *, error: float = 0.0) -> LocalPlayer:
    """A player that applied ``room`` with a clock estimate off by ``error`` seconds."""
    player = LocalPlayer()
    player.apply_playback(room, room.anchor, lambda s: to_local(s) + error)
    player.update(to_local(room.anchor) + abs(error))
    return player


def decide(
    player: LocalPlayer, room: PlaybackWire, now: float, settings: SyncSettings = SETTINGS
) -> DriftAction | None:
    return drift_action(player, room, now=now, server_now=now + OFFSET, settings=settings)


def test_in_step_is_no_op() -> None:
    room = wire(position=10.0)
    assert decide(following(room), room, 5.0) == DriftNone()
    assert decide(following(room, error=0.03), room, 5.0) == DriftNone()  # within the deadband


@pytest.mark.parametrize(
    ("error", "slower"),
    [(0.2, False), (-0.2, True)],  # error > 0: started late, so behind
)
def test_small_drift_is_corrected_by_rate(error: float, slower: bool) -> None:
    room = wire(position=10.0)
    action = decide(following(room, error=error), room, 5.0)
    assert isinstance(action, DriftRate)
    assert (action.rate < 1.0) is slower
    assert 0.95 <= action.rate <= 1.05
    assert action.offset == pytest.approx(-error)


def test_the_rate_correction_never_exceeds_the_room_setting() -> None:
    room = wire(position=10.0)
    tight = msgspec.structs.replace(SETTINGS, max_rate_correction=0.02)
    action = decide(following(room, error=1.5), room, 5.0, tight)
    assert isinstance(action, DriftRate)
    assert action.rate == pytest.approx(1.02)


def test_big_drift_is_a_seek() -> None:
    room = wire(position=10.0)
    action = decide(following(room, error=3.0), room, 10.0)
    assert isinstance(action, DriftSeek)
    assert action.offset == pytest.approx(-3.0)


def test_no_decision_when_there_is_nothing_to_compare() -> None:
    playing = wire(position=10.0)
    paused = wire("paused", 10.0)
    scheduled = wire(position=10.0, anchor=OFFSET + 10.0)
    player = following(playing, error=1.0)
    assert decide(player, paused, 5.0) is None  # the room does not play
    assert decide(player, scheduled, 5.0) is None  # the room has not started
    assert decide(player, wire(position=10.0, version=2), 5.0) is None  # other version
    player.apply_playback(
        wire(position=11.0, version=2, anchor=OFFSET + 9.0), OFFSET + 9.0, to_local
    )
    assert decide(player, playing, 5.0) is None  # a change is pending
    assert decide(following(paused), playing, 5.0) is None  # the player does not play


def test_gentle_correction_converges_without_exceeding_the_bounds() -> None:
    room = wire(position=0.0)
    player = following(room, error=0.5)  # behind by 0.5 s: below the 2 s threshold
    now, rates = 1.0, []
    for _ in range(200):
        action = decide(player, room, now)
        if isinstance(action, DriftRate):
            player.set_correction(action.rate, now)
            rates.append(action.rate)
        else:
            assert isinstance(action, DriftNone)
            player.set_correction(1.0, now)
            break
        now += 0.5
    offset = player.position(now) - position_at(room, now + OFFSET)
    assert abs(offset) <= 0.04
    assert rates and all(1.0 < r <= 1.05 for r in rates)
    assert now < 30.0


# -- the bounded helpers (backoff, room view, events) ------------------------------------
def test_backoff_doubles_from_a_tenth_to_five_seconds_with_jitter() -> None:
    options, rng = ClientOptions(), random.Random(7)
    for failures, nominal in [(0, 0.1), (1, 0.2), (3, 0.8), (5, 3.2), (6, 5.0), (500, 5.0)]:
        for _ in range(50):
            assert nominal / 2 <= backoff_delay(failures, options, rng) <= nominal


def test_options_are_validated() -> None:
    with pytest.raises(ValueError, match="events_capacity"):
        ClientOptions(events_capacity=0)
    with pytest.raises(ValueError, match="intervals"):
        ClientOptions(fast_ping_interval=0.0)


def member(user: str, *, sessions: int = 1, connected: bool = True) -> Member:
    return Member(user, user.title(), "member", connected, sessions, False, None)


def entry(message_id: str, text: str = "hi") -> ChatEntry:
    return ChatEntry(message_id, "r1", "u1", "Ada", text, "2026-12-05T12:00:00Z")


ROOM = RoomInfo(
    "r1", "Film night", "u1", "movie", "tt0133093", False, False, 10, 2,
    RoomPlayback("paused", 0.0, 1.0, 0, None), "everyone",
    "2026-12-05T12:00:00Z", "2026-12-05T12:00:00Z", None,
)  # fmt: skip


def joined_snapshot(chat: int = 0) -> Joined:
    return Joined(
        session_id="s1",
        server_time=OFFSET,
        room=ROOM,
        playback=wire("paused", 3.0),
        participants=[member("ada"), member("bob")],
        chat=[entry(str(i)) for i in range(chat)],
        settings=SETTINGS,
        you=member("ada"),
    )


def test_room_view_follows_presence_chat_and_playback() -> None:
    view = RoomView(chat_history=3)
    view.install(joined_snapshot(chat=5))
    assert [m.id for m in view.chat] == ["2", "3", "4"]
    assert sorted(view.participants) == ["ada", "bob"]
    view.apply(Presence("joined", member("cy")))
    view.apply(Presence("disconnected", member("bob", sessions=0, connected=False)))
    view.apply(Presence("left", member("cy", sessions=0, connected=False)))
    view.apply(Presence("buffering", member("ada")))
    assert sorted(view.participants) == ["ada", "bob"]
    assert not view.participants["bob"].is_connected
    view.apply(ChatOut(entry("5")))
    assert [m.id for m in view.chat] == ["3", "4", "5"]
    newer = PlaybackChanged(wire(version=4), OFFSET, "play")
    assert view.apply(newer) == newer.playback
    assert view.apply(SyncCommand(wire(version=3), 3.0)) is None  # stale
    assert view.playback == newer.playback
    assert view.last_change == newer


async def test_events_drop_the_oldest_and_waiters_see_everything() -> None:
    hub = EventHub(capacity=2, history=3)
    messages: list[ServerMessage] = [ChatOut(entry(str(i))) for i in range(5)]
    for message in messages:
        hub.publish(message)
    assert hub.dropped == 3
    assert [hub.channel.receive_nowait(), hub.channel.receive_nowait()] == messages[3:]
    assert hub.received == 5
    # ``since`` looks back into the (bounded) history first
    assert await hub.wait_for(lambda m: True, 0.1, since=2) == messages[2]
    with pytest.raises(TimeoutError):
        await hub.wait_for(lambda m: True, 0.1, since=5)


async def test_a_waiter_gets_the_first_match_and_closing_fails_the_rest() -> None:
    hub = EventHub(capacity=4, history=4)
    got: list[ServerMessage] = []

    async def wait(predicate: Predicate) -> None:
        try:
            got.append(await hub.wait_for(predicate, 5.0))
        except SyncClosed as exc:
            got.append(ChatOut(entry("closed", str(exc))))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(wait, lambda m: isinstance(m, ChatOut) and m.message.id == "b")
        nursery.start_soon(wait, lambda m: False)
        await trio.testing.wait_all_tasks_blocked()
        hub.publish(ChatOut(entry("a")))
        hub.publish(ChatOut(entry("b")))
        await trio.testing.wait_all_tasks_blocked()
        hub.close(SyncClosed("bye"))
    assert got == [ChatOut(entry("b")), ChatOut(entry("closed", "bye"))]
    assert [hub.channel.receive_nowait() for _ in range(2)] == [
        ChatOut(entry("a")),
        ChatOut(entry("b")),
    ]
    with pytest.raises(trio.EndOfChannel):
        await hub.channel.receive()
    with pytest.raises(SyncClosed):
        await hub.wait_for(lambda m: True, 1.0)


# -- the client's decisions on received messages (no socket: messages fed by hand) -------
class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def client_at(clock: Clock, **options: Any) -> ClientCore:
    client = ClientCore(clock, None, ClientOptions(**options))
    client._estimator.add(ntp_sample(0.0, OFFSET, OFFSET, 0.0))  # server = local + OFFSET
    client._install(joined_snapshot())
    return client


def test_the_join_snapshot_positions_the_player() -> None:
    clock = Clock()
    client = client_at(clock)
    assert client.session_id == "s1"
    assert client.server_time() == OFFSET
    assert client.server_to_local(OFFSET + 2.0) == 2.0
    assert client.player.state.version == 1
    assert client.player.position(5.0) == client.room_position() == 3.0


def test_a_playback_message_is_scheduled_and_a_sync_command_applies_at_once() -> None:
    clock = Clock()
    client = client_at(clock)
    client._dispatch(
        PlaybackChanged(wire(position=3.0, anchor=OFFSET + 0.3, version=2), OFFSET + 0.3, "play")
    )
    assert client.player.pending_at == pytest.approx(0.3)
    assert client.player.state.version == 1  # the scheduler commits it at 0.3
    clock.now = 2.3
    assert client.room_position() == pytest.approx(5.0)
    assert client.player.position(2.3) == pytest.approx(5.0)
    client.player.update(2.3)
    client._dispatch(SyncCommand(wire(position=40.0, anchor=OFFSET + 2.0, version=2), 3.0))
    assert client.player.state.reason == "sync"  # committed at once, not scheduled
    assert client.player.position(2.3) == pytest.approx(40.3)
    assert client.received_count == 2


def test_presence_and_closing_update_the_client() -> None:
    client = client_at(Clock())
    client._dispatch(Presence("joined", member("cy")))
    assert sorted(client.participants) == ["ada", "bob", "cy"]
    client._dispatch(Closing("kicked", "bye"))
    assert client.close_reason == "kicked"


@pytest.mark.parametrize("local_resync", [False, True])
def test_drift_is_nudged_by_rate_and_resynced_only_when_asked(local_resync: bool) -> None:
    clock = Clock()
    client = client_at(clock, local_resync=local_resync)
    client._dispatch(PlaybackChanged(wire(position=0.0, anchor=OFFSET, version=2), OFFSET, "play"))
    clock.now = 1.0
    client.player.seek(1.3, now=1.0)  # 0.3 s ahead
    client._correct_drift()
    assert client.player.correction == pytest.approx(0.95)
    client.player.seek(4.0, now=1.0)  # 3 s ahead: beyond the threshold
    client._correct_drift()
    assert client.player.correction == 1.0
    expected = 1.0 if local_resync else 4.0
    assert client.player.position(1.0) == pytest.approx(expected)


async def test_closing_for_good_ends_the_events_and_fails_commands() -> None:
    client = client_at(Clock())
    client._finish()
    assert client.closed
    with pytest.raises(SyncClosed):
        await client.play()
    with pytest.raises(trio.EndOfChannel):
        await client.events().receive()
    with pytest.raises(ValueError, match="Seek"):
        await client.seek(-1.0)
