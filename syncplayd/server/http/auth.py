"""Who the caller is, for HTTP requests and websockets alike.

A trusted reverse proxy's identity headers come first (only from the
addresses in ``proxy.trusted_addresses``); otherwise the bearer token.
"""

from __future__ import annotations

from collections.abc import Callable

from syncplayd.identity import Principal, client_address, decode_token, principal_from_proxy
from syncplayd.server.http.state import AppState


def proxy_principal(
    state: AppState, header: Callable[[str], str | None], remote_addr: str | None
) -> Principal | None:
    """The user the trusted proxy vouches for, or ``None`` (raises ``InvalidToken``)."""
    proxy = state.settings.proxy
    return principal_from_proxy(
        header,
        remote_addr,
        trusted=proxy.trusted_addresses,
        user_id_header=proxy.user_id_header,
        user_name_header=proxy.user_name_header,
        admin_header=proxy.admin_header,
    )


def request_address(
    state: AppState, header: Callable[[str], str | None], remote_addr: str | None
) -> str | None:
    """The client's address, through ``X-Forwarded-For`` from ``proxy.real_ip_from``.

    A setting of its own, not ``proxy.trusted_addresses``: trusting a proxy's
    word on addresses must not also make it trusted for identity headers.
    """
    return client_address(
        remote_addr, header("X-Forwarded-For"), trusted=state.settings.proxy.real_ip_from
    )


def bearer_token(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or ``None``."""
    scheme, _, token = (header or "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def token_principal(state: AppState, token: str) -> Principal:
    """Verify a bearer token with the daemon's settings (raises ``InvalidToken``)."""
    auth = state.settings.auth
    return decode_token(
        token,
        state.jwt_secret,
        leeway_seconds=auth.jwt_leeway_seconds,
        audience=auth.jwt_audience,
        issuer=auth.jwt_issuer,
    )
