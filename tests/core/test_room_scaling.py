"""What one session does costs the same in a room of thousands (issue 16), without timing.

Three kinds of evidence, none of them a stopwatch:

* reads: every session but the actor counts the reads of its fields, and the
  session table counts being iterated; a heartbeat, an RTT sample, a join, a
  leave... must read no other session and never walk the table;
* allocation: what a heartbeat allocates (``tracemalloc``) does not grow with the
  room, as it did when every heartbeat copied a dict of every session;
* consistency: the table's indexes (each user's sessions, the counts by kind, the
  earliest ``last_seen`` and ``buffering_since``) always equal what a scan of the
  sessions gives, over random scripts (hypothesis), as do the views built on them
  (``member``, ``blocking``, ``next_deadline``) and the old O(N) fold of members.
"""

from __future__ import annotations

import contextlib
import tracemalloc
from collections import Counter
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syncplayd.core import protocol
from syncplayd.core.clock import position_at
from syncplayd.core.room import (
    ROLES,
    Buffering,
    Command,
    Connect,
    Disconnect,
    Ended,
    Heartbeat,
    Leave,
    LoadItem,
    Pause,
    Play,
    Playback,
    Readiness,
    Ready,
    Refused,
    RemoveUser,
    RoomState,
    RttSample,
    Session,
    SetControl,
    SetRole,
    SetRoomRules,
    SyncConfig,
    Tick,
    apply,
    blocking,
    end_time,
    member,
    members,
    new_room,
    next_deadline,
)
from syncplayd.core.room._sessions import SessionTable, Tally

NOW = 1000.0
READS: Counter[str] = Counter()
"""Field reads per session id of :class:`Watched` sessions."""


class Watched(Session):
    """A session that counts every read of its fields in :data:`READS`."""

    __slots__ = ()

    def __getattribute__(self, name: str) -> Any:
        READS[object.__getattribute__(self, "session_id")] += 1
        return object.__getattribute__(self, name)


@pytest.fixture
def walks(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """How often a session table is iterated, by how (keys, values, items)."""
    counts: Counter[str] = Counter()
    for name in ("__iter__", "keys", "values", "items"):
        original = getattr(SessionTable, name)

        def counted(self: SessionTable, _name: str = name, _original: Any = original) -> Any:
            counts[_name] += 1
            return _original(self)

        monkeypatch.setattr(SessionTable, name, counted)
    return counts


def crowd(size: int, playback: Playback, kind: type[Session] = Watched) -> RoomState:
    """A room of ``size`` members (one session each, ``s0`` to ``s<size-1>``), seen lately."""
    sessions = {
        f"s{i}": kind(f"s{i}", f"u{i}", f"User {i}", rtt=0.05, last_seen=NOW - (i % 7) * 0.1)
        for i in range(size)
    }
    return RoomState(
        room_id="crowd",
        playback=playback,
        sessions=sessions,
        resume_playing=playback.state == "waiting",
        item_id="i1",
        duration=600.0,
    )


PLAYING = Playback("playing", 10.0, 1.0, NOW - 10.0, 3, "User 0")
PAUSED = Playback("paused", 10.0, 1.0, NOW - 10.0, 3, "User 0")
WAITING = Playback("waiting", 10.0, 1.0, NOW - 1.0, 3, "User 1")
ENDED = Playback("paused", 600.0, 1.0, NOW - 1.0, 3, None, ended=True)


def with_session(state: RoomState, session: Session) -> RoomState:
    return RoomState(
        room_id=state.room_id,
        playback=state.playback,
        sessions={**state.sessions, session.session_id: session},
        resume_playing=state.resume_playing,
        item_id=state.item_id,
        duration=state.duration,
        end_wait_until=state.end_wait_until,
    )


def in_step(state: RoomState, session_id: str, t: float) -> Heartbeat:
    """A heartbeat of ``session_id`` right where ``state``'s playback stands at ``t``."""
    return Heartbeat(session_id, position_at(state.playback, t), t, state.playback.version)


def waiting_for(size: int, *buffering: str) -> RoomState:
    """A waiting room whose ``buffering`` sessions buffer (and block) since a second ago."""
    state = crowd(size, WAITING)
    for sid in buffering:
        number = sid.removeprefix("s")
        name = f"User {number}"
        stalled = Watched(
            sid, f"u{number}", name, buffering=True, buffering_since=NOW - 1.0, last_seen=NOW
        )
        state = with_session(state, stalled)
    return state


def ended_room(size: int) -> RoomState:
    state = crowd(size, ENDED)
    return RoomState(
        room_id=state.room_id,
        playback=ENDED,
        sessions=state.sessions,
        item_id="i1",
        duration=600.0,
        end_wait_until=NOW + 10.0,
    )


def disconnected_s0(size: int) -> RoomState:
    state = crowd(size, PLAYING)
    return with_session(state, Watched("s0", "u0", "User 0", connected=False, last_seen=NOW - 5))


LATER = NOW + 1.0
CASES: list[tuple[str, RoomState, Command]] = [
    ("heartbeat in step", crowd(300, PLAYING), Heartbeat("s0", 21.0, LATER, 3)),
    ("heartbeat far off (sync)", crowd(300, PLAYING), Heartbeat("s0", 500.0, LATER, 3)),
    ("stale heartbeat", crowd(300, PLAYING), Heartbeat("s0", 500.0, LATER, 2)),
    ("heartbeat at the end", ended_room(300), Heartbeat("s0", 600.0, LATER, 3)),
    ("rtt sample", crowd(300, PLAYING), RttSample("s0", 0.08)),
    ("rtt sample over the limit", crowd(300, PLAYING), RttSample("s0", 5.0)),
    ("buffering while waiting", waiting_for(300, "s1"), Buffering("s0")),
    ("ready while another waits", waiting_for(300, "s0", "s1"), Ready("s0")),
    ("ended", ended_room(300), Ended("s0", "i1")),
    ("connect a new user", crowd(300, PLAYING), Connect("new", "u-new", "New", "member")),
    ("a second device", crowd(300, PLAYING), Connect("s0b", "u0", "User 0", "member")),
    ("reconnect", disconnected_s0(300), Connect("s0", "u0", "User 0", "member", resume=True)),
    ("disconnect", crowd(300, PLAYING), Disconnect("s0")),
    ("leave", crowd(300, PLAYING), Leave("s0")),
    ("remove a user", crowd(300, PLAYING), RemoveUser("u0", "kicked", "bye")),
    ("readiness", crowd(300, PAUSED), Readiness("s0", True)),
    ("role", crowd(300, PLAYING), SetRole("u0", "moderator")),
    ("tick with nothing due", crowd(300, PLAYING), Tick()),
    ("tick while waiting, nobody overdue", waiting_for(300, "s1"), Tick()),
]


@pytest.mark.parametrize(("state", "command"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_one_sessions_command_reads_no_other_session(
    state: RoomState, command: Command, walks: Counter[str]
) -> None:
    actor = {"s0", "s0b", "new"}
    READS.clear()
    apply(state, command, LATER)
    others = {sid: n for sid, n in READS.items() if sid not in actor}
    assert others == {}, f"read {len(others)} other sessions"
    assert walks == Counter(), "walked the session table"


def test_the_cases_do_what_they_say() -> None:
    """The read counts above mean something only if the commands took their full path."""
    outcome = {name: apply(state, command, LATER) for name, state, command in CASES}
    beat, effects = outcome["heartbeat in step"]
    assert effects == [] and beat.sessions["s0"].last_offset == 0.0
    synced = outcome["heartbeat far off (sync)"][1]
    assert [type(e).__name__ for e in synced] == ["SendTo"]
    assert outcome["stale heartbeat"][1] == []
    assert outcome["heartbeat at the end"][0].sessions["s0"].ended
    assert outcome["rtt sample over the limit"][0].sessions["s0"].latency_warned
    waiting, _ = outcome["buffering while waiting"]
    assert waiting.playback.state == "waiting" and waiting.sessions["s0"].buffering
    ready, _ = outcome["ready while another waits"]
    assert ready.playback.state == "waiting" and not ready.sessions["s0"].buffering
    assert "new" in outcome["connect a new user"][0].sessions
    assert outcome["reconnect"][0].sessions["s0"].connected
    assert "s0" not in outcome["leave"][0].sessions
    assert not outcome["disconnect"][0].sessions["s0"].connected
    assert outcome["role"][0].sessions["s0"].role == "moderator"
    for tick in ("tick with nothing due", "tick while waiting, nobody overdue"):
        assert [type(e).__name__ for e in outcome[tick][1]] == ["WakeAt"]


def test_a_heartbeat_allocates_no_more_in_a_room_of_ten_thousand() -> None:
    """Copying every session on each heartbeat allocated hundreds of KiB at this size."""
    peaks = {}
    for size in (10, 10_000):
        state = crowd(size, PLAYING, Session)
        state, _ = apply(state, in_step(state, "s3", LATER), LATER)  # first use: caches
        tracemalloc.start()
        try:
            tracemalloc.reset_peak()
            base, _ = tracemalloc.get_traced_memory()
            state, _ = apply(state, RttSample("s5", 0.04), LATER + 1)
            state, _ = apply(state, in_step(state, "s5", LATER + 1), LATER + 1)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        peaks[size] = peak - base
    assert peaks[10_000] < peaks[10] + 8 * 1024, peaks


def test_a_heartbeat_leaves_the_old_room_and_every_other_session_as_they_were() -> None:
    before = crowd(200, PLAYING, Session)
    snapshot = dict(before.sessions)
    after, _ = apply(before, in_step(before, "s7", LATER), LATER)
    assert dict(before.sessions) == snapshot and before.sessions["s7"].last_seen != LATER
    assert after.sessions["s7"].last_seen == LATER
    assert all(after.sessions[k] is v for k, v in snapshot.items() if k != "s7")
    assert list(after.sessions) == list(before.sessions)


# -- the table itself ----------------------------------------------------------------------


def test_the_table_keeps_arrival_order_and_reads_like_a_dict() -> None:
    a, b, c = (Session(x, "u" + x, x) for x in "abc")
    table = SessionTable.of({"a": a, "b": b})
    grown = table.put(c, Session("a", "ua", "A again"))
    assert list(grown) == ["a", "b", "c"] and grown["a"].user_name == "A again"
    assert list(table) == ["a", "b"] and table["a"] is a  # the old one is untouched
    shrunk = grown.without("a", "missing")
    assert list(shrunk.items()) == [("b", b), ("c", c)] and "a" not in shrunk
    assert list(shrunk.put(a)) == ["b", "c", "a"]  # back in: the newest arrival
    assert shrunk == {"b": b, "c": c} and shrunk != {"b": b}
    assert MappingProxyType(shrunk).copy() is shrunk
    assert shrunk.get("a") is None and shrunk.get("b") is b and len(shrunk) == 2


def test_a_clock_going_back_keeps_the_deadline_exact() -> None:
    """Times are placed in order of the commands; one from the past must still count."""
    state = crowd(5, PAUSED, Session)
    state, _ = apply(state, in_step(state, "s1", NOW + 50), NOW + 50)
    state, _ = apply(state, Disconnect("s0"), NOW + 50)
    for sid in ("s2", "s3", "s4"):
        state, _ = apply(state, in_step(state, sid, NOW + 60), NOW + 60)
    assert next_deadline(state) == NOW + 50 + 30
    state, _ = apply(state, in_step(state, "s2", NOW + 20), NOW + 20)  # back in time
    assert next_deadline(state) == naive_next_deadline(state) == NOW + 20 + 30


# -- random scripts: the indexes always equal a scan -----------------------------------------


def naive_next_deadline(state: RoomState) -> float | None:
    """``next_deadline`` as it was: a scan of every session."""
    config = state.config
    timeout = config.disconnect_timeout_seconds
    times = [s.last_seen + timeout for s in state.sessions.values() if s.connected]
    if state.playback.state == "waiting":
        times += [
            s.buffering_since + config.ready_timeout_seconds
            for s in state.sessions.values()
            if state.waits_for(s) and s.buffering_since is not None
        ]
    end = end_time(state)
    if end is not None:
        times.append(end)
    if state.end_wait_until is not None:
        times.append(state.end_wait_until)
    return min(times, default=None)


def naive_tally(sessions: list[Session]) -> Tally:
    hosts = [s for s in sessions if s.role != "member"]
    plain = [s for s in sessions if s.role == "member"]
    return Tally(
        blocking_hosts=sum(s.blocks for s in hosts),
        blocking_members=sum(s.blocks for s in plain),
        unended_hosts=sum(s.counts and not s.ended for s in hosts),
        unended_members=sum(s.counts and not s.ended for s in plain),
        unready=sum(s.connected and not s.ready for s in sessions),
        ready=sum(s.ready for s in sessions),
    )


def assert_consistent(state: RoomState) -> None:
    table = state.table
    sessions = list(state.sessions.values())
    assert list(table) == list(state.sessions) and len(table) == len(sessions)
    by_user: dict[str, list[Session]] = {}
    for s in sessions:
        by_user.setdefault(s.user_id, []).append(s)
    assert {u: table.of_user(u) for u in by_user} == by_user
    assert set(table._by_user) == set(by_user)  # no user left behind with no sessions
    assert table.tally == naive_tally(sessions)
    connected = [s.last_seen for s in sessions if s.connected]
    assert table.oldest_seen() == min(connected, default=None)
    for hosts_only in (True, False):
        stalls = [
            s.buffering_since
            for s in sessions
            if s.blocks and s.buffering_since is not None and (s.role != "member" or not hosts_only)
        ]
        assert table.first_stall(hosts_only=hosts_only) == min(stalls, default=None)
    # The views built on them.
    assert blocking(state) == [s for s in sessions if state.waits_for(s)]
    assert next_deadline(state) == naive_next_deadline(state)
    folded = {m.user_id: m for m in members(state)}  # the O(N) fold, as it always was
    for sid, s in state.sessions.items():
        if sid == s.session_id:
            assert member(state, sid) == folded[s.user_id]


DEVICES = {"a": "u1", "d": "u1", "b": "u2", "e": "u2", "c": "u3"}
KINDS = [
    "connect", "connect", "disconnect", "leave", "remove", "heartbeat", "heartbeat", "rtt",
    "buffering", "buffering", "buffering", "ready", "ready", "role", "tick", "play", "play",
    "pause", "control", "rules", "load", "ended", "readiness",
]  # fmt: skip
Step = tuple[float, str, str, bool, int]
steps = st.lists(
    st.tuples(
        st.sampled_from([0.0, 0.5, 2.0, 2.0, 9.0, 40.0, -3.0]),  # now and then the clock goes back
        st.sampled_from(KINDS),
        st.sampled_from(sorted(DEVICES)),
        st.booleans(),
        st.integers(min_value=0, max_value=5),
    ),
    max_size=50,
)


def command_for(step: Step, state: RoomState, now: float) -> Command:
    _, kind, sid, flag, n = step
    user = DEVICES[sid]
    match kind:
        case "connect":
            return Connect(sid, user, user.upper(), ROLES[n % 3], resume=flag)
        case "disconnect":
            return Disconnect(sid)
        case "leave":
            return Leave(sid)
        case "remove":
            return RemoveUser(user, "left", "bye")
        case "heartbeat":
            position = position_at(state.playback, now) + (5.0 if flag else 0.0)
            return Heartbeat(sid, min(position, protocol.MAX_POSITION), now, state.playback.version)
        case "rtt":
            return RttSample(sid, n / 4)
        case "buffering":
            return Buffering(sid)
        case "ready":
            return Ready(sid)
        case "role":
            return SetRole(user, ROLES[n % 3])
        case "tick":
            return Tick()
        case "play":
            return Play(sid)
        case "pause":
            return Pause(sid)
        case "control":
            return SetControl("moderators" if flag else "everyone")
        case "rules":
            return SetRoomRules(("always", "policy", "never")[n % 3], flag)
        case "load":
            return LoadItem(f"i{n}", [None, 20.0, 90.0][n % 3])
        case "ended":
            return Ended(sid, state.item_id or "i0")
        case _:
            return Readiness(sid, flag)


@settings(max_examples=300, deadline=None)
@given(steps)
def test_the_indexes_always_equal_a_scan_of_the_sessions(script: list[Step]) -> None:
    config = SyncConfig(ready_timeout_seconds=8.0, disconnect_timeout_seconds=30.0)
    state = new_room("r", config=config, item_id="i0", duration=60.0)
    # Everyone in (two users on two devices), playing: scripts start where waits happen.
    for i, (sid, user) in enumerate(sorted(DEVICES.items())):
        state, _ = apply(state, Connect(sid, user, user.upper(), ROLES[i % 3]), 0.0)
    state, _ = apply(state, Play("a"), 0.0)
    now = 0.0
    for step in script:
        now += step[0]
        command = command_for(step, state, now)
        with contextlib.suppress(Refused):  # a refused command leaves the room as it was
            state, _ = apply(state, command, now)
        assert_consistent(state)


@pytest.mark.parametrize("state", [c[1] for c in CASES], ids=[c[0] for c in CASES])
def test_a_room_built_from_a_dict_is_consistent(state: RoomState) -> None:
    assert_consistent(state)
