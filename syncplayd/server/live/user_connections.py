"""How many sockets each user holds, and the per-user limit.

A socket counts from the moment its join is tried until it closes. Counting
before the join's first ``await`` is what makes the limit hold: a check that
passed first and counted later let any number of concurrent joins through.
A joined socket outlives the handshake that counted it (the live room serves it
from then on), so a count is a :class:`Hold` given back when the socket ends.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from uuid import UUID


class Hold:
    """One socket of a user, counted until :meth:`release` (the first call gives it back)."""

    __slots__ = ("_counts", "_user_id")

    def __init__(self, counts: Counter[UUID], user_id: UUID) -> None:
        self._counts: Counter[UUID] | None = counts
        self._user_id = user_id

    def release(self) -> None:
        counts, self._counts = self._counts, None
        if counts is None:
            return
        counts[self._user_id] -= 1
        if counts[self._user_id] <= 0:
            del counts[self._user_id]


class TooManyConnections(Exception):
    """The user already holds the most sockets allowed."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"at most {limit} connections per user")
        self.limit = limit


class UserConnections:
    """Sockets per user: taken with :meth:`take` (or for a block, :meth:`reserve`)."""

    def __init__(self) -> None:
        self._counts: Counter[UUID] = Counter()

    def take(self, user_id: UUID, limit: int) -> Hold:
        """Count one of the user's ``limit`` sockets until the hold is released.

        Raises:
            TooManyConnections: the user holds ``limit`` already (nothing is taken).
        """
        if self._counts[user_id] >= limit:
            raise TooManyConnections(limit)
        self._counts[user_id] += 1
        return Hold(self._counts, user_id)

    @contextmanager
    def reserve(self, user_id: UUID, limit: int) -> Iterator[Hold]:
        """:meth:`take` for the block: given back when it ends, however it ends."""
        hold = self.take(user_id, limit)
        try:
            yield hold
        finally:
            hold.release()

    def of(self, user_id: UUID) -> int:
        return self._counts.get(user_id, 0)

    @property
    def users(self) -> int:
        """How many users hold at least one socket."""
        return len(self._counts)
