"""Who may speak for the reverse proxy, on a real daemon process.

The set-up docs/deployment.md used to show, ``proxy.trusted_addresses: [127.0.0.1]``,
believed identity headers from every process on the proxy's host: any local user
(``su nobody -c 'curl -H "X-Remote-User-Id: ..."'``), and any browser page there
whose DNS name an attacker rebinds to 127.0.0.1. Now the proxy's channel is the
proxy socket (``proxy.socket``) or TCP from a trusted address *with* the shared
``proxy.secret``; ``server.allowed_hosts`` refuses rebound host names; a page of
another site cannot act under the proxy's identity (cross-site form posts); and
``X-Forwarded-For`` is read over all its lines.
"""

from __future__ import annotations

import os
import socket
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit
from uuid import uuid4

import httpx
import pytest
import trio
from trio_websocket import open_websocket_url

from tests.daemon_process import DaemonProcess, new_user, run_daemon
from tests.security.support import PREFIX, TIMEOUT, fresh_address, token_for

PROXY_SECRET = "proxy-secret-for-the-tests-0123456789abcdef"
SECRET_HEADER = "X-Syncplay-Proxy-Secret"
#: The address X-Forwarded-For is believed from (real_ip_from).
FORWARDER = "127.78.1.1"
PER_ADDRESS = 3
HOST = "media.example"


@dataclass
class Proxied:
    """The daemon, and the socket its proxy would use."""

    daemon: DaemonProcess
    socket: str


@pytest.fixture(scope="module")
def proxied(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxied]:
    folder = tmp_path_factory.mktemp("proxy-trust")
    env = {
        # The documented loopback set-up, plus the secret and the socket.
        "SYNCPLAY_PROXY_TRUSTED_ADDRESSES": "127.0.0.1",
        "SYNCPLAY_PROXY_SECRET": PROXY_SECRET,
        "SYNCPLAY_PROXY_SOCKET": str(folder / "proxy" / "http.sock"),
        "SYNCPLAY_PROXY_REAL_IP_FROM": FORWARDER,
        "SYNCPLAY_ALLOWED_HOSTS": HOST,
        "SYNCPLAY_ROOMS_FAILED_JOIN_ATTEMPTS": "1000",
        "SYNCPLAY_ROOMS_FAILED_JOIN_ATTEMPTS_PER_ADDRESS": str(PER_ADDRESS),
    }
    with run_daemon(f"sqlite:///{folder / 'db.sqlite3'}", folder / "state", env) as process:
        yield Proxied(process, env["SYNCPLAY_PROXY_SOCKET"])
        assert not any(PROXY_SECRET in line for line in process.log_lines)


def identity(user: str, *, admin: bool = False) -> dict[str, str]:
    headers = {"X-Remote-User-Id": user, "X-Remote-User-Name": "Pat"}
    if admin:
        headers["X-Remote-User-Admin"] = "true"
    return headers


def tcp(proxied: Proxied, address: str = "127.0.0.1") -> httpx.Client:
    daemon = proxied.daemon
    client = httpx.Client(
        base_url=daemon.base_url,
        timeout=TIMEOUT,
        transport=httpx.HTTPTransport(local_address=address),
    )
    daemon.clients.append(client)
    return client


def via_socket(proxied: Proxied) -> httpx.Client:
    """What nginx does with ``proxy_pass http://unix:/run/.../http.sock:``."""
    client = httpx.Client(
        base_url=f"http://{HOST}",
        timeout=TIMEOUT,
        transport=httpx.HTTPTransport(uds=proxied.socket),
    )
    proxied.daemon.clients.append(client)
    return client


ROOM = {"name": "trust", "content_type": "movie", "content_id": "1", "is_public": True}


def test_a_local_process_cannot_claim_to_be_the_proxy(proxied: Proxied) -> None:
    """From the proxy's own address, identity headers alone make nobody anybody."""
    admin = str(uuid4())
    http = tcp(proxied)
    for headers in (
        identity(admin, admin=True),
        identity(admin, admin=True) | {SECRET_HEADER: "not-the-secret"},
        identity(admin, admin=True) | {SECRET_HEADER: PROXY_SECRET[:-1]},
    ):
        created = http.post(PREFIX + "/rooms", json=ROOM, headers=headers)
        assert created.status_code == 401, created.text
        listed = http.get(PREFIX + "/rooms", headers=headers)
        assert listed.status_code == 401, listed.text


async def test_a_local_process_cannot_claim_to_be_the_proxy_on_the_websocket(
    proxied: Proxied,
) -> None:
    url = proxied.daemon.base_url.replace("http://", "ws://") + PREFIX + "/ws"
    headers = list(identity(str(uuid4()), admin=True).items())
    async with open_websocket_url(url, extra_headers=headers) as ws:  # type: ignore[arg-type]
        await ws.send_message('{"type": "hello", "protocol": 1}')
        with trio.fail_after(TIMEOUT):
            answer = await ws.get_message()
        assert '"unauthorized"' in str(answer), answer


def test_the_secret_opens_tcp_from_a_trusted_address_only(proxied: Proxied) -> None:
    user = str(uuid4())
    headers = identity(user) | {SECRET_HEADER: PROXY_SECRET}
    created = tcp(proxied).post(PREFIX + "/rooms", json=ROOM, headers=headers)
    assert created.status_code == 201, created.text
    assert created.json()["owner_id"] == user
    # The secret without the address (another loopback address is another host's).
    elsewhere = tcp(proxied, fresh_address()).get(PREFIX + "/rooms", headers=headers)
    assert elsewhere.status_code == 401, elsewhere.text


def test_the_proxy_socket_is_the_proxys_channel(proxied: Proxied) -> None:
    path = proxied.socket
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o660
    user = str(uuid4())
    http = via_socket(proxied)
    created = http.post(PREFIX + "/rooms", json=ROOM, headers=identity(user))
    assert created.status_code == 201, created.text
    assert created.json()["owner_id"] == user
    # Bearer tokens work there too, and a request without either is refused.
    token = {"Authorization": f"Bearer {token_for(new_user())}"}
    assert http.get(PREFIX + "/rooms", headers=token).status_code == 200
    assert http.get(PREFIX + "/rooms").status_code == 401
    # The proxy is trusted to name users, not to be the administrator of the admin API.
    admin_api = http.get("/api/v1/admin/status", headers=identity(user, admin=True))
    assert admin_api.status_code == 401, admin_api.text


def _raw_upgrade(proxied: Proxied, host: str) -> int:
    """The status of a websocket upgrade that names ``host``."""
    url = urlsplit(proxied.daemon.base_url)
    assert url.hostname is not None and url.port is not None
    request = (
        f"GET {PREFIX}/ws HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n"
    )
    with socket.create_connection((url.hostname, url.port), timeout=TIMEOUT) as conn:
        conn.sendall(request.encode())
        status_line = conn.recv(4096).split(b"\r\n", 1)[0]
    return int(status_line.split()[1])


@pytest.mark.parametrize("host", ["rebound.attacker.example", "rebound.attacker.example:8750"])
def test_a_rebound_host_name_gets_no_answer(proxied: Proxied, host: str) -> None:
    """DNS rebinding: the browser sends the attacker's name as Host; nothing is served."""
    for http in (tcp(proxied), via_socket(proxied)):
        headers = {"Host": host} | identity(str(uuid4()), admin=True)
        for method, path in (("GET", "/healthz"), ("POST", PREFIX + "/rooms")):
            answer = http.request(method, path, headers=headers, json=ROOM)
            assert answer.status_code == 421, answer.text
            assert answer.headers["content-type"] == "application/problem+json"
            assert answer.json()["code"] == "host-not-allowed"
    assert _raw_upgrade(proxied, host) == 421


@pytest.mark.parametrize(
    "host", [HOST, "MEDIA.example.:443", "127.0.0.1:8750", "[::1]", "localhost"]
)
def test_allowed_and_loopback_hosts_are_answered(proxied: Proxied, host: str) -> None:
    assert tcp(proxied).get("/healthz", headers={"Host": host}).status_code == 200
    # 101 Switching Protocols, or a refusal for another reason than the host.
    assert _raw_upgrade(proxied, host) != 421


def _joinable_room(proxied: Proxied) -> str:
    owner = identity(str(uuid4()))
    created = via_socket(proxied).post(PREFIX + "/rooms", json=ROOM, headers=owner)
    assert created.status_code == 201, created.text
    room_id: str = created.json()["id"]
    return room_id


@pytest.mark.parametrize(
    "browser",
    [
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Sec-Fetch-Site": "cross-site", "Origin": f"http://{HOST}"},
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
    ],
)
def test_a_page_of_another_site_cannot_join_or_leave_for_a_proxy_user(
    proxied: Proxied, browser: dict[str, str]
) -> None:
    """A form post from another site carries the victim's cookie; the proxy vouches."""
    room_id = _joinable_room(proxied)
    victim = identity(str(uuid4()))
    http = via_socket(proxied)
    for action in ("join", "leave"):
        # What a <form method=post action=".../join"> sends: no body, no JSON.
        answer = http.post(f"{PREFIX}/rooms/{room_id}/{action}", headers=victim | browser)
        assert answer.status_code == 403, answer.text
        assert answer.json()["code"] == "origin-not-allowed"
    members = http.get(f"{PREFIX}/rooms/{room_id}/participants", headers=victim)
    assert victim["X-Remote-User-Id"] not in members.text


@pytest.mark.parametrize(
    "browser",
    [
        {},  # not a browser: the Python client, curl
        {"Sec-Fetch-Site": "same-origin", "Origin": f"http://{HOST}"},
        {"Sec-Fetch-Site": "none"},
        {"Origin": f"http://{HOST}"},  # a browser without Fetch metadata (plain HTTP)
    ],
)
def test_the_watch_page_and_other_clients_still_join(
    proxied: Proxied, browser: dict[str, str]
) -> None:
    room_id = _joinable_room(proxied)
    user = identity(str(uuid4()))
    http = via_socket(proxied)
    joined = http.post(f"{PREFIX}/rooms/{room_id}/join", headers=user | browser)
    assert joined.status_code == 200, joined.text
    left = http.post(f"{PREFIX}/rooms/{room_id}/leave", headers=user | browser)
    assert left.status_code == 204, left.text


def test_a_bearer_token_is_not_subject_to_the_origin_rule(proxied: Proxied) -> None:
    """A token is never sent by a browser on its own: no cross-site request carries one."""
    room_id = _joinable_room(proxied)
    token = {"Authorization": f"Bearer {token_for(new_user())}", "Origin": "https://other.example"}
    joined = tcp(proxied).post(f"{PREFIX}/rooms/{room_id}/join", headers=token | {"Host": HOST})
    assert joined.status_code == 200, joined.text


def _password_room(proxied: Proxied) -> str:
    owner = {"Authorization": f"Bearer {token_for(new_user())}"}
    body = ROOM | {"is_public": True, "password": "right"}
    created = tcp(proxied).post(PREFIX + "/rooms", json=body, headers=owner)
    assert created.status_code == 201, created.text
    room_id: str = created.json()["id"]
    return room_id


def test_every_forwarded_for_line_counts(proxied: Proxied) -> None:
    """A proxy that adds its own line: the client's line must not choose whose budget burns."""
    room_id = _password_room(proxied)
    join = f"{PREFIX}/rooms/{room_id}/join"
    victim, guesser = "198.51.100.77", "203.0.113.77"
    forwarder = tcp(proxied, FORWARDER)

    def attempt(lines: list[str], password: str) -> httpx.Response:
        headers: list[tuple[str, str]] = [("X-Forwarded-For", line) for line in lines]
        headers.append(("Authorization", f"Bearer {token_for(new_user())}"))
        return forwarder.post(join, json={"password": password}, headers=headers)

    for _ in range(PER_ADDRESS):
        # The guesser writes the victim's address in a line of its own; the proxy adds
        # a second line with the guesser's real address.
        assert attempt([victim, guesser], "wrong").status_code == 403
    assert attempt([guesser], "right").status_code == 429
    assert attempt([victim], "right").status_code == 200
