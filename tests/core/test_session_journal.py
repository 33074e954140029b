"""``SessionTable.changes_since``: which users changed between two tables of one room."""

from __future__ import annotations

import dataclasses

from syncplayd.core.room import Session
from syncplayd.core.room._sessions import EMPTY, JOURNAL_MIN_ENTRIES, SessionTable


def session(key: str, user: str, rtt: float | None = None) -> Session:
    return Session(session_id=key, user_id=user, user_name=user.upper(), rtt=rtt)


def test_each_user_is_reported_with_how_in_the_order_of_the_changes() -> None:
    start = EMPTY.put(session("a", "ann"), session("b", "bob"))
    table = start.put(session("c", "cid"))  # arrives
    table = table.put(session("a", "ann", rtt=0.1))  # a heartbeat
    table = table.put(session("a2", "ann"))  # a second device
    table = table.without("b")  # leaves
    table = table.put(session("b", "bob"))  # and comes back: listed last now
    assert table.changes_since(start) == [
        ("cid", "arrived"),
        ("ann", "changed"),
        ("ann", "changed"),
        ("bob", "gone"),
        ("bob", "arrived"),
    ]
    assert table.changes_since(table) == []


def test_unknown_when_not_made_from_the_earlier_table() -> None:
    start = EMPTY.put(session("a", "ann"))
    one, other = start.put(session("b", "bob")), start.put(session("c", "cid"))
    assert other.changes_since(one) is None  # a branch
    assert start.changes_since(one) is None  # going back
    assert SessionTable.of(dict(one.items())).changes_since(one) is None  # a copy
    # Two rooms that both started empty do not share a journal.
    assert EMPTY.put(session("a", "ann")).changes_since(EMPTY.put(session("x", "xi"))) is None


def test_unknown_when_a_change_moved_a_user_in_the_order() -> None:
    start = EMPTY.put(session("a", "ann"), session("b", "bob"), session("a2", "ann"))
    # Ann's first session leaves: she is now listed after Bob.
    assert start.without("a").changes_since(start) is None
    # A key given to another user.
    assert start.put(session("b", "cid")).changes_since(start) is None
    # Her second one leaving moves nobody.
    assert start.without("a2").changes_since(start) == [("ann", "changed")]


def test_the_journal_forgets_beyond_twice_the_sessions() -> None:
    start = EMPTY.put(*(session(f"s{i}", f"u{i}") for i in range(20)))
    table = start
    for n in range(2 * 20):
        key = f"s{n % 20}"
        table = table.put(dataclasses.replace(table[key], rtt=n / 100))
    assert table.changes_since(start) is not None  # 40 changes back: remembered
    table = table.put(dataclasses.replace(table["s0"], rtt=1.0))
    assert table.changes_since(start) is None  # 41: forgotten
    assert table._journal is not None
    assert len(table._journal._entries) == max(JOURNAL_MIN_ENTRIES, 2 * 20)


def test_a_key_given_to_another_user_keeps_its_place_among_that_user_s_sessions() -> None:
    table = EMPTY.put(session("a", "ann"), session("b", "bob"), session("a2", "ann"))
    table = table.put(session("b", "ann"))
    assert [s.session_id for s in table.of_user("ann")] == ["a", "b", "a2"]
    assert "bob" not in table._by_user
