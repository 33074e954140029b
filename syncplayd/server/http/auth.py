"""Who the caller is, and whether to answer at all, for HTTP requests and websockets alike.

* Identity: the reverse proxy's identity headers come first, but only on a
  request that came through the proxy's own channel (the proxy socket, or TCP
  from ``proxy.trusted_addresses`` with ``proxy.secret``); otherwise the bearer
  token.
* The ``Host`` a request names must be one of ``server.allowed_hosts`` (when
  set): a page that rebinds its DNS name to the daemon's address gets nothing.
* A browser request from another site's page never acts under the proxy's
  identity (the proxy authenticates browsers by cookie, which such a page can
  make the browser send).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any, Protocol
from urllib.parse import urlsplit

from werkzeug.datastructures import Headers

from syncplayd.identity import (
    PROXY_SECRET_HEADER,
    Principal,
    client_address,
    decode_token,
    principal_from_proxy,
    proxy_channel_trusted,
)
from syncplayd.server.http.state import AppState
from syncplayd.server.process.proxy_socket import PROXY_SOCKET_SCOPE_KEY


class Incoming(Protocol):
    """What is read of a request or a websocket upgrade (Quart's ``request``, ``websocket``)."""

    @property
    def headers(self) -> Headers: ...

    @property
    def remote_addr(self) -> str | None: ...

    @property
    def scope(self) -> Mapping[str, Any]: ...


def via_proxy_socket(incoming: Incoming) -> bool:
    """Whether the request came through ``proxy.socket`` (marked by its server)."""
    return incoming.scope.get(PROXY_SOCKET_SCOPE_KEY) is True


def proxy_principal(state: AppState, incoming: Incoming) -> Principal | None:
    """The user the proxy vouches for, or ``None`` (raises ``InvalidToken``).

    ``None`` for every request that did not come through the proxy's channel,
    whatever identity headers it carries.
    """
    proxy = state.settings.proxy
    trusted = proxy_channel_trusted(
        via_socket=via_proxy_socket(incoming),
        peer=incoming.remote_addr,
        presented=incoming.headers.getlist(PROXY_SECRET_HEADER),
        secret=None if proxy.secret is None else proxy.secret.reveal(),
        trusted=proxy.trusted_addresses,
    )
    if not trusted:
        return None
    return principal_from_proxy(
        incoming.headers.getlist,
        user_id_header=proxy.user_id_header,
        user_name_header=proxy.user_name_header,
        admin_header=proxy.admin_header,
    )


def request_address(state: AppState, incoming: Incoming) -> str | None:
    """The client's address, through ``X-Forwarded-For`` from ``proxy.real_ip_from``.

    A setting of its own, not ``proxy.trusted_addresses``: trusting a proxy's
    word on addresses must not also make it trusted for identity headers. On the
    proxy socket the peer is the proxy by construction, so its header counts.
    Every line of the header counts, as one list (see ``client_address``).
    """
    return client_address(
        incoming.remote_addr,
        incoming.headers.getlist("X-Forwarded-For"),
        trusted=state.settings.proxy.real_ip_from,
        peer_trusted=via_proxy_socket(incoming),
    )


def host_allowed(host_lines: list[str], allowed: tuple[str, ...]) -> bool:
    """Whether a request's ``Host`` (all its lines) names a host in ``allowed``.

    Empty ``allowed``: any host. Loopback addresses and ``localhost`` always pass
    (health probes, a shell on the machine): a rebound DNS name never arrives as one,
    since the browser sends the name the page was loaded from.
    """
    if not allowed:
        return True
    if len(host_lines) != 1:
        return False
    host = _host_name(host_lines[0])
    if host in allowed or host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _host_name(value: str) -> str:
    # The form config's check_host stores: lower case, no port, no IPv6 brackets, no
    # trailing dot, an IP address in canonical form.
    host = value.strip().lower()
    if host.startswith("["):
        host = host[1 : host.find("]")] if "]" in host else host
    elif ":" in host:
        host = host.rpartition(":")[0]
    host = host.rstrip(".")
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host


def cross_site_request(headers: Headers) -> bool:
    """Whether a browser sent this request for a page of another origin.

    Browsers say so in ``Sec-Fetch-Site`` (all current ones, on HTTPS and
    localhost); only ``same-origin`` and ``none`` (typed in, a bookmark) pass.
    Without it, an ``Origin`` (sent with every cross-origin POST, ``null`` from
    opaque origins) must name the request's own host. Clients that are not
    browsers send neither and pass.
    """
    fetch_site = headers.get("Sec-Fetch-Site")
    if fetch_site is not None:
        return fetch_site.strip().lower() not in ("same-origin", "none")
    origin = headers.get("Origin")
    if origin is None:
        return False
    host = headers.get("Host")
    return host is None or urlsplit(origin.strip().lower()).netloc != host.strip().lower()


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
