"""Sessions going away, timeouts and administration (same fixtures as ``test_room``)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from syncplayd.core import protocol
from syncplayd.core.room import (
    Broadcast,
    Command,
    Connect,
    Disconnect,
    Leave,
    Playback,
    RemoveUser,
    RoomState,
    SetControl,
    SetMuted,
    SetRole,
    SyncConfig,
    Tick,
    apply,
    new_room,
)
from tests.core.roomkit import (
    ANN,
    BOB,
    BOB_BUFFERING,
    NOW,
    PAUSED,
    PLAYING,
    WAITING,
    describe_all,
    room,
    session,
)

RESUMED = ["playback:resume@110.25", "persist:v6", "log:playback"]
RESUMED_AT_10 = Playback("playing", 10.0, 1.0, 110.25, 6, None)

LIFECYCLE: list[tuple[str, RoomState, Command, list[str]]] = [
    (
        "disconnect",
        room(PAUSED),
        Disconnect("bob"),
        ["presence:disconnected:bob -bob", "log:disconnected"],
    ),
    ("disconnect twice", room(PAUSED, ANN, session("bob", connected=False)), Disconnect("bob"), []),
    ("disconnect a stranger", room(PAUSED), Disconnect("ghost"), []),
    (
        "the blocker disconnects",
        room(WAITING, ANN, BOB_BUFFERING),
        Disconnect("bob"),
        ["presence:disconnected:bob -bob", "log:disconnected", *RESUMED],
    ),
    ("leave", room(PAUSED), Leave("bob"), ["presence:left:bob -bob", "log:left", "close:bob:left"]),
    (
        "leave after disconnecting",
        room(PAUSED, ANN, session("bob", connected=False)),
        Leave("bob"),
        ["presence:left:bob -bob", "log:left"],
    ),
    ("leave twice", room(PAUSED), Leave("ghost"), []),
    (
        "the blocker leaves",
        room(WAITING, ANN, BOB_BUFFERING),
        Leave("bob"),
        ["presence:left:bob -bob", "log:left", "close:bob:left", *RESUMED],
    ),
    (
        "remove a user",
        room(PAUSED),
        RemoveUser("bob", "kicked", "removed"),
        ["presence:left:bob -bob", "log:left", "close:bob:kicked"],
    ),
    (
        "remove a user with two devices, one of them disconnected",
        room(PAUSED, ANN, BOB, session("bob-tv", user_id="bob", connected=False)),
        RemoveUser("bob"),
        [
            "presence:left:bob -bob",
            "log:left",
            "close:bob:left",
            "presence:left:bob -bob-tv",
            "log:left",
        ],
    ),
    (
        "the blocker is removed",
        room(WAITING, ANN, BOB_BUFFERING),
        RemoveUser("bob", "kicked", "removed"),
        ["presence:left:bob -bob", "log:left", "close:bob:kicked", *RESUMED],
    ),
    ("remove a user who has no session", room(PAUSED), RemoveUser("zed"), []),
    ("control: moderators", room(PAUSED), SetControl("moderators"), ["log:control"]),
    ("control unchanged", room(PAUSED), SetControl("everyone"), []),
    # Told to everyone, Bob included; logged by the service, which knows who did it.
    ("promote", room(PAUSED), SetRole("bob", "moderator"), ["presence:role:bob:moderator"]),
    ("role unchanged", room(PAUSED), SetRole("bob", "member"), []),
    ("role of someone absent", room(PAUSED), SetRole("zed", "owner"), []),
    ("mute", room(PAUSED), SetMuted("bob", True), ["presence:muted:bob"]),
    ("unmute", room(PAUSED, ANN, session("bob", muted=True)), SetMuted("bob", False), [
        "presence:unmuted:bob"
    ]),
    ("mute unchanged", room(PAUSED), SetMuted("bob", False), []),
    ("mute someone absent", room(PAUSED), SetMuted("zed", True), []),
    # Muting a blocker changes nothing about the wait: a muted member still watches.
    ("mute the blocker", room(WAITING, ANN, BOB_BUFFERING), SetMuted("bob", True), [
        "presence:muted:bob"
    ]),
    # A banned user's sockets close with their own reason; the others see them leave.
    ("ban", room(PAUSED), RemoveUser("bob", "banned", "Ann banned you from the room for good"), [
        "presence:left:bob -bob", "log:left", "close:bob:banned"
    ]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("state", "command", "effects"), [pytest.param(*row[1:], id=row[0]) for row in LIFECYCLE]
)
def test_lifecycle(state: RoomState, command: Command, effects: list[str]) -> None:
    new, out = apply(state, command, NOW)
    assert describe_all(out) == effects
    if not effects:
        assert new is state


def test_disconnect_keeps_the_session_for_a_resume() -> None:
    new, _ = apply(room(PAUSED), Disconnect("bob"), NOW)
    assert new.sessions["bob"] == replace(BOB, connected=False)


def test_the_blocker_disconnecting_resumes_the_room() -> None:
    new, _ = apply(room(WAITING, ANN, BOB_BUFFERING), Disconnect("bob"), NOW)
    assert new.playback == RESUMED_AT_10
    assert not new.resume_playing


def test_leave_removes_the_session_and_reports_the_user() -> None:
    new, effects = apply(room(PAUSED), Leave("bob"), NOW)
    assert list(new.sessions) == ["ann"]
    first = effects[0]
    assert isinstance(first, Broadcast)
    assert first.message == protocol.Presence(
        event="left",
        member=protocol.Member("bob", "Bob", "member", False, 0, False, None),
        detail=None,
    )


def test_leaving_one_of_two_devices() -> None:
    state = room(PAUSED, ANN, session("ann-tv", user_id="ann", user_name="Ann"), BOB)
    _, effects = apply(state, Leave("ann-tv"), NOW)
    first = effects[0]
    assert isinstance(first, Broadcast) and isinstance(first.message, protocol.Presence)
    assert first.message.member.is_connected
    assert first.message.member.sessions == 1


def test_removing_a_user_removes_every_session_and_the_last_presence_has_none() -> None:
    state = room(PAUSED, ANN, session("ann-tv", user_id="ann", user_name="Ann"), BOB)
    new, effects = apply(state, RemoveUser("ann", "kicked", "removed"), NOW)
    assert list(new.sessions) == ["bob"]
    last = [e for e in effects if isinstance(e, Broadcast)][-1]
    assert isinstance(last.message, protocol.Presence)
    assert last.message.member.sessions == 0 and not last.message.member.is_connected


def test_a_mute_reaches_every_session_and_the_member_view() -> None:
    two_devices = room(PAUSED, ANN, session("ann-tv", user_id="ann", user_name="Ann"), BOB)
    muted, effects = apply(two_devices, SetMuted("ann", True), NOW)
    assert [s.muted for s in muted.sessions.values()] == [True, True, False]
    [told] = effects
    assert isinstance(told, Broadcast) and told.exclude is None
    assert told.message == protocol.Presence(
        event="muted",
        member=protocol.Member("ann", "Ann", "member", True, 2, False, 100.0, muted=True),
        detail=None,
    )
    unmuted, effects = apply(muted, SetMuted("ann", False), NOW)
    assert unmuted == two_devices
    [told] = effects
    assert isinstance(told, Broadcast) and isinstance(told.message, protocol.Presence)
    assert (told.message.event, told.message.member.muted) == ("unmuted", False)


def test_a_mute_comes_with_the_connect_and_a_new_device_brings_the_latest() -> None:
    """The shell reads the mute from storage at each join: the newest read wins for all."""
    state = room(PAUSED, ANN, BOB)
    state, _ = apply(state, Connect("bob-tv", "bob", "Bob", muted=True), NOW)
    assert [s.muted for s in state.sessions.values() if s.user_id == "bob"] == [True, True]
    state, _ = apply(state, Connect("bob-phone", "bob", "Bob", muted=False), NOW)
    assert {s.muted for s in state.sessions.values() if s.user_id == "bob"} == {False}


def test_set_control_and_role_change_the_state() -> None:
    new, _ = apply(room(PAUSED), SetControl("moderators"), NOW)
    assert new.control == "moderators"
    two_devices = room(PAUSED, ANN, session("ann-tv", user_id="ann", user_name="Ann"))
    new, _ = apply(two_devices, SetRole("ann", "moderator"), NOW)
    assert [s.role for s in new.sessions.values()] == ["moderator", "moderator"]


# -- tick ------------------------------------------------------------------------------

QUICK = SyncConfig(ready_timeout_seconds=10.0, disconnect_timeout_seconds=30.0)


def test_tick_with_nothing_due_rearms() -> None:
    state = room(PAUSED)
    new, effects = apply(state, Tick(), NOW)
    assert new == state
    assert describe_all(effects) == ["wake@130"]


def test_tick_in_an_empty_room_asks_for_nothing() -> None:
    state = new_room("r1")
    new, effects = apply(state, Tick(), NOW)
    assert (new, effects) == (state, [])


def test_idle_sessions_are_closed_and_marked_disconnected() -> None:
    state = room(PAUSED, ANN, session("bob", last_seen=80.0))
    new, effects = apply(state, Tick(), NOW)  # Bob is due at 110 exactly
    assert describe_all(effects) == [
        "close:bob:idle-timeout",
        "presence:disconnected:bob -bob",
        "log:idle_timeout",
        "wake@130",
    ]
    assert not new.sessions["bob"].connected


def test_the_ready_timeout_skips_and_names_the_member() -> None:
    state = room(WAITING, ANN, session("bob", buffering=True, buffering_since=100.0), config=QUICK)
    new, effects = apply(state, Tick(), NOW)  # due at 110
    assert describe_all(effects) == [
        "presence:not_ready_timeout:bob:Bob",
        "log:not_ready_timeout",
        *RESUMED,
        "wake@130",
    ]
    assert new.sessions["bob"].skipped and new.sessions["bob"].buffering
    assert new.playback == RESUMED_AT_10
    presence = effects[0]
    assert isinstance(presence, Broadcast) and presence.exclude is None  # Bob learns it too


def test_the_ready_timeout_waits_for_the_others() -> None:
    state = room(
        WAITING,
        ANN,
        session("bob", buffering=True, buffering_since=100.0),
        session("cat", buffering=True, buffering_since=105.0),
        config=QUICK,
    )
    new, effects = apply(state, Tick(), NOW)
    assert describe_all(effects) == [
        "presence:not_ready_timeout:bob:Bob",
        "log:not_ready_timeout",
        "wake@115",
    ]
    assert new.playback == WAITING


def test_an_idle_blocker_is_disconnected_not_skipped() -> None:
    state = room(WAITING, ANN, session("bob", buffering=True, buffering_since=90.0, last_seen=70.0))
    new, effects = apply(state, Tick(), NOW)
    assert describe_all(effects) == [
        "close:bob:idle-timeout",
        "presence:disconnected:bob -bob",
        "log:idle_timeout",
        *RESUMED,
        "wake@130",
    ]
    assert not new.sessions["bob"].skipped


def test_a_paused_room_waits_for_nobody() -> None:
    state = room(PAUSED, ANN, session("bob", buffering=True, buffering_since=0.0))
    new, effects = apply(state, Tick(), NOW)
    assert describe_all(effects) == ["wake@130"]
    assert not new.sessions["bob"].skipped


def test_a_playing_room_has_no_ready_deadline() -> None:
    late = session("bob", buffering=True, buffering_since=0.0, catching_up=True)
    _, effects = apply(room(PLAYING, ANN, late), Tick(), NOW)
    assert describe_all(effects) == ["wake@130"]
