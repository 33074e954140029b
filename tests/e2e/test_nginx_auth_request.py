"""docs/integration.md, option (b), run as written: nginx asks "who am I" before syncplayd.

The set-up (the guide's nginx block and adapter, a stand-in for the media server) is
in ``tests/e2e/auth_request.py``; the watch page's part, ``{media_token}``, is tested
in a browser by ``tests/web/test_watch_page_media_token.py``.
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Callable, Iterator
from http.server import ThreadingHTTPServer
from types import ModuleType
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

import httpx
import pytest
import trio
from trio_websocket import ConnectionRejected, open_websocket_url

from tests.e2e.auth_request import (
    ADAPTER,
    NAMESPACE,
    PAT,
    ROOT,
    TIMEOUT,
    Site,
    Viewer,
    create_room,
    guide_block,
    open_site,
    user_id,
)
from tests.e2e.raw import Raw


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with open_site(tmp_path_factory.mktemp("auth-request")) as running:
        yield running


# -- REST -----------------------------------------------------------------------------------------


def test_the_media_server_login_reaches_syncplayd_as_that_viewer(site: Site) -> None:
    room = create_room(site, PAT, "Pat's film night")
    assert room["owner_id"] == user_id(PAT)
    with site.http(PAT) as http:
        mine = http.get("/api/v1/syncplay/rooms", params={"mine": "true"})
        members = http.get(f"/api/v1/syncplay/rooms/{room['id']}/participants")
    assert mine.status_code == 200, mine.text
    assert [r["id"] for r in mine.json()["items"]] == [room["id"]]
    assert [(p["user_id"], p["user_name"]) for p in members.json()["items"]] == [
        (user_id(PAT), "Pat")
    ]


def test_without_a_login_nginx_refuses_before_syncplayd(site: Site) -> None:
    calls = site.media.whoami_calls
    stranger = Viewer("x", "X", False, "forged-session", "forged-key", "")
    for viewer in (None, stranger):
        with site.http(viewer) as http:
            refused = http.get("/api/v1/syncplay/rooms")
        assert refused.status_code == 401
        # nginx's own page, not syncplayd's problem document: syncplayd never saw it.
        assert refused.headers["content-type"].startswith("text/html")
        assert "nginx" in refused.text
    assert site.media.whoami_calls == calls + 2  # the media server was asked each time


def test_a_viewer_cannot_name_themselves(site: Site) -> None:
    """nginx replaces the identity headers a client sends, even a logged-in one."""
    spoofed = {"X-Remote-User-Id": user_id(ROOT), "X-Remote-User-Admin": "true"}
    with site.http(PAT) as http:
        created = http.post(
            "/api/v1/syncplay/rooms",
            headers=spoofed,
            json={"name": "spoof", "content_type": "movie", "content_id": "film-1"},
        )
    assert created.status_code == 201, created.text
    assert created.json()["owner_id"] == user_id(PAT)
    with site.http(None) as http:
        assert http.get("/api/v1/syncplay/rooms", headers=spoofed).status_code == 401


# -- WebSocket ------------------------------------------------------------------------------------


async def test_a_websocket_joins_through_the_check(site: Site) -> None:
    room = await trio.to_thread.run_sync(lambda: create_room(site, PAT, "ws", is_public=True))
    spoof = [("X-Remote-User-Admin", "true")]
    for viewer, is_admin in ((PAT, False), (ROOT, True)):
        headers = [("Cookie", f"session={viewer.cookie}"), *spoof]
        async with open_websocket_url(site.ws_url, extra_headers=headers) as ws:  # type: ignore[arg-type]
            client = Raw(ws)
            welcome = await client.hello(None)  # no token: the proxy names the viewer
            assert welcome["type"] == "welcome", welcome
            assert (welcome["user_id"], welcome["user_name"]) == (user_id(viewer), viewer.name)
            assert welcome["is_admin"] is is_admin  # from the media server, never the client
            joined = await client.join(room["id"])
            assert joined["room"]["id"] == room["id"]


async def test_a_websocket_without_a_login_is_refused_by_nginx(site: Site) -> None:
    with pytest.raises(ConnectionRejected) as refused:
        async with open_websocket_url(site.ws_url):
            pass
    assert refused.value.status_code == 401


async def test_the_guides_player_example_through_the_check(site: Site) -> None:
    """(d): the Python example, with a player's media-server key as its credential."""
    room = await trio.to_thread.run_sync(lambda: create_room(site, PAT, "player night"))
    printed: list[str] = []
    playing, root_joined = trio.Event(), trio.Event()

    def fake_print(*values: object) -> None:
        line = " ".join(map(str, values))
        printed.append(line)
        if line.startswith("playing at"):
            playing.set()
        if line == "Root joined":
            root_joined.set()

    # The example prints what happens; its own print (a global here) tells the test.
    example: dict[str, Any] = {"__name__": "guide_example", "print": fake_print}
    exec(guide_block("runs this block through", "python"), example)  # noqa: S102 - the guide's
    follow_room: Callable[[str, str, str], Any] = example["follow_room"]
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(follow_room, site.ws_url, PAT.api_key, room["id"])
            await playing.wait()
            headers = [("Cookie", f"session={ROOT.cookie}")]
            async with open_websocket_url(site.ws_url, extra_headers=headers) as ws:  # type: ignore[arg-type]
                other = Raw(ws)
                await other.hello(None)
                await other.join(room["id"])
                await root_joined.wait()
            nursery.cancel_scope.cancel()
    assert "joined 'player night' as Pat" in printed, printed


# -- the adapter on its own -----------------------------------------------------------------------


def _load_adapter() -> ModuleType:
    spec = importlib.util.spec_from_file_location("whoami_adapter", ADAPTER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ADMIN = ["--admin", "admin"]
PORTAL = ["--id", "header:Remote-User", "--name", "header:Remote-Name"]


@pytest.mark.parametrize(
    ("path", "args", "cookie", "status", "expected"),
    [
        ("/whoami", ADMIN, PAT.cookie, 200, (user_id(PAT), "Pat", "false")),
        ("/whoami", ADMIN, ROOT.cookie, 200, (user_id(ROOT), "Root", "true")),
        ("/whoami", [], ROOT.cookie, 200, (user_id(ROOT), "Root", "false")),  # admin: opt-in
        ("/whoami", ADMIN, None, 401, None),
        ("/whoami", ADMIN, "forged", 401, None),
        ("/login", ADMIN, PAT.cookie, 401, None),  # a redirect to a login page: not logged in
        ("/broken", ADMIN, PAT.cookie, 502, None),  # nginx then answers 500: nobody gets in
        ("/html", ADMIN, PAT.cookie, 502, None),
        ("/missing", ADMIN, PAT.cookie, 502, None),
        (
            "/portal",
            PORTAL,
            None,
            200,
            (str(uuid5(NAMESPACE_URL, NAMESPACE + "alice")), "Alice", "false"),
        ),
    ],
)
def test_the_adapter_answers(
    site: Site,
    path: str,
    args: list[str],
    cookie: str | None,
    status: int,
    expected: tuple[str, str, str] | None,
) -> None:
    adapter = _load_adapter()
    url = f"http://127.0.0.1:{site.media.port}{path}"
    options = adapter.parse(["--whoami", url, "--id-namespace", NAMESPACE, *args])
    server = ThreadingHTTPServer(("127.0.0.1", 0), adapter.make_handler(options))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        cookies = {"session": cookie} if cookie else None
        answer = httpx.get(f"http://127.0.0.1:{server.server_port}/", cookies=cookies)
    finally:
        server.shutdown()
        server.server_close()
    assert answer.status_code == status
    if expected is None:
        assert "x-user-id" not in answer.headers
    else:
        got = tuple(answer.headers[h] for h in ("x-user-id", "x-user-name", "x-user-admin"))
        assert got == expected


def test_the_adapter_refuses_ids_it_cannot_map() -> None:
    adapter = _load_adapter()
    assert adapter.user_uuid(ROOT.id, None) == UUID(ROOT.id)
    assert adapter.user_uuid("pat", "https://m/users/") == uuid5(
        NAMESPACE_URL, "https://m/users/pat"
    )
    for unusable in ("pat", "", None, True, {"id": 1}):
        with pytest.raises(adapter.Unusable):
            adapter.user_uuid(unusable, None)
