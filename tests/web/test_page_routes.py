"""The watch page's HTTP surface, on a daemon process: files, settings, demo mode."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
from quart_trio import QuartTrio

from syncplayd.server.http import web
from syncplayd.server.http.web import CONTENT_SECURITY_POLICY, DEMO_VIDEO
from tests.daemon_process import SECRET, DaemonProcess, run_daemon

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    folder = tmp_path_factory.mktemp("web-demo")
    env = {
        "SYNCPLAY_WEB_DEMO": "true",
        "SYNCPLAY_WEB_MEDIA_URL_TEMPLATE": "/Videos/{content_id}/stream",
        "SYNCPLAY_WEB_GUEST_TOKEN_HOURS": "2",
    }
    with run_daemon(None, folder, env) as daemon:
        yield daemon


@pytest.fixture(scope="module")
def plain_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    with run_daemon(None, tmp_path_factory.mktemp("web-plain")) as daemon:
        yield daemon


def test_page_is_served_with_a_strict_policy(demo_daemon: DaemonProcess) -> None:
    response = demo_daemon.client().get("/syncplay/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "script-src 'self';" in CONTENT_SECURITY_POLICY  # no inline scripts
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert '<video id="video"' in response.text


def test_without_a_slash_the_page_redirects(demo_daemon: DaemonProcess) -> None:
    response = demo_daemon.client().get("/syncplay")
    assert response.status_code == 308
    assert response.headers["location"] == "syncplay/"  # relative: works under a prefix
    assert str(response.url.join(response.headers["location"])).endswith("/syncplay/")


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("syncplay-client.js", "text/javascript; charset=utf-8"),
        ("watch.js", "text/javascript; charset=utf-8"),
        ("watch-util.js", "text/javascript; charset=utf-8"),
        ("watch.css", "text/css; charset=utf-8"),
    ],
)
def test_page_files_are_served(demo_daemon: DaemonProcess, name: str, content_type: str) -> None:
    client = demo_daemon.client()
    response = client.get(f"/syncplay/{name}")
    assert response.status_code == 200
    # Exactly: one charset, and the type nosniff makes browsers insist on.
    assert response.headers["content-type"] == content_type
    assert response.headers["cache-control"] == "no-cache"
    # Revalidation is cheap: the ETag answers 304.
    again = client.get(f"/syncplay/{name}", headers={"If-None-Match": response.headers["etag"]})
    assert again.status_code == 304


@pytest.mark.parametrize(
    ("suffix", "content_type"),
    [
        (".html", "text/html; charset=utf-8"),
        (".js", "text/javascript; charset=utf-8"),
        (".mjs", "text/javascript; charset=utf-8"),
        (".css", "text/css; charset=utf-8"),
        (".json", "application/json"),
        (".svg", "image/svg+xml; charset=utf-8"),
        (".png", "image/png"),
        (".mp4", "video/mp4"),
        (".webm", "video/webm"),
    ],
)
async def test_every_kind_of_page_file_gets_its_type_once(
    tmp_path: Path, suffix: str, content_type: str
) -> None:
    # The kinds the page has no file of today, too: a file added later gets the right type.
    path = tmp_path / f"file{suffix}"
    path.write_bytes(b"x")
    async with QuartTrio(__name__).test_request_context(f"/syncplay/{path.name}"):
        response = await web._static(path)
    assert response.headers["content-type"] == content_type


@pytest.mark.parametrize(
    "path",
    [
        "/syncplay/..%2Fserver%2Fweb.py",
        "/syncplay/%2E%2E%2F__init__.py",
        "/syncplay/.hidden.js",
        "/syncplay/make-demo-video.sh",
        "/syncplay/web.py",
        "/syncplay/demo/make-demo-video.sh",
        "/syncplay/demo/demo-3.webm",
        "/syncplay/demo/..%2Fsyncplay-client.js",
        "/syncplay/nothing-here.js",
    ],
)
def test_nothing_outside_the_page_files_is_reachable(demo_daemon: DaemonProcess, path: str) -> None:
    response = demo_daemon.client().get(path)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


def test_config_tells_the_page_what_it_needs(demo_daemon: DaemonProcess) -> None:
    body = demo_daemon.client().get("/syncplay/config.json").json()
    assert body == {
        "protocol": 1,
        "media_url_template": "/Videos/{content_id}/stream",
        "allow_any_media_url": False,
        "demo": True,
        "demo_media_url": "demo/demo.webm",
        "demo_queue": [
            {"content_type": "url", "content_id": "demo/demo.webm", "title": "Demo film"},
            {"content_type": "url", "content_id": "demo/demo-1.webm", "title": "Episode 1"},
            {"content_type": "url", "content_id": "demo/demo-2.webm", "title": "Episode 2"},
        ],
        "chat_enabled": True,
        "max_chat_length": 1000,
    }


@pytest.mark.parametrize("name", ["demo.webm", "demo-1.webm", "demo-2.webm"])
def test_demo_videos_support_ranges_for_seeking(demo_daemon: DaemonProcess, name: str) -> None:
    client = demo_daemon.client()
    whole = client.get(f"/syncplay/demo/{name}")
    assert whole.status_code == 200
    assert whole.headers["content-type"] == "video/webm"
    assert whole.content == (DEMO_VIDEO.parent / name).read_bytes()
    part = client.get(f"/syncplay/demo/{name}", headers={"Range": "bytes=100-199"})
    assert part.status_code == 206
    assert part.content == whole.content[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(whole.content)}"


def test_guest_token_is_a_working_token(demo_daemon: DaemonProcess) -> None:
    client = demo_daemon.client()
    response = client.post("/syncplay/demo/guest", json={"name": "  Ada  "})
    assert response.status_code == 201
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    claims = jwt.decode(body["token"], SECRET, algorithms=["HS256"])
    assert claims["sub"] == body["user_id"]
    assert claims["name"] == body["user_name"] == "Ada"
    assert claims["exp"] - claims["iat"] == 2 * 3600
    # The token opens the API like any media-server token.
    api = demo_daemon.client(token=body["token"])
    created = api.post(
        "/api/v1/syncplay/rooms",
        json={"name": "Demo", "content_type": "url", "content_id": "/syncplay/demo/demo.webm"},
    )
    assert created.status_code == 201, created.text
    assert created.json()["owner_id"] == body["user_id"]


def test_each_guest_is_a_new_user(demo_daemon: DaemonProcess) -> None:
    client = demo_daemon.client()
    guests = [client.post("/syncplay/demo/guest", json={"name": "Ben"}) for _ in range(2)]
    ids = {guest.json()["user_id"] for guest in guests}
    assert len(ids) == 2


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b'{"name": ""}', 422),
        (b'{"name": "   "}', 422),
        (b'{"name": "a\\u0001b"}', 422),
        (b'{"name": "' + b"x" * 101 + b'"}', 422),
        (b'{"name": 5}', 422),
        (b'{"name": "Ada", "admin": true}', 422),
        (b"[]", 422),
        (b"not json", 400),
    ],
)
def test_guest_requests_are_validated(demo_daemon: DaemonProcess, body: bytes, status: int) -> None:
    response = demo_daemon.client().post(
        "/syncplay/demo/guest", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    assert "token" not in response.json()


def test_without_demo_mode_there_are_no_guests_and_no_video(plain_daemon: DaemonProcess) -> None:
    client = plain_daemon.client()
    assert client.post("/syncplay/demo/guest", json={"name": "Eve"}).status_code == 404
    assert client.get("/syncplay/demo/demo.webm").status_code == 404
    assert client.get("/syncplay/demo/demo-1.webm").status_code == 404
    config = client.get("/syncplay/config.json").json()
    assert config["demo"] is False
    assert config["demo_media_url"] is None
    assert config["demo_queue"] == []
    assert config["media_url_template"] == "{content_id}"
    assert client.get("/syncplay/").status_code == 200


def test_page_can_be_switched_off(tmp_path_factory: pytest.TempPathFactory) -> None:
    folder = tmp_path_factory.mktemp("web-off")
    with run_daemon(None, folder, {"SYNCPLAY_WEB_ENABLED": "false"}) as daemon:
        client = daemon.client()
        assert client.get("/syncplay/").status_code == 404
        assert client.get("/syncplay/syncplay-client.js").status_code == 404
        assert client.get("/healthz").status_code == 200
