"""A Syncplay desktop user and a browser in one room: the real Syncplay client, mpv, Chromium.

Nothing is simulated on either side: the desktop user is the real ``syncplay`` console client
(1.6.9, Debian) driving a real, headless mpv that plays its own copy of the demo video; the
browser user is the watch page in Chromium, playing the same video from the daemon. Ada opens a
demo room in the browser and makes an invitation; Dee points Syncplay at the daemon's Syncplay
port with the invitation code as the room name. Then the acceptance points of the bridge: Dee in
Ada's People list (marked desktop), play from the browser starts mpv, both stay within 200 ms
while playing (p95, measured and recorded), pause from Syncplay's console pauses the browser,
seeks land on the other side within 1 s both ways, chat crosses both ways.

The browser is driven by Playwright's synchronous API; the desktop client is a trio harness
(``tests/e2e/desktop.py``), run in a trio loop on a thread of its own and called from the test.
"""

from __future__ import annotations

import re
import statistics
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

import pytest
import trio
from playwright.sync_api import Browser, Page

import syncplayd
from tests.daemon_process import DaemonProcess, run_daemon
from tests.e2e.desktop import CONNECTED, DesktopClient, desktop_client, require_desktop_tools
from tests.web import readme_images

pytestmark = pytest.mark.slow

TIMEOUT_MS = 20_000
#: The acceptance bound: mpv and the browser agree within this, p95, while playing.
AGREEMENT_P95 = 0.200
#: A seek from either side lands on the other within this.
SEEK_LANDS = 1.0
VIDEO = Path(syncplayd.__file__).parent / "web" / "demo" / "demo.webm"
_BRIDGE = re.compile(r"syncplay bridge listening on ([0-9.]+:[0-9]+)")
_SAMPLE = """() => {
  const v = document.getElementById("video");
  const client = window.syncplay && window.syncplay.client;
  return {t: (performance.timeOrigin + performance.now()) / 1000, pos: v.currentTime,
          paused: v.paused, seeking: v.seeking, room: client ? client.roomPosition() : null};
}"""

T = TypeVar("T")


class DesktopThread:
    """The desktop client in a trio loop on its own thread, for a synchronous test."""

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._token: trio.lowlevel.TrioToken | None = None
        self._stop: trio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.client: DesktopClient | None = None
        self._thread = threading.Thread(target=self._main, name="desktop-client", daemon=True)

    def _main(self) -> None:
        async def run() -> None:
            self._token = trio.lowlevel.current_trio_token()
            self._stop = trio.Event()
            async with trio.open_nursery() as nursery:
                async with desktop_client(nursery, **self._options) as client:
                    self.client = client
                    self._ready.set()
                    await self._stop.wait()
                nursery.cancel_scope.cancel()

        try:
            trio.run(run)
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            self._error = exc
        finally:
            self._ready.set()

    def start(self) -> DesktopClient:
        self._thread.start()
        self._ready.wait(60)
        if self.client is None:
            raise RuntimeError("the desktop client did not start") from self._error
        return self.client

    def call(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        return trio.from_thread.run(fn, *args, trio_token=self._token)

    def stop(self) -> None:
        if self._stop is not None and self._thread.is_alive():
            trio.from_thread.run_sync(self._stop.set, trio_token=self._token)
        self._thread.join(30)
        if self._error is not None:
            raise self._error


@dataclass
class Room:
    daemon: DaemonProcess
    page: Page
    desktop: DesktopThread
    client: DesktopClient

    def sample(self) -> dict[str, Any]:
        result: dict[str, Any] = self.page.evaluate(_SAMPLE)
        return result

    def wait_video(self, condition: str, timeout_ms: float = TIMEOUT_MS) -> float:
        """Wait until ``condition`` holds for ``v``, the video; the seconds it took."""
        start = time.monotonic()
        self.page.wait_for_function(
            f"() => {{ const v = document.getElementById('video'); return {condition}; }}",
            timeout=timeout_ms,
        )
        return time.monotonic() - start

    def mpv(self) -> tuple[float | None, bool]:
        client = self.client

        async def read() -> tuple[float | None, bool]:
            return await client.position(), await client.paused()

        return self.desktop.call(read)

    def wait_mpv(
        self, predicate: Callable[[float | None, bool], bool], timeout: float, what: str
    ) -> float:
        """Poll mpv (its position changes without an event) until ``predicate``; the seconds."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            position, paused = self.mpv()
            if predicate(position, paused):
                return time.monotonic() - start
            time.sleep(0.02)  # polling mpv, bounded by ``timeout``
        position, paused = self.mpv()
        raise AssertionError(f"{what}: not within {timeout} s (mpv at {position}, paused {paused})")

    def offset(self) -> tuple[float, float]:
        """mpv's position minus the browser's, at the same instant; and minus the room's
        (as the browser's client computes it, on its estimate of the server clock).

        The browser is read before and after mpv, and interpolated to the middle of mpv's
        read (both clocks are this machine's wall clock), so the reads' own time is not
        counted as a difference.
        """
        before = self.sample()
        asked = time.time()
        position, _ = self.mpv()
        answered = time.time()
        after = self.sample()
        assert position is not None
        at = (asked + answered) / 2
        span = after["t"] - before["t"]
        fraction = (at - before["t"]) / span if span > 0 else 0.0
        browser = before["pos"] + (after["pos"] - before["pos"]) * fraction
        room = before["room"] + (after["room"] - before["room"]) * fraction
        return position - browser, position - room


def bridge_address(daemon: DaemonProcess) -> tuple[str, int]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for line in list(daemon.log_lines):
            match = _BRIDGE.search(line)
            if match:
                host, _, port = match[1].rpartition(":")
                return host, int(port)
        time.sleep(0.05)  # the line follows "listening on" within milliseconds
    raise AssertionError("the daemon did not log its Syncplay port")


@pytest.fixture(scope="module")
def room(
    browser: Browser, tmp_path_factory: pytest.TempPathFactory, artifacts: Path
) -> Iterator[Room]:
    require_desktop_tools()
    folder = tmp_path_factory.mktemp("desktop")
    env = {
        "SYNCPLAY_WEB_DEMO": "true",
        "SYNCPLAY_HEARTBEAT_INTERVAL_SECONDS": "1",
        "SYNCPLAY_BRIDGE_LISTEN": "127.0.0.1:0",
    }
    with run_daemon(None, folder / "state", env) as daemon:
        host, port = bridge_address(daemon)
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(f"uncaught: {error}"))
        desktop: DesktopThread | None = None
        try:
            # Ada starts a demo room in the browser, and makes an invitation for Dee.
            page.goto(daemon.base_url + "/syncplay/")
            page.fill("#guest-name", "Ada")
            page.click("#start-demo")
            page.wait_for_function("() => document.body.dataset.state === 'joined'")
            page.click("#invite-open")
            page.click("#invite-create")
            page.wait_for_function(
                "() => document.getElementById('invite-link').value.includes('invite=')"
            )
            link = page.input_value("#invite-link")
            page.keyboard.press("Escape")
            code = parse_qs(urlsplit(link).query)["invite"][0]
            # Dee points Syncplay at the daemon: the invitation code is the room's name.
            desktop = DesktopThread(
                port=port, host=host, name="Dee", room=code, video=VIDEO, tmp=folder
            )
            client = desktop.start()
            desktop.call(client.wait_for_output, CONNECTED)
            yield Room(daemon, page, desktop, client)
            # What Dee saw, for whoever reads the artifacts (or debugs a failure).
            (artifacts / "syncplay-desktop-output.txt").write_text("\n".join(client.output))
            assert errors == [], errors
            page.screenshot(path=artifacts / "desktop-user-in-people.png")
            readme_images.capture(page, "syncplay-desktop.png")
        finally:
            if desktop is not None:
                desktop.stop()
            context.close()
        assert not any("Traceback" in line for line in daemon.log_lines), "\n".join(
            daemon.log_lines[-60:]
        )


def test_the_desktop_user_is_in_the_people_list(room: Room) -> None:
    row = room.page.locator("#participants li", has_text="Dee")
    row.wait_for()
    assert row.locator(".desktop-badge").inner_text() == "desktop"
    assert "connected" in (row.get_attribute("class") or "")


def test_play_from_the_browser_starts_mpv(room: Room) -> None:
    # mpv loads the file and stands paused with the room (it would play on its own).
    room.wait_mpv(lambda pos, paused: pos is not None and paused, 10.0, "mpv loaded, paused")
    room.page.click("#play-toggle")
    room.wait_video("!v.paused && v.currentTime > 0.5")
    room.wait_mpv(lambda pos, paused: not paused and (pos or 0) > 0.5, 5.0, "mpv plays")


def test_mpv_and_the_browser_agree_while_playing(room: Room, artifacts: Path) -> None:
    room.wait_video("!v.paused && v.currentTime > 3")
    samples, to_room = [], []
    for _ in range(40):  # ~20 s of playing (the video lasts 60 s)
        to_browser, from_room = room.offset()
        samples.append(to_browser)
        to_room.append(from_room)
        time.sleep(0.5)  # spacing the samples over the film, not waiting for anything
    ordered = sorted(abs(s) for s in samples)
    p95 = ordered[int(0.95 * (len(ordered) - 1))]
    median = statistics.median(samples)
    with (artifacts / "agreement.txt").open("a") as record:
        record.write(
            f"syncplay desktop (mpv) vs browser: {len(samples)} samples over 20 s:"
            f" median {median * 1000:+.1f} ms, p95 |offset| {p95 * 1000:.1f} ms,"
            f" worst {ordered[-1] * 1000:.1f} ms; mpv vs the room's position:"
            f" median {statistics.median(to_room) * 1000:+.1f} ms\n"
        )
    assert p95 <= AGREEMENT_P95, f"p95 {p95 * 1000:.0f} ms (median {median * 1000:+.0f} ms)"


def test_pause_from_the_syncplay_console_pauses_the_browser(room: Room) -> None:
    room.desktop.call(room.client.command, "p")
    took = room.wait_video("v.paused", timeout_ms=2000)
    assert took < SEEK_LANDS
    position, paused = room.mpv()
    assert paused and position is not None
    assert abs(room.sample()["pos"] - position) < AGREEMENT_P95


def test_a_seek_from_syncplay_lands_in_the_browser(room: Room) -> None:
    room.desktop.call(room.client.command, "s 40")
    took = room.wait_video("Math.abs(v.currentTime - 40) < 0.5 && !v.seeking", timeout_ms=2000)
    assert took < SEEK_LANDS, f"the browser got there after {took:.2f} s"


def test_a_seek_from_the_browser_lands_in_mpv(room: Room) -> None:
    room.page.eval_on_selector(
        "#seek",
        "(el) => { el.value = '10'; el.dispatchEvent(new Event('change', {bubbles: true})); }",
    )
    took = room.wait_mpv(
        lambda pos, _: pos is not None and abs(pos - 10) < 0.5, SEEK_LANDS, "mpv at 10 s"
    )
    assert took < SEEK_LANDS


def test_chat_crosses_both_ways(room: Room) -> None:
    room.desktop.call(room.client.command, "ch hello from mpv")
    room.page.locator("#chat-log .chat-message", has_text="hello from mpv").wait_for()
    mark = room.client.mark()
    room.page.fill("#chat-input", "hello from the browser")
    room.page.press("#chat-input", "Enter")
    room.desktop.call(
        lambda: room.client.wait_for_output(r"<Ada> hello from the browser", since=mark)
    )
