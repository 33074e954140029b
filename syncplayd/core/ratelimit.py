"""Token buckets for rate limits, with time passed in (no clock reads here)."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Generic, TypeVar

K = TypeVar("K")


@dataclass(slots=True)
class TokenBucket:
    """``capacity`` tokens, refilled continuously at ``rate`` tokens per second."""

    capacity: float
    rate: float
    tokens: float
    stamp: float

    def take(self, now: float) -> float:
        """Take one token. Return 0 on success, else the seconds until one is available."""
        elapsed = max(0.0, now - self.stamp)
        self.tokens = min(self.capacity, self.tokens + elapsed * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


class RateLimiter(Generic[K]):
    """One token bucket per key, at most ``max_keys`` of them.

    The bound matters: keys come from callers, and an unbounded table would let a
    stream of fresh keys exhaust memory. Evicting the least recently used bucket
    only ever makes a limit more lenient for a key idle long enough to be evicted.
    """

    def __init__(self, per_minute: float, burst: float | None = None, max_keys: int = 10_000):
        self._rate = per_minute / 60.0
        self._capacity = burst if burst is not None else max(1.0, per_minute)
        self._max_keys = max_keys
        self._buckets: OrderedDict[K, TokenBucket] = OrderedDict()

    def hit(self, key: K, now: float) -> float:
        """Count one event for ``key``; return 0 if allowed, else seconds to wait."""
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = TokenBucket(self._capacity, self._rate, self._capacity, now)
            self._buckets[key] = bucket
            if len(self._buckets) > self._max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        return bucket.take(now)

    def forget(self, key: K) -> None:
        """Drop ``key``'s bucket: its owner is gone for good (a session that left)."""
        self._buckets.pop(key, None)

    def __len__(self) -> int:
        return len(self._buckets)


@dataclass(slots=True)
class _Window:
    start: float
    count: int


class AttemptLimiter(Generic[K]):
    """At most ``budget`` attempts per key in a fixed window of ``window`` seconds.

    For guesses at secrets (room passwords, invitation codes). Every attempt is
    charged *before* the secret is checked, and a correct one is refunded
    afterwards: charging only failures would let a burst of concurrent guesses
    all pass the check before the first failure is counted. A key's window
    opens with its first charged attempt; once the budget is spent, attempts are
    refused until the window ends, and then the count starts over.

    Memory is bounded like :class:`RateLimiter`'s: at most ``max_keys`` windows,
    least recently touched evicted first. A refused attempt touches its key, so
    an attacker who keeps trying keeps their own window from being evicted.
    """

    def __init__(self, budget: int, window: float, max_keys: int = 10_000) -> None:
        self.budget = budget
        self.window = window
        self._max_keys = max_keys
        self._windows: OrderedDict[K, _Window] = OrderedDict()

    def wait(self, key: K, now: float) -> float:
        """Seconds until ``key`` may try again; 0 if it may now. Charges nothing."""
        entry = self._windows.get(key)
        if entry is None:
            return 0.0
        if now - entry.start >= self.window:
            del self._windows[key]
            return 0.0
        self._windows.move_to_end(key)
        if entry.count < self.budget:
            return 0.0
        return entry.start + self.window - now

    def charge(self, key: K, now: float) -> None:
        """Count one attempt for ``key`` (call :meth:`wait` first)."""
        entry = self._windows.get(key)
        if entry is None or now - entry.start >= self.window:
            self._windows[key] = _Window(start=now, count=1)
            self._windows.move_to_end(key)
            if len(self._windows) > self._max_keys:
                self._windows.popitem(last=False)
            return
        entry.count += 1
        self._windows.move_to_end(key)

    def refund(self, key: K) -> None:
        """Give back one attempt of ``key``: it turned out to be a correct one."""
        entry = self._windows.get(key)
        if entry is not None and entry.count > 0:
            entry.count -= 1

    def __len__(self) -> int:
        return len(self._windows)
