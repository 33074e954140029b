"""A play's or seek's lead comes from the worst round trip the session table keeps.

``room_lead`` used to visit every session of the room on every play and seek.
The table now carries the largest round trip of its connected sessions, kept up
to date by ``put`` and ``without`` and rescanned only after its holder fell or
went away (once, then remembered). Here:

* the table's answer always equals the maximum over its sessions, over random
  puts and removals (hypothesis), whether it is asked after every change or
  only now and then (so that stale answers are carried from table to table);
* no ``put`` or ``without`` scans, and a scan happens once per stale table;
* ``room_lead`` equals the old scan for random rooms and random scripts;
* a play or a seek in a room of 1,000 reads no other session (the counting
  sessions of ``test_room_scaling``).
"""

from __future__ import annotations

import contextlib
import math
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syncplayd.core.clock import lead_time
from syncplayd.core.room import (
    ROLES,
    Connect,
    Pause,
    Play,
    Refused,
    RoomState,
    RttSample,
    Seek,
    Session,
    SyncConfig,
    _sessions,
    apply,
    new_room,
)
from syncplayd.core.room._sessions import SessionTable
from syncplayd.core.room._transitions import room_lead
from tests.core.roomkit import PAUSED as KIT_PAUSED
from tests.core.roomkit import room, session
from tests.core.test_room_scaling import (
    DEVICES,
    NOW,
    PAUSED,
    PLAYING,
    READS,
    Step,
    Watched,
    command_for,
    crowd,
    steps,
    with_session,
)
from tests.core.test_room_scaling import walks as walks  # the fixture, shared


def naive_worst(table: SessionTable) -> float | None:
    """The largest round trip of a connected session, by a scan (NaN ignored)."""
    rtts = [
        s.rtt for s in table.values() if s.connected and s.rtt is not None and not math.isnan(s.rtt)
    ]
    return max(rtts, default=None)


def naive_lead(state: RoomState) -> float:
    """``room_lead`` as it was: every session of the room visited."""
    config = state.config
    rtts = (s.rtt for s in state.sessions.values() if s.connected and s.rtt is not None)
    return lead_time(
        rtts, minimum=config.min_lead, maximum=config.max_lead, margin=config.lead_margin
    )


# -- the table -------------------------------------------------------------------------------

KEYS = ["a", "b", "c", "d", "e"]
rtts = st.one_of(
    st.none(),
    st.just(math.nan),
    st.sampled_from([0.0, 0.5, 3.0]),  # ties with the holder
    st.floats(min_value=0.0, max_value=3.0),
)
sessions = st.builds(
    lambda key, user, rtt, connected: Session(key, user, key.upper(), rtt=rtt, connected=connected),
    st.sampled_from(KEYS),
    st.sampled_from(["u1", "u2"]),
    rtts,
    st.booleans(),
)
Change = tuple[bool, list[Session], bool]
"""(a put, else a removal; the sessions put or whose keys go; whether the lazy table is asked)."""
changes = st.lists(
    st.tuples(st.booleans(), st.lists(sessions, min_size=1, max_size=3), st.booleans()),
    max_size=40,
)


def change(table: SessionTable, step: Change) -> SessionTable:
    is_put, chosen, _ = step
    if is_put:
        return table.put(*chosen)
    return table.without(*(s.session_id for s in chosen))


@settings(max_examples=400, deadline=None)
@given(st.lists(sessions, max_size=5), changes)
def test_the_worst_rtt_always_equals_a_scan(first: list[Session], script: list[Change]) -> None:
    # Two tables through the same changes: one asked after each (always known when
    # changed), one only now and then (changed while stale, carried on stale).
    eager = lazy = SessionTable.of({s.session_id: s for s in first})
    assert eager.worst_rtt() == naive_worst(eager)
    for step in script:
        eager, lazy = change(eager, step), change(lazy, step)
        assert eager.worst_rtt() == naive_worst(eager)
        if step[2]:
            assert lazy.worst_rtt() == naive_worst(lazy)
        assert lazy == eager and lazy == dict(eager.items())  # the memo is not the value
    assert lazy.worst_rtt() == naive_worst(lazy) == eager.worst_rtt()


@pytest.fixture
def scans(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """How often a table scanned its sessions for the worst round trip."""
    counts: Counter[str] = Counter()
    original: Callable[..., Any] = _sessions._scan_worst

    def counted(*args: Any) -> Any:
        counts["scan"] += 1
        return original(*args)

    monkeypatch.setattr(_sessions, "_scan_worst", counted)
    return counts


def test_changes_never_scan_and_a_stale_table_scans_once(scans: Counter[str]) -> None:
    table = SessionTable.of(
        {f"s{i}": Session(f"s{i}", f"u{i}", f"U{i}", rtt=i / 1000) for i in range(1000)}
    )
    assert table.worst_rtt() == 0.999 and scans["scan"] == 0
    table = table.put(Session("s5", "u5", "U5", rtt=2.0))  # a new worst
    assert table.worst_rtt() == 2.0
    fell = table.put(Session("s5", "u5", "U5", rtt=0.1))  # the holder falls: stale
    for i in range(0, 1000, 7):  # heartbeats of others, on a stale table
        fell = fell.put(Session(f"s{i}", f"u{i}", f"U{i}", rtt=i / 2000))
    assert scans["scan"] == 0
    assert fell.worst_rtt() == fell.worst_rtt() == naive_worst(fell) and scans["scan"] == 1
    after = fell.put(Session("s1", "u1", "U1", rtt=0.01))
    assert after.worst_rtt() == naive_worst(after) and scans["scan"] == 1  # carried on
    holder = max(after.values(), key=lambda s: s.rtt or 0.0)
    gone = after.without(holder.session_id)
    off = after.put(Session(holder.session_id, holder.user_id, "Off", rtt=9.0, connected=False))
    assert scans["scan"] == 1
    assert gone.worst_rtt() == naive_worst(gone) and off.worst_rtt() == naive_worst(off)
    assert scans["scan"] == 3
    assert SessionTable.of({}).worst_rtt() is None and table.put().worst_rtt() == 2.0


def test_nan_and_disconnected_round_trips_do_not_count() -> None:
    nan = Session("a", "u1", "A", rtt=math.nan)
    away = Session("b", "u2", "B", rtt=1.0, connected=False)
    table = SessionTable.of({"a": nan, "b": away})
    assert table.worst_rtt() is None
    table = table.put(Session("c", "u3", "C", rtt=0.2))
    assert table.worst_rtt() == 0.2
    assert table.put(Session("c", "u3", "C", rtt=math.nan)).worst_rtt() is None


# -- room_lead ------------------------------------------------------------------------------

configs = st.builds(
    lambda low, span, margin: SyncConfig(min_lead=low, max_lead=low + span, lead_margin=margin),
    st.floats(min_value=0.0, max_value=1.0),
    st.floats(min_value=0.0, max_value=2.0),
    st.floats(min_value=0.0, max_value=0.5),
)
members = st.lists(
    st.builds(
        lambda sid, rtt, connected: session(sid, rtt=rtt, connected=connected),
        st.sampled_from(KEYS),
        rtts,
        st.booleans(),
    ),
    unique_by=lambda s: s.session_id,
    max_size=5,
)


@settings(max_examples=300, deadline=None)
@given(members, configs)
def test_room_lead_equals_the_old_scan(chosen: list[Session], config: SyncConfig) -> None:
    state = room(KIT_PAUSED, *chosen, config=config)
    assert room_lead(state) == naive_lead(state)


@settings(max_examples=200, deadline=None)
@given(steps)
def test_room_lead_equals_the_old_scan_along_random_scripts(script: list[Step]) -> None:
    state = new_room("r", item_id="i0", duration=60.0)
    for i, (sid, user) in enumerate(sorted(DEVICES.items())):
        state, _ = apply(state, Connect(sid, user, user.upper(), ROLES[i % 3]), 0.0)
        state, _ = apply(state, RttSample(sid, i / 3), 0.0)
    now = 0.0
    for step in script:
        now += step[0]
        with contextlib.suppress(Refused):  # a refused command leaves the room as it was
            state, _ = apply(state, command_for(step, state, now), now)
        assert room_lead(state) == naive_lead(state)


# -- a play or a seek reads no other session -------------------------------------------------

LATER = NOW + 1.0
SLOWEST = Watched("s700", "u700", "User 700", rtt=0.9, last_seen=NOW)


def slow_room(playback: Any) -> RoomState:
    """A room of 1,000 counting sessions, round trips 0.05 s but ``s700``'s 0.9 s."""
    return with_session(crowd(1000, playback), SLOWEST)


@pytest.mark.parametrize(
    ("state", "command"),
    [(slow_room(PAUSED), Play("s0")), (slow_room(PLAYING), Seek("s0", 30.0))],
    ids=["play", "seek while playing"],
)
def test_a_play_or_seek_reads_no_other_session(
    state: RoomState, command: Play | Seek, walks: Counter[str]
) -> None:
    READS.clear()
    after, _ = apply(state, command, LATER)
    others = {sid: n for sid, n in READS.items() if sid != "s0"}
    assert others == {}, f"read {len(others)} other sessions"
    assert walks == Counter(), "walked the session table"
    # Scheduled by s700's round trip, which it did not read.
    assert after.playback.state == "playing"
    assert after.playback.anchor == LATER + naive_lead(state)
    assert naive_lead(state) == pytest.approx(0.9 + 0.05)


def test_after_the_worst_falls_one_play_scans_and_the_next_ones_do_not() -> None:
    state, _ = apply(slow_room(PLAYING), RttSample("s700", 0.0), LATER)  # 0.9 -> 0.72
    state, _ = apply(state, Pause("s0"), LATER)
    READS.clear()
    state, _ = apply(state, Play("s0"), LATER)
    others = {sid: n for sid, n in READS.items() if sid != "s0"}
    assert len(others) == 999 and max(others.values()) <= 2  # one scan, a field or two each
    lead = naive_lead(state)
    assert state.playback.anchor == LATER + lead and lead == pytest.approx(0.72 + 0.05)
    for command in (Seek("s0", 40.0), Pause("s0"), Play("s0")):
        READS.clear()
        state, _ = apply(state, command, LATER)
        assert {sid for sid in READS if sid != "s0"} == set(), command
    assert state.playback.anchor == LATER + lead
