"""Two people watch together in a real browser: Debian's Chromium, headless.

A (a desktop window) starts a demo room from the landing page and invites B (a
phone-sized window) with the invite dialog's link. Then every acceptance point
of the watch page: play in one starts the other within 100 ms, pause and seek
reach the other side, chat appears, and a reloaded page rejoins at the live
position as the same participant. Then what a newcomer notices: your own latency,
the note after a reload, a remote seek on the slider, participants who never
connected, a phone held sideways, a video that cannot be loaded. Screenshots go to
test-artifacts/browser/; with SYNCPLAY_UPDATE_README_IMAGES=1 the two of the
reloaded room also replace the README's pictures (docs/images/).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page

from tests.daemon_process import DaemonProcess, new_user, run_daemon
from tests.e2e.raw import create_room, token
from tests.web import readme_images

pytestmark = pytest.mark.slow

AGREEMENT_SECONDS = 0.100
TIMEOUT_MS = 20_000

_SAMPLE = """() => {
  const v = document.getElementById("video");
  return {t: performance.timeOrigin + performance.now(), pos: v.currentTime,
          paused: v.paused, rate: v.playbackRate};
}"""


@dataclass
class Viewer:
    name: str
    context: BrowserContext
    page: Page
    errors: list[str] = field(default_factory=list)

    def watch_errors(self) -> None:
        def on_console(message: ConsoleMessage) -> None:
            if message.type == "error":
                self.errors.append(f"console: {message.text}")

        self.page.on("pageerror", lambda error: self.errors.append(f"uncaught: {error}"))
        self.page.on("console", on_console)

    def sample(self) -> dict[str, Any]:
        result: dict[str, Any] = self.page.evaluate(_SAMPLE)
        return result

    def wait_joined(self) -> None:
        self.page.wait_for_function("() => document.body.dataset.state === 'joined'")

    def wait_video(self, condition: str) -> None:
        """Wait (bounded by the page timeout) until ``condition`` holds for ``v``, the video."""
        self.page.wait_for_function(
            f"() => {{ const v = document.getElementById('video'); return {condition}; }}"
        )

    def me(self) -> dict[str, Any]:
        you: dict[str, Any] = self.page.evaluate("() => window.syncplay.client.you")
        return you


@dataclass
class Room:
    room_id: str
    a: Viewer
    b: Viewer


def offsets(first: Viewer, second: Viewer, count: int = 15) -> list[float]:
    """``second``'s position minus ``first``'s, at the same instant, ``count`` times.

    Each measurement reads ``first`` before and after ``second`` and interpolates
    ``first`` to the moment ``second`` was read, so the time between the reads
    (a few milliseconds, one page after the other) does not count as drift.
    """
    result = []
    for _ in range(count):
        before = first.sample()
        middle = second.sample()
        after = first.sample()
        span = after["t"] - before["t"]
        fraction = (middle["t"] - before["t"]) / span if span > 0 else 0.0
        first_position = before["pos"] + (after["pos"] - before["pos"]) * fraction
        result.append(middle["pos"] - first_position)
    return result


def assert_in_step(first: Viewer, second: Viewer, artifacts: Path, label: str) -> float:
    measured = offsets(first, second)
    worst = max(abs(value) for value in measured)
    with (artifacts / "agreement.txt").open("a") as record:
        record.write(
            f"{label}: median {statistics.median(measured) * 1000:+.1f} ms,"
            f" worst {worst * 1000:.1f} ms over {len(measured)} samples\n"
        )
    assert worst < AGREEMENT_SECONDS, (
        f"{second.name} is off {first.name} by up to {worst * 1000:.0f} ms "
        f"(median {statistics.median(measured) * 1000:.0f} ms)"
    )
    return worst


@pytest.fixture(scope="module")
def demo_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    folder = tmp_path_factory.mktemp("browser")
    env = {"SYNCPLAY_WEB_DEMO": "true", "SYNCPLAY_HEARTBEAT_INTERVAL_SECONDS": "1"}
    with run_daemon(None, folder, env) as daemon:
        yield daemon
        assert daemon.process.poll() is None, "the daemon died during the browser tests"
        assert not any("Traceback" in line for line in daemon.log_lines)


def _viewer(browser: Browser, name: str, **context_options: Any) -> Viewer:
    context = browser.new_context(**context_options)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    viewer = Viewer(name, context, page)
    viewer.watch_errors()
    return viewer


@pytest.fixture(scope="module")
def room(browser: Browser, demo_daemon: DaemonProcess) -> Iterator[Room]:
    a = _viewer(browser, "Ada", viewport={"width": 1280, "height": 800})
    b = _viewer(
        browser,
        "Ben",
        viewport={"width": 390, "height": 844},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
    )
    try:
        # Ada starts a demo room from the landing page.
        a.page.goto(demo_daemon.base_url + "/syncplay/")
        a.page.fill("#guest-name", "Ada")
        a.page.click("#start-demo")
        a.wait_joined()
        room_id = parse_qs(urlsplit(a.page.url).query)["room"][0]
        assert a.page.text_content("#room-name") == "Ada's room"

        # ...and invites Ben with a link from the invite dialog.
        a.page.click("#invite-open")
        a.page.click("#invite-create")
        a.page.wait_for_function(
            "() => document.getElementById('invite-link').value.includes('invite=')"
        )
        link = a.page.input_value("#invite-link")
        a.page.keyboard.press("Escape")

        b.page.goto(link)
        b.page.fill("#name-input", "Ben")
        b.page.click("#name-submit")
        b.wait_joined()
        assert b.page.text_content("#room-name") == "Ada's room"
        # Each sees both, connected.
        for viewer in (a, b):
            viewer.page.wait_for_function(
                "() => document.querySelectorAll('#participants li.connected').length === 2"
            )
        yield Room(room_id, a, b)
        for viewer in (a, b):
            assert viewer.errors == [], f"{viewer.name}'s page: {viewer.errors}"
    finally:
        a.context.close()
        b.context.close()


def test_your_own_latency_is_shown_at_once(room: Room) -> None:
    # From your own clock estimate: the server's figure only comes with presence about you.
    for viewer in (room.a, room.b):
        viewer.page.wait_for_function(
            "() => /^\\d+ ms$/.test("
            "document.querySelector('#participants li.you .latency').textContent)",
            timeout=3000,
        )


def test_play_in_one_page_starts_the_other_in_step(room: Room, artifacts: Path) -> None:
    room.a.page.click("#play-toggle")
    for viewer in (room.a, room.b):
        viewer.wait_video("!v.paused && v.currentTime > 3")
    assert_in_step(room.a, room.b, artifacts, "after play")
    room.a.page.screenshot(path=artifacts / "desktop-playing.png")
    room.b.page.screenshot(path=artifacts / "phone-playing.png")


def test_pause_reaches_the_other_page(room: Room) -> None:
    if room.a.sample()["paused"]:
        room.a.page.click("#play-toggle")
    room.b.wait_video("!v.paused")
    room.b.page.click("#play-toggle")  # Ben pauses, on the phone
    for viewer in (room.a, room.b):
        viewer.wait_video("v.paused")
    a, b = room.a.sample(), room.b.sample()
    assert abs(a["pos"] - b["pos"]) < AGREEMENT_SECONDS
    assert a["pos"] > 3


def test_seek_reaches_the_other_page(room: Room, artifacts: Path) -> None:
    room.a.page.eval_on_selector(
        "#seek",
        "(el) => { el.value = '30'; el.dispatchEvent(new Event('change', {bubbles: true})); }",
    )
    for viewer in (room.a, room.b):
        viewer.wait_video("Math.abs(v.currentTime - 30) < 0.5 && !v.seeking")
    a, b = room.a.sample(), room.b.sample()
    assert abs(b["pos"] - a["pos"]) < AGREEMENT_SECONDS
    assert abs(a["pos"] - 30) < 0.5
    # Playing again from there keeps them together.
    room.b.page.click("#play-toggle")
    for viewer in (room.a, room.b):
        viewer.wait_video("!v.paused && v.currentTime > 32")
    assert_in_step(room.a, room.b, artifacts, "after seek and play")


def test_chat_appears_on_the_other_page(room: Room) -> None:
    room.a.page.fill("#chat-input", "Popcorn ready?")
    room.a.page.press("#chat-input", "Enter")
    message = room.b.page.locator("#chat-log .chat-message", has_text="Popcorn ready?")
    message.wait_for()
    assert "Ada" in message.inner_text()
    room.b.page.fill("#chat-input", "Always")
    room.b.page.click("#chat-send")
    room.a.page.locator("#chat-log .chat-message", has_text="Always").wait_for()
    # Chat input is cleared once sent.
    assert room.a.page.input_value("#chat-input") == ""


def test_reloaded_page_rejoins_at_the_live_position(room: Room, artifacts: Path) -> None:
    if room.a.sample()["paused"]:
        room.a.page.click("#play-toggle")
    room.a.wait_video("!v.paused")
    ben = room.b.me()
    room.b.page.reload()
    room.b.wait_joined()
    room.b.wait_video("!v.paused && !v.seeking && v.readyState >= 3")
    # The same participant, not a new one; nobody else joined.
    assert room.b.me()["user_id"] == ben["user_id"]
    room.a.page.wait_for_function(
        "() => document.querySelectorAll('#participants li.connected').length === 2"
    )
    assert room.a.page.locator("#participants li").count() == 2
    # At the live position: the room's clock, not the start of the video.
    room.b.wait_video("v.currentTime > 35")
    assert_in_step(room.a, room.b, artifacts, "after reload")
    # The chat history came back with the page.
    room.b.page.locator("#chat-log .chat-message", has_text="Popcorn ready?").wait_for()
    room.b.page.screenshot(path=artifacts / "phone-after-reload.png")
    room.a.page.screenshot(path=artifacts / "desktop-room.png")
    readme_images.capture(room.a.page, "watch-page.png")
    readme_images.update(artifacts / "phone-after-reload.png", "watch-page-phone.png")


def test_a_remote_seek_moves_the_slider_at_once(room: Room) -> None:
    if room.a.sample()["paused"]:
        room.a.page.click("#play-toggle")
    room.b.wait_video("!v.paused && v.currentTime > 10")
    # Ben's page notes, on the clock both pages share, when its thumb reaches 2 s.
    room.b.page.evaluate(
        """() => {
          window.thumbAt = null;
          const seek = document.getElementById('seek');
          const poll = () => {
            if (Math.abs(Number(seek.value) - 2) < 1) {
              window.thumbAt = performance.timeOrigin + performance.now();
            } else setTimeout(poll, 1);
          };
          poll();
        }"""
    )
    sent_at = room.a.page.evaluate(
        """() => {
          const seek = document.getElementById('seek');
          seek.value = '2';
          const at = performance.timeOrigin + performance.now();
          seek.dispatchEvent(new Event('change', {bubbles: true}));
          return at;
        }"""
    )
    room.b.page.wait_for_function("() => window.thumbAt !== null")
    moved_after = room.b.page.evaluate("() => window.thumbAt") - sent_at
    # The element starts a lead later (at least 150 ms): the thumb must not wait for it.
    assert moved_after < 100, f"the slider moved {moved_after:.0f} ms after the seek"
    for viewer in (room.a, room.b):
        viewer.wait_video("!v.paused && v.currentTime > 2 && v.currentTime < 10")


def test_a_reloaded_page_says_who_paused(room: Room) -> None:
    if room.a.sample()["paused"]:
        room.a.page.click("#play-toggle")
        room.a.wait_video("!v.paused")
    room.a.page.click("#play-toggle")  # Ada pauses
    room.b.wait_video("v.paused")
    room.b.page.reload()
    room.b.wait_joined()
    note = room.b.page.locator("#playback-note")
    note.wait_for(state="visible", timeout=3000)
    assert note.inner_text() == "Paused · last change by Ada"


def test_members_who_never_connected_are_listed(room: Room, demo_daemon: DaemonProcess) -> None:
    cy = new_user("Cy")
    joined = demo_daemon.client(cy).post(f"/api/v1/syncplay/rooms/{room.room_id}/join")
    assert joined.status_code == 200, joined.text
    # Cy has no socket: no presence says so. The page asks REST when it joins.
    room.b.page.reload()
    room.b.wait_joined()
    cy_row = room.b.page.locator(f"#participants li[data-user-id='{cy.user_id}']")
    cy_row.wait_for()
    assert "disconnected" in (cy_row.get_attribute("class") or "")
    assert "Cy" in cy_row.inner_text()
    assert "not connected" in cy_row.inner_text()
    room.b.page.wait_for_function(
        "() => document.getElementById('participant-count').textContent === '2/3'"
    )


def test_a_phone_held_sideways_shows_the_controls_without_scrolling(
    room: Room, artifacts: Path
) -> None:
    page = room.b.page
    page.set_viewport_size({"width": 844, "height": 390})
    page.evaluate("() => window.scrollTo(0, 0)")
    for control in ("#play-toggle", "#seek", "#video"):
        box = page.locator(control).bounding_box()
        assert box is not None, control
        assert box["y"] >= 0, (control, box)
        assert box["y"] + box["height"] <= 390, (control, box)
        assert box["x"] + box["width"] <= 844, (control, box)
    page.screenshot(path=artifacts / "phone-landscape.png")


def test_a_video_that_cannot_be_loaded_says_which_url(
    browser: Browser, demo_daemon: DaemonProcess
) -> None:
    ada = new_user("Ada")
    missing = "/syncplay/no-such-video.webm"
    room_id = create_room(demo_daemon, ada, content_type="url", content_id=missing)["id"]
    viewer = _viewer(browser, "Ada")
    try:
        viewer.page.goto(f"{demo_daemon.base_url}/syncplay/?room={room_id}#token={token(ada)}")
        viewer.wait_joined()
        message = viewer.page.locator("#media-message")
        message.wait_for(state="visible")
        text = message.inner_text()
        assert text.startswith("The video could not be loaded: "), text
        assert text.endswith(f"(tried {demo_daemon.base_url}{missing}).")
    finally:
        viewer.context.close()
