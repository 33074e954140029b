"""Who is calling: bearer JWTs minted by the media server (or by ``syncplayctl``).

Tokens are HS256 with the shared secret; ``sub`` is the user's UUID, ``name`` the
display name, ``exp`` is required and ``"role": "admin"`` marks administrators.
Only HS256 is accepted: pinning the algorithm is what stops ``alg: none`` and
algorithm-confusion tokens.

A reverse proxy that logs users in itself may name them in headers instead
(:func:`principal_from_proxy`), believed only on the proxy's own channel
(:func:`proxy_channel_trusted`); :func:`client_address` reads the client's
address from the proxy's ``X-Forwarded-For``.
"""

from __future__ import annotations

import hmac
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
    if not state_dir.exists():
        # Private, whatever the umask: it also holds the SQLite database by default.
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        state_dir.chmod(0o700)
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


#: The header in which the proxy presents ``proxy.secret`` over TCP.
PROXY_SECRET_HEADER = "X-Syncplay-Proxy-Secret"  # noqa: S105 - a header name


def proxy_channel_trusted(
    *,
    via_socket: bool,
    peer: str | None,
    presented: Sequence[str],
    secret: str | None,
    trusted: Sequence[str],
) -> bool:
    """Whether a request came through a channel only the reverse proxy can use.

    That is the proxy socket (``via_socket``: its file permissions keep everyone
    else out), or TCP from an address in ``trusted`` carrying the shared ``secret``
    (``presented``: every line of :data:`PROXY_SECRET_HEADER`). An address alone
    is not enough: on the proxy's host every local user, and every browser page
    that rebinds a DNS name to it, connects from the same address as the proxy.
    """
    if via_socket:
        return True
    if secret is None or not trusted or peer is None or not _address_in(peer, trusted):
        return False
    if len(presented) != 1:
        return False
    # Header values reach us decoded as latin-1: encoding them back gives the bytes
    # the proxy sent. Constant time, so the comparison leaks no prefix of the secret.
    return hmac.compare_digest(presented[0].encode("latin-1", "replace"), secret.encode())


def principal_from_proxy(
    header_lines: Callable[[str], Sequence[str]],
    *,
    user_id_header: str,
    user_name_header: str,
    admin_header: str,
) -> Principal | None:
    """The user the proxy vouches for, or ``None`` to fall back to tokens.

    Call it only for a request that came through the proxy's channel
    (:func:`proxy_channel_trusted`): anyone else could send these headers. A
    proxy that sends a malformed identity is refused rather than ignored, so a
    misconfiguration is loud; so is a header sent twice (the proxy appended
    one where it should have replaced the client's).

    Raises:
        InvalidToken: the user id is not a UUID, or a header came more than once.
    """

    def single(name: str) -> str | None:
        lines = header_lines(name)
        if len(lines) > 1:
            raise InvalidToken(f"invalid identity: more than one {name} header")
        return lines[0] if lines else None

    raw_id = single(user_id_header)
    if raw_id is None:
        return None
    try:
        user_id = UUID(raw_id.strip())
    except ValueError:
        raise InvalidToken(f"invalid identity: {user_id_header} is not a UUID") from None
    raw_name = _utf8_header(single(user_name_header) or "")
    name = "".join(ch for ch in raw_name if ch.isprintable()).strip()
    return Principal(
        user_id=user_id,
        name=(name or str(user_id)[:8])[:MAX_NAME_LENGTH],
        is_admin=(single(admin_header) or "").strip().lower() == "true",
    )


def _utf8_header(value: str) -> str:
    """A header value as the proxy meant it.

    HTTP servers hand header values over decoded as Latin-1 (RFC 9110 leaves their
    bytes opaque), while proxies and media servers send names as UTF-8: "Zoë" would
    become "ZoÃ«". Bytes that are not UTF-8 are kept as Latin-1 text.
    """
    try:
        return value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return value


MAX_FORWARDED_HOPS = 16


def client_address(
    peer: str | None,
    forwarded_for: list[str],
    *,
    trusted: Sequence[str],
    peer_trusted: bool = False,
) -> str | None:
    """The client's address: the TCP peer, or what a trusted proxy says it forwarded.

    ``forwarded_for`` holds every ``X-Forwarded-For`` line of the request, read as
    one list: a proxy that adds a line of its own (rather than appending to the
    client's) puts the client's address last, and reading only the first line
    would let the client choose whose address it is. The header is believed only
    from a peer in ``trusted``, or from any peer when ``peer_trusted`` (the
    proxy's own socket, which has no address), and read from the right: each
    proxy appends the address it got the request from, so the rightmost entry
    that is not itself a trusted proxy is the client (entries further left were
    written by the client and prove nothing). With the header ignored, every user
    behind the proxy would share the proxy's address, and so one per-address
    budget of failed join attempts.
    """
    if not forwarded_for:
        return peer
    if not peer_trusted and (peer is None or not trusted or not _address_in(peer, trusted)):
        return peer
    client = peer
    hops = ",".join(forwarded_for).split(",")
    for hop in reversed(hops[-MAX_FORWARDED_HOPS:]):
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
