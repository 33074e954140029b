"""Reading rooms (snapshots, members, deadlines) and building or restoring them."""

from __future__ import annotations

import importlib
import math
from types import MappingProxyType
from typing import Any

import pytest

from syncplayd.core import protocol
from syncplayd.core.room import (
    CONTROL_MODES,
    ROLES,
    Connect,
    Playback,
    RoomState,
    SyncConfig,
    apply,
    blocking,
    is_control_mode,
    is_role,
    member,
    members,
    new_room,
    next_deadline,
    restore_playback,
    snapshot,
    sync_settings,
)
from syncplayd.storage.records import PlaybackState, Role
from tests.core.roomkit import (
    ANN,
    BOB,
    BOB_BUFFERING,
    NOW,
    PAUSED,
    PLAYING,
    SCHEDULED,
    WAITING,
    room,
    session,
)

# -- snapshot --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("playback", "expected"),
    [
        # Re-anchored at now: same meaning, fresher numbers.
        (PLAYING, protocol.PlaybackWire("playing", 20.0, 1.0, NOW, 5, "Ann")),
        # A scheduled start must keep its anchor, or the wait would be lost.
        (SCHEDULED, protocol.PlaybackWire("playing", 10.0, 1.0, 115.0, 5, "Ann")),
        (PAUSED, protocol.PlaybackWire("paused", 10.0, 1.0, 100.0, 5, "Ann")),
        (WAITING, protocol.PlaybackWire("waiting", 10.0, 1.0, 100.0, 5, "Bob")),
    ],
)
def test_snapshot(playback: Playback, expected: protocol.PlaybackWire) -> None:
    assert snapshot(room(playback), NOW) == expected


# -- members ---------------------------------------------------------------------------


def test_members_fold_a_users_sessions() -> None:
    state = room(
        PAUSED,
        session("ann", rtt=0.2),
        session("bob", connected=False, rtt=5.0, buffering=True),
        session("ann-tv", user_id="ann", user_name="Ann", rtt=0.3, buffering=True),
        session("ann-old", user_id="ann", user_name="Ann", connected=False, rtt=9.0),
    )
    assert members(state) == [
        protocol.Member("ann", "Ann", "member", True, 2, True, 150.0),
        protocol.Member("bob", "Bob", "member", False, 0, False, None),
    ]
    assert member(state, "ann-old") == members(state)[0]
    assert member(state, "bob") == members(state)[1]


def test_member_of_a_stranger() -> None:
    with pytest.raises(KeyError):
        member(room(PAUSED), "ghost")


def test_members_of_an_empty_room() -> None:
    assert members(new_room("r1")) == []


def test_blocking() -> None:
    late = session("cat", buffering=True, catching_up=True)
    assert blocking(room(PAUSED, ANN, BOB_BUFFERING, late)) == [BOB_BUFFERING]


# -- deadlines -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "deadline"),
    [
        (new_room("r1"), None),
        (room(PAUSED, session("ann", connected=False)), None),
        (room(PAUSED, ANN, session("bob", last_seen=90.0)), 120.0),
        # The ready timeout counts only while the room waits.
        (room(PAUSED, ANN, session("bob", buffering=True, buffering_since=50.0)), 130.0),
        (room(WAITING, ANN, session("bob", buffering=True, buffering_since=50.0)), 80.0),
        (
            room(
                WAITING,
                ANN,
                session("bob", buffering=True, buffering_since=50.0, skipped=True),
            ),
            130.0,
        ),
    ],
)
def test_next_deadline(state: RoomState, deadline: float | None) -> None:
    assert next_deadline(state) == deadline


# -- building --------------------------------------------------------------------------


def test_new_room_defaults() -> None:
    state = new_room("r1")
    assert state == RoomState(room_id="r1")
    assert state.playback == Playback("paused", 0.0, 1.0, 0.0, 0, None)
    assert (state.control, state.config, dict(state.sessions)) == ("everyone", SyncConfig(), {})


def test_new_room_with_everything() -> None:
    config = SyncConfig(threshold_seconds=1.0)
    state = new_room("r1", PLAYING, config, "moderators")
    assert (state.playback, state.config, state.control) == (PLAYING, config, "moderators")
    assert not state.resume_playing


def test_a_new_room_cannot_wait() -> None:
    with pytest.raises(ValueError, match="waiting"):
        new_room("r1", WAITING)


def test_room_sessions_are_read_only() -> None:
    given = {"ann": ANN}
    state = RoomState(room_id="r1", sessions=given)
    given["bob"] = BOB  # the caller's dict no longer matters
    assert list(state.sessions) == ["ann"]
    assert isinstance(state.sessions, MappingProxyType)
    with pytest.raises(TypeError):
        state.sessions["bob"] = BOB  # type: ignore[index]


@pytest.mark.parametrize(
    "changes",
    [
        {"threshold_seconds": 0.0},
        {"ready_timeout_seconds": -1.0},
        {"disconnect_timeout_seconds": math.inf},
        {"max_latency_ms": math.nan},
        {"min_lead": 2.0, "max_lead": 1.0},
        {"min_lead": -0.1},
        {"max_lead": math.inf},
        {"lead_margin": -0.01},
        {"max_rate_correction": 0.0},
        {"max_rate_correction": 1.0},
    ],
)
def test_sync_config_refuses_nonsense(changes: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"must|need"):
        SyncConfig(**changes)


def test_sync_settings() -> None:
    state = new_room("r1", config=SyncConfig(threshold_seconds=1.5), control="moderators")
    assert sync_settings(state, heartbeat_interval=5.0) == protocol.SyncSettings(
        heartbeat_interval=5.0,
        threshold_seconds=1.5,
        max_latency_ms=500.0,
        ready_timeout_seconds=30.0,
        disconnect_timeout_seconds=30.0,
        max_rate_correction=0.05,
        control="moderators",
    )


def test_names_match_storage() -> None:
    assert set(ROLES) == {role.value for role in Role}
    assert all(is_role(role) for role in Role)
    assert not is_role("admin")
    assert CONTROL_MODES == ("everyone", "moderators")
    assert is_control_mode("moderators") and not is_control_mode("owners")


# -- restoring -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stored", "elapsed", "expected"),
    [
        # Playing: moves on by the time the server was away, at the stored rate.
        ("playing", 60.0, Playback("playing", 190.0, 2.0, NOW, 8, "Ann")),
        # A start that was still scheduled when stored: no time has passed for it.
        ("playing", -0.5, Playback("playing", 70.0, 2.0, NOW, 8, "Ann")),
        ("paused", 60.0, Playback("paused", 70.0, 2.0, NOW, 8, "Ann")),
        # The members it waited for are gone too: come back paused, lose nothing.
        ("waiting", 60.0, Playback("paused", 70.0, 2.0, NOW, 8, "Ann")),
        (PlaybackState.PLAYING, 1.0, Playback("playing", 72.0, 2.0, NOW, 8, "Ann")),
    ],
)
def test_restore_playback(stored: str, elapsed: float, expected: Playback) -> None:
    restored = restore_playback(
        state=stored,
        position=70.0,
        rate=2.0,
        version=7,
        elapsed_seconds=elapsed,
        now=NOW,
        set_by="Ann",
    )
    assert restored == expected
    new_room("r1", restored)  # always a valid room


def test_restore_never_passes_the_longest_position() -> None:
    restored = restore_playback(
        state="playing",
        position=protocol.MAX_POSITION - 1,
        rate=4.0,
        version=0,
        elapsed_seconds=10.0,
        now=NOW,
    )
    assert restored.position == protocol.MAX_POSITION
    assert restored.set_by is None


def test_restore_refuses_unknown_states() -> None:
    with pytest.raises(ValueError, match="stopped"):
        restore_playback(state="stopped", position=0, rate=1, version=0, elapsed_seconds=0, now=NOW)


# -- the surface the server shell builds on ------------------------------------------------

PUBLIC = {
    "syncplayd.core.clock": (
        "position_at ntp_sample Sample ClockEstimator lead_time ema classify_drift "
        "DriftAction DriftSeek DriftRate DriftNone"
    ),
    "syncplayd.core.room": (
        "RoomState Playback Session SyncConfig Connect Disconnect Leave Play Pause Seek "
        "SetRate Buffering Ready Heartbeat RttSample Tick SetControl SetRole SetMuted Broadcast "
        "SendTo "
        "PersistPlayback LogEvent CloseSession WakeAt apply Refused new_room snapshot members "
        "member restore_playback sync_settings next_deadline Command Effect"
    ),
    "syncplayd.testing": "RoomHarness assert_invariants",
}


@pytest.mark.parametrize(("module", "names"), PUBLIC.items())
def test_public_names(module: str, names: str) -> None:
    imported = importlib.import_module(module)
    missing = [name for name in names.split() if not hasattr(imported, name)]
    assert not missing


def test_a_desktop_session_makes_a_desktop_member() -> None:
    state, _ = apply(room(PAUSED), Connect("dee-1", "dee", "Dee", desktop=True), NOW)
    state, _ = apply(state, Connect("eve-1", "eve", "Eve"), NOW)
    assert member(state, "dee-1").desktop is True
    assert member(state, "eve-1").desktop is False
    assert [m.desktop for m in members(state)] == [False, False, True, False]
