"""How many sockets each user holds, and the per-user limit.

A socket counts from the moment its join is tried until it closes. Counting
before the join's first ``await`` is what makes the limit hold: a check that
passed first and counted later let any number of concurrent joins through.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from uuid import UUID


class TooManyConnections(Exception):
    """The user already holds the most sockets allowed."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"at most {limit} connections per user")
        self.limit = limit


class UserConnections:
    """Sockets per user: taken with :meth:`reserve`, given back when its block ends."""

    def __init__(self) -> None:
        self._counts: Counter[UUID] = Counter()

    @contextmanager
    def reserve(self, user_id: UUID, limit: int) -> Iterator[None]:
        """Hold one of the user's ``limit`` sockets for the block.

        Raises:
            TooManyConnections: the user holds ``limit`` already (nothing is taken).
        """
        if self._counts[user_id] >= limit:
            raise TooManyConnections(limit)
        self._counts[user_id] += 1
        try:
            yield
        finally:
            self._counts[user_id] -= 1
            if self._counts[user_id] <= 0:
                del self._counts[user_id]

    def of(self, user_id: UUID) -> int:
        return self._counts.get(user_id, 0)

    @property
    def users(self) -> int:
        """How many users hold at least one socket."""
        return len(self._counts)
