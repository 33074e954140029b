"""Room passwords, hashed with argon2id (never stored or returned in clear).

argon2 costs memory and CPU on purpose, which makes it a lever for anyone who can
make the server hash: every hash or check takes ``memory_kib`` of memory and
``parallelism`` threads for its whole run. So both run in worker threads under one
:class:`trio.CapacityLimiter` of ``concurrency`` tokens, shared by hashing and
checking: whatever the callers do, at most ``concurrency * memory_kib`` is in use
for passwords, and the rest wait their turn (first come, first served) instead of
taking more threads from trio's pool.

The cost of *new* hashes comes from :class:`HashCost` (the default is OWASP's
19 MiB, 2 passes, 1 lane, sized for a small host). A stored hash carries its own
parameters and is always checked with those, so hashes made with other settings
(argon2-cffi's 64 MiB default, say) keep working after a change; they are not
rehashed, since a room password is only ever presented in clear at a join.
"""

from __future__ import annotations

from dataclasses import dataclass

import trio
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError


@dataclass(frozen=True, slots=True)
class HashCost:
    """argon2id parameters for new hashes."""

    memory_kib: int = 19456
    time_cost: int = 2
    parallelism: int = 1


class Passwords:
    """Hashes and checks room passwords, at most ``concurrency`` at a time."""

    def __init__(self, cost: HashCost | None = None, concurrency: int = 2) -> None:
        self._limiter = trio.CapacityLimiter(concurrency)
        self._hasher = _hasher(cost or HashCost())

    @property
    def limiter(self) -> trio.CapacityLimiter:
        """The limiter every hash and check runs under."""
        return self._limiter

    def reconfigure(self, cost: HashCost, concurrency: int) -> None:
        """New parameters for new hashes, and a new bound (running work finishes first)."""
        self._hasher = _hasher(cost)
        self._limiter.total_tokens = concurrency

    async def hash(self, password: str) -> str:
        """Return an argon2id hash of ``password``."""
        return await trio.to_thread.run_sync(self.hash_sync, password, limiter=self._limiter)

    async def verify(self, password_hash: str, password: str) -> bool:
        """Check ``password`` against ``password_hash`` (with the hash's own parameters)."""
        return await trio.to_thread.run_sync(
            self.verify_sync, password_hash, password, limiter=self._limiter
        )

    # The blocking halves, run in a worker thread under the limiter.
    def hash_sync(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify_sync(self, password_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False


def _hasher(cost: HashCost) -> PasswordHasher:
    return PasswordHasher(
        time_cost=cost.time_cost, memory_cost=cost.memory_kib, parallelism=cost.parallelism
    )
