"""What one ordinary account could still send: input hygiene at the edges.

* Control characters (ESC, BEL, C1, OSC 52 sequences) in names, ids and chat are
  refused by the API, over REST and the WebSocket alike, and ``syncplayctl`` never
  prints one raw (rooms stored before the rule still hold them).
* A request body that is not UTF-8 is a ``400``, never a ``500`` with a traceback.
* Before ``join``, the WebSocket refuses a control character in ``invitation_code``
  as a bad message (PostgreSQL cannot even look up a NUL: it used to be "database
  unavailable", logged once per frame), and frames have the live room's rate limit.
* The state folder and the SQLite files are private whatever the umask.
* A room's content id cannot send every member's browser to another host.
"""

from __future__ import annotations

import dataclasses
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
import trio
from click.testing import CliRunner

from syncplayd.cli.admin_client import AdminClient
from syncplayd.cli.ctl import main as syncplayctl
from syncplayd.cli.output import cell, echo_json
from syncplayd.config import WebSettings
from syncplayd.identity import load_or_create_secret
from syncplayd.server.http.web import media_url_refusal
from syncplayd.storage import open_repository, run_migrations
from tests.daemon_process import DaemonProcess, new_user, run_daemon
from tests.e2e.raw import new_room, raw_client
from tests.openapi_check import assert_request_conforms
from tests.security.support import ADMIN_PREFIX, Http
from tests.server.conftest import BACKENDS, backend_daemon

PER_SECOND = 10
HYGIENE_ENV = {
    "SYNCPLAY_WS_MAX_MESSAGES_PER_SECOND": str(PER_SECOND),
    "SYNCPLAY_CHAT_RATE_LIMIT_MESSAGES_PER_MINUTE": "10000",
}
ROOM = {"name": "Hygiene", "content_type": "movie", "content_id": "tt1"}

# What an attacker writes into a name to drive an administrator's terminal.
OSC52 = "\x1b]52;c;Y3VybCBldmlsLmV4YW1wbGUgfCBzaA==\x07"  # sets the clipboard
HOSTILE = [
    pytest.param(OSC52, id="osc52"),
    pytest.param("\x1b[2J\x1b[Hclean", id="esc-csi"),
    pytest.param("ring\x07", id="bel"),
    pytest.param("c1\x9b31m", id="c1-csi"),
    pytest.param("del\x7f", id="del"),
    pytest.param("nul\x00", id="nul"),
    pytest.param("two\nlines", id="newline"),
    pytest.param("trailing\n", id="trailing-newline"),
    pytest.param("tab\there", id="tab"),
]


@pytest.fixture(scope="module", params=BACKENDS)
def hygiene(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DaemonProcess]:
    with backend_daemon(request, tmp_path_factory, "hygiene", HYGIENE_ENV) as process:
        yield process
        assert not any("database unavailable" in line for line in process.log_lines)
        assert not any('"level": "error"' in line for line in process.log_lines)


# -- 5: control characters, refused by the API --------------------------------------------------
@pytest.mark.parametrize("value", HOSTILE)
@pytest.mark.parametrize("field", ["name", "content_id"])
def test_names_and_ids_refuse_control_characters(
    hygiene: DaemonProcess, field: str, value: str
) -> None:
    body = ROOM | {field: value}
    with pytest.raises(AssertionError):
        assert_request_conforms("POST", "/rooms", body)
    owner = Http(hygiene, new_user("owner"))
    problem = owner.expect("POST", "/rooms", 422, "validation-failed", json=body).json()
    assert problem["errors"][0]["field"] == field
    room = owner.room()
    owner.expect(
        "PUT", "/rooms/{room_id}", 422, "validation-failed", json={field: value}, room_id=room["id"]
    )


@pytest.mark.parametrize("value", ["movie\n", "mo\x1bvie", "movie\x85"])
def test_content_type_refuses_control_characters(hygiene: DaemonProcess, value: str) -> None:
    body = ROOM | {"content_type": value}
    with pytest.raises(AssertionError):
        assert_request_conforms("POST", "/rooms", body)
    Http(hygiene, new_user()).expect("POST", "/rooms", 422, "validation-failed", json=body)


@pytest.mark.parametrize("field", ["name", "owner_name", "content_id"])
def test_admin_create_refuses_control_characters(hygiene: DaemonProcess, field: str) -> None:
    admin = Http(hygiene, new_user("admin", admin=True))
    body = ROOM | {"owner_id": str(new_user().user_id), "owner_name": "Owner", field: OSC52}
    admin.expect("POST", f"{ADMIN_PREFIX}/rooms", 422, "validation-failed", json=body)


def test_invitation_codes_refuse_control_characters_over_rest(hygiene: DaemonProcess) -> None:
    room = Http(hygiene, new_user("owner")).room(is_public=False)
    body = {"invitation_code": "AB\x1bCD"}
    with pytest.raises(AssertionError):
        assert_request_conforms("POST", "/rooms/{room_id}/join", body)
    Http(hygiene, new_user("guest")).expect(
        "POST", "/rooms/{room_id}/join", 422, "validation-failed", json=body, room_id=room["id"]
    )


CHAT_REFUSED = [OSC52, "bell\x07", "c1\x9b31m", "cr\rlf", "del\x7f", "nul\x00", "\x1bat start"]
CHAT_KEPT = ["two\nlines", "a\ttab", "  padded\n\tand indented  "]


def test_chat_keeps_newlines_and_tabs_and_refuses_other_controls_over_rest(
    hygiene: DaemonProcess,
) -> None:
    owner = Http(hygiene, new_user("owner"))
    room_id = owner.room()["id"]
    for message in CHAT_REFUSED:
        with pytest.raises(AssertionError):
            assert_request_conforms("POST", "/rooms/{room_id}/chat", {"message": message})
        owner.expect(
            "POST", "/rooms/{room_id}/chat", 422, "validation-failed",
            json={"message": message}, room_id=room_id,
        )  # fmt: skip
    for message in CHAT_KEPT:
        assert_request_conforms("POST", "/rooms/{room_id}/chat", {"message": message})
        stored = owner.expect(
            "POST", "/rooms/{room_id}/chat", 201, json={"message": message}, room_id=room_id
        ).json()
        assert stored["message"] == message.strip()


async def test_chat_over_the_websocket_gets_the_same_rule(hygiene: DaemonProcess) -> None:
    owner = new_user("owner")
    room_id = await new_room(hygiene, owner, is_public=True)
    async with raw_client(hygiene, owner, room_id) as client:
        for n, message in enumerate(CHAT_REFUSED):
            await client.send({"type": "chat", "message": message, "client_id": f"m{n}"})
            error = await client.expect("error")
            expected = "bad-message" if "\x00" in message else "validation-failed"
            assert error["code"] == expected, (message, error)
        await client.send({"type": "chat", "message": "two\nlines\twith a tab", "client_id": "ok"})
        seen = await client.expect("chat")
        assert seen["message"]["message"] == "two\nlines\twith a tab"


# -- 5: ... and never printed raw by syncplayctl -------------------------------------------------
STORED_ROOM: dict[str, Any] = {
    "id": "0b9f3c1e-6a51-4d7e-9c39-2f0e8d6b1a24",
    "name": f"Film night{OSC52}\x9b2J",
    "owner_id": "5d1c7a8e-2b34-4f60-8a9d-c3e1f2a4b5d6",
    "owner_name": "Mallory\x1b]0;pwned\x07",
    "content_type": "movie",
    "content_id": "tt1\x1b[8m",
    "is_public": True,
    "has_password": False,
    "participant_count": 1,
    "max_participants": 50,
    "playback_control": "everyone",
    "playback": {"state": "paused", "position": 0.0, "rate": 1.0, "version": 0},
    "created_at": "2026-11-25T18:40:00.123456Z",
    "updated_at": "2026-11-25T18:40:00.123456Z",
    "ended_at": None,
    "live": None,
    "connections": 0,
}
CHAT_PAGE = {
    "items": [
        {
            "id": "8e0c5f8e-1f7e-4d37-9a7e-9a4b8c7d6e5f",
            "room_id": STORED_ROOM["id"],
            "user_id": STORED_ROOM["owner_id"],
            "user_name": "Eve\x1b]0;pwned\x07",
            "message": f"hi{OSC52}\x9d",
            "created_at": "2026-11-25T18:41:00Z",
        }
    ],
    "total": 1,
    "limit": 50,
    "offset": 0,
}


@pytest.fixture
def stored(monkeypatch: pytest.MonkeyPatch) -> None:
    """An admin API that answers with data stored before the rule (no daemon needed)."""
    for name in list(os.environ):
        if name.startswith("SYNCPLAY_"):
            monkeypatch.delenv(name)
    monkeypatch.setattr(AdminClient, "get_room", lambda self, room_id: STORED_ROOM)
    monkeypatch.setattr(AdminClient, "create_room", lambda self, **fields: STORED_ROOM)
    monkeypatch.setattr(
        AdminClient, "list_rooms", lambda self, **query: {"items": [STORED_ROOM], "total": 1}
    )
    monkeypatch.setattr(AdminClient, "chat_history", lambda self, room_id, **query: CHAT_PAGE)


ROOM_ID = STORED_ROOM["id"]
OWNER_ID = STORED_ROOM["owner_id"]
CTL_COMMANDS = [
    pytest.param(["rooms", "show", ROOM_ID], id="rooms-show"),
    pytest.param(["rooms", "list"], id="rooms-list"),
    pytest.param(["chat", "history", ROOM_ID], id="chat-history"),
    pytest.param(
        [
            "rooms",
            "create",
            "--owner",
            OWNER_ID,
            "--owner-name",
            "Eve",
            "--name",
            "x",
            "--content-type",
            "movie",
            "--content-id",
            "1",
        ],
        id="rooms-create",
    ),
]


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _raw_controls(text: str) -> list[str]:
    return sorted({ch for ch in text if (ord(ch) < 0x20 and ch != "\n") or 0x7F <= ord(ch) <= 0x9F})


@pytest.mark.parametrize("json_output", [False, True], ids=["table", "json"])
@pytest.mark.parametrize("args", CTL_COMMANDS)
def test_syncplayctl_never_prints_a_control_character_raw(
    stored: None, args: list[str], json_output: bool
) -> None:
    options = ["--url", "http://127.0.0.1:9", *(["--json"] if json_output else [])]
    result = CliRunner().invoke(syncplayctl, [*options, *args])
    assert result.exit_code == 0, result.output
    assert _raw_controls(result.output) == [], result.output
    if json_output:
        # Still the same data for scripts: the escapes decode to what is stored.
        assert any(OSC52 in text for text in _strings(json.loads(result.output)))
    else:
        assert "\\x1b" in result.output


def test_cells_and_json_escape_every_control_character() -> None:
    hostile = "".join(chr(c) for c in [*range(0x20), *range(0x7F, 0xA0)])
    assert _raw_controls(cell(hostile, width=None)) == []

    @click.command()
    def show() -> None:
        echo_json({"name": hostile}, compact=True)

    out = CliRunner().invoke(show).output
    assert _raw_controls(out) == []
    assert json.loads(out) == {"name": hostile}


# -- 8: a body that is not UTF-8 ------------------------------------------------------------------
JSON_HEADERS = {"Content-Type": "application/json"}
OWNER_FIELD = b'"owner_id": "5d1c7a8e-2b34-4f60-8a9d-c3e1f2a4b5d6", '
ROOM_FIELDS = b'"content_type": "movie", "content_id": "1"'


@pytest.mark.parametrize(
    ("method", "template", "body"),
    [
        ("POST", "/rooms", b'{"name": "caf\xe9", ' + ROOM_FIELDS + b"}"),
        ("PUT", "/rooms/{room_id}", b'{"name": "caf\xe9"}'),
        ("POST", "/rooms/{room_id}/chat", b'{"message": "caf\xe9"}'),
        ("POST", "/rooms/{room_id}/chat", b'{"caf\xe9": "a key"}'),
        ("POST", "/rooms/{room_id}/join", b'{"invitation_code": "caf\xe9"}'),
        ("POST", "/rooms/{room_id}/invitations", b'{"caf\xe9": 1}'),
        (
            "POST",
            f"{ADMIN_PREFIX}/rooms",
            b"{" + OWNER_FIELD + b'"name": "\xe9", ' + ROOM_FIELDS + b"}",
        ),
    ],
)
def test_a_body_that_is_not_utf8_is_a_bad_request(
    hygiene: DaemonProcess, method: str, template: str, body: bytes
) -> None:
    caller = Http(hygiene, new_user("owner", admin=template.startswith(ADMIN_PREFIX)))
    room_id = caller.room()["id"]
    problem = caller.expect(
        method, template, 400, "bad-request", content=body, headers=JSON_HEADERS, room_id=room_id
    ).json()
    assert "UTF-8" in problem["detail"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    folder = tmp_path_factory.mktemp("hygiene-demo")
    with run_daemon(None, folder, {"SYNCPLAY_WEB_DEMO": "true"}) as daemon:
        yield daemon
        assert not any("Traceback" in line for line in daemon.log_lines)


def test_the_demo_guest_endpoint_answers_400_to_a_body_that_is_not_utf8(
    demo: DaemonProcess,
) -> None:
    response = demo.client().post(
        "/syncplay/demo/guest", content=b'{"name": "Ad\xe9"}', headers=JSON_HEADERS
    )
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "bad-request"


# -- 9: the handshake ---------------------------------------------------------------------------
async def test_a_control_character_in_a_join_invitation_code_is_a_bad_message(
    hygiene: DaemonProcess,
) -> None:
    owner, guest = new_user("owner"), new_user("guest")
    room_id = await new_room(hygiene, owner, is_public=False)
    async with raw_client(hygiene) as client:
        await client.hello(guest)
        for code in ("AB\x00CD", "\x00", "AB\x1b[2JCD"):
            await client.send({"type": "join", "room_id": room_id, "invitation_code": code})
            error = await client.expect("error")
            assert error["code"] == "bad-message", error
            assert "invitation_code" in error["message"]
    lines = hygiene.log_lines
    assert not any("database unavailable" in line for line in lines), lines[-5:]


async def test_a_nul_in_a_join_password_is_just_a_wrong_password(hygiene: DaemonProcess) -> None:
    owner, guest = new_user("owner"), new_user("guest")
    room_id = await new_room(hygiene, owner, is_public=True, password="right")
    async with raw_client(hygiene) as client:
        await client.hello(guest)
        await client.send({"type": "join", "room_id": room_id, "password": "ri\x00ght"})
        assert (await client.expect("error"))["code"] == "wrong-password"
    assert not any("database unavailable" in line for line in hygiene.log_lines)


@pytest.mark.parametrize("before", ["hello", "join"])
async def test_frames_before_join_have_the_live_rooms_rate_limit(
    hygiene: DaemonProcess, before: str
) -> None:
    """A flood before ``join`` is dropped beyond the budget, with one notice a second."""
    sent = 20 * PER_SECOND
    async with raw_client(hygiene) as client:
        if before == "join":
            await client.hello(new_user("flooder"))
        for n in range(sent):
            await client.send({"type": "ping", "id": n, "t0": 0.0})
        pongs, notices = 0, 0
        with trio.move_on_after(1.0):
            while True:
                message = await client.recv()
                if message["type"] == "pong":
                    pongs += 1
                elif message.get("code") == "rate-limited":
                    notices += 1
    # The burst (twice the rate) and what refilled while the frames arrived.
    assert pongs <= 3 * PER_SECOND, pongs
    assert pongs >= 2 * PER_SECOND - 1, pongs
    assert notices in (1, 2), notices  # the flood takes well under 2 s to send


# -- 7: private files ----------------------------------------------------------------------------
@pytest.fixture(params=[0o022, 0o000], ids=["umask-022", "umask-000"])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    previous = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_the_sqlite_database_and_its_folder_are_private(umask: int, tmp_path: Path) -> None:
    path = tmp_path / "state" / "syncplayd.sqlite3"
    repo = await open_repository(f"sqlite:///{path}")
    try:
        files = [path, Path(f"{path}-wal"), Path(f"{path}-shm")]
        assert all(f.exists() for f in files), list(path.parent.iterdir())
        assert {f.name: oct(_mode(f)) for f in files} == {f.name: "0o600" for f in files}
        assert oct(_mode(path.parent)) == "0o700"
    finally:
        await repo.aclose()


async def test_syncplayctl_db_migrate_creates_a_private_database(
    umask: int, tmp_path: Path
) -> None:
    path = tmp_path / "db" / "syncplayd.sqlite3"
    await run_migrations(f"sqlite:///{path}", "up")
    assert oct(_mode(path)) == "0o600"
    assert oct(_mode(path.parent)) == "0o700"


def test_the_state_folder_and_the_generated_secret_are_private(umask: int, tmp_path: Path) -> None:
    state = tmp_path / "deep" / "state"
    _, created = load_or_create_secret(state)
    assert created
    assert oct(_mode(state)) == "0o700"
    assert oct(_mode(state / "jwt_secret")) == "0o600"


# -- 15: where members' browsers fetch a room's media ---------------------------------------------
ELSEWHERE = [
    "https://tracker.example/pixel.mp4",
    "HTTP://tracker.example/pixel.mp4",
    "http:tracker.example/pixel.mp4",
    "//tracker.example/pixel.mp4",
    "/\\tracker.example/pixel.mp4",
    "\\\\tracker.example/pixel.mp4",
    "  //tracker.example/pixel.mp4",
]
HERE = ["tt0133093", "/media/film.mp4", "demo/demo.webm", "imdb:tt1", "../x.webm"]


@pytest.mark.parametrize("content_id", ELSEWHERE)
def test_a_content_id_on_another_host_is_refused(hygiene: DaemonProcess, content_id: str) -> None:
    body = ROOM | {"content_id": content_id}
    with pytest.raises(AssertionError):
        assert_request_conforms("POST", "/rooms", body)
    owner = Http(hygiene, new_user("owner"))
    problem = owner.expect("POST", "/rooms", 422, "validation-failed", json=body).json()
    assert problem["errors"][0]["field"] == "content_id"
    room_id = owner.room()["id"]
    owner.expect(
        "PUT", "/rooms/{room_id}", 422, "validation-failed",
        json={"content_id": content_id}, room_id=room_id,
    )  # fmt: skip
    admin = Http(hygiene, new_user("admin", admin=True))
    admin_body = body | {"owner_id": str(new_user().user_id), "owner_name": "Owner"}
    problem = admin.expect(
        "POST", f"{ADMIN_PREFIX}/rooms", 422, "validation-failed", json=admin_body
    ).json()
    assert problem["errors"][0]["field"] == "content_id"


@pytest.mark.parametrize("content_id", HERE)
def test_a_content_id_on_this_server_is_accepted(hygiene: DaemonProcess, content_id: str) -> None:
    body = ROOM | {"content_id": content_id}
    assert_request_conforms("POST", "/rooms", body)
    Http(hygiene, new_user("owner")).expect("POST", "/rooms", 201, json=body)


def _web(changes: dict[str, Any]) -> WebSettings:
    return dataclasses.replace(WebSettings(), **changes)


@pytest.mark.parametrize(
    ("settings", "content_type", "content_id", "refused"),
    [
        ({}, "movie", "https://tracker.example/x", "content_id"),
        ({}, "movie", "/media/x", None),
        ({}, None, None, None),  # an update that changes neither
        ({"allow_any_media_url": True}, "movie", "https://tracker.example/x", None),
        ({"enabled": False}, "movie", "https://tracker.example/x", None),
        ({"media_url_template": "/Videos/{content_id}/stream"}, "movie", "..", "content_id"),
        ({"media_url_template": "/Videos/{content_id}/stream"}, "movie", ".", None),
        ({"media_url_template": "/Videos/{content_id}/stream"}, "movie", "a/..", None),
        ({"media_url_template": "/Videos/{content_id}/stream"}, "movie", "https://x/", None),
        ({"media_url_template": "/v/{content_type}/{content_id}"}, "..", "1", "content_type"),
        ({"media_url_template": "/v/{content_type}/{content_id}"}, "..", None, "content_type"),
        ({"media_url_template": "/v/{content_type}{content_id}"}, ".", ".", "content_id"),
        ({"media_url_template": "/v/x-{content_id}"}, "movie", "..", None),
        ({"media_url_template": "/stream?id={content_id}"}, "movie", "..", None),
        ({"media_url_template": "/v/{content_id}%2e"}, "movie", ".", "content_id"),
    ],
)
def test_the_servers_media_rule(
    settings: dict[str, Any], content_type: str | None, content_id: str | None, refused: str | None
) -> None:
    refusal = media_url_refusal(_web(settings), content_type, content_id)
    assert (refusal[0] if refusal else None) == refused
