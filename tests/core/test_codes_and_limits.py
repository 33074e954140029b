from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from syncplayd.core.codes import ALPHABET, new_code, normalize_code
from syncplayd.core.ratelimit import RateLimiter


def test_alphabet_has_no_ambiguous_symbols() -> None:
    assert not set("01OIL") & set(ALPHABET)
    assert len(set(ALPHABET)) == len(ALPHABET) == 31


@given(st.integers(min_value=6, max_value=32), st.integers())
def test_codes_use_the_alphabet_and_length(length: int, seed: int) -> None:
    rng = random.Random(seed)
    code = new_code(length, rng.randrange)
    assert len(code) == length
    assert set(code) <= set(ALPHABET)
    assert normalize_code(code.lower()[:3] + "-" + code[3:]) == code


def test_rate_limiter_allows_burst_then_refills() -> None:
    limiter: RateLimiter[str] = RateLimiter(per_minute=60)
    assert all(limiter.hit("a", 0.0) == 0 for _ in range(60))
    wait = limiter.hit("a", 0.0)
    assert 0.99 <= wait <= 1.0
    assert limiter.hit("b", 0.0) == 0  # keys are independent
    assert limiter.hit("a", 1.0) == 0  # one token back after a second


def test_rate_limiter_table_is_bounded() -> None:
    limiter: RateLimiter[int] = RateLimiter(per_minute=1, max_keys=100)
    for key in range(1000):
        limiter.hit(key, 0.0)
    assert len(limiter) == 100


@given(st.lists(st.floats(min_value=0, max_value=1e6, allow_nan=False), min_size=1, max_size=200))
def test_rate_limiter_never_exceeds_rate(times: list[float]) -> None:
    per_minute = 30
    limiter: RateLimiter[str] = RateLimiter(per_minute=per_minute)
    times.sort()
    allowed = sum(1 for t in times if limiter.hit("k", t) == 0)
    span = times[-1] - times[0]
    assert allowed <= per_minute + span * per_minute / 60 + 1e-6


def test_rate_limiter_forgets_a_key() -> None:
    limiter: RateLimiter[str] = RateLimiter(per_minute=60, burst=1)
    assert limiter.hit("a", 0.0) == 0
    assert limiter.hit("a", 0.0) > 0
    limiter.forget("a")
    limiter.forget("never-seen")
    assert len(limiter) == 0
    assert limiter.hit("a", 0.0) == 0  # a new bucket, full
