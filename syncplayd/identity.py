"""Who is calling: bearer JWTs minted by the media server (or by ``syncplayctl``).

Tokens are HS256 with the shared secret; ``sub`` is the user's UUID, ``name`` the
display name, ``exp`` is required and ``"role": "admin"`` marks administrators.
Only HS256 is accepted: pinning the algorithm is what stops ``alg: none`` and
algorithm-confusion tokens.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from uuid import UUID

import jwt

from syncplayd.clocks import utc_now

ALGORITHM = "HS256"
MAX_NAME_LENGTH = 100


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller."""

    user_id: UUID
    name: str
    is_admin: bool = False


class InvalidToken(Exception):
    """The token is missing, malformed, expired or wrongly signed.

    The message is safe to show to the caller: it never contains the token.
    """


def decode_token(
    token: str,
    secret: str,
    *,
    leeway_seconds: float = 0,
    audience: str | None = None,
    issuer: str | None = None,
) -> Principal:
    """Verify a bearer token and return its principal.

    Raises:
        InvalidToken: for any token that is not a valid, unexpired HS256 token
            with a UUID ``sub``.
    """
    options: jwt.types.Options = {"require": ["exp", "sub"]}
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            leeway=leeway_seconds,
            audience=audience,
            issuer=issuer,
            options=options,
        )
    except jwt.ExpiredSignatureError:
        raise InvalidToken("token expired") from None
    except jwt.InvalidTokenError as exc:
        # PyJWT's messages name the failed check, never the token's content.
        raise InvalidToken(f"invalid token: {exc}") from None
    try:
        user_id = UUID(str(claims["sub"]))
    except ValueError:
        raise InvalidToken("invalid token: 'sub' is not a UUID") from None
    name = claims.get("name")
    if name is None:
        name = str(user_id)[:8]
    if not isinstance(name, str):
        raise InvalidToken("invalid token: 'name' must be a string")
    # Control characters in a display name only ever break someone's screen.
    name = "".join(ch for ch in name if ch.isprintable()).strip()[:MAX_NAME_LENGTH]
    if not name:
        raise InvalidToken("invalid token: 'name' must be a non-empty printable string")
    return Principal(
        user_id=user_id,
        name=name,
        is_admin=claims.get("role") == "admin",
    )


def encode_token(
    principal: Principal,
    secret: str,
    *,
    ttl: timedelta,
    now: datetime | None = None,
    audience: str | None = None,
    issuer: str | None = None,
) -> str:
    """Mint a token for ``principal`` valid for ``ttl`` (used by ``syncplayctl`` and tests)."""
    issued = now or utc_now()
    claims: dict[str, object] = {
        "sub": str(principal.user_id),
        "name": principal.name,
        "iat": int(issued.timestamp()),
        "exp": int((issued + ttl).timestamp()),
    }
    if principal.is_admin:
        claims["role"] = "admin"
    if audience is not None:
        claims["aud"] = audience
    if issuer is not None:
        claims["iss"] = issuer
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


SECRET_FILE_NAME = "jwt_secret"  # noqa: S105 - a file name


def load_or_create_secret(state_dir: Path) -> tuple[str, bool]:
    """Return the generated secret kept in the state folder, creating it on first use.

    Returns the secret and whether it was created now. The file is created with
    mode 0600 so that only the daemon's user can read it.
    """
    path = state_dir / SECRET_FILE_NAME
    try:
        return path.read_text(encoding="ascii").strip(), False
    except FileNotFoundError:
        pass
    state_dir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    # O_EXCL: if two processes race on first start, one wins and the other reads it.
    try:
        fd = _create_exclusive(path)
    except FileExistsError:
        return path.read_text(encoding="ascii").strip(), False
    with open(fd, "w", encoding="ascii") as handle:
        handle.write(secret + "\n")
    return secret, True


def _create_exclusive(path: Path) -> int:
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)


def principal_from_proxy(
    header: Callable[[str], str | None],
    client_address: str | None,
    *,
    trusted: Sequence[str],
    user_id_header: str,
    user_name_header: str,
    admin_header: str,
) -> Principal | None:
    """The user a trusted reverse proxy vouches for, or ``None`` to fall back to tokens.

    Headers are believed only from an address in ``trusted``: anyone else could
    send them. A trusted proxy that sends a malformed identity is refused
    rather than ignored, so a misconfiguration is loud.

    Raises:
        InvalidToken: the trusted proxy sent a user id that is not a UUID.
    """
    if not trusted or client_address is None or not _address_in(client_address, trusted):
        return None
    raw_id = header(user_id_header)
    if raw_id is None:
        return None
    try:
        user_id = UUID(raw_id.strip())
    except ValueError:
        raise InvalidToken(f"invalid identity: {user_id_header} is not a UUID") from None
    name = "".join(ch for ch in header(user_name_header) or "" if ch.isprintable()).strip()
    return Principal(
        user_id=user_id,
        name=(name or str(user_id)[:8])[:MAX_NAME_LENGTH],
        is_admin=(header(admin_header) or "").strip().lower() == "true",
    )


MAX_FORWARDED_HOPS = 16


def client_address(
    peer: str | None, forwarded_for: str | None, *, trusted: Sequence[str]
) -> str | None:
    """The client's address: the TCP peer, or what a trusted proxy says it forwarded.

    ``X-Forwarded-For`` is believed only from a peer in ``trusted``, and read from
    the right: each proxy appends the address it got the request from, so the
    rightmost entry that is not itself a trusted proxy is the client (entries
    further left were written by the client and prove nothing). With the header
    ignored, every user behind the proxy would share the proxy's address, and so
    one per-address budget of failed join attempts.
    """
    if peer is None or not forwarded_for or not trusted or not _address_in(peer, trusted):
        return peer
    client = peer
    for hop in reversed(forwarded_for.split(",")[-MAX_FORWARDED_HOPS:]):
        hop = hop.strip()
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            break  # not an address: nothing left of it can be believed
        client = hop
        if not _address_in(hop, trusted):
            break
    return client


def _address_in(address: str, networks: Sequence[str]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False  # a unix socket peer or a name: not an address we can trust
    return any(ip in ipaddress.ip_network(network) for network in networks)
