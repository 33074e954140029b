"""docs/integration.md's option (b) as a running set-up, for the tests that check the guide.

The guide's nginx block and its adapter command are read from the guide itself, so the
guide cannot drift from what the tests run:

    browser/player ─> nginx (auth_request) ─> whoami_adapter.py ─> FakeMediaServer
                        └─(X-Remote-User-*)─> syncplayd, on its proxy socket

``FakeMediaServer`` stands for the media server, which is not run here: a few
lines that know two viewers by a session cookie (a browser) or by an API key in
``Authorization: Bearer`` (a player), answer "who am I" in JSON, and serve a
stream that needs the viewer's media credential in the URL (``{media_token}``).
"""

from __future__ import annotations

import json
import queue
import re
import shlex
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit
from uuid import NAMESPACE_URL, UUID, uuid5

import httpx

from tests.daemon_process import DaemonProcess, run_daemon
from tests.e2e.nginx import require_nginx, run_nginx

REPO = Path(__file__).resolve().parents[2]
GUIDE = REPO / "docs" / "integration.md"
ADAPTER = REPO / "docs" / "examples" / "whoami_adapter.py"
DEMO_VIDEO = REPO / "syncplayd" / "web" / "demo" / "demo.webm"
SITE = "media.example"
MEDIA_TEMPLATE = "/Videos/{content_id}/stream?static=true&api_key={media_token}"
TIMEOUT = 10.0
NAMESPACE = "https://media.example.org/users/"  # --id-namespace in the guide's command


# -- the media server's stand-in ----------------------------------------------------------------


@dataclass(frozen=True)
class Viewer:
    id: str  # as the media server names them: not always a UUID
    name: str
    admin: bool
    cookie: str  # the browser's session cookie
    api_key: str  # a player's credential
    media_key: str  # what the stream URL needs (the link's #media_token=)


PAT = Viewer("pat", "Pat", False, "pat-session", "pat-player-key", "pat-media-key")
# An id in the 32-hex-digit form some media servers use: a UUID as it is.
ROOT = Viewer(
    "0f4e8ad2c1b34c2a9e3b7d61a5c09f11", "Root", True, "root-session", "root-key", "root-media"
)
VIEWERS = (PAT, ROOT)


@dataclass
class FakeMediaServer:
    """Stands for the media server (not run here): who-am-I in JSON, and streams."""

    port: int = 0
    whoami_calls: int = 0
    streams: list[str] = field(default_factory=list)  # the query strings it was asked with

    def viewer(self, headers: Any) -> Viewer | None:
        cookie = headers.get("Cookie") or ""
        bearer = (headers.get("Authorization") or "").removeprefix("Bearer ")
        for viewer in VIEWERS:
            if f"session={viewer.cookie}" in cookie.split("; ") or bearer == viewer.api_key:
                return viewer
        return None


def _media_handler(media: FakeMediaServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path == "/whoami":
                media.whoami_calls += 1
                viewer = media.viewer(self.headers)
                if viewer is None:
                    self._answer(401)
                else:
                    body = {"id": viewer.id, "name": viewer.name, "admin": viewer.admin}
                    self._answer(200, json.dumps(body).encode(), "application/json")
            elif url.path.startswith("/Videos/"):
                media.streams.append(url.query)
                key = parse_qs(url.query).get("api_key", [""])[0]
                if any(key == viewer.media_key for viewer in VIEWERS):
                    self._answer(200, DEMO_VIDEO.read_bytes(), "video/webm")
                else:
                    self._answer(401)
            elif url.path == "/login":  # a portal's answer to a visitor who is not logged in
                self.send_response(302)
                self.send_header("Location", "/login-page")
                self.send_header("Content-Length", "0")
                self.end_headers()
            elif url.path == "/broken":
                self._answer(500)
            elif url.path == "/html":
                self._answer(200, b"<html>welcome</html>", "text/html")
            elif url.path == "/portal":  # a portal that answers in headers
                self.send_response(200)
                self.send_header("Remote-User", "alice")
                self.send_header("Remote-Name", "Alice")
                self.send_header("Content-Length", "0")
                self.end_headers()
            else:
                self._answer(404)

        def _answer(self, status: int, body: bytes = b"", kind: str = "text/plain") -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@contextmanager
def fake_media_server() -> Iterator[FakeMediaServer]:
    fake = FakeMediaServer()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _media_handler(fake))
    fake.port = server.server_port
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()


# -- what the guide says ------------------------------------------------------------------------


def guide_block(marker: str, language: str) -> str:
    """The first ``language`` code block after the comment that starts with ``marker``."""
    text = GUIDE.read_text(encoding="utf-8")
    at = text.index(f"<!-- tests/e2e/test_nginx_auth_request.py {marker}")
    match = re.compile(rf"```{language}\n(.*?)```", re.S).search(text, at)
    assert match is not None, f"no {language} block after {marker!r} in {GUIDE}"
    return match[1]


def replace_once(text: str, old: str, new: str, count: int = 1) -> str:
    """``text`` with ``old`` replaced; it must occur ``count`` times (else the guide moved)."""
    assert text.count(old) == count, f"{old!r} should occur {count}x in the guide's block"
    return text.replace(old, new)


def adapter_command(media_port: int) -> list[str]:
    """The guide's adapter command, on a free port and against the stand-in."""
    words = shlex.split(guide_block("runs this command", "sh").replace("\\\n", " "))
    assert words[:2] == ["python3", "whoami_adapter.py"]
    listen, whoami = words.index("--listen") + 1, words.index("--whoami") + 1
    words[listen] = "127.0.0.1:0"
    words[whoami] = replace_once(words[whoami], "127.0.0.1:8096", f"127.0.0.1:{media_port}")
    return [sys.executable, str(ADAPTER), *words[2:]]


SERVER = """
    server {{
        listen 127.0.0.1:{port};
{server_part}
        location / {{  # the media server's own site
            proxy_pass http://127.0.0.1:{media_port};
        }}
    }}
"""


def nginx_http_block(port: int, proxy_socket: Path, adapter: int, media: int) -> str:
    """The guide's nginx block for nginx.conf's http block, with this test's addresses."""
    block = guide_block("runs this block", "nginx")
    block = replace_once(block, "unix:/run/syncplayd-proxy/http.sock:", f"unix:{proxy_socket}:", 2)
    block = replace_once(block, "http://127.0.0.1:8097;", f"http://127.0.0.1:{adapter};")
    http_part, _, server_part = block.partition("# --- server block ---")
    assert "location" in server_part and "location" not in http_part
    server = SERVER.format(
        port=port, media_port=media, server_part=server_part.replace("\n", "\n        ")
    )
    return http_part.replace("\n", "\n    ") + server


# -- the running set-up ---------------------------------------------------------------------------


@dataclass
class Site:
    base: str  # http://127.0.0.1:PORT, nginx
    daemon: DaemonProcess
    media: FakeMediaServer

    @property
    def ws_url(self) -> str:
        return self.base.replace("http://", "ws://") + "/api/v1/syncplay/ws"

    def http(self, viewer: Viewer | None = None) -> httpx.Client:
        cookies = {"session": viewer.cookie} if viewer else None
        return httpx.Client(base_url=self.base, cookies=cookies, timeout=TIMEOUT)


@contextmanager
def guide_adapter(media_port: int) -> Iterator[int]:
    """The guide's adapter as a real process; yields its port."""
    process = subprocess.Popen(
        adapter_command(media_port),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    stdout = process.stdout
    assert stdout is not None
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in stdout:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    try:
        first = lines.get(timeout=TIMEOUT)  # its "listening on" line, or what went wrong
        found = re.search(r"listening on http://127\.0\.0\.1:(\d+)", first)
        assert found, first
        yield int(found[1])
    finally:
        process.terminate()
        process.wait(timeout=TIMEOUT)
        stdout.close()


@contextmanager
def open_site(folder: Path) -> Iterator[Site]:
    """The media server's stand-in, the adapter, syncplayd and nginx, as the guide sets them up."""
    require_nginx()
    proxy_socket = folder / "proxy" / "http.sock"
    env = {
        "SYNCPLAY_PROXY_SOCKET": str(proxy_socket),
        "SYNCPLAY_ALLOWED_HOSTS": SITE,
        "SYNCPLAY_WEB_MEDIA_URL_TEMPLATE": MEDIA_TEMPLATE,
    }
    with (
        fake_media_server() as media,
        guide_adapter(media.port) as adapter,
        run_daemon(f"sqlite:///{folder / 'db.sqlite3'}", folder / "state", env) as daemon,
    ):

        def config(port: int) -> str:
            return nginx_http_block(port, proxy_socket, adapter, media.port)

        with run_nginx(folder, config) as base:
            yield Site(base, daemon, media)
        assert not any("Traceback" in line for line in daemon.log_lines)


def user_id(viewer: Viewer) -> str:
    """The syncplayd user id of a viewer: the guide's adapter command maps ids this way."""
    try:
        return str(UUID(viewer.id))
    except ValueError:
        return str(uuid5(NAMESPACE_URL, NAMESPACE + viewer.id))


def create_room(site: Site, viewer: Viewer, name: str, **extra: Any) -> dict[str, Any]:
    body = {"name": name, "content_type": "movie", "content_id": "film-1"} | extra
    with site.http(viewer) as http:
        created = http.post("/api/v1/syncplay/rooms", json=body)
    assert created.status_code == 201, created.text
    room: dict[str, Any] = created.json()
    return room
