"""The failed-attempt limiter, with time passed in: budgets, windows, refunds, memory bound."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from syncplayd.core.ratelimit import AttemptLimiter


def _try(limiter: AttemptLimiter[str], key: str, now: float) -> bool:
    """One attempt as the service makes it: refused while blocked, else charged."""
    if limiter.wait(key, now) > 0:
        return False
    limiter.charge(key, now)
    return True


def test_budget_then_blocked_until_the_window_ends() -> None:
    limiter: AttemptLimiter[str] = AttemptLimiter(budget=3, window=300)
    assert [_try(limiter, "u", t) for t in (10.0, 20.0, 30.0)] == [True, True, True]
    # The window opened with the first attempt, at 10.
    assert limiter.wait("u", 40.0) == 270.0
    assert not _try(limiter, "u", 309.0)
    assert limiter.wait("other", 40.0) == 0  # keys are independent
    assert limiter.wait("u", 310.0) == 0
    assert len(limiter) == 0  # an expired window is dropped when seen
    assert [_try(limiter, "u", 310.0) for _ in range(4)] == [True, True, True, False]


def test_refused_attempts_are_not_charged() -> None:
    limiter: AttemptLimiter[str] = AttemptLimiter(budget=1, window=10)
    assert _try(limiter, "u", 0.0)
    for t in range(1, 10):
        assert not _try(limiter, "u", float(t))
    assert _try(limiter, "u", 10.0)  # refusals did not extend the window


def test_refund_gives_an_attempt_back() -> None:
    limiter: AttemptLimiter[str] = AttemptLimiter(budget=2, window=60)
    for _ in range(10):
        assert _try(limiter, "u", 0.0)
        limiter.refund("u")  # a right password
    assert _try(limiter, "u", 1.0)
    assert _try(limiter, "u", 1.0)
    assert not _try(limiter, "u", 1.0)
    limiter.refund("nobody")  # refunding an unknown key is harmless
    assert len(limiter) == 1


def test_memory_is_bounded() -> None:
    limiter: AttemptLimiter[int] = AttemptLimiter(budget=5, window=300, max_keys=1000)
    for key in range(100_000):
        limiter.charge(key, 0.0)
    assert len(limiter) == 1000


def test_an_active_guesser_is_not_evicted_by_a_flood_of_fresh_keys() -> None:
    limiter: AttemptLimiter[str] = AttemptLimiter(budget=2, window=300, max_keys=10)
    assert _try(limiter, "attacker", 0.0) and _try(limiter, "attacker", 0.0)
    for n in range(1000):
        # Each refused attempt touches the attacker's window; the flood evicts itself.
        assert not _try(limiter, "attacker", 1.0)
        limiter.charge(f"fresh-{n}", 1.0)
    assert limiter.wait("attacker", 2.0) > 0


@given(
    st.lists(st.floats(min_value=0, max_value=10_000, allow_nan=False), min_size=1, max_size=300),
    st.integers(min_value=1, max_value=5),
    st.floats(min_value=1, max_value=1000),
)
def test_never_more_than_the_budget_per_window(
    times: list[float], budget: int, window: float
) -> None:
    limiter: AttemptLimiter[str] = AttemptLimiter(budget=budget, window=window)
    times.sort()
    accepted = [t for t in times if _try(limiter, "k", t)]
    # Windows are disjoint and each lasts `window`: at most span/window + 1 of them.
    span = times[-1] - times[0]
    assert len(accepted) <= budget * (int(span // window) + 1)
    for start in accepted:
        assert sum(start <= t < start + window for t in accepted) <= 2 * budget
