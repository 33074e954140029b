"""Budgets for guessing secrets: room passwords and invitation codes.

Each attempt that presents a secret is charged to the caller's user id and to
their client address, before the secret is checked; a correct one is refunded.
Over either budget the attempt is refused with ``429 too-many-attempts`` without
looking at the secret at all, so a blocked guesser learns nothing more.

* The per-user budget stops one user (one token) guessing from many addresses.
* The per-address budget stops one address guessing with many user ids (demo
  mode hands out guest tokens to anyone, and a compromised media server can mint
  many). It is keyed by the address the HTTP server reports as the peer; behind
  a reverse proxy that is the proxy's address for every client, so all its
  clients share one budget (docs/api.md says how to size it then).

On one node the counters live in memory (:class:`SecretAttempts`), bounded in size.
Several nodes on one database (multi-node mode) count in the database instead
(:class:`SharedAttempts`): nginx spreads REST calls that name no room over the
nodes, so per-node counters would give a guesser one budget per node.
"""

from __future__ import annotations

import ipaddress
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from uuid import UUID

import trio

from syncplayd.core.ratelimit import AttemptLimiter
from syncplayd.service.errors import ServiceError
from syncplayd.storage.errors import StorageError
from syncplayd.storage.records import AttemptBudget

log = logging.getLogger(__name__)

#: How many users and how many addresses are tracked at once (each table).
MAX_TRACKED = 10_000
#: The longest a correct guess waits to be given back to a shared budget (a database
#: that does not answer by then leaves the attempt counted: the error is on the safe side).
REFUND_TIMEOUT_SECONDS = 5.0


class Budgets(Protocol):
    """What the service asks of the budgets: one attempt, charged around checking a secret."""

    def attempt(self, user_id: UUID, address: str | None) -> AbstractAsyncContextManager[None]:
        """Charge one attempt around the block: a :class:`ServiceError` leaving it is a
        wrong guess and stays counted; any other way out (success, a database outage,
        cancellation) is given back, since only a refused secret tells the guesser
        something. Raises ``429 too-many-attempts`` before the block when a budget is spent.
        """
        ...


class AttemptStore(Protocol):
    """The repository's shared counters (``Repository.charge_attempts`` and its siblings)."""

    async def charge_attempts(
        self, budgets: Sequence[AttemptBudget], now: datetime, window_seconds: float
    ) -> float: ...

    async def refund_attempts(self, budgets: Sequence[AttemptBudget]) -> None: ...


def address_key(address: str | None) -> str | None:
    """The budget key of a client address, or ``None`` when it is not an IP address.

    An IPv6 host usually owns a whole /64, so counting single IPv6 addresses
    would give one attacker 2^64 budgets; the /64 is the unit instead.
    """
    if not address:
        return None
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


@dataclass(frozen=True, slots=True)
class Charge:
    """The keys one attempt was charged to (for a refund)."""

    user_id: UUID
    address: str | None


class SecretAttempts:
    """The two budgets, per user and per address, over one window, in this process."""

    def __init__(
        self,
        per_user: int,
        per_address: int,
        window_seconds: float,
        monotonic: Callable[[], float],
        *,
        max_tracked: int = MAX_TRACKED,
    ) -> None:
        self._monotonic = monotonic
        self._users: AttemptLimiter[UUID] = AttemptLimiter(per_user, window_seconds, max_tracked)
        # A budget of 0 switches the per-address count off (see the module docstring).
        self._addresses: AttemptLimiter[str] | None = (
            AttemptLimiter(per_address, window_seconds, max_tracked) if per_address > 0 else None
        )

    def charge(self, user_id: UUID, address: str | None) -> Charge:
        """Charge one attempt, or raise ``429 too-many-attempts`` if a budget is spent."""
        now = self._monotonic()
        key = address_key(address) if self._addresses is not None else None
        wait = self._users.wait(user_id, now)
        if self._addresses is not None and key is not None:
            wait = max(wait, self._addresses.wait(key, now))
        if wait > 0:
            raise _too_many(wait)
        self._users.charge(user_id, now)
        if self._addresses is not None and key is not None:
            self._addresses.charge(key, now)
        return Charge(user_id, key)

    def refund(self, charge: Charge) -> None:
        """The attempt presented the right secret: it does not count."""
        self._users.refund(charge.user_id)
        if self._addresses is not None and charge.address is not None:
            self._addresses.refund(charge.address)

    @asynccontextmanager
    async def attempt(self, user_id: UUID, address: str | None) -> AsyncIterator[None]:
        """See :meth:`Budgets.attempt`."""
        charge = self.charge(user_id, address)
        try:
            yield
        except ServiceError:
            raise
        except BaseException:
            self.refund(charge)
            raise
        self.refund(charge)

    @property
    def tracked(self) -> tuple[int, int]:
        """How many users and addresses have a window open (for tests and metrics)."""
        return len(self._users), len(self._addresses) if self._addresses is not None else 0


class SharedAttempts:
    """The same two budgets, counted in the database that several nodes share.

    Each attempt is one write transaction, all or none over its two budgets
    (``Repository.charge_attempts``), so the nodes together allow what one node
    would. A refusal is remembered here for the caller (user and address together)
    until the window that refused it ends, so that a guesser who keeps trying costs
    the database nothing more on this node; a correct guess given back on another
    node meanwhile is not seen, which only errs on the strict side for someone who
    has spent their budget anyway.
    """

    def __init__(
        self,
        store: AttemptStore,
        per_user: int,
        per_address: int,
        window_seconds: float,
        *,
        monotonic: Callable[[], float],
        wall_clock: Callable[[], datetime],
        max_tracked: int = MAX_TRACKED,
    ) -> None:
        self._store = store
        self._per_user = per_user
        # A budget of 0 switches the per-address count off, as in SecretAttempts.
        self._per_address = per_address
        self._window = window_seconds
        self._monotonic = monotonic
        self._wall_clock = wall_clock
        self._max_tracked = max_tracked
        #: (user, address key) refused until this monotonic time, oldest first.
        self._refused: OrderedDict[tuple[UUID, str | None], float] = OrderedDict()

    def _budgets(self, user_id: UUID, address: str | None) -> tuple[AttemptBudget, ...]:
        user = AttemptBudget("user", str(user_id), self._per_user)
        key = address_key(address) if self._per_address > 0 else None
        if key is None:
            return (user,)
        return user, AttemptBudget("address", key, self._per_address)

    async def charge(self, user_id: UUID, address: str | None) -> tuple[AttemptBudget, ...]:
        """Charge one attempt, or raise ``429 too-many-attempts`` if a budget is spent."""
        budgets = self._budgets(user_id, address)
        caller = (user_id, budgets[1].key if len(budgets) > 1 else None)
        now = self._monotonic()
        until = self._refused.get(caller)
        if until is not None:
            if until > now:
                raise _too_many(until - now)
            del self._refused[caller]
        wait = await self._store.charge_attempts(budgets, self._wall_clock(), self._window)
        if wait > 0:
            self._refused[caller] = self._monotonic() + wait
            self._refused.move_to_end(caller)
            if len(self._refused) > self._max_tracked:
                self._refused.popitem(last=False)
            raise _too_many(wait)
        return budgets

    async def refund(self, budgets: Sequence[AttemptBudget]) -> None:
        """The attempt presented the right secret: give it back (see the class docstring)."""
        # Shielded: a correct guess whose request was cancelled is given back too.
        with trio.move_on_after(REFUND_TIMEOUT_SECONDS, shield=True):
            try:
                await self._store.refund_attempts(budgets)
            except StorageError as exc:
                log.warning("could not give back a failed-attempt charge: %s", exc)

    @asynccontextmanager
    async def attempt(self, user_id: UUID, address: str | None) -> AsyncIterator[None]:
        """See :meth:`Budgets.attempt`."""
        budgets = await self.charge(user_id, address)
        try:
            yield
        except ServiceError:
            raise
        except BaseException:
            await self.refund(budgets)
            raise
        await self.refund(budgets)

    @property
    def tracked(self) -> int:
        """How many callers are remembered as refused (for tests)."""
        return len(self._refused)


def _too_many(wait: float) -> ServiceError:
    return ServiceError(
        429,
        "too-many-attempts",
        f"too many failed password or invitation attempts; retry in {_ceil(wait)} s",
        retry_after=_ceil(wait),
    )


def _ceil(seconds: float) -> int:
    return max(1, int(-(-seconds // 1)))
