"""The watch page with ``{media_token}`` in ``web.media_url_template`` (docs/integration.md, (c)).

* Behind the guide's nginx set-up (option (b), ``tests/e2e/auth_request.py``): the page
  joins as the viewer the proxy's login names, and fetches the stream with the credential
  from the link's ``#media_token=``, which never reaches syncplayd.
* With tokens (option (a)): the credential goes with the link's identity, so whoever sends
  a link cannot choose the viewer's media account.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser

from tests.daemon_process import DaemonProcess, new_user, run_daemon
from tests.e2e.auth_request import MEDIA_TEMPLATE, PAT, Site, create_room, open_site
from tests.e2e.raw import create_room as raw_create_room
from tests.e2e.raw import token

pytestmark = pytest.mark.slow

TIMEOUT_MS = 20_000


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with open_site(tmp_path_factory.mktemp("media-token-proxy")) as running:
        yield running


def test_the_watch_page_plays_with_the_links_media_token(
    site: Site,
    browser: Browser,
) -> None:
    """The page joins as the cookie's viewer and fetches the stream with the link's credential,
    which never reaches syncplayd."""
    room = create_room(site, PAT, "page night", is_public=True)
    context = browser.new_context()
    context.add_cookies([{"name": "session", "value": PAT.cookie, "url": site.base}])
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    sent: list[str] = []  # every request and WebSocket frame the page sent
    page.on("request", lambda request: sent.append(f"{request.url} {request.headers}"))
    page.on("websocket", lambda ws: ws.on("framesent", lambda frame: sent.append(str(frame))))
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    streams_before = len(site.media.streams)
    try:
        page.goto(f"{site.base}/syncplay/?room={room['id']}#media_token={PAT.media_key}")
        page.wait_for_function("() => document.body.dataset.state === 'joined'")
        assert page.evaluate("() => window.syncplay.client.you.user_name") == "Pat"
        assert "media_token" not in page.url  # out of the address bar at once
        page.wait_for_function("() => document.querySelector('#video').readyState >= 1")
        src = page.evaluate("() => document.querySelector('#video').getAttribute('src')")
        assert src == f"/Videos/film-1/stream?static=true&api_key={PAT.media_key}"
    finally:
        context.close()
    assert errors == []
    assert any(f"api_key={PAT.media_key}" in q for q in site.media.streams[streams_before:])
    to_syncplayd = [s for s in sent if not s.startswith(f"{site.base}/Videos/")]
    assert any('"type":"hello"' in s.replace(" ", "") for s in to_syncplayd), sent
    assert not any(PAT.media_key in s for s in to_syncplayd)


def test_the_watch_page_without_a_media_token_says_so(
    site: Site,
    browser: Browser,
) -> None:
    room = create_room(site, PAT, "no token night", is_public=True)
    context = browser.new_context()
    context.add_cookies([{"name": "session", "value": PAT.cookie, "url": site.base}])
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    try:
        page.goto(f"{site.base}/syncplay/?room={room['id']}")
        page.wait_for_function("() => document.body.dataset.state === 'joined'")
        message = page.locator("#media-message")
        message.wait_for(state="visible")
        assert "media server's link" in message.inner_text()
        assert page.evaluate("() => document.querySelector('#video').getAttribute('src')") is None
    finally:
        context.close()


@pytest.fixture(scope="module")
def token_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    """A daemon with the media template and tokens only (no proxy): option (a) with (c)."""
    env = {"SYNCPLAY_WEB_MEDIA_URL_TEMPLATE": MEDIA_TEMPLATE}
    with run_daemon(None, tmp_path_factory.mktemp("media-token"), env) as daemon:
        yield daemon


@pytest.mark.parametrize("answer", ["keep", "switch"])
def test_a_links_media_token_goes_with_its_identity(
    browser: Browser,
    token_daemon: DaemonProcess,
    answer: str,
) -> None:
    """Whoever sends a link must not choose the viewer's media account: kept identity, kept
    media credential."""
    ada, eve = new_user("Ada"), new_user("Eve")
    room_id = raw_create_room(token_daemon, ada)["id"]
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    link = f"{token_daemon.base_url}/syncplay/?room={room_id}"

    def held() -> tuple[str | None, str | None]:
        """The tab's media credential, and the media URL the page set."""
        media_token, src = page.evaluate(
            """() => [sessionStorage.getItem('syncplay.media_token'),
                      document.querySelector('#video').getAttribute('src')]"""
        )
        return media_token, src

    try:
        page.goto(f"{link}#token={token(ada)}&media_token=ada-media")
        page.wait_for_function("() => document.body.dataset.state === 'joined'")
        assert held() == ("ada-media", "/Videos/1/stream?static=true&api_key=ada-media")
        page.goto("about:blank")
        page.goto(f"{link}#token={token(eve)}&media_token=eve-media")
        page.locator("#identity-panel").wait_for(state="visible")
        page.click(f"#identity-{answer}")
        page.wait_for_function("() => document.body.dataset.state === 'joined'")
        kept = "ada-media" if answer == "keep" else "eve-media"
        assert held() == (kept, f"/Videos/1/stream?static=true&api_key={kept}")
    finally:
        context.close()
