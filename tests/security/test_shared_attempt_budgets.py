"""The failed-attempt budgets several nodes count in their shared database (``SharedAttempts``).

Each "node" here is a ``SharedAttempts`` of its own over one repository: the in-memory
one, which the repository contract (``tests/storage/test_contract_attempts.py``) holds to
what SQLite and PostgreSQL do. Two real nodes on PostgreSQL: ``tests/e2e/test_cluster_budgets.py``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID, uuid4

import pytest
import trio

from syncplayd.config import load_settings
from syncplayd.identity import Principal
from syncplayd.service import RoomService, ServiceError
from syncplayd.service.attempts import SharedAttempts
from syncplayd.storage import AttemptBudget
from syncplayd.storage.errors import StorageError
from syncplayd.storage.memory import MemoryRepository

IP = "192.0.2.1"


class Clocks:
    """The node's monotonic clock and the wall clock the database windows are kept in."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> datetime:
        return datetime(2026, 12, 6, tzinfo=UTC) + timedelta(seconds=self.now)


class Store:
    """A repository's shared counters, counting the calls that reach them."""

    def __init__(self, repo: MemoryRepository) -> None:
        self.repo = repo
        self.charges = 0
        self.refunds_fail = False

    async def charge_attempts(
        self, budgets: Sequence[AttemptBudget], now: datetime, window_seconds: float
    ) -> float:
        self.charges += 1
        return await self.repo.charge_attempts(budgets, now, window_seconds)

    async def refund_attempts(self, budgets: Sequence[AttemptBudget]) -> None:
        if self.refunds_fail:
            raise StorageError("the database went away")
        await self.repo.refund_attempts(budgets)


def node(
    store: Store | MemoryRepository, clocks: Clocks, *, per_user: int = 3, per_address: int = 100,
    max_tracked: int = 10_000,
) -> SharedAttempts:  # fmt: skip
    return SharedAttempts(
        store, per_user, per_address, 60.0,
        monotonic=clocks.monotonic, wall_clock=clocks.wall, max_tracked=max_tracked,
    )  # fmt: skip


async def refused(attempts: SharedAttempts, user: UUID, address: str | None) -> int | None:
    with pytest.raises(ServiceError) as info:
        await attempts.charge(user, address)
    assert (info.value.status, info.value.code) == (429, "too-many-attempts")
    return info.value.retry_after


async def test_the_nodes_share_each_users_budget() -> None:
    clocks, repo = Clocks(), MemoryRepository()
    a, b = node(repo, clocks), node(repo, clocks)
    alice, bob = uuid4(), uuid4()
    await a.charge(alice, "198.51.100.1")
    clocks.now += 10
    await a.charge(alice, "198.51.100.2")
    await b.charge(alice, "198.51.100.3")  # her third, on the other node
    # Out on both nodes, from any address; the wait is her window's remaining 50 s.
    assert await refused(b, alice, "198.51.100.4") == 50
    assert await refused(a, alice, "198.51.100.5") == 50
    await a.charge(bob, "198.51.100.1")  # others keep their own budgets
    clocks.now += 50
    await b.charge(alice, "198.51.100.4")  # her window is over


async def test_the_nodes_share_each_addresss_budget() -> None:
    clocks, repo = Clocks(), MemoryRepository()
    a, b = node(repo, clocks, per_address=2), node(repo, clocks, per_address=2)
    await a.charge(uuid4(), "2001:db8:1:2::1")
    await b.charge(uuid4(), "2001:db8:1:2::2")  # the same /64
    assert await refused(a, uuid4(), "2001:db8:1:2::3") == 60
    await a.charge(uuid4(), "2001:db8:1:3::1")  # another /64


async def test_a_refused_attempt_charges_neither_budget() -> None:
    clocks, repo = Clocks(), MemoryRepository()
    a, b = node(repo, clocks, per_user=1, per_address=2), node(repo, clocks, per_address=2)
    alice = uuid4()
    await a.charge(alice, IP)
    await refused(a, alice, IP)  # her budget is spent: the address's is not charged...
    await b.charge(uuid4(), IP)  # ...so it has this second attempt left
    await refused(b, uuid4(), IP)


async def test_the_address_budget_can_be_switched_off() -> None:
    clocks, repo = Clocks(), MemoryRepository()
    a = node(repo, clocks, per_user=1, per_address=0)
    for _ in range(20):
        await a.charge(uuid4(), IP)


async def test_a_refusal_is_remembered_until_its_window_ends() -> None:
    """A guesser who keeps trying costs the database one refusal per window, not one a try."""
    clocks = Clocks()
    store = Store(MemoryRepository())
    a = node(store, clocks, per_user=1)
    alice = uuid4()
    await a.charge(alice, IP)
    for n in range(10):
        assert await refused(a, alice, IP) == 60 - 5 * n  # counted down here...
        clocks.now += 5
    assert await refused(a, alice, IP) == 10
    # ...with the database asked once: the charge and the first refusal.
    assert store.charges == 2
    assert await refused(a, alice, "192.0.2.2") == 10  # another address: the database says so
    assert store.charges == 3
    clocks.now += 10
    await a.charge(alice, IP)  # the window is over: asked again, and charged
    assert store.charges == 4


async def test_the_remembered_refusals_are_bounded() -> None:
    clocks, repo = Clocks(), MemoryRepository()
    a = node(repo, clocks, per_address=1, max_tracked=50)
    await a.charge(uuid4(), IP)
    for _ in range(500):
        await refused(a, uuid4(), IP)  # each a user of its own, refused by the address
    assert a.tracked == 50


async def test_only_a_refused_secret_stays_counted() -> None:
    clocks, repo = Clocks(), MemoryRepository()
    a = node(repo, clocks, per_user=1)
    user = uuid4()
    async with a.attempt(user, IP):
        pass  # the right secret
    with pytest.raises(OSError, match="database"):
        async with a.attempt(user, IP):
            raise OSError("database unreachable")  # our failure, not the guess's
    with pytest.raises(ServiceError):
        async with a.attempt(user, IP):
            raise ServiceError(403, "wrong-password", "wrong")
    await refused(node(repo, clocks, per_user=1), user, "192.0.2.9")  # and on every node


async def test_a_check_cancelled_midway_is_given_back() -> None:
    clocks, repo = Clocks(), MemoryRepository()
    a = node(repo, clocks, per_user=1)
    user = uuid4()
    with trio.CancelScope() as scope:
        async with a.attempt(user, IP):
            scope.cancel()  # the client went away while its password was being checked
            await trio.sleep_forever()
    assert scope.cancelled_caught
    async with a.attempt(user, IP):
        pass  # the budget of 1 is whole again


async def test_a_refund_the_database_refuses_leaves_the_attempt_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clocks = Clocks()
    store = Store(MemoryRepository())
    a = node(store, clocks, per_user=1)
    user = uuid4()
    store.refunds_fail = True
    with caplog.at_level(logging.WARNING, "syncplayd.service.attempts"):
        async with a.attempt(user, IP):
            pass
    assert "could not give back a failed-attempt charge" in caplog.text
    await refused(a, user, IP)  # on the safe side: it stays counted


async def test_guesses_spread_over_two_nodes_spend_one_budget(tmp_path: Path) -> None:
    """The service in multi-node mode: passwords and invitation codes guessed on either node."""
    env = {
        "SYNCPLAY_STATE_DIR": str(tmp_path),
        "SYNCPLAY_ROOMS_FAILED_JOIN_ATTEMPTS": "4",
        "SYNCPLAY_ROOMS_FAILED_JOIN_WINDOW_SECONDS": "60",
    }
    settings = load_settings(None, env).syncplay
    clocks, repo = Clocks(), MemoryRepository()
    nodes = [
        RoomService(repo, settings, monotonic=clocks.monotonic, wall_clock=clocks.wall,
                    shared_budgets=True)
        for _ in range(2)
    ]  # fmt: skip
    owner, guest = Principal(uuid4(), "owner"), Principal(uuid4(), "guest")
    room = await nodes[0].create_room(
        owner, name="r", content_type="movie", content_id="1", is_public=True,
        password="right", max_participants=None,
    )  # fmt: skip

    async def outcome(attempt: Awaitable[object]) -> str:
        try:
            await attempt
        except ServiceError as error:
            return f"{error.status} {error.code}"
        return "ok"

    for n in range(3):
        wrong = nodes[n % 2].join(guest, room.id, password=f"guess {n}", address=IP)
        assert await outcome(wrong) == "403 wrong-password"
    lookup = nodes[1].get_invitation(guest, "ABCD2345", address=IP)
    assert await outcome(lookup) == "404 not-found"  # the fourth, on the other node
    for service in nodes:
        assert await outcome(service.join(guest, room.id, password="right", address=IP)) == (
            "429 too-many-attempts"
        )
    clocks.now += 60
    assert await outcome(nodes[1].join(guest, room.id, password="right", address=IP)) == "ok"
