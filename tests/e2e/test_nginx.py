"""The daemon behind a real nginx: REST, websocket, identity headers, client addresses.

nginx plays the media server's reverse proxy, set up as docs/deployment.md says:
it reaches the daemon through the proxy socket (``proxy.socket``), the only
channel on which identity headers and ``X-Forwarded-For`` are believed, so the
tests can tell "through the proxy" from "around it" (TCP on 127.0.0.1, where
every local process could connect). ``server.allowed_hosts`` names the site.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from uuid import uuid4

import httpx
import pytest
import trio
from trio_websocket import open_websocket_url
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, CloseConnection, Event, Request

from tests.daemon_process import DaemonProcess, new_user, run_daemon
from tests.e2e.nginx import require_nginx, run_nginx
from tests.e2e.raw import Raw, token

PER_ADDRESS = 3  # failed join attempts per client address
SITE = "media.example"  # server.allowed_hosts

# The http block (tests/e2e/nginx.py puts it in a whole nginx.conf).
CONFIG = """
    map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}
    server {{
        listen 127.0.0.1:{port};
        location /api/v1/syncplay/ {{
            proxy_pass http://unix:{socket}:;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_read_timeout 120s;
            proxy_send_timeout 120s;
            # What an auth proxy would set after logging the user in; the client's
            # own X-Remote-* headers never pass (an empty value drops the header).
            proxy_set_header X-Remote-User-Id $http_x_test_login;
            proxy_set_header X-Remote-User-Name $http_x_test_name;
            proxy_set_header X-Remote-User-Admin "";
        }}
        location /syncplay/ {{
            proxy_pass http://unix:{socket}:;
            proxy_set_header Host $http_host;
        }}
    }}
"""


@pytest.fixture(scope="module")
def proxied(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DaemonProcess, str]]:
    require_nginx()
    folder = tmp_path_factory.mktemp("nginx")
    proxy_socket = folder / "proxy" / "http.sock"
    env = {
        "SYNCPLAY_PROXY_SOCKET": str(proxy_socket),
        "SYNCPLAY_ALLOWED_HOSTS": SITE,
        "SYNCPLAY_ROOMS_FAILED_JOIN_ATTEMPTS_PER_ADDRESS": str(PER_ADDRESS),
    }
    with run_daemon(f"sqlite:///{folder / 'db.sqlite3'}", folder / "state", env) as daemon:

        def config(port: int) -> str:
            return CONFIG.format(port=port, socket=proxy_socket)

        with run_nginx(folder, config) as base:
            yield daemon, base


def test_rest_through_the_proxy(proxied: tuple[DaemonProcess, str]) -> None:
    _, base = proxied
    owner = new_user("owner")
    auth = {"Authorization": f"Bearer {token(owner)}"}
    with httpx.Client(base_url=base, headers=auth, timeout=10) as http:
        created = http.post(
            "/api/v1/syncplay/rooms",
            json={"name": "proxied", "content_type": "movie", "content_id": "1", "is_public": True},
        )
        assert created.status_code == 201, created.text
        room = http.get(f"/api/v1/syncplay/rooms/{created.json()['id']}")
        assert room.status_code == 200 and room.json()["name"] == "proxied"
        refused = http.get("/api/v1/syncplay/rooms", headers={"Authorization": "Bearer nope"})
        assert refused.status_code == 401


def test_watch_page_through_the_proxy(proxied: tuple[DaemonProcess, str]) -> None:
    _, base = proxied
    with httpx.Client(base_url=base, timeout=10.0) as client:
        page = client.get("/syncplay/")
        library = client.get("/syncplay/syncplay-client.js")
        config = client.get("/syncplay/config.json")
    assert page.status_code == 200
    assert '<video id="video"' in page.text
    assert "content-security-policy" in page.headers
    assert library.status_code == 200
    assert "PROTOCOL_VERSION" in library.text
    assert config.json()["protocol"] == 1


def test_trusted_identity_headers_only_through_the_proxy(
    proxied: tuple[DaemonProcess, str],
) -> None:
    daemon, base = proxied
    user = str(uuid4())
    login = {"X-Test-Login": user, "X-Test-Name": "Proxy Pat"}
    with httpx.Client(base_url=base, timeout=10) as http:
        created = http.post(
            "/api/v1/syncplay/rooms",
            headers=login,
            json={"name": "via proxy", "content_type": "movie", "content_id": "1"},
        )
        assert created.status_code == 201, created.text
        assert created.json()["owner_id"] == user
        # A client's own identity header is dropped by the proxy.
        spoofed = http.get("/api/v1/syncplay/rooms", headers={"X-Remote-User-Id": user})
        assert spoofed.status_code == 401
    # Around the proxy (TCP from 127.0.0.1, the proxy's host) the header is ignored too:
    # any local process could connect there.
    with httpx.Client(base_url=daemon.base_url, timeout=10) as direct:
        around = direct.get("/api/v1/syncplay/rooms", headers={"X-Remote-User-Id": user})
        assert around.status_code == 401


def test_a_rebound_host_name_is_refused_through_the_proxy(
    proxied: tuple[DaemonProcess, str],
) -> None:
    """DNS rebinding: a page on another name that now points here gets nothing, as anyone."""
    _, base = proxied
    login = {"X-Test-Login": str(uuid4()), "X-Test-Name": "Proxy Pat"}
    with httpx.Client(base_url=base, timeout=10) as http:
        rebound = http.get("/api/v1/syncplay/rooms", headers=login | {"Host": "rebound.example"})
        assert rebound.status_code == 421, rebound.text
        assert rebound.json()["code"] == "host-not-allowed"
        page = http.get("/syncplay/", headers={"Host": "rebound.example"})
        assert page.status_code == 421
        site = http.get("/api/v1/syncplay/rooms", headers=login | {"Host": SITE})
        assert site.status_code == 200, site.text


def test_a_cross_site_form_post_is_refused_through_the_proxy(
    proxied: tuple[DaemonProcess, str],
) -> None:
    """The proxy knows its users by cookie: another site's page must not act for them."""
    _, base = proxied
    owner = {"X-Test-Login": str(uuid4()), "X-Test-Name": "Owner"}
    victim = {"X-Test-Login": str(uuid4()), "X-Test-Name": "Victim"}
    with httpx.Client(base_url=base, timeout=10) as http:
        created = http.post(
            "/api/v1/syncplay/rooms",
            headers=owner,
            json={"name": "csrf", "content_type": "movie", "content_id": "1", "is_public": True},
        )
        assert created.status_code == 201, created.text
        join = f"/api/v1/syncplay/rooms/{created.json()['id']}/join"
        form = {
            "Origin": "https://evil.example",
            "Content-Type": "application/x-www-form-urlencoded",
        }
        refused = http.post(join, headers=victim | form)
        assert refused.status_code == 403, refused.text
        same_site = {"Origin": f"http://{SITE}", "Host": SITE, "Sec-Fetch-Site": "same-origin"}
        assert http.post(join, headers=victim | same_site).status_code == 200


def test_failed_attempts_are_counted_per_client_behind_the_proxy(
    proxied: tuple[DaemonProcess, str],
) -> None:
    """nginx's ``X-Forwarded-For`` names the client: one guesser does not lock out the rest."""
    _, base = proxied

    def client(user_name: str, address: str) -> httpx.Client:
        auth = {"Authorization": f"Bearer {token(new_user(user_name))}"}
        transport = httpx.HTTPTransport(local_address=address)
        return httpx.Client(base_url=base, headers=auth, transport=transport, timeout=10)

    with client("owner", "127.0.0.1") as owner:
        created = owner.post(
            "/api/v1/syncplay/rooms",
            json={"name": "locked", "content_type": "movie", "content_id": "1", "password": "pw"},
        )
        assert created.status_code == 201, created.text
    join = f"/api/v1/syncplay/rooms/{created.json()['id']}/join"
    guesser, neighbour = "127.79.0.2", "127.79.0.3"
    for n in range(PER_ADDRESS):  # new user ids each time: the address budget is what counts
        with client(f"guess{n}", guesser) as http:
            assert http.post(join, json={"password": "no"}).status_code == 403
    with client("guess-again", guesser) as http:
        refused = http.post(join, json={"password": "pw"})
        assert refused.status_code == 429, refused.text
    with client("neighbour", neighbour) as http:
        assert http.post(join, json={"password": "pw"}).status_code == 200


async def test_websocket_session_through_the_proxy(proxied: tuple[DaemonProcess, str]) -> None:
    _, base = proxied
    owner, guest = new_user("owner"), new_user("guest")

    def create() -> str:
        with httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {token(owner)}"}
        ) as http:
            response = http.post(
                "/api/v1/syncplay/rooms",
                json={"name": "ws", "content_type": "movie", "content_id": "1", "is_public": True},
            )
            room_id: str = response.json()["id"]
            return room_id

    room_id = await trio.to_thread.run_sync(create)
    url = base.replace("http://", "ws://") + "/api/v1/syncplay/ws"
    async with open_websocket_url(url) as a_ws, open_websocket_url(url) as b_ws:
        a, b = Raw(a_ws), Raw(b_ws)
        for client, user in ((a, owner), (b, guest)):
            assert (await client.hello(user))["type"] == "welcome"
            await client.join(room_id)
        await a.send({"type": "play", "position": 10.0})
        change = await b.expect("playback")
        assert change["playback"]["state"] == "playing"
        await b.send({"type": "chat", "message": "through nginx", "client_id": "n1"})
        assert (await a.expect("chat"))["message"]["message"] == "through nginx"
        await b.send({"type": "ping", "id": 3, "t0": 1.0})
        assert (await b.expect("pong"))["id"] == 3


async def test_websocket_identity_from_the_proxy(proxied: tuple[DaemonProcess, str]) -> None:
    """A browser behind the proxy's login: no token in ``hello``, the proxy names the user."""
    _, base = proxied
    user = str(uuid4())
    url = base.replace("http://", "ws://") + "/api/v1/syncplay/ws"
    login = [("X-Test-Login", user), ("X-Test-Name", "Socket Sam")]
    async with open_websocket_url(url, extra_headers=login) as ws:  # type: ignore[arg-type]
        client = Raw(ws)
        welcome = await client.hello(None)
        assert welcome["type"] == "welcome", welcome
        assert welcome["user_id"] == user
        assert welcome["user_name"] == "Socket Sam"
        assert welcome["is_admin"] is False


# -- a proxy that keeps its connections to the daemon alive -------------------------------------
POOLED = """
    map $http_upgrade $connection_upgrade {{ default upgrade; '' ''; }}
    upstream syncplayd {{
        server unix:{socket};
        keepalive 4;  # idle connections kept for the next request, whatever it is
    }}
    server {{
        listen 127.0.0.1:{port};
        location /api/v1/syncplay/ {{
            proxy_pass http://syncplayd;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Host $http_host;
        }}
    }}
"""


@pytest.fixture
def pooled(tmp_path: Path) -> Iterator[str]:
    """nginx (one worker) in front of a daemon, keeping its upstream connections alive."""
    require_nginx()
    proxy_socket = tmp_path / "proxy" / "http.sock"
    env = {"SYNCPLAY_PROXY_SOCKET": str(proxy_socket), "SYNCPLAY_ALLOWED_HOSTS": SITE}

    def config(port: int) -> str:
        return POOLED.format(port=port, socket=proxy_socket)

    with (
        run_daemon(f"sqlite:///{tmp_path / 'db.sqlite3'}", tmp_path / "state", env),
        run_nginx(tmp_path, config) as base,
    ):
        yield base


async def test_an_upgrade_on_a_reused_proxy_connection_takes_the_broadcast_path(
    pooled: str,
) -> None:
    """nginx sends the upgrade on a connection that already carried a request: the daemon
    serves it on its broadcast path all the same, which answers a text frame that is not
    UTF-8 with a 1007 close (hypercorn's WebSocket dropped the connection: 1006)."""
    url = httpx.URL(pooled)
    assert url.port is not None

    def plain_request() -> None:
        with httpx.Client(base_url=pooled, headers={"Host": SITE}) as http:
            assert http.get("/api/v1/syncplay/openapi.json").status_code == 200

    with trio.fail_after(10):
        await trio.to_thread.run_sync(plain_request)  # leaves nginx an idle connection
        client = WSConnection(ConnectionType.CLIENT)
        async with await trio.open_tcp_stream(url.host, url.port) as stream:
            await stream.send_all(client.send(Request(host=SITE, target="/api/v1/syncplay/ws")))
            events = await _events(client, stream)
            assert isinstance(events[0], AcceptConnection), events
            # A masked text frame (a zero key: the payload as is) that is not UTF-8.
            await stream.send_all(bytes((0x81, 0x80 | 2)) + bytes(4) + b"\xff\xfe")
            while not (closes := [e for e in events if isinstance(e, CloseConnection)]):
                events = await _events(client, stream)
    assert closes[0].code == 1007


async def _events(client: WSConnection, stream: trio.SocketStream) -> list[Event]:
    """The client's next events, reading as many bytes as they take (EOF: a 1006 close)."""
    while True:
        data = await stream.receive_some(65536)
        client.receive_data(data or None)
        events = list(client.events())
        if events:
            return events
        if not data:
            return [CloseConnection(code=1006)]
