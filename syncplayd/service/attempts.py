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

Counters live in memory, per daemon process, and are bounded in size.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from uuid import UUID

from syncplayd.core.ratelimit import AttemptLimiter
from syncplayd.service.errors import ServiceError

#: How many users and how many addresses are tracked at once (each table).
MAX_TRACKED = 10_000


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
    """The two budgets, per user and per address, over one window."""

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
            raise ServiceError(
                429,
                "too-many-attempts",
                f"too many failed password or invitation attempts; retry in {_ceil(wait)} s",
                retry_after=_ceil(wait),
            )
        self._users.charge(user_id, now)
        if self._addresses is not None and key is not None:
            self._addresses.charge(key, now)
        return Charge(user_id, key)

    def refund(self, charge: Charge) -> None:
        """The attempt presented the right secret: it does not count."""
        self._users.refund(charge.user_id)
        if self._addresses is not None and charge.address is not None:
            self._addresses.refund(charge.address)

    @contextmanager
    def attempt(self, user_id: UUID, address: str | None) -> Iterator[None]:
        """Charge one attempt around checking a secret.

        A :class:`ServiceError` leaving the block is a wrong guess and stays
        counted; any other way out (success, a database outage, cancellation) is
        refunded, since only a refused secret tells the guesser something.
        """
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


def _ceil(seconds: float) -> int:
    return max(1, int(-(-seconds // 1)))
