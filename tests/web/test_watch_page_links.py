"""The watch page against links made to misuse it, in a real browser (Debian's Chromium).

* A link's ``#token=`` must not silently replace the identity the tab already holds:
  anyone can send a link that carries their own token (login CSRF), and whatever the
  tab did next would be done as them. The page asks, naming both users, and keeps
  the old identity unless told to switch.
* A room whose content id points at another host (made before the server refused
  that, or while ``web.allow_any_media_url`` was on) must not make members' browsers
  fetch it: the request alone tells that host who is watching.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page

from syncplayd.identity import Principal, encode_token
from tests.daemon_process import SECRET, DaemonProcess, new_user, run_daemon
from tests.e2e.raw import create_room

pytestmark = pytest.mark.slow

TIMEOUT_MS = 20_000
#: Nothing listens there; what matters is whether the browser asks.
FOREIGN_MEDIA = "http://127.0.0.1:9/leak.webm"


def token(principal: Principal, hours: float = 1) -> str:
    return encode_token(principal, SECRET, ttl=timedelta(hours=hours))


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("page-links")


@pytest.fixture(scope="module")
def foreign_room(folder: Path) -> str:
    """A room made while the server let content ids point anywhere."""
    with run_daemon(None, folder, {"SYNCPLAY_WEB_ALLOW_ANY_MEDIA_URL": "true"}) as daemon:
        room = create_room(daemon, new_user("Mal"), content_type="url", content_id=FOREIGN_MEDIA)
    room_id: str = room["id"]
    return room_id


@pytest.fixture(scope="module")
def daemon(folder: Path, foreign_room: str) -> Iterator[DaemonProcess]:
    """The same server (same database) with the default, closed media rule."""
    with run_daemon(None, folder) as process:
        yield process
        assert not any("Traceback" in line for line in process.log_lines)


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        yield page
        assert errors == []
    finally:
        context.close()


def _open(page: Page, daemon: DaemonProcess, room_id: str, link_token: str) -> None:
    page.goto(f"{daemon.base_url}/syncplay/?room={room_id}#token={link_token}")


def _wait_joined(page: Page) -> None:
    page.wait_for_function("() => document.body.dataset.state === 'joined'")


def _me(page: Page) -> str:
    name: str = page.evaluate("() => window.syncplay.client.you.user_name")
    return name


def _held_token(page: Page) -> str | None:
    held: str | None = page.evaluate("() => sessionStorage.getItem('syncplay.token')")
    return held


@pytest.mark.parametrize("answer", ["keep", "switch"])
@pytest.mark.parametrize("same_page", [False, True], ids=["new-page", "same-page"])
def test_a_link_for_another_user_asks_before_switching(
    page: Page, daemon: DaemonProcess, answer: str, same_page: bool
) -> None:
    ada, eve = new_user("Ada"), new_user("Eve")
    room_id = create_room(daemon, ada)["id"]
    ada_token, eve_token = token(ada), token(eve)
    _open(page, daemon, room_id, ada_token)
    _wait_joined(page)
    assert _me(page) == "Ada"

    # Eve's link, opened in the same tab (sessionStorage is per tab): after another page, or
    # straight from the room, where only the fragment changes and the browser loads nothing.
    if same_page:
        page.evaluate("() => { window.samePage = true; }")
    else:
        page.goto("about:blank")
    _open(page, daemon, room_id, eve_token)
    prompt = page.locator("#identity-panel")
    prompt.wait_for(state="visible")
    assert page.evaluate("() => window.samePage === true") is same_page
    assert "token=" not in page.url  # out of the address bar at once, whatever the answer
    assert "Eve" in page.inner_text("#identity-offered")
    assert "Ada" in page.inner_text("#identity-current")
    assert _held_token(page) == ada_token  # nothing changed while the page asks
    assert page.evaluate("() => document.body.dataset.state") != "joined"

    page.click(f"#identity-{answer}")
    _wait_joined(page)
    expected, expected_token = ("Ada", ada_token) if answer == "keep" else ("Eve", eve_token)
    assert _me(page) == expected
    assert _held_token(page) == expected_token


def test_a_fresh_token_for_the_same_user_is_taken_without_asking(
    page: Page, daemon: DaemonProcess
) -> None:
    ada = new_user("Ada")
    room_id = create_room(daemon, ada)["id"]
    _open(page, daemon, room_id, token(ada))
    _wait_joined(page)
    fresh = token(ada, hours=2)
    page.goto("about:blank")
    _open(page, daemon, room_id, fresh)
    _wait_joined(page)
    assert page.locator("#identity-panel").is_hidden()
    assert _held_token(page) == fresh


def test_a_first_link_is_taken_without_asking(page: Page, daemon: DaemonProcess) -> None:
    ada = new_user("Ada")
    room_id = create_room(daemon, ada)["id"]
    _open(page, daemon, room_id, token(ada))
    _wait_joined(page)
    assert page.locator("#identity-panel").is_hidden()
    assert "token=" not in page.url


def test_a_room_on_another_host_is_never_fetched(
    page: Page, daemon: DaemonProcess, foreign_room: str
) -> None:
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    _open(page, daemon, foreign_room, token(new_user("Ben")))
    _wait_joined(page)
    message = page.locator("#media-message")
    message.wait_for(state="visible")
    page.wait_for_timeout(500)  # time for a request the page should not make
    assert not any("127.0.0.1:9/" in url for url in requested), requested
    assert "another site" in message.inner_text()
    assert page.evaluate("() => document.getElementById('video').getAttribute('src')") is None
