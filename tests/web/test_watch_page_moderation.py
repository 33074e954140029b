"""Running a room from the watch page, in a real browser (Debian's Chromium, headless).

Ada owns a private room; Ben and Cy come in with invitation links, each in a
browser context of their own. Through the page's own menus and dialogs: Ada
hands playback to the owner and moderators (room settings), promotes Ben, and
Ben, now a moderator, pauses the room for everyone; Ben deletes Cy's chat
message and mutes Cy, whose chat box says so; Ada bans Cy, whose page says who
banned them and why and never comes back: not by reloading, not with a new
invitation. The Bans dialog lifts the ban, and Cy can come back again.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page

from syncplayd.identity import Principal, encode_token
from tests.daemon_process import SECRET, DaemonProcess, new_user, run_daemon
from tests.e2e.raw import create_room

pytestmark = pytest.mark.slow

TIMEOUT_MS = 20_000


def token(principal: Principal) -> str:
    return encode_token(principal, SECRET, ttl=timedelta(hours=1))


@dataclass
class Person:
    principal: Principal
    context: BrowserContext
    page: Page
    errors: list[str]

    @property
    def user_id(self) -> str:
        return str(self.principal.user_id)

    def wait_joined(self) -> None:
        self.page.wait_for_function("() => document.body.dataset.state === 'joined'")

    def row(self, other: Person) -> str:
        """The selector of ``other``'s line in this person's People list."""
        return f"#participants li[data-user-id='{other.user_id}']"

    def menu_of(self, other: Person) -> list[str]:
        """Open ``other``'s menu; the actions it offers, by name."""
        self.page.click(f"{self.row(other)} .member-menu-button")
        self.page.locator("#member-menu .menu-item").first.wait_for()
        actions: list[str] = self.page.eval_on_selector_all(
            "#member-menu .menu-item", "(items) => items.map((i) => i.dataset.action)"
        )
        return actions

    def choose(self, other: Person, action: str) -> None:
        if self.page.locator("#member-menu").is_hidden():
            self.menu_of(other)
        self.page.click(f"#member-menu .menu-item[data-action='{action}']")

    def message(self) -> str:
        locator = self.page.locator("#message")
        locator.wait_for(state="visible")
        return locator.inner_text()


@dataclass
class Room:
    room_id: str
    daemon: DaemonProcess
    ada: Person
    ben: Person
    cy: Person

    def invitation(self) -> str:
        """A fresh invitation link (Ada's, over REST): the link a person is sent."""
        response = self.daemon.client(self.ada.principal).post(
            f"/api/v1/syncplay/rooms/{self.room_id}/invitations", json={}
        )
        assert response.status_code == 201, response.text
        code: str = response.json()["code"]
        return f"{self.daemon.base_url}/syncplay/?invite={code}"


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    folder: Path = tmp_path_factory.mktemp("moderation-page")
    env = {"SYNCPLAY_WEB_DEMO": "true", "SYNCPLAY_HEARTBEAT_INTERVAL_SECONDS": "1"}
    with run_daemon(None, folder, env) as process:
        yield process
        assert process.process.poll() is None, "the daemon died during the browser tests"
        assert not any("Traceback" in line for line in process.log_lines)


def _person(browser: Browser, principal: Principal, **options: Any) -> Person:
    context = browser.new_context(**options)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(f"console: {message.text}")

    page.on("pageerror", lambda error: errors.append(f"uncaught: {error}"))
    page.on("console", on_console)
    return Person(principal, context, page, errors)


@pytest.fixture(scope="module")
def room(browser: Browser, daemon: DaemonProcess) -> Iterator[Room]:
    ada, ben, cy = new_user("Ada"), new_user("Ben"), new_user("Cy")
    created = create_room(
        daemon,
        ada,
        name="Film club",
        content_type="url",
        content_id="demo/demo.webm",
        is_public=False,
    )
    people = [
        _person(browser, ada, viewport={"width": 1280, "height": 800}),
        _person(browser, ben, viewport={"width": 1280, "height": 800}),
        _person(
            browser, cy, viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True
        ),
    ]
    state = Room(created["id"], daemon, *people)
    try:
        state.ada.page.goto(f"{daemon.base_url}/syncplay/?room={state.room_id}#token={token(ada)}")
        state.ada.wait_joined()
        for person in (state.ben, state.cy):
            person.page.goto(f"{state.invitation()}#token={token(person.principal)}")
            person.wait_joined()
        for person in people:
            person.page.wait_for_function(
                "() => document.querySelectorAll('#participants li.connected').length === 3"
            )
        yield state
        for person in people:
            assert person.errors == [], f"{person.principal.name}'s page: {person.errors}"
    finally:
        for person in people:
            person.context.close()


def test_only_the_owner_gets_the_room_settings_and_the_menus_to_match(
    room: Room, artifacts: Path
) -> None:
    assert room.ada.page.locator("#settings-open").is_visible()
    assert room.ada.page.locator("#bans-open").is_visible()
    for member in (room.ben, room.cy):
        assert member.page.locator("#settings-open").is_hidden()
        assert member.page.locator("#bans-open").is_hidden()
        # A plain member may do nothing to anyone: no menu at all.
        assert member.page.locator("#participants .member-menu-button").count() == 0
    # The owner has no menu on herself, and all of hers on a member.
    assert room.ada.page.locator(f"{room.ada.row(room.ada)} .member-menu-button").count() == 0
    assert room.ada.menu_of(room.ben) == ["promote", "transfer", "mute", "kick", "ban"]
    room.ada.page.screenshot(path=artifacts / "moderation-menu.png")
    room.ada.page.keyboard.press("Escape")
    room.ada.page.locator("#member-menu").wait_for(state="hidden")


def test_the_owner_gives_playback_to_moderators_and_promotes_ben(room: Room) -> None:
    ada, ben = room.ada, room.ben
    ada.page.click("#settings-open")
    ada.page.fill("#settings-name", "Film club, Friday")
    ada.page.select_option("#settings-control", "moderators")
    ada.page.click("#settings-save")
    ada.page.locator("#settings-dialog").wait_for(state="hidden")
    # Ben's page hears it at once (`room`): the new name, and as a member he no longer has
    # the controls.
    ben.page.wait_for_function(
        "() => document.getElementById('room-name').textContent === 'Film club, Friday'"
    )
    ben.page.wait_for_function("() => window.syncplay.client.settings.control === 'moderators'")
    ben.page.wait_for_function("() => document.getElementById('play-toggle').disabled")
    assert ben.page.locator("#control-note").is_visible()

    ada.choose(ben, "promote")
    ben.page.wait_for_function("() => window.syncplay.client.you.role === 'moderator'")
    ada.page.wait_for_function(
        f"() => document.querySelector(\"{ada.row(ben)} .role\").textContent === 'moderator'"
    )
    ben.page.wait_for_function("() => !document.getElementById('play-toggle').disabled")
    # A moderator's menu: on members only, nothing on the owner.
    assert ben.page.locator(f"{ben.row(ada)} .member-menu-button").count() == 0
    assert ben.menu_of(room.cy) == ["mute", "kick", "ban"]
    ben.page.keyboard.press("Escape")


def test_a_moderator_pauses_the_room_for_everyone(room: Room) -> None:
    ada, ben = room.ada, room.ben
    ada.page.click("#play-toggle")
    for person in (ada, ben):
        person.page.wait_for_function(
            "() => { const v = document.getElementById('video');"
            " return !v.paused && v.currentTime > 1; }"
        )
    ben.page.click("#play-toggle")
    ada.page.wait_for_function("() => window.syncplay.client.playback.state === 'paused'")
    ada.page.wait_for_function("() => document.getElementById('video').paused")
    assert ada.page.evaluate("() => window.syncplay.client.playback.set_by") == "Ben"
    ada.page.wait_for_function(
        "() => document.getElementById('playback-note').textContent.startsWith('Ben paused')"
    )


def test_a_moderator_deletes_a_message_and_mutes_its_author(room: Room, artifacts: Path) -> None:
    ben, cy = room.ben, room.cy
    cy.page.fill("#chat-input", "The butler did it")
    cy.page.press("#chat-input", "Enter")
    spoiler = "#chat-log .chat-message:has-text('The butler did it')"
    ben.page.locator(spoiler).wait_for()
    # Cy may delete her own message; Ben, a moderator, may delete hers.
    assert cy.page.locator(f"{spoiler} .chat-delete").count() == 1
    ben.page.click(f"{spoiler} .chat-delete")
    for person in (room.ada, ben, cy):
        person.page.locator(spoiler).wait_for(state="detached")

    ben.choose(cy, "mute")
    ben.page.fill("#action-reason", "spoilers")
    ben.page.click("#action-confirm")
    ben.page.locator("#action-dialog").wait_for(state="hidden")
    cy.page.locator("#chat-muted").wait_for(state="visible")
    assert cy.page.get_attribute("#chat-input", "placeholder") == "You are muted in this room"
    # Trying anyway gets the server's refusal, in its words: until when and why.
    cy.page.fill("#chat-input", "But the butler")
    cy.page.press("#chat-input", "Enter")
    cy.page.wait_for_function("() => document.getElementById('chat-error').textContent !== ''")
    refusal = cy.page.inner_text("#chat-error")
    assert refusal.startswith("You are muted in this room until "), refusal
    assert refusal.endswith(": spoilers."), refusal
    assert "T" not in refusal.split(" until ")[1].split(":")[0], "a local time, not ISO"
    cy.page.screenshot(path=artifacts / "moderation-muted-phone.png", full_page=True)
    room.ada.page.locator(f"{room.ada.row(cy)} .muted-badge").wait_for()


def test_the_owner_bans_cy_who_cannot_come_back(room: Room, artifacts: Path) -> None:
    ada, cy = room.ada, room.cy
    ada.choose(cy, "ban")
    ada.page.fill("#action-reason", "spoilers, again")
    ada.page.screenshot(path=artifacts / "moderation-ban-dialog.png")
    assert ada.page.input_value("#action-duration") == "", "a ban is for good unless chosen"
    ada.page.click("#action-confirm")
    ada.page.locator("#action-dialog").wait_for(state="hidden")

    # Cy's page says who and why, and does not try again.
    cy.page.wait_for_function("() => document.body.dataset.state === 'closed'")
    assert cy.message() == "Ada banned you from the room for good: spoilers, again."
    assert cy.page.locator("#message-retry").is_hidden()
    cy.page.screenshot(path=artifacts / "moderation-banned.png")
    ada.page.wait_for_function(f'() => !document.querySelector("{ada.row(cy)}")')

    # A reload is a join like any other: refused, in the server's words.
    cy.page.reload()
    cy.page.wait_for_function(
        "() => document.getElementById('message').textContent.includes('banned')"
    )
    assert cy.message() == "You are banned from this room: spoilers, again."
    assert cy.page.locator("#room").is_hidden()
    assert cy.page.locator("#message-retry").is_hidden()

    # So is a fresh invitation: its lookup already says so (403 banned).
    cy.page.goto(f"{room.invitation()}#token={token(cy.principal)}")
    cy.page.wait_for_function(
        "() => document.getElementById('message').textContent.includes('banned')"
    )
    assert cy.message() == "You are banned from this room: spoilers, again."
    assert cy.page.locator("#room").is_hidden()
    # The browser logs the refused lookup; that one was expected.
    assert [e for e in cy.errors if "403" in e], cy.errors
    cy.errors[:] = [e for e in cy.errors if "403" not in e]


def test_the_bans_dialog_lifts_the_ban(room: Room, artifacts: Path) -> None:
    ada, cy = room.ada, room.cy
    ada.page.click("#bans-open")
    entry = ada.page.locator(f"#bans-list li[data-user-id='{cy.user_id}']")
    entry.wait_for()
    assert "Cy" in entry.inner_text()
    assert "for good" in entry.inner_text()
    assert "spoilers, again" in entry.inner_text()
    ada.page.screenshot(path=artifacts / "moderation-bans.png")
    entry.locator(".ban-lift").click()
    ada.page.locator("#bans-empty").wait_for(state="visible")
    ada.page.keyboard.press("Escape")

    cy.page.goto(f"{room.invitation()}#token={token(cy.principal)}")
    cy.wait_joined()
    ada.page.wait_for_function(
        "() => document.querySelectorAll('#participants li.connected').length === 3"
    )


def test_a_removed_member_is_told_why_and_stays_out(room: Room) -> None:
    ada, cy = room.ada, room.cy
    ada.choose(cy, "kick")
    assert ada.page.locator("#action-duration-field").is_hidden(), "a removal has no duration"
    ada.page.fill("#action-reason", "too loud")
    ada.page.click("#action-confirm")
    cy.page.wait_for_function("() => document.body.dataset.state === 'closed'")
    assert cy.message() == "Ada removed you from the room: too loud."
    assert cy.page.locator("#message-retry").is_hidden()
    ada.page.wait_for_function(f'() => !document.querySelector("{ada.row(cy)}")')
    # Out of a private room: a reload is no way back in (an invitation would be).
    cy.page.reload()
    cy.page.wait_for_function(
        "() => document.getElementById('message').textContent.includes('private')"
    )
    assert cy.page.locator("#room").is_hidden()


def test_the_owner_sets_and_removes_a_password(room: Room, artifacts: Path) -> None:
    ada, ben = room.ada, room.ben
    ada.page.click("#settings-open")
    assert ada.page.locator("#settings-password-clear-row").is_hidden()
    ada.page.screenshot(path=artifacts / "moderation-settings.png")
    ada.page.fill("#settings-password", "popcorn")
    ada.page.click("#settings-save")
    ada.page.locator("#settings-dialog").wait_for(state="hidden")
    ben.page.wait_for_function("() => window.syncplay.client.room.has_password === true")

    ada.page.click("#settings-open")
    ada.page.check("#settings-password-clear")
    assert ada.page.locator("#settings-password").is_disabled()
    ada.page.click("#settings-save")
    ada.page.locator("#settings-dialog").wait_for(state="hidden")
    ben.page.wait_for_function("() => window.syncplay.client.room.has_password === false")


def test_a_refusal_is_shown_in_the_servers_words(room: Room) -> None:
    ada = room.ada
    ada.page.click("#settings-open")
    # The field stops typing at 256 characters; a script does not.
    ada.page.eval_on_selector("#settings-password", "(field) => { field.value = 'x'.repeat(300); }")
    ada.page.click("#settings-save")
    error = ada.page.locator("#settings-error")
    error.wait_for(state="visible")
    # The problem's detail, as a sentence ("Password: expected a string of at most 256...").
    text = error.inner_text()
    assert text.startswith("Password") and "256" in text and text.endswith("."), text
    assert ada.page.locator("#settings-dialog").is_visible(), "the dialog stays open"
    ada.page.click("#settings-cancel")
    # The browser logs the refused request; that one was expected.
    assert [e for e in ada.errors if "422" in e], ada.errors
    ada.errors[:] = [e for e in ada.errors if "422" not in e]


def test_the_owner_ends_the_room(room: Room) -> None:
    ada = room.ada
    ada.page.click("#settings-open")
    ada.page.click("#end-room")
    ada.page.click("#action-confirm")
    for person in (ada, room.ben):
        person.page.wait_for_function(
            "() => document.getElementById('message').textContent === 'The room has ended.'"
        )
