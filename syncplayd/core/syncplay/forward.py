"""A Syncplay client handed from the node it reached to the node that runs its room.

A Syncplay client names its room inside the protocol (its ``Hello``), so a proxy
cannot route it the way it routes a WebSocket by ``?room=``. In multi-node mode the
node a client reaches admits it (invitation, password, bans: with the client's own
address) and, when the room runs on another node, opens a connection to that node's
Syncplay listener and relays the bytes both ways. The first line on that connection
is a **ticket**: the admitted guest, its room and the client's address, signed with a
key derived from the secret every node shares (``auth.jwt_secret``), so that the owner
trusts it and skips the checks already made, and nobody without the secret can claim
an address or a membership. Then come the client's ``Hello`` and what followed it,
unchanged.

The ticket is a JWT (HS256) of its own kind: its key is not the secret itself and
its audience is :data:`AUDIENCE`, so a ticket is never a user's token nor the reverse.
It lives :data:`LIFETIME_SECONDS` and is good once (:class:`SeenTickets`). Nothing here
touches a socket or a clock.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Final
from uuid import UUID

import jwt

from syncplayd.core.syncplay.wire import WireError, encode_line

#: The line's one command; not one of Syncplay's (a client never sends it).
COMMAND: Final = "syncplayd-forward"
AUDIENCE: Final = "syncplayd:syncplay-forward"
#: Long enough for a connection to be opened between two nodes, short enough to be of
#: no use to anyone who copies one off the wire.
LIFETIME_SECONDS: Final = 30.0
#: Tickets remembered as used, at most (each is forgotten when it expires).
MAX_SEEN: Final = 10_000
_ALGORITHM: Final = "HS256"
_PREFIX: Final = b'{"' + COMMAND.encode() + b'"'


@dataclass(frozen=True, slots=True)
class Ticket:
    """An admitted guest on its way to the node that runs its room."""

    user_id: UUID
    room_id: UUID
    #: The client's address, as the node it reached saw it.
    address: str | None
    #: The node that admitted the client and relays it.
    node: str


def ticket_key(secret: str) -> bytes:
    """The tickets' signing key: derived, so that it signs nothing else."""
    return hashlib.sha256(b"syncplayd syncplay-forward\0" + secret.encode()).digest()


def ticket_line(ticket: Ticket, key: bytes, now: float, ticket_id: str) -> bytes:
    """The ticket as the first line of a forwarded connection; ``ticket_id`` is unique
    (random: it is what makes the ticket good once)."""
    claims = {
        "aud": AUDIENCE,
        "sub": str(ticket.user_id),
        "room": str(ticket.room_id),
        "addr": ticket.address,
        "node": ticket.node,
        "iat": int(now),
        "exp": now + LIFETIME_SECONDS,
        "jti": ticket_id,
    }
    return encode_line({COMMAND: jwt.encode(claims, key, algorithm=_ALGORITHM)})


def is_ticket_line(line: bytes) -> bool:
    """Whether a line is a ticket (only ever the first line of a connection)."""
    return line.lstrip().startswith(_PREFIX)


class SeenTickets:
    """Tickets already used, until they expire: a copied ticket is good for nothing."""

    def __init__(self, limit: int = MAX_SEEN) -> None:
        self._limit = limit
        self._expiry: dict[str, float] = {}

    def first_use(self, ticket_id: str, expires: float, now: float) -> bool:
        """Record a use; ``False`` if the ticket was used before (or too many are in
        flight to tell)."""
        if ticket_id in self._expiry:
            return False
        if len(self._expiry) >= self._limit:
            self._expiry = {t: at for t, at in self._expiry.items() if at >= now}
            if len(self._expiry) >= self._limit:
                return False
        self._expiry[ticket_id] = expires
        return True


def read_ticket(
    line: bytes, key: bytes, now: float, seen: SeenTickets, *, leeway: float = 0.0
) -> Ticket:
    """The ticket a line carries, checked: signature, audience, age, first use.

    ``leeway`` tolerates the nodes' clocks disagreeing (``auth.jwt_leeway_seconds``).

    Raises:
        WireError: anything wrong with it (the message names the check, not the token).
    """
    try:
        token = _token_of(line)
        claims = jwt.decode(
            token,
            key,
            algorithms=[_ALGORITHM],
            audience=AUDIENCE,
            # Checked below against ``now``: this module keeps no clock.
            options={"require": ["exp", "iat", "sub", "jti"], "verify_exp": False,
                     "verify_iat": False},
        )  # fmt: skip
    except (ValueError, RecursionError, jwt.InvalidTokenError) as exc:
        raise WireError(f"invalid forwarding ticket: {exc}") from None
    expires = claims["exp"]
    if not isinstance(expires, int | float) or expires + leeway < now:
        raise WireError("invalid forwarding ticket: expired")
    if not isinstance(claims["iat"], int | float) or claims["iat"] - leeway > now:
        raise WireError("invalid forwarding ticket: issued in the future")
    address, node = claims.get("addr"), claims.get("node")
    if not (address is None or isinstance(address, str)) or not isinstance(node, str):
        raise WireError("invalid forwarding ticket: malformed claims")
    try:
        ticket = Ticket(UUID(claims["sub"]), UUID(claims["room"]), address, node)
    except (KeyError, TypeError, ValueError):
        raise WireError("invalid forwarding ticket: malformed claims") from None
    if not seen.first_use(str(claims["jti"]), float(expires), now):
        raise WireError("invalid forwarding ticket: already used")
    return ticket


def _token_of(line: bytes) -> str:
    value = json.loads(line)
    token = value.get(COMMAND) if isinstance(value, dict) and len(value) == 1 else None
    if not isinstance(token, str):
        raise ValueError("not a ticket line")
    return token
