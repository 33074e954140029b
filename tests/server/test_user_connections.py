"""The per-user socket count: taken before the join, given back on every way out."""

from __future__ import annotations

from uuid import uuid4

import pytest

from syncplayd.server.live.user_connections import TooManyConnections, UserConnections


def test_a_reservation_counts_at_once_and_is_given_back() -> None:
    counts, user = UserConnections(), uuid4()
    with counts.reserve(user, 2):
        assert counts.of(user) == 1 and counts.users == 1
        with counts.reserve(user, 2):
            assert counts.of(user) == 2
            with pytest.raises(TooManyConnections, match="at most 2"), counts.reserve(user, 2):
                pass  # pragma: no cover - refused before the block
            assert counts.of(user) == 2  # a refusal takes nothing
        assert counts.of(user) == 1
    assert counts.of(user) == 0 and counts.users == 0


def test_a_failure_inside_the_block_gives_the_socket_back() -> None:
    counts, user = UserConnections(), uuid4()
    with pytest.raises(RuntimeError), counts.reserve(user, 1):
        raise RuntimeError("the join failed")
    with counts.reserve(user, 1):
        assert counts.of(user) == 1


def test_users_are_counted_apart() -> None:
    counts, ann, bob = UserConnections(), uuid4(), uuid4()
    with counts.reserve(ann, 1), counts.reserve(bob, 1):
        assert counts.users == 2


def test_a_hold_outlives_its_block_and_is_given_back_once() -> None:
    counts, user = UserConnections(), uuid4()
    hold = counts.take(user, 2)
    other = counts.take(user, 2)
    with pytest.raises(TooManyConnections):
        counts.take(user, 2)
    hold.release()
    hold.release()  # a second release must not give back the other socket's count
    assert counts.of(user) == 1
    other.release()
    assert counts.of(user) == 0 and counts.users == 0
