"""Who may do what: every endpoint and socket message against every kind of caller.

One table per surface, checked cell by cell against a daemon process on both
storage backends (memberships, kicks and ended rooms are stored state):

* the REST API: every operation of ``api/openapi/syncplay.yaml`` (a test fails
  when an operation has no row), on four kinds of room: public, private,
  private with a password, and ended;
* the admin API over HTTP (``/api/v1/admin``; a test fails when a route has no row);
* every client-to-server WebSocket message of ``docs/protocol.md``.

Callers: no token, a malformed one, an expired one, one with a wrong signature
and an unsigned one (``alg: none``), all three carrying the admin's identity
and role, so that a forgery that got through would get the most; then valid
tokens of a stranger (non-member), a member, a moderator, the owner and an
administrator who has not joined.

The moderator is a member the owner promoted with ``PUT …/participants/{user_id}/role``,
the endpoint under test itself. Operations on someone (role, kick, ban, mute,
transfer) act on a further plain member, the *target*, who is none of the
callers: so a member's cell shows whether members may act on members (not the
``422`` of acting on oneself), and a moderator's whether moderators may. The
chat message of the room is the target's, so its deletion shows the same.
Lifting a ban or a mute acts on a target who was banned or muted when the room
was built (before it ended, in an ended room). The queue operations act on a second
item the owner queued when the room was built; ``next`` and ``previous`` name the
first item, current then (a later cell's is stale, and a stale step is a 200 too).

Each cell that changes something runs in a fresh room; cells that cannot
change anything share one room per kind. Mismatches are collected, so a
failing row shows the whole row.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from quart_trio import QuartTrio
from trio_websocket import ConnectionClosed

from syncplayd.core import protocol
from syncplayd.identity import Principal
from syncplayd.server.http.admin import admin_blueprint
from syncplayd.server.http.api import api as api_blueprint
from tests.daemon_process import DaemonProcess, new_user, run_daemon
from tests.e2e.raw import Raw
from tests.openapi_check import iter_operations
from tests.security.support import (
    ADMIN_PREFIX,
    PREFIX,
    Http,
    alg_none_token,
    hello,
    in_thread,
    token_for,
    until_closed,
    ws_from,
)
from tests.server.conftest import BACKENDS, backend_database_url

ROOT = Path(__file__).resolve().parents[2]

# -- callers ---------------------------------------------------------------------------------------
BAD_TOKENS = ("no-token", "malformed", "expired", "wrong-signature", "alg-none")
VALID = ("non-member", "member", "moderator", "owner", "admin")
CALLERS = BAD_TOKENS + VALID

# -- room kinds ------------------------------------------------------------------------------------
PUBLIC, PRIVATE, PASSWORD, ENDED = "public", "private", "password", "ended"
KINDS = (PUBLIC, PRIVATE, PASSWORD, ENDED)
ANY = "any"  # the operation does not involve a room

UNAUTHORIZED = "401 unauthorized"
NAM = "403 not-a-member"
FORBIDDEN = "403 forbidden"
GONE = "410 room-ended"


def row(non_member: str, member: str, moderator: str, owner: str, admin: str) -> dict[str, str]:
    """A row of an authenticated operation: every forged or missing token is 401."""
    cells = dict.fromkeys(BAD_TOKENS, UNAUTHORIZED)
    return cells | dict(zip(VALID, (non_member, member, moderator, owner, admin), strict=True))


def everyone(result: str) -> dict[str, str]:
    return row(result, result, result, result, result)


def public_row(result: str) -> dict[str, str]:
    """An operation that needs no token at all."""
    return dict.fromkeys(CALLERS, result)


def per_kind(
    public: dict[str, str], private: dict[str, str], ended: dict[str, str] | None = None
) -> dict[str, dict[str, str]]:
    """Rows by room kind; a room with a password is private too, and so is the ended one."""
    return {PUBLIC: public, PRIVATE: private, PASSWORD: private, ENDED: ended or private}


def queue_change(success: str) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """Public, private and ended rows of a queue change in a "moderators" room: a
    non-member of a public room could not control it by joining, so ``forbidden``."""
    return (
        row(FORBIDDEN, FORBIDDEN, success, success, success),
        row(NAM, FORBIDDEN, success, success, success),
        row(NAM, FORBIDDEN, GONE, GONE, GONE),
    )


# Expected "STATUS code" (or just "STATUS" for a success) per operation, room kind and caller.
# Rooms are created with playback_control "moderators"; admins have not joined them.
REST: dict[tuple[str, str], dict[str, dict[str, str]]] = {
    ("GET", "/rooms"): {ANY: everyone("200")},
    ("POST", "/rooms"): {ANY: everyone("201")},
    ("GET", "/rooms/{room_id}"): per_kind(everyone("200"), row(NAM, "200", "200", "200", "200")),
    ("PUT", "/rooms/{room_id}"): per_kind(
        row(FORBIDDEN, FORBIDDEN, FORBIDDEN, "200", "200"),
        row(NAM, FORBIDDEN, FORBIDDEN, "200", "200"),
        row(NAM, FORBIDDEN, FORBIDDEN, GONE, GONE),
    ),
    ("DELETE", "/rooms/{room_id}"): per_kind(
        row(FORBIDDEN, FORBIDDEN, FORBIDDEN, "204", "204"),
        row(NAM, FORBIDDEN, FORBIDDEN, "204", "204"),  # ending an ended room again: 204
    ),
    ("POST", "/rooms/{room_id}/join"): {
        PUBLIC: everyone("200"),
        PRIVATE: row(NAM, "200", "200", "200", "200"),
        PASSWORD: row("403 wrong-password", "200", "200", "200", "200"),
        ENDED: everyone(GONE),
    },
    ("POST", "/rooms/{room_id}/leave"): per_kind(
        row("404 not-a-member", "204", "204", "204", "404 not-a-member"),
        row("404 not-a-member", "204", "204", "204", "404 not-a-member"),
    ),
    ("GET", "/rooms/{room_id}/participants"): per_kind(
        everyone("200"), row(NAM, "200", "200", "200", "200")
    ),
    ("POST", "/rooms/{room_id}/chat"): per_kind(
        row(NAM, "201", "201", "201", NAM),  # admins chat only once they have joined
        row(NAM, "201", "201", "201", NAM),
        row(NAM, GONE, GONE, GONE, NAM),
    ),
    ("GET", "/rooms/{room_id}/chat"): per_kind(
        everyone("200"), row(NAM, "200", "200", "200", "200")
    ),
    ("POST", "/rooms/{room_id}/invitations"): per_kind(
        row(FORBIDDEN, FORBIDDEN, "201", "201", "201"),
        row(NAM, FORBIDDEN, "201", "201", "201"),
        row(NAM, FORBIDDEN, GONE, GONE, GONE),
    ),
    # Whoever holds a code may look it up, private and ended rooms included.
    ("GET", "/invitations/{code}"): per_kind(everyone("200"), everyone("200")),
    # Moderation: acting on the target, a plain member (see the module docstring).
    ("PUT", "/rooms/{room_id}/participants/{user_id}/role"): per_kind(
        row(FORBIDDEN, FORBIDDEN, FORBIDDEN, "200", "200"),
        row(NAM, FORBIDDEN, FORBIDDEN, "200", "200"),
        row(NAM, FORBIDDEN, FORBIDDEN, GONE, GONE),
    ),
    ("POST", "/rooms/{room_id}/transfer"): per_kind(
        row(FORBIDDEN, FORBIDDEN, FORBIDDEN, "200", "200"),
        row(NAM, FORBIDDEN, FORBIDDEN, "200", "200"),
        row(NAM, FORBIDDEN, FORBIDDEN, GONE, GONE),
    ),
    ("POST", "/rooms/{room_id}/participants/{user_id}/kick"): per_kind(
        row(FORBIDDEN, FORBIDDEN, "204", "204", "204"),
        row(NAM, FORBIDDEN, "204", "204", "204"),  # an ended room's membership may be cleared
    ),
    ("GET", "/rooms/{room_id}/bans"): per_kind(
        row(FORBIDDEN, FORBIDDEN, "200", "200", "200"),
        row(NAM, FORBIDDEN, "200", "200", "200"),
    ),
    ("PUT", "/rooms/{room_id}/bans/{user_id}"): per_kind(
        row(FORBIDDEN, FORBIDDEN, "200", "200", "200"),
        row(NAM, FORBIDDEN, "200", "200", "200"),
        row(NAM, FORBIDDEN, GONE, GONE, GONE),
    ),
    ("DELETE", "/rooms/{room_id}/bans/{user_id}"): per_kind(
        row(FORBIDDEN, FORBIDDEN, "204", "204", "204"),
        row(NAM, FORBIDDEN, "204", "204", "204"),
        row(NAM, FORBIDDEN, GONE, GONE, GONE),
    ),
    ("PUT", "/rooms/{room_id}/mutes/{user_id}"): per_kind(
        row(FORBIDDEN, FORBIDDEN, "200", "200", "200"),
        row(NAM, FORBIDDEN, "200", "200", "200"),
        row(NAM, FORBIDDEN, GONE, GONE, GONE),
    ),
    ("DELETE", "/rooms/{room_id}/mutes/{user_id}"): per_kind(
        row(FORBIDDEN, FORBIDDEN, "204", "204", "204"),
        row(NAM, FORBIDDEN, "204", "204", "204"),
        row(NAM, FORBIDDEN, GONE, GONE, GONE),
    ),
    # The target's message (its author, not a caller here, may delete it too). The history
    # of an ended room stays readable, so it may still be cleaned.
    ("DELETE", "/rooms/{room_id}/chat/{message_id}"): per_kind(
        row(FORBIDDEN, FORBIDDEN, "204", "204", "204"),
        row(NAM, FORBIDDEN, "204", "204", "204"),
    ),
    # The play queue: reading as the room, changing as playback control (a "moderators"
    # room here, and administrators always).
    ("GET", "/rooms/{room_id}/queue"): per_kind(
        everyone("200"), row(NAM, "200", "200", "200", "200")
    ),
    ("POST", "/rooms/{room_id}/queue/items"): per_kind(*queue_change("201")),
    ("DELETE", "/rooms/{room_id}/queue/items"): per_kind(*queue_change("200")),
    ("DELETE", "/rooms/{room_id}/queue/items/{item_id}"): per_kind(*queue_change("200")),
    ("POST", "/rooms/{room_id}/queue/items/{item_id}/move"): per_kind(*queue_change("200")),
    ("POST", "/rooms/{room_id}/queue/play"): per_kind(*queue_change("200")),
    ("POST", "/rooms/{room_id}/queue/next"): per_kind(*queue_change("200")),
    ("POST", "/rooms/{room_id}/queue/previous"): per_kind(*queue_change("200")),
    ("PUT", "/rooms/{room_id}/queue/mode"): per_kind(*queue_change("200")),
    ("GET", "/openapi.yaml"): {ANY: public_row("200")},
    ("GET", "/openapi.json"): {ANY: public_row("200")},
    ("GET", "/healthz"): {ANY: public_row("200")},
    ("GET", "/readyz"): {ANY: public_row("200")},
}
# Cells of these operations change who may do what (membership, the room's end), so each
# valid caller gets a fresh room; the other operations share one room per kind.
REST_FRESH = {
    ("DELETE", "/rooms/{room_id}"),
    ("POST", "/rooms/{room_id}/join"),
    ("POST", "/rooms/{room_id}/leave"),
    ("PUT", "/rooms/{room_id}/participants/{user_id}/role"),
    ("POST", "/rooms/{room_id}/transfer"),
    ("POST", "/rooms/{room_id}/participants/{user_id}/kick"),
    ("PUT", "/rooms/{room_id}/bans/{user_id}"),
    ("DELETE", "/rooms/{room_id}/bans/{user_id}"),
    ("PUT", "/rooms/{room_id}/mutes/{user_id}"),
    ("DELETE", "/rooms/{room_id}/mutes/{user_id}"),
    ("DELETE", "/rooms/{room_id}/chat/{message_id}"),
    # A removed item is not there for the next caller, and a cleared queue loses the item
    # the other queue operations act on.
    ("DELETE", "/rooms/{room_id}/queue/items"),
    ("DELETE", "/rooms/{room_id}/queue/items/{item_id}"),
}


def _to_target(world: World) -> dict[str, str]:
    return {"user_id": str(world.users["target"].user_id)}


# A body, or how to make it from the room's world.
BODIES: dict[tuple[str, str], Any] = {
    ("POST", "/rooms"): {"name": "Another", "content_type": "movie", "content_id": "2"},
    ("PUT", "/rooms/{room_id}"): {"name": "Renamed"},
    ("POST", "/rooms/{room_id}/chat"): {"message": "hello"},
    ("POST", "/rooms/{room_id}/invitations"): {},
    ("PUT", "/rooms/{room_id}/participants/{user_id}/role"): {"role": "moderator"},
    ("POST", "/rooms/{room_id}/transfer"): _to_target,
    ("PUT", "/rooms/{room_id}/bans/{user_id}"): {"reason": "matrix", "expires_in_minutes": 60},
    ("PUT", "/rooms/{room_id}/mutes/{user_id}"): {"reason": "matrix"},
    ("POST", "/rooms/{room_id}/queue/items"): {"content_type": "movie", "content_id": "q"},
    ("POST", "/rooms/{room_id}/queue/items/{item_id}/move"): {"index": 0},
    ("POST", "/rooms/{room_id}/queue/play"): lambda world: {"item_id": world.item_id},
    ("POST", "/rooms/{room_id}/queue/next"): lambda world: {"current_item_id": world.first_item},
    ("POST", "/rooms/{room_id}/queue/previous"): lambda world: {
        "current_item_id": world.first_item
    },
    ("PUT", "/rooms/{room_id}/queue/mode"): {"repeat": "all"},
}
# The target's restriction that the operation lifts, made when its room is built.
REST_SANCTIONED = {
    ("DELETE", "/rooms/{room_id}/bans/{user_id}"): "bans",
    ("DELETE", "/rooms/{room_id}/mutes/{user_id}"): "mutes",
}


def body_for(table: dict[tuple[str, str], Any], op: tuple[str, str], world: World) -> Any:
    body = table.get(op)
    return body(world) if callable(body) else body


def admin_row(success: str) -> dict[str, str]:
    """The admin API over HTTP: an admin token or nothing."""
    return row(FORBIDDEN, FORBIDDEN, FORBIDDEN, FORBIDDEN, success)


A = ADMIN_PREFIX
ADMIN: dict[tuple[str, str], dict[str, str]] = {
    ("GET", f"{A}/status"): admin_row("200"),
    ("GET", f"{A}/config"): admin_row("200"),
    ("GET", f"{A}/rooms"): admin_row("200"),
    ("POST", f"{A}/rooms"): admin_row("201"),
    ("GET", f"{A}/rooms/{{room_id}}"): admin_row("200"),
    ("PATCH", f"{A}/rooms/{{room_id}}"): admin_row("200"),
    ("DELETE", f"{A}/rooms/{{room_id}}"): admin_row("200"),
    ("GET", f"{A}/rooms/{{room_id}}/participants"): admin_row("200"),
    ("POST", f"{A}/rooms/{{room_id}}/participants/{{user_id}}/kick"): admin_row("200"),
    ("GET", f"{A}/rooms/{{room_id}}/chat"): admin_row("200"),
    ("DELETE", f"{A}/chat/{{message_id}}"): admin_row("200"),
    ("POST", f"{A}/rooms/{{room_id}}/invitations"): admin_row("201"),
    ("GET", f"{A}/rooms/{{room_id}}/invitations"): admin_row("200"),
    ("GET", f"{A}/invitations"): admin_row("200"),
    ("GET", f"{A}/invitations/{{code}}"): admin_row("200"),
    ("DELETE", f"{A}/invitations/{{code}}"): admin_row("200"),
    ("POST", f"{A}/invitations/purge-expired"): admin_row("200"),
    ("GET", f"{A}/rooms/{{room_id}}/events"): admin_row("200"),
    ("PUT", f"{A}/rooms/{{room_id}}/participants/{{user_id}}/role"): admin_row("200"),
    ("POST", f"{A}/rooms/{{room_id}}/transfer"): admin_row("200"),
    ("GET", f"{A}/rooms/{{room_id}}/bans"): admin_row("200"),
    ("PUT", f"{A}/rooms/{{room_id}}/bans/{{user_id}}"): admin_row("200"),
    ("DELETE", f"{A}/rooms/{{room_id}}/bans/{{user_id}}"): admin_row("200"),
    ("PUT", f"{A}/rooms/{{room_id}}/mutes/{{user_id}}"): admin_row("200"),
    ("DELETE", f"{A}/rooms/{{room_id}}/mutes/{{user_id}}"): admin_row("200"),
    ("GET", f"{A}/rooms/{{room_id}}/queue"): admin_row("200"),
    ("POST", f"{A}/rooms/{{room_id}}/queue/items"): admin_row("201"),
    ("DELETE", f"{A}/rooms/{{room_id}}/queue/items"): admin_row("200"),
    ("DELETE", f"{A}/rooms/{{room_id}}/queue/items/{{item_id}}"): admin_row("200"),
    ("POST", f"{A}/rooms/{{room_id}}/queue/items/{{item_id}}/move"): admin_row("200"),
    ("POST", f"{A}/rooms/{{room_id}}/queue/play"): admin_row("200"),
    ("POST", f"{A}/rooms/{{room_id}}/queue/next"): admin_row("200"),
    ("POST", f"{A}/rooms/{{room_id}}/queue/previous"): admin_row("200"),
    ("PUT", f"{A}/rooms/{{room_id}}/queue/mode"): admin_row("200"),
}
ADMIN_FRESH = {
    ("DELETE", f"{A}/rooms/{{room_id}}"),
    ("POST", f"{A}/rooms/{{room_id}}/participants/{{user_id}}/kick"),
    ("DELETE", f"{A}/chat/{{message_id}}"),
    ("DELETE", f"{A}/invitations/{{code}}"),
    ("PUT", f"{A}/rooms/{{room_id}}/participants/{{user_id}}/role"),
    ("POST", f"{A}/rooms/{{room_id}}/transfer"),
    ("PUT", f"{A}/rooms/{{room_id}}/bans/{{user_id}}"),
    ("DELETE", f"{A}/rooms/{{room_id}}/bans/{{user_id}}"),
    ("PUT", f"{A}/rooms/{{room_id}}/mutes/{{user_id}}"),
    ("DELETE", f"{A}/rooms/{{room_id}}/mutes/{{user_id}}"),
    ("DELETE", f"{A}/rooms/{{room_id}}/queue/items"),
    ("DELETE", f"{A}/rooms/{{room_id}}/queue/items/{{item_id}}"),
}
ADMIN_BODIES: dict[tuple[str, str], Any] = {
    ("PATCH", f"{A}/rooms/{{room_id}}"): {"name": "Renamed"},
    ("POST", f"{A}/rooms/{{room_id}}/invitations"): {},
    ("POST", f"{A}/invitations/purge-expired"): {},
    ("PUT", f"{A}/rooms/{{room_id}}/participants/{{user_id}}/role"): {"role": "moderator"},
    ("POST", f"{A}/rooms/{{room_id}}/transfer"): _to_target,
    # The public API's bodies.
    **{(m, f"{A}{path}"): body for (m, path), body in BODIES.items() if "/queue" in path},
}
ADMIN_SANCTIONED = {
    ("DELETE", f"{A}/rooms/{{room_id}}/bans/{{user_id}}"): "bans",
    ("DELETE", f"{A}/rooms/{{room_id}}/mutes/{{user_id}}"): "mutes",
}

# WebSocket: hello, join (the private room), then the message, then a ping as a marker.
# "ok": answered without error; "error:CODE": refused; "closed:REASON": the socket was closed.
WS_UNAUTHORIZED = "closed:unauthorized"


def ws_row(non_member: str, member: str, moderator: str, owner: str, admin: str) -> dict[str, str]:
    cells = dict.fromkeys(BAD_TOKENS, WS_UNAUTHORIZED)
    return cells | dict(zip(VALID, (non_member, member, moderator, owner, admin), strict=True))


NOT_JOINED = "error:not-joined"
CONTROL = ws_row(NOT_JOINED, "error:not-allowed", "ok", "ok", "error:not-allowed")
OPEN = ws_row(NOT_JOINED, "ok", "ok", "ok", "ok")
WS: dict[str, dict[str, str]] = {
    "hello": ws_row("ok", "ok", "ok", "ok", "ok"),
    "join": ws_row("error:not-a-member", "ok", "ok", "ok", "ok"),  # admins need no invitation
    "ping": ws_row("ok", "ok", "ok", "ok", "ok"),  # answered before joining too
    "play": CONTROL,  # an admin joins as a plain member: no control in a moderators room
    "pause": CONTROL,
    "seek": CONTROL,
    "rate": CONTROL,
    "buffering": OPEN,
    "ready": OPEN,
    "heartbeat": OPEN,
    "chat": OPEN,
    # What a player reports of its media, and the readiness of its person: anyone joined.
    "media": OPEN,
    "ended": OPEN,
    "readiness": OPEN,
    # The queue's next and previous follow playback control, as over REST: there, an
    # administrator who has not joined may, and so may one joined as a plain member.
    "next": ws_row(NOT_JOINED, "error:not-allowed", "ok", "ok", "ok"),
    "previous": ws_row(NOT_JOINED, "error:not-allowed", "ok", "ok", "ok"),
    "leave": ws_row(NOT_JOINED, "closed:left", "closed:left", "closed:left", "closed:left"),
}


# -- the daemon and its rooms ----------------------------------------------------------------------
@dataclass
class Site:
    daemon: DaemonProcess
    shared: dict[str, World] = field(default_factory=dict)


@pytest.fixture(scope="module", params=BACKENDS)
def site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    folder = tmp_path_factory.mktemp(f"matrix-{request.param}")
    url = backend_database_url(request.param, request, folder)
    with run_daemon(url, folder / "state") as process:
        yield Site(process)
        assert process.process.poll() is None, "the daemon died during the tests"
        assert not any("Traceback" in line for line in process.log_lines), "\n".join(
            process.log_lines
        )


@dataclass
class World:
    """A room of one kind with one caller of each role."""

    kind: str
    room_id: str
    code: str  # an unlimited invitation of the room
    chat_id: str
    users: dict[str, Principal]
    first_item: str  # the queue's current item when the room was built
    item_id: str  # a second item, queued when the room was built

    def token(self, caller: str) -> str | None:
        forged = self.users["admin"]
        tokens = {
            "no-token": None,
            "malformed": "abc",
            "expired": token_for(forged, age=timedelta(hours=2)),
            "wrong-signature": token_for(forged, secret="another-secret-" + "x" * 32),
            "alg-none": alg_none_token(forged),
        }
        if caller in tokens:
            return tokens[caller]
        return token_for(self.users[caller])

    def http(self, site: Site, caller: str) -> Http:
        return Http(site.daemon, token=self.token(caller))

    def path(self) -> dict[str, Any]:
        return {
            "room_id": self.room_id,
            "code": self.code,
            "user_id": str(self.users["target"].user_id),
            "message_id": self.chat_id,
            "item_id": self.item_id,
        }


def build_world(site: Site, kind: str, *, sanctioned: str | None = None) -> World:
    """A room of ``kind``; ``sanctioned`` ("bans", "mutes"): the target has one of those."""
    names = ("non-member", "member", "moderator", "owner", "target")
    users = {name: new_user(name) for name in names}
    users["admin"] = new_user("admin", admin=True)
    owner = Http(site.daemon, users["owner"])
    room = owner.room(
        is_public=kind == PUBLIC,
        password="pw" if kind == PASSWORD else None,
        playback_control="moderators",
    )
    room_id: str = room["id"]
    code = owner.invite(room_id)
    for name in ("member", "moderator", "target"):
        Http(site.daemon, users[name]).expect(
            "POST", "/rooms/{room_id}/join", 200, json={"invitation_code": code}, room_id=room_id
        )
    to_moderator = {"room_id": room_id, "user_id": users["moderator"].user_id}
    role = "/rooms/{room_id}/participants/{user_id}/role"
    owner.expect("PUT", role, 200, json={"role": "moderator"}, **to_moderator)
    people = owner.expect("GET", "/rooms/{room_id}/participants", 200, room_id=room_id).json()
    roles = {p["user_name"]: p["role"] for p in people["items"]}
    assert roles == {
        "owner": "owner",
        "member": "member",
        "moderator": "moderator",
        "target": "member",
    }
    chat = Http(site.daemon, users["target"]).expect(
        "POST", "/rooms/{room_id}/chat", 201, json={"message": "hi"}, room_id=room_id
    )
    if sanctioned is not None:
        sanction = f"/rooms/{{room_id}}/{sanctioned}/{{user_id}}"
        owner.expect("PUT", sanction, 200, room_id=room_id, user_id=users["target"].user_id)
    queue = owner.expect(
        "POST", "/rooms/{room_id}/queue/items", 201,
        json={"content_type": "movie", "content_id": "tt2"}, room_id=room_id,
    ).json()  # fmt: skip
    first, second = (item["id"] for item in queue["items"])
    assert queue["current_item_id"] == first == room["current_item_id"]
    if kind == ENDED:
        owner.expect("DELETE", "/rooms/{room_id}", 204, room_id=room_id)
    return World(kind, room_id, code, chat.json()["id"], users, first, second)


def shared_world(site: Site, kind: str) -> World:
    if kind not in site.shared:
        site.shared[kind] = build_world(site, PRIVATE if kind == ANY else kind)
    return site.shared[kind]


def outcome(response: httpx.Response) -> str:
    if response.status_code < 300:
        return str(response.status_code)
    return f"{response.status_code} {response.json()['code']}"


def _mismatches(expected: dict[str, str], seen: dict[str, str]) -> str:
    lines = [f"  {c:16} expected {expected[c]!r:24} got {seen[c]!r}" for c in CALLERS]
    wrong = [line for line, c in zip(lines, CALLERS, strict=True) if expected[c] != seen[c]]
    return "\n".join(wrong)


# -- coverage of the tables ------------------------------------------------------------------------
def _rules(blueprint: Any, prefix: str) -> set[tuple[str, str]]:
    app = QuartTrio("coverage")
    app.register_blueprint(blueprint)
    found = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(prefix) or getattr(rule, "websocket", False):
            continue
        for method in rule.methods or ():
            if method not in ("HEAD", "OPTIONS"):
                found.add((method, re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)))
    return found


def test_the_rest_table_covers_every_documented_operation() -> None:
    assert set(REST) == set(iter_operations())
    # And the code serves nothing the contract leaves out (the websocket has its own table).
    served = {(m, p.removeprefix(PREFIX)) for m, p in _rules(api_blueprint, PREFIX)}
    assert served - {("GET", "/ws")} <= set(REST)


def test_the_admin_table_covers_every_admin_route() -> None:
    assert set(ADMIN) == _rules(admin_blueprint, ADMIN_PREFIX)


def test_the_websocket_table_covers_every_client_message() -> None:
    assert set(WS) == protocol.CLIENT_TYPES
    doc = (ROOT / "docs/protocol.md").read_text()
    section = doc.split("### 3.2 Client to server", 1)[1].split("\n### ", 1)[0]
    assert set(WS) == set(re.findall(r"^#### `([a-z_]+)`", section, re.MULTILINE))


def test_every_row_has_every_caller_and_room_kind() -> None:
    for cells_by_kind in REST.values():
        assert set(cells_by_kind) in ({ANY}, set(KINDS))
        for cells in cells_by_kind.values():
            assert set(cells) == set(CALLERS)
    for table in (ADMIN, WS):
        for cells in table.values():
            assert set(cells) == set(CALLERS)


# -- the REST matrix -------------------------------------------------------------------------------
REST_CELLS = [
    pytest.param(method, template, kind, id=f"{method} {template} [{kind}]")
    for (method, template), cells_by_kind in REST.items()
    for kind in cells_by_kind
]


@pytest.mark.parametrize(("method", "template", "kind"), REST_CELLS)
def test_rest(site: Site, method: str, template: str, kind: str) -> None:
    op = (method, template)
    expected = REST[op][kind]
    seen: dict[str, str] = {}
    for caller in CALLERS:
        fresh = op in REST_FRESH and caller in VALID
        world = (
            build_world(site, PRIVATE if kind == ANY else kind, sanctioned=REST_SANCTIONED.get(op))
            if fresh
            else shared_world(site, kind)
        )
        body = body_for(BODIES, op, world)
        response = world.http(site, caller).call(method, template, json=body, **world.path())
        seen[caller] = outcome(response)
    assert seen == expected, f"{method} {template} in a {kind} room:\n" + _mismatches(
        expected, seen
    )


# -- the admin API over HTTP -----------------------------------------------------------------------
@pytest.mark.parametrize(("method", "template"), list(ADMIN), ids=[f"{m} {t}" for m, t in ADMIN])
def test_admin(site: Site, method: str, template: str) -> None:
    op = (method, template)
    expected = ADMIN[op]
    seen: dict[str, str] = {}
    for caller in CALLERS:
        fresh = op in ADMIN_FRESH and caller == "admin"
        world = (
            build_world(site, PRIVATE, sanctioned=ADMIN_SANCTIONED.get(op))
            if fresh
            else shared_world(site, PRIVATE)
        )
        body = body_for(ADMIN_BODIES, op, world)
        if template == f"{A}/rooms" and method == "POST":
            body = {
                "owner_id": str(world.users["owner"].user_id),
                "owner_name": "Owner",
                "name": "By an admin",
                "content_type": "movie",
                "content_id": "3",
            }
        response = world.http(site, caller).call(method, template, json=body, **world.path())
        seen[caller] = outcome(response)
    assert seen == expected, f"{method} {template}:\n" + _mismatches(expected, seen)


# -- the WebSocket ---------------------------------------------------------------------------------
def _message(kind: str, joined: dict[str, Any] | None) -> dict[str, Any]:
    server_time = joined["server_time"] if joined else 0.0
    item = joined["room"]["current_item_id"] if joined else "3f8e2c1a-0b4d-4e6f-8a9c-1d2e3f4a5b6c"
    messages: dict[str, dict[str, Any]] = {
        "ping": {"type": "ping", "id": 1, "t0": 0.0},
        "play": {"type": "play"},
        "pause": {"type": "pause", "position": 5.0},
        "seek": {"type": "seek", "position": 10.0},
        "rate": {"type": "rate", "rate": 1.5},
        "buffering": {"type": "buffering"},
        "ready": {"type": "ready"},
        "heartbeat": {
            "type": "heartbeat",
            "position": 0.0,
            "server_time": server_time,
            "version": 0,
        },
        "chat": {"type": "chat", "message": "hello", "client_id": "m1"},
        "leave": {"type": "leave"},
        "media": {"type": "media", "item_id": item, "duration": 60.0},
        "ended": {"type": "ended", "item_id": item},
        "readiness": {"type": "readiness", "ready": True},
        "next": {"type": "next", "current_item_id": item},
        "previous": {"type": "previous", "current_item_id": item},
    }
    return messages[kind]


async def _answer(client: Raw, marker: int) -> str:
    """What the server said before answering the marker ping (or closing)."""
    # If it closed on the message itself, the closing is still queued for us.
    with contextlib.suppress(ConnectionClosed):
        await client.send({"type": "ping", "id": marker, "t0": 0.0})
    try:
        with trio.fail_after(10):
            while True:
                message = await client.recv()
                if message["type"] == "error":
                    return f"error:{message['code']}"
                if message["type"] == "closing":
                    return f"closed:{message['reason']}"
                if message["type"] == "pong" and message["id"] == marker:
                    return "ok"
    except ConnectionClosed:
        return "closed:without-closing"


async def _ws_cell(site: Site, world: World, caller: str, kind: str) -> str:
    async with ws_from(site.daemon) as client:
        answer = await hello(client, world.token(caller))
        if answer["type"] == "closing":
            return f"closed:{answer['reason']}"
        assert answer["type"] == "welcome", answer
        if kind == "hello":
            return "ok"
        await client.send({"type": "join", "room_id": world.room_id})
        reply = await client.recv()
        while reply["type"] not in ("joined", "error"):
            reply = await client.recv()
        if kind == "join":
            return "ok" if reply["type"] == "joined" else f"error:{reply['code']}"
        joined = reply if reply["type"] == "joined" else None
        await client.send(_message(kind, joined))
        return await _answer(client, 999)


@pytest.mark.parametrize("kind", list(WS))
async def test_websocket(site: Site, kind: str) -> None:
    expected = WS[kind]
    seen: dict[str, str] = {}
    for caller in CALLERS:
        world = await in_thread(build_world if caller in VALID else shared_world, site, PRIVATE)
        seen[caller] = await _ws_cell(site, world, caller, kind)
    assert seen == expected, f"{kind}:\n" + _mismatches(expected, seen)


# -- the cases the matrix cannot show in one cell --------------------------------------------------
JOIN = "/rooms/{room_id}/join"
ROOM = "/rooms/{room_id}"


@pytest.mark.parametrize("public", [True, False], ids=["public", "private"])
def test_password_rooms(site: Site, public: bool) -> None:
    owner = Http(site.daemon, new_user("owner"))
    room = owner.room(is_public=public, password="pw")
    assert room["has_password"] and "password" not in room
    guest = Http(site.daemon, new_user("guest"))
    guest.expect("POST", JOIN, 403, "wrong-password", room_id=room["id"])
    guest.expect("POST", JOIN, 403, "wrong-password", json={"password": "PW"}, room_id=room["id"])
    guest.expect("GET", ROOM, *((200,) if public else (403, "not-a-member")), room_id=room["id"])
    guest.expect("POST", JOIN, 200, json={"password": "pw"}, room_id=room["id"])
    guest.expect("GET", ROOM, 200, room_id=room["id"])
    # An invitation stands in for the password.
    Http(site.daemon, new_user("invited")).expect(
        "POST", JOIN, 200, json={"invitation_code": owner.invite(room["id"])}, room_id=room["id"]
    )


async def test_password_rooms_over_the_websocket(site: Site) -> None:
    room_id = await in_thread(
        lambda: Http(site.daemon, new_user("owner")).room(is_public=False, password="pw")["id"]
    )
    async with ws_from(site.daemon) as client:
        assert (await hello(client, token_for(new_user("guest"))))["type"] == "welcome"
        for attempt in ({}, {"password": "PW"}):
            await client.send({"type": "join", "room_id": room_id} | attempt)
            assert (await client.expect("error"))["code"] == "wrong-password"
        joined = await client.join(room_id, password="pw")
        assert joined["you"]["role"] == "member"


def test_private_rooms_are_not_listed_and_need_an_invitation(site: Site) -> None:
    owner = Http(site.daemon, new_user("owner"))
    content = str(new_user().user_id)  # a content id no other test uses
    room = owner.room(content_id=content)
    stranger = Http(site.daemon, new_user("stranger"))
    listed = stranger.expect("GET", "/rooms", 200, params={"content_id": content}).json()
    assert (listed["items"], listed["total"]) == ([], 0)
    admin = Http(site.daemon, new_user("admin", admin=True))
    assert admin.expect("GET", "/rooms", 200, params={"content_id": content}).json()["total"] == 1
    stranger.expect("POST", JOIN, 403, "not-a-member", room_id=room["id"])
    stranger.expect("POST", JOIN, 403, "not-a-member", json={"password": "x"}, room_id=room["id"])
    stranger.expect(
        "POST", JOIN, 200, json={"invitation_code": owner.invite(room["id"])}, room_id=room["id"]
    )
    listed = stranger.expect("GET", "/rooms", 200, params={"content_id": content}).json()
    assert [r["id"] for r in listed["items"]] == [room["id"]]


async def test_personal_invitations_are_for_their_invitee_only(site: Site) -> None:
    invitee, other = new_user("invitee"), new_user("other")

    def setup() -> tuple[str, str]:
        owner = Http(site.daemon, new_user("owner"))
        room_id: str = owner.room()["id"]
        return room_id, owner.invite(room_id, invited_user_id=str(invitee.user_id))

    room_id, code = await in_thread(setup)

    def rest() -> None:
        intruder = Http(site.daemon, other)
        intruder.expect("GET", "/invitations/{code}", 404, "not-found", code=code)
        intruder.expect(
            "POST", JOIN, 403, "invitation-invalid", json={"invitation_code": code}, room_id=room_id
        )
        admin = Http(site.daemon, new_user("admin", admin=True))
        admin.expect("GET", "/invitations/{code}", 200, code=code)  # admins may look
        admin.expect(  # but a personal code is not theirs to use either
            "POST", JOIN, 403, "invitation-invalid", json={"invitation_code": code}, room_id=room_id
        )

    await in_thread(rest)
    async with ws_from(site.daemon) as client:
        assert (await hello(client, token_for(other)))["type"] == "welcome"
        await client.send({"type": "join", "room_id": room_id, "invitation_code": code})
        assert (await client.expect("error"))["code"] == "invitation-invalid"
    async with ws_from(site.daemon) as client:
        assert (await hello(client, token_for(invitee)))["type"] == "welcome"
        await client.join(room_id, invitation_code=code.lower())
    # Used once by its invitee (a personal invitation is for one join): nobody else gets in.
    await in_thread(
        lambda: Http(site.daemon, other).expect(
            "POST", JOIN, 403, "invitation-invalid", json={"invitation_code": code}, room_id=room_id
        )
    )


async def test_nobody_joins_an_ended_room_over_the_websocket(site: Site) -> None:
    world = await in_thread(build_world, site, ENDED)
    for caller in VALID:
        async with ws_from(site.daemon) as client:
            assert (await hello(client, world.token(caller)))["type"] == "welcome"
            await client.send({"type": "join", "room_id": world.room_id})
            assert (await client.expect("error"))["code"] == "room-ended", caller


async def test_a_kicked_member_needs_a_credential_to_come_back(site: Site) -> None:
    world = await in_thread(build_world, site, PRIVATE)
    member = world.users["member"]
    async with ws_from(site.daemon) as socket:
        assert (await hello(socket, token_for(member)))["type"] == "welcome"
        session = (await socket.join(world.room_id))["session_id"]

        def kick() -> None:
            admin = Http(site.daemon, world.users["admin"])
            response = admin.expect(
                "POST",
                f"{A}/rooms/{{room_id}}/participants/{{user_id}}/kick",
                200,
                **world.path() | {"user_id": member.user_id},
            )
            assert response.json()["removed"] and response.json()["sessions_closed"] == 1

        await in_thread(kick)
        seen, code = await until_closed(socket)
        assert seen[-1] == {**seen[-1], "type": "closing", "reason": "kicked"}
        assert code == 4002

    def rest() -> None:
        kicked = Http(site.daemon, member)
        kicked.expect("GET", ROOM, 403, "not-a-member", room_id=world.room_id)
        kicked.expect("GET", "/rooms/{room_id}/chat", 403, "not-a-member", room_id=world.room_id)
        kicked.expect(
            "POST", "/rooms/{room_id}/chat", 403, "not-a-member", json={"message": "back"},
            room_id=world.room_id,
        )  # fmt: skip
        kicked.expect("POST", JOIN, 403, "not-a-member", room_id=world.room_id)

    await in_thread(rest)
    async with ws_from(site.daemon) as socket:
        assert (await hello(socket, token_for(member)))["type"] == "welcome"
        await socket.send({"type": "join", "room_id": world.room_id, "resume": session})
        assert (await socket.expect("error"))["code"] == "not-a-member"
        # A kick is not a ban (see server/http/admin.py): the invitation still opens the room.
        joined = await socket.join(world.room_id, invitation_code=world.code)
        assert joined["session_id"] != session and joined["you"]["role"] == "member"


async def test_resuming_someone_elses_session_gives_a_new_one(site: Site) -> None:
    world = await in_thread(build_world, site, PUBLIC)
    async with ws_from(site.daemon) as victim, ws_from(site.daemon) as thief:
        assert (await hello(victim, world.token("member")))["type"] == "welcome"
        stolen = (await victim.join(world.room_id))["session_id"]
        assert (await hello(thief, world.token("non-member")))["type"] == "welcome"
        joined = await thief.join(world.room_id, resume=stolen)
        assert joined["session_id"] != stolen
        assert joined["you"]["user_id"] == str(world.users["non-member"].user_id)
        # The victim keeps its socket: no "replaced", and it is still answered.
        await victim.send({"type": "ping", "id": 5, "t0": 0.0})
        assert await _answer(victim, 6) == "ok"


def test_identity_headers_from_an_untrusted_address_are_ignored(site: Site) -> None:
    forged = {
        "X-Remote-User-Id": str(new_user().user_id),
        "X-Remote-User-Admin": "true",
    }
    Http(site.daemon).expect("GET", "/rooms", 401, "unauthorized", headers=forged)
    plain = Http(site.daemon, new_user("plain"))
    plain.expect("GET", "/rooms", 200, headers=forged)
    response = plain.call("GET", f"{A}/status", headers=forged)
    assert (response.status_code, response.json()["code"]) == (403, "forbidden")
