"""``MemberList``: the joiner's member list, updated per changed user, must be exactly the
list made afresh from the room (``engine.members``), whatever happened in between."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syncplayd.core import protocol
from syncplayd.core import room as engine
from syncplayd.core.room import RoomState, Session
from syncplayd.server.live.member_list import MemberList

ROLES: dict[str, engine.Role] = {f"u{i}": ("owner", "moderator", "member")[i % 3] for i in range(6)}


def afresh(state: RoomState) -> str:
    return "[" + ",".join(protocol.encode_member(m).decode() for m in engine.members(state)) + "]"


@st.composite
def sessions(draw: st.DrawFn, key: str, user: str | None = None) -> Session:
    """A session of ``user`` (or any), in a state the engine could leave it in."""
    user = user or draw(st.sampled_from(sorted(ROLES)))
    buffering = draw(st.booleans())
    return Session(
        session_id=key,
        user_id=user,
        user_name=user.upper(),
        role=ROLES[user],
        connected=draw(st.sampled_from([True, True, False])),
        buffering=buffering,
        buffering_since=100.0 if buffering else None,
        catching_up=draw(st.booleans()),
        ready=user in {"u1", "u4"},  # the user's: every session of the user agrees
        ended=draw(st.booleans()),
        rtt=draw(st.none() | st.floats(0.0, 2.0)),
        last_seen=100.0,
        desktop=draw(st.booleans()),
    )


def with_table(state: RoomState, table: engine.SessionTable) -> RoomState:
    return dataclasses.replace(state, sessions=table)


STEPS = st.sampled_from(["heartbeat", "device", "arrive", "leave", "reuse", "rules", "read"])


@settings(max_examples=300)
@given(st.data())
def test_the_list_kept_up_to_date_is_the_list_made_afresh(data: st.DataObject) -> None:
    state = engine.new_room("r", engine.Playback())
    states = [state]
    members = MemberList()
    assert members.json(state) == "[]"
    for n in range(data.draw(st.integers(1, 40))):
        table = state.table
        keys = list(table)
        step = data.draw(STEPS)
        if step == "heartbeat" and keys:  # a session replaced, same user
            key = data.draw(st.sampled_from(keys))
            state = with_table(state, table.put(data.draw(sessions(key, table[key].user_id))))
        elif step == "device" and keys:  # another session of a user already there
            user = table[data.draw(st.sampled_from(keys))].user_id
            state = with_table(state, table.put(data.draw(sessions(f"d{n}", user))))
        elif step == "arrive":  # anyone, there or not (several at once, sometimes)
            count = data.draw(st.integers(1, 3))
            new = [data.draw(sessions(f"a{n}.{i}")) for i in range(count)]
            state = with_table(state, table.put(*new))
        elif step == "leave" and keys:
            gone = data.draw(st.lists(st.sampled_from(keys), min_size=1, max_size=3))
            state = with_table(state, table.without(*gone))
        elif step == "reuse" and keys:  # a key given to another user (moves users)
            key = data.draw(st.sampled_from(keys))
            state = with_table(state, table.put(data.draw(sessions(key))))
        elif step == "rules":
            state = dataclasses.replace(
                state,
                control=data.draw(st.sampled_from(engine.CONTROL_MODES)),
                wait_for_slow_members=data.draw(st.sampled_from(["always", "policy", "never"])),
            )
        elif step == "read" and len(states) > 1:  # an older room state: another branch
            state = data.draw(st.sampled_from(states))
        states.append(state)
        if data.draw(st.booleans()):
            assert members.json(state) == afresh(state)
    assert members.json(state) == afresh(state)


def test_a_join_flood_encodes_only_the_users_who_changed(monkeypatch: pytest.MonkeyPatch) -> None:
    # 200 arrivals, the list read after each: each read encodes the newcomer alone (and
    # the user a heartbeat changed), not everyone before it.
    encoded: list[str] = []
    real = protocol.encode_member

    def counting(member: protocol.Member) -> bytes:
        encoded.append(member.user_id)
        return real(member)

    monkeypatch.setattr(protocol, "encode_member", counting)
    state = engine.new_room("r", engine.Playback())
    members = MemberList()
    for i in range(200):
        arrival = Session(session_id=f"s{i}", user_id=f"u{i}", user_name=f"U{i}", last_seen=1.0)
        state = with_table(state, state.table.put(arrival))
        if i:  # and the one before it sends a heartbeat
            before = state.table[f"s{i - 1}"]
            state = with_table(state, state.table.put(dataclasses.replace(before, rtt=0.01)))
        encoded.clear()
        listed = members.json(state)
        assert sorted(encoded) == sorted({f"u{i}", f"u{max(0, i - 1)}"}), i
    assert listed == afresh(state)
