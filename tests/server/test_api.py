"""The HTTP API against a real daemon process, on SQLite and on PostgreSQL.

Every response is checked against api/openapi/syncplay.yaml by the Api client.
"""

from __future__ import annotations

import base64
import json
import threading
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import jwt
import pytest
import yaml

from syncplayd.core.codes import ALPHABET
from syncplayd.openapi import load_spec
from tests.daemon_process import SECRET, DaemonProcess
from tests.server.api_client import Api, api

ROOM = "/rooms/{room_id}"


# -- health and contract -------------------------------------------------------------
def test_health_and_ready_need_no_token(daemon: DaemonProcess) -> None:
    anonymous = Api(daemon)
    assert anonymous.call("GET", "/healthz", 200).json() == {"status": "ok"}
    assert anonymous.call("GET", "/readyz", 200).json() == {"status": "ready"}


def test_openapi_is_served_without_token(daemon: DaemonProcess) -> None:
    anonymous = Api(daemon)
    as_yaml = anonymous.call("GET", "/openapi.yaml", 200)
    assert yaml.safe_load(as_yaml.content) == load_spec()
    as_json = anonymous.call("GET", "/openapi.json", 200)
    assert as_json.json() == load_spec()


# -- identity ----------------------------------------------------------------------
def _token(secret: str = SECRET, **claims: Any) -> str:
    body = {
        "sub": str(uuid4()),
        "name": "x",
        "exp": datetime.now(UTC) + timedelta(hours=1),
    } | claims
    return jwt.encode(body, secret, algorithm="HS256")


def _alg_none() -> str:
    def part(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    exp = int((datetime.now(UTC) + timedelta(hours=1)).timestamp())
    return part({"alg": "none"}) + "." + part({"sub": str(uuid4()), "exp": exp}) + "."


BAD_TOKENS = {
    "missing": None,
    "malformed": "abc.def",
    "expired": _token(exp=datetime.now(UTC) - timedelta(minutes=5)),
    "wrong-signature": _token("another-secret-that-is-long-enough-000"),
    "alg-none": _alg_none(),
}

OPERATIONS = [
    ("GET", "/rooms"),
    ("POST", "/rooms"),
    ("GET", ROOM),
    ("PUT", ROOM),
    ("DELETE", ROOM),
    ("POST", ROOM + "/join"),
    ("POST", ROOM + "/leave"),
    ("GET", ROOM + "/participants"),
    ("POST", ROOM + "/chat"),
    ("GET", ROOM + "/chat"),
    ("POST", ROOM + "/invitations"),
    ("GET", "/invitations/{code}"),
    ("DELETE", ROOM + "/chat/{message_id}"),
    ("PUT", ROOM + "/participants/{user_id}/role"),
    ("POST", ROOM + "/transfer"),
    ("POST", ROOM + "/participants/{user_id}/kick"),
    ("GET", ROOM + "/bans"),
    ("PUT", ROOM + "/bans/{user_id}"),
    ("DELETE", ROOM + "/bans/{user_id}"),
    ("PUT", ROOM + "/mutes/{user_id}"),
    ("DELETE", ROOM + "/mutes/{user_id}"),
    ("GET", ROOM + "/queue"),
    ("POST", ROOM + "/queue/items"),
    ("DELETE", ROOM + "/queue/items"),
    ("DELETE", ROOM + "/queue/items/{item_id}"),
    ("POST", ROOM + "/queue/items/{item_id}/move"),
    ("POST", ROOM + "/queue/play"),
    ("POST", ROOM + "/queue/next"),
    ("POST", ROOM + "/queue/previous"),
    ("PUT", ROOM + "/queue/mode"),
]


@pytest.mark.parametrize("kind", list(BAD_TOKENS))
@pytest.mark.parametrize(("method", "template"), OPERATIONS)
def test_every_endpoint_refuses_bad_tokens(
    daemon: DaemonProcess, kind: str, method: str, template: str
) -> None:
    caller = Api(daemon, token=BAD_TOKENS[kind])
    ids: dict[str, Any] = {
        "room_id": uuid4(),
        "user_id": uuid4(),
        "message_id": uuid4(),
        "item_id": uuid4(),
        "code": "ABCDEFGH",
    }
    response = caller.call(method, template, 401, json={}, **ids)
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["code"] == "unauthorized"


# -- rooms -------------------------------------------------------------------------
def test_create_room_makes_owner_a_participant(daemon: DaemonProcess) -> None:
    owner = api(daemon, "Olivia")
    response = owner.call(
        "POST",
        "/rooms",
        201,
        json={
            "name": "  Friday   film ",
            "content_type": "episode",
            "content_id": "abc-123",
            "is_public": True,
            "password": "open sesame",
            "max_participants": 4,
        },
    )
    room = response.json()
    assert response.headers["location"].endswith(f"/rooms/{room['id']}")
    assert room["name"] == "Friday film"
    assert room["owner_id"] == str(owner.principal.user_id)  # type: ignore[union-attr]
    assert room["has_password"] is True
    assert "open sesame" not in response.text and "argon2" not in response.text
    assert "password" not in room
    assert room["participant_count"] == 1
    assert room["max_participants"] == 4
    assert room["playback"]["state"] == "paused"
    people = owner.call("GET", ROOM + "/participants", 200, room_id=room["id"]).json()
    assert [(p["user_name"], p["role"]) for p in people["items"]] == [("Olivia", "owner")]
    assert people["total"] == 1


def test_default_max_participants_comes_from_config(daemon: DaemonProcess) -> None:
    assert api(daemon).create_room()["max_participants"] == 50


def test_a_room_may_not_seat_more_than_the_operator_allows(daemon: DaemonProcess) -> None:
    # rooms.max_participants_limit: 1000 by default (the API's own bound is 10000).
    client = api(daemon)
    assert client.create_room(max_participants=1000)["max_participants"] == 1000
    body = {"name": "party", "content_type": "movie", "content_id": "1", "max_participants": 1001}
    refused = client.problem("POST", "/rooms", 422, "validation-failed", json=body)
    assert "rooms.max_participants_limit" in refused["detail"]
    room = client.create_room()
    client.problem(
        "PUT", "/rooms/{room_id}", 422, "validation-failed",
        json={"max_participants": 5000}, room_id=room["id"],
    )  # fmt: skip


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "", "content_type": "movie", "content_id": "1"}, "name"),
        ({"name": "x" * 201, "content_type": "movie", "content_id": "1"}, "name"),
        ({"name": "   ", "content_type": "movie", "content_id": "1"}, "name"),
        ({"content_type": "movie", "content_id": "1"}, "name"),
        ({"name": "a", "content_type": "mo vie", "content_id": "1"}, "content_type"),
        ({"name": "a", "content_type": "movie", "content_id": ""}, "content_id"),
        (
            {"name": "a", "content_type": "movie", "content_id": "1", "is_public": "yes"},
            "is_public",
        ),
        (
            {"name": "a", "content_type": "movie", "content_id": "1", "max_participants": 1},
            "max_participants",
        ),
        (
            {"name": "a", "content_type": "movie", "content_id": "1", "max_participants": 5000},
            "max_participants",
        ),
        ({"name": "a", "content_type": "movie", "content_id": "1", "password": ""}, "password"),
        ({"name": "a", "content_type": "movie", "content_id": "1", "owner_id": "me"}, "owner_id"),
    ],
)
def test_create_room_validation_names_the_field(
    daemon: DaemonProcess, body: dict[str, Any], field: str
) -> None:
    problem = api(daemon).problem("POST", "/rooms", 422, "validation-failed", json=body)
    assert [e["field"] for e in problem["errors"]] == [field]


@pytest.mark.parametrize(
    ("content", "content_type", "status", "code"),
    [
        (b"{not json", "application/json", 400, "bad-request"),
        (b"[1, 2]", "application/json", 400, "bad-request"),
        (b'"text"', "application/json", 400, "bad-request"),
        (b"\xff\xfe", "application/json", 400, "bad-request"),
        (b"name=x", "application/x-www-form-urlencoded", 415, "unsupported-media-type"),
        (b'{"name": "' + b"x" * 70_000 + b'"}', "application/json", 413, "payload-too-large"),
    ],
)
def test_malformed_bodies_are_refused_cleanly(
    daemon: DaemonProcess, content: bytes, content_type: str, status: int, code: str
) -> None:
    api(daemon).problem(
        "POST", "/rooms", status, code, content=content, headers={"Content-Type": content_type}
    )


def test_unknown_paths_and_methods_are_problems(daemon: DaemonProcess) -> None:
    client = api(daemon).http
    missing = client.get("/api/v1/syncplay/nope")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")
    wrong_method = client.patch(f"/api/v1/syncplay/rooms/{uuid4()}")
    assert wrong_method.status_code == 405
    assert "PUT" in wrong_method.headers["allow"]


def test_get_room_visibility(daemon: DaemonProcess) -> None:
    owner, stranger, admin = (
        api(daemon, "owner"),
        api(daemon, "stranger"),
        api(daemon, "admin", admin=True),
    )
    public = owner.create_room(is_public=True)
    private = owner.create_room(is_public=False)
    assert stranger.call("GET", ROOM, 200, room_id=public["id"]).json()["id"] == public["id"]
    stranger.problem("GET", ROOM, 403, "not-a-member", room_id=private["id"])
    stranger.problem("GET", ROOM + "/participants", 403, "not-a-member", room_id=private["id"])
    stranger.problem("GET", ROOM + "/chat", 403, "not-a-member", room_id=private["id"])
    assert owner.call("GET", ROOM, 200, room_id=private["id"]).json() == private
    admin.call("GET", ROOM, 200, room_id=private["id"])
    admin.call("GET", ROOM + "/chat", 200, room_id=private["id"])
    stranger.problem("GET", ROOM, 404, "not-found", room_id=uuid4())
    stranger.problem("GET", ROOM, 400, "bad-request", room_id="not-a-uuid")


def test_listing_filters_and_pagination(daemon: DaemonProcess) -> None:
    owner, other, admin = (
        api(daemon, "lister"),
        api(daemon, "other"),
        api(daemon, "root", admin=True),
    )
    content_id = f"show-{uuid4()}"
    public = [
        owner.create_room(is_public=True, content_type="episode", content_id=content_id)
        for _ in range(3)
    ]
    private = owner.create_room(is_public=False, content_type="episode", content_id=content_id)
    query = {"content_type": "episode", "content_id": content_id}

    seen = other.call("GET", "/rooms", 200, params=query).json()
    assert {r["id"] for r in seen["items"]} == {r["id"] for r in public}
    assert seen["total"] == 3

    mine = owner.call("GET", "/rooms", 200, params=query | {"mine": "true"}).json()
    assert {r["id"] for r in mine["items"]} == {r["id"] for r in [*public, private]}
    assert other.call("GET", "/rooms", 200, params=query | {"mine": "true"}).json()["total"] == 0
    only_public = owner.call("GET", "/rooms", 200, params=query | {"public": "true"}).json()
    assert only_public["total"] == 3
    everything = admin.call("GET", "/rooms", 200, params=query).json()
    assert everything["total"] == 4

    page = owner.call("GET", "/rooms", 200, params=query | {"limit": 2, "offset": 1}).json()
    assert (page["limit"], page["offset"], page["total"], len(page["items"])) == (2, 1, 4, 2)
    newest_first = [
        r["created_at"] for r in owner.call("GET", "/rooms", 200, params=query).json()["items"]
    ]
    assert newest_first == sorted(newest_first, reverse=True)

    owner.call("DELETE", ROOM, 204, room_id=public[0]["id"])
    active = other.call("GET", "/rooms", 200, params=query).json()
    assert active["total"] == 2
    ended = other.call("GET", "/rooms", 200, params=query | {"active": "false"}).json()
    assert [r["id"] for r in ended["items"]] == [public[0]["id"]]
    assert ended["items"][0]["ended_at"] is not None


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 101},
        {"limit": 0},
        {"limit": "ten"},
        {"offset": -1},
        {"public": "maybe"},
        {"active": "2"},
    ],
)
def test_listing_rejects_bad_query(daemon: DaemonProcess, params: dict[str, Any]) -> None:
    problem = api(daemon).problem("GET", "/rooms", 422, "validation-failed", params=params)
    assert problem["errors"][0]["field"] == next(iter(params))


def test_update_room_rules(daemon: DaemonProcess) -> None:
    owner, member, admin = (
        api(daemon, "owner"),
        api(daemon, "member"),
        api(daemon, "admin", admin=True),
    )
    room = owner.create_room(is_public=True)
    member.call("POST", ROOM + "/join", 200, room_id=room["id"])
    member.problem("PUT", ROOM, 403, "forbidden", json={"name": "mine now"}, room_id=room["id"])
    owner.problem("PUT", ROOM, 422, "validation-failed", json={}, room_id=room["id"])
    owner.problem("PUT", ROOM, 422, "validation-failed", json={"name": ""}, room_id=room["id"])

    updated = owner.call(
        "PUT",
        ROOM,
        200,
        json={"name": "Renamed", "password": "pw", "max_participants": 8},
        room_id=room["id"],
    ).json()
    assert (updated["name"], updated["has_password"], updated["max_participants"]) == (
        "Renamed",
        True,
        8,
    )
    assert updated["content_id"] == room["content_id"]  # untouched fields stay
    cleared = admin.call("PUT", ROOM, 200, json={"password": None}, room_id=room["id"]).json()
    assert cleared["has_password"] is False

    owner.call("DELETE", ROOM, 204, room_id=room["id"])
    owner.problem("PUT", ROOM, 410, "room-ended", json={"name": "late"}, room_id=room["id"])


def test_end_and_purge(daemon: DaemonProcess) -> None:
    owner, member, newcomer = api(daemon, "owner"), api(daemon, "member"), api(daemon, "newcomer")
    room = owner.create_room(is_public=True)
    member.call("POST", ROOM + "/join", 200, room_id=room["id"])
    member.problem("DELETE", ROOM, 403, "forbidden", room_id=room["id"])
    owner.call("DELETE", ROOM, 204, room_id=room["id"])
    owner.call("DELETE", ROOM, 204, room_id=room["id"])  # ending twice is harmless
    ended = owner.call("GET", ROOM, 200, room_id=room["id"]).json()
    assert ended["ended_at"] is not None
    newcomer.problem("POST", ROOM + "/join", 410, "room-ended", room_id=room["id"])
    member.problem(
        "POST", ROOM + "/chat", 410, "room-ended", json={"message": "hi"}, room_id=room["id"]
    )
    owner.problem("POST", ROOM + "/invitations", 410, "room-ended", room_id=room["id"])
    owner.call("DELETE", ROOM, 204, params={"purge": "true"}, room_id=room["id"])
    owner.problem("GET", ROOM, 404, "not-found", room_id=room["id"])


def test_admin_ends_any_room(daemon: DaemonProcess) -> None:
    room = api(daemon, "owner").create_room(is_public=False)
    api(daemon, "admin", admin=True).call("DELETE", ROOM, 204, room_id=room["id"])


# -- joining -----------------------------------------------------------------------
def test_join_public_room_and_again(daemon: DaemonProcess) -> None:
    owner, guest = api(daemon, "owner"), api(daemon, "Guest")
    room = owner.create_room(is_public=True)
    first = guest.call("POST", ROOM + "/join", 200, room_id=room["id"]).json()
    assert first["participant"]["role"] == "member"
    assert first["participant"]["user_name"] == "Guest"
    assert first["room"]["participant_count"] == 2
    again = guest.call("POST", ROOM + "/join", 200, room_id=room["id"]).json()
    assert again["participant"]["joined_at"] == first["participant"]["joined_at"]
    assert again["room"]["participant_count"] == 2


def test_join_password_room(daemon: DaemonProcess) -> None:
    owner, guest = api(daemon, "owner"), api(daemon, "guest")
    room = owner.create_room(is_public=True, password="correct horse")
    guest.problem("POST", ROOM + "/join", 403, "wrong-password", room_id=room["id"])
    guest.problem(
        "POST",
        ROOM + "/join",
        403,
        "wrong-password",
        json={"password": "wrong"},
        room_id=room["id"],
    )
    # null is not "no password": it is not a string (the contract has no null here).
    for field in ("password", "invitation_code"):
        problem = guest.problem(
            "POST", ROOM + "/join", 422, "validation-failed", json={field: None}, room_id=room["id"]
        )
        assert [e["field"] for e in problem["errors"]] == [field]
    guest.call("POST", ROOM + "/join", 200, json={"password": "correct horse"}, room_id=room["id"])


def test_join_private_room_needs_invitation(daemon: DaemonProcess) -> None:
    owner, guest, intruder = api(daemon, "owner"), api(daemon, "guest"), api(daemon, "intruder")
    room = owner.create_room(is_public=False)
    guest.problem("POST", ROOM + "/join", 403, "not-a-member", room_id=room["id"])
    invitation = owner.call("POST", ROOM + "/invitations", 201, json={}, room_id=room["id"]).json()
    joined = guest.call(
        "POST",
        ROOM + "/join",
        200,
        json={"invitation_code": invitation["code"].lower()},
        room_id=room["id"],
    ).json()
    assert joined["participant"]["role"] == "member"
    # A member now sees the room; the intruder still does not.
    guest.call("GET", ROOM, 200, room_id=room["id"])
    intruder.problem("GET", ROOM, 403, "not-a-member", room_id=room["id"])
    # An invitation for one room does not open another.
    other = owner.create_room(is_public=False)
    intruder.problem(
        "POST",
        ROOM + "/join",
        403,
        "invitation-invalid",
        json={"invitation_code": invitation["code"]},
        room_id=other["id"],
    )
    intruder.problem(
        "POST",
        ROOM + "/join",
        403,
        "invitation-invalid",
        json={"invitation_code": "NOSUCHCODE"},
        room_id=room["id"],
    )


def test_invitation_opens_password_room_and_personal_invitations(daemon: DaemonProcess) -> None:
    owner, invited, other = api(daemon, "owner"), api(daemon, "invited"), api(daemon, "other")
    room = owner.create_room(is_public=True, password="secret")
    personal = owner.call(
        "POST",
        ROOM + "/invitations",
        201,
        json={"invited_user_id": str(invited.principal.user_id)},  # type: ignore[union-attr]
        room_id=room["id"],
    ).json()
    assert personal["max_uses"] == 1
    other.problem("GET", "/invitations/{code}", 404, "not-found", code=personal["code"])
    other.problem(
        "POST",
        ROOM + "/join",
        403,
        "invitation-invalid",
        json={"invitation_code": personal["code"]},
        room_id=room["id"],
    )
    details = invited.call("GET", "/invitations/{code}", 200, code=personal["code"]).json()
    assert details["room"]["id"] == room["id"] and details["room"]["has_password"] is True
    invited.call(
        "POST", ROOM + "/join", 200, json={"invitation_code": personal["code"]}, room_id=room["id"]
    )
    invited.problem("GET", "/invitations/{code}", 410, "invitation-used-up", code=personal["code"])


def test_used_up_invitations_answer_410(daemon: DaemonProcess) -> None:
    # Expired ones: tests/server/test_invitation_expiry.py (a lifetime is at least a minute).
    owner, first, second = api(daemon, "owner"), api(daemon, "first"), api(daemon, "second")
    room = owner.create_room(is_public=False)
    once = owner.call(
        "POST", ROOM + "/invitations", 201, json={"max_uses": 1}, room_id=room["id"]
    ).json()
    first.call(
        "POST", ROOM + "/join", 200, json={"invitation_code": once["code"]}, room_id=room["id"]
    )
    second.problem(
        "POST",
        ROOM + "/join",
        410,
        "invitation-used-up",
        json={"invitation_code": once["code"]},
        room_id=room["id"],
    )


def test_invitation_defaults_and_permissions(daemon: DaemonProcess) -> None:
    owner, member = api(daemon, "owner"), api(daemon, "member")
    room = owner.create_room(is_public=True)
    member.call("POST", ROOM + "/join", 200, room_id=room["id"])
    member.problem("POST", ROOM + "/invitations", 403, "forbidden", room_id=room["id"])
    before = datetime.now(UTC)
    invitation = owner.call("POST", ROOM + "/invitations", 201, room_id=room["id"]).json()
    assert len(invitation["code"]) == 10  # invitations.code_length from the daemon's env
    assert set(invitation["code"]) <= set(ALPHABET)
    expires = datetime.fromisoformat(invitation["expires_at"])
    assert timedelta(hours=23, minutes=59) < expires - before < timedelta(hours=24, minutes=1)
    assert invitation["invited_user_id"] is None and invitation["max_uses"] is None
    # Below a minute (1e-7 h is 0.36 ms) the invitation would be expired on creation.
    for refused in (0, 1e-7, None):
        owner.problem(
            "POST",
            ROOM + "/invitations",
            422,
            "validation-failed",
            json={"expires_in_hours": refused},
            room_id=room["id"],
        )
    owner.problem(
        "POST",
        ROOM + "/invitations",
        422,
        "validation-failed",
        json={"invited_user_id": "bob"},
        room_id=room["id"],
    )
    member.problem("GET", "/invitations/{code}", 404, "not-found", code="ZZZZZZZZZZ")


def test_max_participants_holds_under_concurrent_joins(daemon: DaemonProcess) -> None:
    owner = api(daemon, "owner")
    room = owner.create_room(is_public=True, max_participants=10)
    owner.call("POST", ROOM + "/leave", 204, room_id=room["id"])  # leave all 10 places free
    joiners = [api(daemon, f"j{i}") for i in range(50)]
    barrier = threading.Barrier(len(joiners))
    statuses: list[int] = []

    def join(joiner: Api) -> None:
        barrier.wait(timeout=30)
        response = joiner.http.post(f"/api/v1/syncplay/rooms/{room['id']}/join")
        statuses.append(response.status_code)

    threads = [threading.Thread(target=join, args=(j,)) for j in joiners]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(statuses) == [200] * 10 + [409] * 40
    assert owner.call("GET", ROOM, 200, room_id=room["id"]).json()["participant_count"] == 10
    late = api(daemon, "late")
    late.problem("POST", ROOM + "/join", 409, "room-full", room_id=room["id"])


def test_leave(daemon: DaemonProcess) -> None:
    owner, member = api(daemon, "owner"), api(daemon, "member")
    room = owner.create_room(is_public=True)
    member.call("POST", ROOM + "/join", 200, room_id=room["id"])
    member.call("POST", ROOM + "/leave", 204, room_id=room["id"])
    member.problem("POST", ROOM + "/leave", 404, "not-a-member", room_id=room["id"])
    assert owner.call("GET", ROOM, 200, room_id=room["id"]).json()["participant_count"] == 1
    owner.call("POST", ROOM + "/leave", 204, room_id=room["id"])
    # The owner keeps the room and comes back as owner.
    back = owner.call("POST", ROOM + "/join", 200, room_id=room["id"]).json()
    assert back["participant"]["role"] == "owner"


# -- chat --------------------------------------------------------------------------
def test_chat_post_and_history(daemon: DaemonProcess) -> None:
    owner, member, stranger = api(daemon, "Owner"), api(daemon, "Member"), api(daemon, "Stranger")
    room = owner.create_room(is_public=True)
    member.call("POST", ROOM + "/join", 200, room_id=room["id"])
    posted = [
        (owner if i % 2 else member)
        .call("POST", ROOM + "/chat", 201, json={"message": f"message {i}"}, room_id=room["id"])
        .json()
        for i in range(6)
    ]
    assert posted[0]["user_name"] == "Member" and posted[1]["user_name"] == "Owner"
    history = stranger.call("GET", ROOM + "/chat", 200, room_id=room["id"]).json()
    assert [m["message"] for m in history["items"]] == [f"message {i}" for i in reversed(range(6))]
    assert (history["total"], history["limit"], history["offset"]) == (6, 50, 0)
    page = member.call(
        "GET", ROOM + "/chat", 200, params={"limit": 2, "offset": 2}, room_id=room["id"]
    ).json()
    assert [m["message"] for m in page["items"]] == ["message 3", "message 2"]
    capped = member.call(
        "GET", ROOM + "/chat", 200, params={"limit": 500}, room_id=room["id"]
    ).json()
    assert capped["limit"] == 50  # chat.history_limit


def test_chat_rules(daemon: DaemonProcess) -> None:
    owner, stranger = api(daemon, "owner"), api(daemon, "stranger")
    room = owner.create_room(is_public=True)
    stranger.problem(
        "POST", ROOM + "/chat", 403, "not-a-member", json={"message": "hi"}, room_id=room["id"]
    )
    too_long = owner.problem(
        "POST",
        ROOM + "/chat",
        422,
        "validation-failed",
        json={"message": "x" * 301},
        room_id=room["id"],
    )
    assert too_long["errors"][0]["field"] == "message"
    owner.problem(
        "POST",
        ROOM + "/chat",
        422,
        "validation-failed",
        json={"message": "   "},
        room_id=room["id"],
    )
    owner.problem(
        "POST", ROOM + "/chat", 422, "validation-failed", json={"message": 5}, room_id=room["id"]
    )


def test_chat_rate_limit(daemon: DaemonProcess) -> None:
    owner = api(daemon, "chatty")
    room = owner.create_room(is_public=True)
    for i in range(20):
        owner.call("POST", ROOM + "/chat", 201, json={"message": f"{i}"}, room_id=room["id"])
    response = owner.call(
        "POST", ROOM + "/chat", 429, json={"message": "one too many"}, room_id=room["id"]
    )
    assert response.json()["code"] == "rate-limited"
    assert 1 <= int(response.headers["retry-after"]) <= 60
    history = owner.call("GET", ROOM + "/chat", 200, room_id=room["id"]).json()
    assert history["total"] == 20


# -- the whole contract ---------------------------------------------------------------
def test_every_documented_operation_is_implemented(daemon: DaemonProcess) -> None:
    """Each operation in the spec answers something other than 404/405 for a valid call."""
    from tests.openapi_check import iter_operations

    owner = api(daemon, "owner")
    assert owner.principal is not None
    room = owner.create_room(is_public=True)
    invitation = owner.call("POST", ROOM + "/invitations", 201, room_id=room["id"]).json()
    valid_bodies: dict[tuple[str, str], Any] = {
        ("POST", "/rooms"): {"name": "n", "content_type": "movie", "content_id": "1"},
        ("PUT", ROOM): {"name": "n2"},
        ("POST", ROOM + "/chat"): {"message": "m"},
        ("PUT", ROOM + "/participants/{user_id}/role"): {"role": "moderator"},
        ("POST", ROOM + "/transfer"): {"user_id": str(owner.principal.user_id)},
        ("POST", ROOM + "/queue/items"): {"content_type": "movie", "content_id": "2"},
        ("POST", ROOM + "/queue/items/{item_id}/move"): {"index": 0},
        ("PUT", ROOM + "/queue/mode"): {"repeat": "all"},
    }
    # Lifting a ban or a mute needs one to lift.
    lifted = {ROOM + "/bans/{user_id}", ROOM + "/mutes/{user_id}"}

    def the_end_last(op: tuple[str, str]) -> tuple[bool, bool]:
        return op == ("DELETE", ROOM), op[0] == "DELETE"

    for method, template in sorted(iter_operations(), key=the_end_last):
        # The owner back in the room (after the leave), and someone to act on with a
        # message to delete: anew for each operation.
        owner.call("POST", ROOM + "/join", 200, room_id=room["id"])
        target = api(daemon, "target")
        assert target.principal is not None
        target.call("POST", ROOM + "/join", 200, room_id=room["id"])
        message = target.call(
            "POST", ROOM + "/chat", 201, json={"message": "x"}, room_id=room["id"]
        ).json()
        # An item to act on, the current one (the queue never runs dry: one is added each time).
        queue = owner.call(
            "POST", ROOM + "/queue/items", 201, json={"content_type": "movie", "content_id": "q"},
            room_id=room["id"],
        ).json()  # fmt: skip
        ids = {
            "user_id": target.principal.user_id,
            "message_id": message["id"],
            "item_id": queue["current_item_id"],
        }
        valid_bodies[("POST", ROOM + "/queue/play")] = {"item_id": queue["current_item_id"]}
        for step in ("next", "previous"):
            body = {"current_item_id": queue["current_item_id"]}
            valid_bodies[("POST", ROOM + f"/queue/{step}")] = body
        if method == "DELETE" and template in lifted:
            owner.call("PUT", template, 200, room_id=room["id"], **ids)
        response = owner.call(
            method,
            template,
            json=valid_bodies.get((method, template)),
            room_id=room["id"],
            code=invitation["code"],
            **ids,
        )
        # Implemented: the route exists, found what it names, and took the valid call.
        assert response.status_code < 400, (method, template, response.text)


def test_playback_control_setting(daemon: DaemonProcess) -> None:
    owner = api(daemon, "owner")
    room = owner.create_room()
    assert room["playback_control"] == "everyone"
    strict = owner.create_room(playback_control="moderators")
    assert strict["playback_control"] == "moderators"
    relaxed = owner.call(
        "PUT", ROOM, 200, json={"playback_control": "everyone"}, room_id=strict["id"]
    ).json()
    assert relaxed["playback_control"] == "everyone"
    problem = owner.problem(
        "PUT",
        ROOM,
        422,
        "validation-failed",
        json={"playback_control": "owner"},
        room_id=room["id"],
    )
    assert problem["errors"][0]["field"] == "playback_control"
