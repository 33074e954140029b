"""The repository contract for the failed-attempt budgets that the nodes share.

On memory, SQLite and PostgreSQL (the ``repo`` fixture); the races, on PostgreSQL only,
between two repositories on one database (two nodes). The counting is
``AttemptLimiter``'s (syncplayd/core/ratelimit.py): fixed windows that open with their
first charge, refused attempts that charge nothing, refunds that never go below 0.
"""

from __future__ import annotations

import dataclasses
import random
from datetime import timedelta, timezone

import pytest
import trio

from syncplayd.storage import AttemptBudget, Repository
from tests.storage.factories import at

WINDOW = 60.0


def user(key: str = "u-1", budget: int = 3) -> AttemptBudget:
    return AttemptBudget("user", key, budget)


def address(key: str = "203.0.113.7", budget: int = 5) -> AttemptBudget:
    return AttemptBudget("address", key, budget)


async def charges(repo: Repository, budgets: list[AttemptBudget], seconds: float) -> float:
    return await repo.charge_attempts(budgets, at(seconds), WINDOW)


async def successes(repo: Repository, budget: AttemptBudget, seconds: float, tries: int) -> int:
    """How many of ``tries`` charges of ``budget`` alone at ``at(seconds)`` succeed."""
    return sum([await charges(repo, [budget], seconds) == 0.0 for _ in range(tries)])


# -- charging ----------------------------------------------------------------------------------


async def test_charges_up_to_the_budget_then_refuses_with_the_exact_wait(repo: Repository) -> None:
    for seconds in (0, 1, 2):
        assert await charges(repo, [user(budget=3)], seconds) == 0.0
    # The window opened at 0: it ends at 60 however many refusals come in between.
    assert await charges(repo, [user(budget=3)], 10) == 50.0
    assert await charges(repo, [user(budget=3)], 59.5) == 0.5
    assert await charges(repo, [user(budget=3)], 59.999999) == pytest.approx(1e-6)


async def test_a_window_that_has_ended_restarts_at_one(repo: Repository) -> None:
    assert await successes(repo, user(budget=2), 0, tries=3) == 2
    # At its very end the window is over: the next charge opens a new one with count 1...
    assert await charges(repo, [user(budget=2)], 60) == 0.0
    # ...so one more fits, and the new window (from 60) decides the wait.
    assert await charges(repo, [user(budget=2)], 70) == 0.0
    assert await charges(repo, [user(budget=2)], 75) == 45.0
    # Long after, the same again.
    assert await successes(repo, user(budget=2), 1000, tries=3) == 2


async def test_times_in_any_zone_count_alike(repo: Repository) -> None:
    east = timezone(timedelta(hours=2))
    assert await repo.charge_attempts([user(budget=1)], at(0).astimezone(east), WINDOW) == 0.0
    assert await repo.charge_attempts([user(budget=1)], at(20), WINDOW) == 40.0
    assert await repo.charge_attempts([user(budget=1)], at(30).astimezone(east), WINDOW) == 30.0


async def test_the_budget_of_each_charge_is_the_one_it_names(repo: Repository) -> None:
    # The budget travels with each charge, as the configuration may change between two.
    assert await successes(repo, user(budget=2), 0, tries=3) == 2
    assert await successes(repo, user(budget=4), 1, tries=3) == 2
    assert await charges(repo, [user(budget=1)], 2) == 58.0


async def test_charging_nothing_succeeds(repo: Repository) -> None:
    assert await repo.charge_attempts([], at(0), WINDOW) == 0.0
    assert await repo.purge_attempts(at(10**6)) == 0


async def test_a_key_named_twice_is_charged_once_against_the_smaller_budget(
    repo: Repository,
) -> None:
    twice = [user(budget=5), user(budget=2)]
    assert await charges(repo, twice, 0) == 0.0
    assert await charges(repo, twice, 1) == 0.0
    assert await charges(repo, twice, 2) == 58.0
    # Counted once per charge: 2 of 5 spent.
    assert await successes(repo, user(budget=5), 3, tries=4) == 3


async def test_a_window_must_have_a_finite_length(repo: Repository) -> None:
    for window in (0.0, -1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="window_seconds"):
            await repo.charge_attempts([user()], at(0), window)


# -- all or none -------------------------------------------------------------------------------


async def test_a_spent_budget_charges_none_of_the_others(repo: Repository) -> None:
    both = [user(budget=2), address(budget=5)]
    assert await charges(repo, both, 0) == 0.0
    assert await charges(repo, both, 1) == 0.0
    for seconds in (2, 3, 4):
        assert await charges(repo, both, seconds) == 60 - seconds  # the user's window, from 0
    # The address was charged twice, not five times: three of its five are left.
    assert await successes(repo, address(budget=5), 5, tries=4) == 3
    assert await charges(repo, [address(budget=5)], 6) == 54.0


async def test_a_refused_charge_opens_no_window_for_the_others(repo: Repository) -> None:
    assert await charges(repo, [user(budget=1)], 0) == 0.0
    assert await charges(repo, [user(budget=1), address(budget=1)], 10) == 50.0
    # No window of the address's was opened at 10 (it would end at 70, not 90) and no
    # row was left behind for the purge to count.
    assert await charges(repo, [address(budget=1)], 30) == 0.0
    assert await charges(repo, [address(budget=1)], 40) == 50.0
    assert await repo.purge_attempts(at(20)) == 1  # the user's window


async def test_the_wait_is_until_the_last_spent_window_ends(repo: Repository) -> None:
    assert await charges(repo, [user(budget=1)], 0) == 0.0
    assert await charges(repo, [address(budget=1)], 20) == 0.0
    assert await charges(repo, [user(budget=1), address(budget=1)], 30) == 50.0
    assert await charges(repo, [address(budget=1), user(budget=1)], 30) == 50.0
    # Once the user's window is over only the address's counts.
    assert await charges(repo, [user(budget=1), address(budget=1)], 65) == 15.0
    # A budget with room left adds no wait.
    assert await charges(repo, [user(budget=9), address(budget=1)], 70) == 10.0


async def test_scopes_keep_their_keys_apart(repo: Repository) -> None:
    assert await charges(repo, [AttemptBudget("user", "same", 1)], 0) == 0.0
    assert await charges(repo, [AttemptBudget("user", "same", 1)], 1) == 59.0
    assert await charges(repo, [AttemptBudget("address", "same", 1)], 2) == 0.0
    assert await charges(repo, [AttemptBudget("address", "same", 1)], 3) == 59.0
    assert await charges(repo, [AttemptBudget("user", "other", 1)], 4) == 0.0


# -- refunds -----------------------------------------------------------------------------------


async def test_a_refund_gives_one_attempt_back_in_the_same_window(repo: Repository) -> None:
    both = [user(budget=2), address(budget=2)]
    assert await charges(repo, both, 0) == 0.0
    assert await charges(repo, both, 1) == 0.0
    await repo.refund_attempts(both)
    assert await charges(repo, both, 2) == 0.0
    # The window still opened at 0.
    assert await charges(repo, both, 3) == 57.0


async def test_a_refund_never_goes_below_zero(repo: Repository) -> None:
    assert await charges(repo, [user(budget=2)], 0) == 0.0
    for _ in range(3):
        await repo.refund_attempts([user(budget=2)])
    # Counted from 0, not from -2: two fit, not four.
    assert await successes(repo, user(budget=2), 1, tries=4) == 2


async def test_a_refund_does_not_look_at_the_window(repo: Repository) -> None:
    assert await charges(repo, [user(budget=1)], 0) == 0.0
    await repo.refund_attempts([user(budget=1)])
    assert await charges(repo, [user(budget=1)], 30) == 0.0
    assert await charges(repo, [user(budget=1)], 31) == 29.0  # still the window from 0
    # Given back after its window ended, an attempt changes nothing that counts.
    await repo.refund_attempts([user(budget=1)])
    assert await charges(repo, [user(budget=1)], 61) == 0.0
    assert await charges(repo, [user(budget=1)], 62) == 59.0


async def test_a_refund_without_a_window_does_nothing(repo: Repository) -> None:
    await repo.refund_attempts([user(key="nobody"), address(key="198.51.100.1")])
    await repo.refund_attempts([])
    assert await repo.purge_attempts(at(10**6)) == 0  # no row was made
    assert await charges(repo, [user(key="nobody", budget=1)], 0) == 0.0
    assert await charges(repo, [user(key="nobody", budget=1)], 1) == 59.0


# -- the purge ---------------------------------------------------------------------------------


async def test_purge_deletes_only_windows_opened_before_the_time(repo: Repository) -> None:
    for seconds, key in ((0, "a"), (10, "b"), (20, "c")):
        assert await charges(repo, [user(key=key, budget=1)], seconds) == 0.0
    assert await charges(repo, [address(budget=1)], 0) == 0.0
    assert await charges(repo, [address(budget=1)], 70) == 0.0  # a new window, from 70

    assert await repo.purge_attempts(at(10)) == 1  # "a" only: "b" opened at 10, not before
    assert await repo.purge_attempts(at(10)) == 0
    # "a" starts afresh; "b" and "c" are still spent.
    assert await charges(repo, [user(key="a", budget=1)], 25) == 0.0
    assert await charges(repo, [user(key="b", budget=1)], 25) == 45.0
    assert await charges(repo, [user(key="c", budget=1)], 25) == 55.0

    assert await repo.purge_attempts(at(25)) == 2  # "b" and "c"; "a" reopened at 25
    assert await charges(repo, [user(key="a", budget=1)], 26) == 59.0
    assert await charges(repo, [address(budget=1)], 71) == 59.0  # kept: it opened at 70
    assert await repo.purge_attempts(at(10**6)) == 2


# -- races between nodes (PostgreSQL) ----------------------------------------------------------


@pytest.mark.postgres
async def test_concurrent_charges_from_two_nodes_spend_the_budget_exactly(
    nodes: tuple[Repository, Repository],
) -> None:
    both = [user(budget=5), address(budget=50)]
    results: list[float] = []

    async def charge(repo: Repository) -> None:
        results.append(await repo.charge_attempts(both, at(1), WINDOW))

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            for n in range(20):
                nursery.start_soon(charge, nodes[n % 2])
    assert sorted(results) == [0.0] * 5 + [60.0] * 15
    # All or none under the race too: the address was charged by the 5 winners only.
    assert await successes(nodes[0], address(budget=10), 2, tries=10) == 5


@pytest.mark.postgres
async def test_budgets_named_in_opposite_orders_do_not_deadlock(
    nodes: tuple[Repository, Repository],
) -> None:
    # Rows that exist (windows that have ended, for the purges to take) and rows that do
    # not yet: charges name them in both orders, from both nodes, while purges run.
    pairs = [
        (user(key=f"u-{n}", budget=1000), address(key=f"a-{n}", budget=1000)) for n in range(4)
    ]
    for first, _ in pairs[:2]:
        assert await charges(nodes[0], [first], 0) == 0.0
    rng = random.Random(8)
    results: list[float] = []
    expected: dict[AttemptBudget, int] = {}

    async def charge(repo: Repository, budgets: list[AttemptBudget]) -> None:
        results.append(await repo.charge_attempts(budgets, at(100), WINDOW))

    async def purge(repo: Repository) -> None:
        await repo.purge_attempts(at(50))

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            for n in range(80):
                first, second = pairs[n % len(pairs)]
                budgets = [first, second] if n % 2 else [second, first]
                if rng.random() < 0.5:
                    budgets.insert(rng.randrange(3), pairs[(n + 1) % len(pairs)][n % 2])
                for budget in budgets:
                    expected[budget] = expected.get(budget, 0) + 1
                nursery.start_soon(charge, nodes[n % 2], budgets)
                if n % 10 == 0:
                    nursery.start_soon(purge, nodes[(n + 1) % 2])
    assert results == [0.0] * 80
    # Nothing lost: each count is what was charged to it since the windows at 100 opened.
    for budget, count in expected.items():
        exactly = dataclasses.replace(budget, budget=count + 1)
        assert await charges(nodes[0], [exactly], 101) == 0.0
        assert await charges(nodes[1], [exactly], 101) == 59.0
