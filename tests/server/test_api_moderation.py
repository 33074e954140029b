"""Running a room over the public API: roles, ownership, kicks, bans, mutes, chat deletion.

Against a real daemon process on SQLite and on PostgreSQL; every answer is checked
against api/openapi/syncplay.yaml by the Api client. What live sockets see is
tested in tests/e2e (tests/e2e/test_bans.py for the ways back in of a banned user);
who may do what, cell by cell, in tests/security/test_access_matrix.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest

from tests.daemon_process import DaemonProcess
from tests.server.api_client import Api, api, uid

ROOM = "/rooms/{room_id}"
ROLE = ROOM + "/participants/{user_id}/role"
KICK = ROOM + "/participants/{user_id}/kick"
BANS = ROOM + "/bans"
BAN = ROOM + "/bans/{user_id}"
MUTE = ROOM + "/mutes/{user_id}"
CHAT = ROOM + "/chat"


def joined(daemon: DaemonProcess, room: dict[str, Any], *names: str) -> list[Api]:
    """New users who joined the (public) room."""
    people = [api(daemon, name) for name in names]
    for person in people:
        person.call("POST", ROOM + "/join", 200, room_id=room["id"])
    return people


def roles(caller: Api, room_id: str) -> dict[str, tuple[str, bool]]:
    page = caller.call("GET", ROOM + "/participants", 200, room_id=room_id).json()
    return {p["user_name"]: (p["role"], p["muted"]) for p in page["items"]}


def to_the_second(timestamp: str) -> str:
    """A contract timestamp as people read it in a refusal."""
    return timestamp.split(".")[0].removesuffix("Z") + "Z"


def promote(owner: Api, room_id: str, *people: Api) -> None:
    for person in people:
        body = {"role": "moderator"}
        owner.call("PUT", ROLE, 200, json=body, room_id=room_id, user_id=uid(person))


# -- roles and ownership ---------------------------------------------------------------
def test_the_owner_promotes_and_demotes(daemon: DaemonProcess) -> None:
    owner = api(daemon, "owner")
    room = owner.create_room(is_public=True)
    member, other = joined(daemon, room, "member", "other")
    to_member = {"room_id": room["id"], "user_id": uid(member)}
    made = owner.call("PUT", ROLE, 200, json={"role": "moderator"}, **to_member).json()
    assert (made["user_name"], made["role"], made["muted"]) == ("member", "moderator", False)
    assert roles(owner, room["id"])["member"] == ("moderator", False)
    # The role someone has already: 200, nothing changes.
    again = owner.call("PUT", ROLE, 200, json={"role": "moderator"}, **to_member).json()
    assert again["role"] == "moderator"
    # Moderators do not hand out roles; members neither.
    for caller, target in ((member, other), (other, member)):
        caller.problem(
            "PUT", ROLE, 403, "forbidden", json={"role": "moderator"},
            room_id=room["id"], user_id=uid(target),
        )  # fmt: skip
    back = owner.call("PUT", ROLE, 200, json={"role": "member"}, **to_member).json()
    assert back["role"] == "member"
    assert roles(owner, room["id"]) == {
        "owner": ("owner", False),
        "member": ("member", False),
        "other": ("member", False),
    }


def test_role_refusals(daemon: DaemonProcess) -> None:
    owner, admin, stranger = api(daemon, "owner"), api(daemon, "admin", admin=True), api(daemon)
    room = owner.create_room(is_public=True)
    (member,) = joined(daemon, room, "member")
    owner_path = {"room_id": room["id"], "user_id": uid(owner)}
    # Ownership comes with a transfer, not a role.
    problem = owner.problem(
        "PUT", ROLE, 422, "validation-failed", json={"role": "owner"},
        room_id=room["id"], user_id=uid(member),
    )  # fmt: skip
    assert problem["errors"][0]["field"] == "role"
    problem = owner.problem(
        "PUT", ROLE, 422, "validation-failed", json={"role": "member"}, **owner_path
    )
    assert problem["errors"][0]["field"] == "user_id"
    # Nobody demotes the owner, administrators included.
    problem = admin.problem("PUT", ROLE, 403, "forbidden", json={"role": "member"}, **owner_path)
    assert "owner" in problem["detail"]
    owner.problem(
        "PUT", ROLE, 404, "not-a-member", json={"role": "moderator"},
        room_id=room["id"], user_id=uid(stranger),
    )  # fmt: skip
    owner.problem(
        "PUT", ROLE, 404, "not-found", json={"role": "moderator"},
        room_id=uuid4(), user_id=uid(member),
    )  # fmt: skip
    owner.problem(
        "PUT", ROLE, 400, "bad-request", json={"role": "moderator"},
        room_id=room["id"], user_id="bob",
    )  # fmt: skip
    owner.problem(
        "PUT", ROLE, 422, "validation-failed", json={"role": "moderator", "x": 1},
        room_id=room["id"], user_id=uid(member),
    )  # fmt: skip
    # An administrator who has not joined may promote.
    admin.call(
        "PUT", ROLE, 200, json={"role": "moderator"}, room_id=room["id"], user_id=uid(member)
    )


def test_transfer_makes_the_old_owner_a_moderator(daemon: DaemonProcess) -> None:
    owner, stranger = api(daemon, "owner"), api(daemon, "stranger")
    room = owner.create_room(is_public=True)
    (heir,) = joined(daemon, room, "heir")
    heir.problem(
        "POST", ROOM + "/transfer", 403, "forbidden", json={"user_id": uid(heir)},
        room_id=room["id"],
    )  # fmt: skip
    owner.problem(
        "POST", ROOM + "/transfer", 404, "not-a-member", json={"user_id": uid(stranger)},
        room_id=room["id"],
    )  # fmt: skip
    same = owner.call(
        "POST", ROOM + "/transfer", 200, json={"user_id": uid(owner)}, room_id=room["id"]
    ).json()
    assert same["owner_id"] == uid(owner)
    moved = owner.call(
        "POST", ROOM + "/transfer", 200, json={"user_id": uid(heir)}, room_id=room["id"]
    ).json()
    assert moved["owner_id"] == uid(heir)
    assert roles(owner, room["id"]) == {"owner": ("moderator", False), "heir": ("owner", False)}
    # The rights moved with the room.
    owner.problem("PUT", ROOM, 403, "forbidden", json={"name": "mine"}, room_id=room["id"])
    heir.call("PUT", ROOM, 200, json={"name": "ours"}, room_id=room["id"])
    heir.call("PUT", ROLE, 200, json={"role": "member"}, room_id=room["id"], user_id=uid(owner))
    heir.call("PUT", BAN, 200, room_id=room["id"], user_id=uid(owner))


# -- kicks -------------------------------------------------------------------------------
def test_moderators_kick_members_who_may_come_back(daemon: DaemonProcess) -> None:
    owner = api(daemon, "owner")
    room = owner.create_room(is_public=True)
    moderator, member = joined(daemon, room, "moderator", "member")
    promote(owner, room["id"], moderator)
    path = {"room_id": room["id"], "user_id": uid(member)}
    member.problem("POST", KICK, 403, "forbidden", room_id=room["id"], user_id=uid(moderator))
    moderator.problem("POST", KICK, 422, "validation-failed", json={"reason": "x" * 501}, **path)
    moderator.problem("POST", KICK, 422, "validation-failed", json={"reason": "\x1b[2J"}, **path)
    moderator.call("POST", KICK, 204, json={"reason": "spoilers"}, **path)
    assert "member" not in roles(owner, room["id"])
    moderator.problem("POST", KICK, 404, "not-a-member", **path)
    # A kick is not a ban: the public room lets them in again, and the empty body is fine.
    member.call("POST", ROOM + "/join", 200, room_id=room["id"])
    owner.call("POST", KICK, 204, **path)
    # Nobody below the owner kicks the owner; nobody kicks themselves.
    moderator.problem("POST", KICK, 403, "forbidden", room_id=room["id"], user_id=uid(owner))
    owner.problem("POST", KICK, 422, "validation-failed", room_id=room["id"], user_id=uid(owner))


# -- bans --------------------------------------------------------------------------------
def test_ban_list_and_unban(daemon: DaemonProcess) -> None:
    owner = api(daemon, "owner")
    room = owner.create_room(is_public=True)
    moderator, member = joined(daemon, room, "moderator", "member")
    promote(owner, room["id"], moderator)
    path = {"room_id": room["id"], "user_id": uid(member)}
    before = datetime.now(UTC)
    ban = moderator.call(
        "PUT", BAN, 200, json={"reason": "  no   spoilers ", "expires_in_minutes": 60}, **path
    ).json()
    assert ban["user_id"] == uid(member) and ban["room_id"] == room["id"]
    assert (ban["user_name"], ban["reason"]) == ("member", "no spoilers")
    assert ban["created_by"] == uid(moderator)
    expires = datetime.fromisoformat(ban["expires_at"])
    assert timedelta(minutes=59) < expires - before < timedelta(minutes=61)
    assert "member" not in roles(owner, room["id"])
    refused = member.problem("POST", ROOM + "/join", 403, "banned", room_id=room["id"])
    assert refused["detail"].endswith(f"until {to_the_second(ban['expires_at'])}: no spoilers")
    # The ban list: owner and moderators (and admins), not the banned nor other members.
    listed = owner.call("GET", BANS, 200, room_id=room["id"]).json()
    assert listed == {"items": [ban], "total": 1, "limit": 1, "offset": 0}
    assert moderator.call("GET", BANS, 200, room_id=room["id"]).json()["items"] == [ban]
    member.problem("GET", BANS, 403, "forbidden", room_id=room["id"])
    # Banning again replaces the terms: for good, no reason.
    again = owner.call("PUT", BAN, 200, **path).json()
    assert (again["reason"], again["expires_at"], again["created_by"]) == (None, None, uid(owner))
    refused = member.problem("POST", ROOM + "/join", 403, "banned", room_id=room["id"])
    assert refused["detail"] == "you are banned from this room"
    moderator.call("DELETE", BAN, 204, **path)
    moderator.problem("DELETE", BAN, 404, "not-found", **path)
    assert owner.call("GET", BANS, 200, room_id=room["id"]).json()["items"] == []
    member.call("POST", ROOM + "/join", 200, room_id=room["id"])


def test_a_ban_may_come_before_the_visit(daemon: DaemonProcess) -> None:
    owner = api(daemon, "owner")
    room = owner.create_room(is_public=True)
    stranger = api(daemon, "stranger")
    ban = owner.call(
        "PUT", BAN, 200, json={"reason": "troll"}, room_id=room["id"], user_id=uid(stranger)
    ).json()
    assert ban["user_name"] is None and ban["expires_at"] is None
    stranger.problem("POST", ROOM + "/join", 403, "banned", room_id=room["id"])
    # Even with an invitation.
    code = owner.call("POST", ROOM + "/invitations", 201, room_id=room["id"]).json()["code"]
    stranger.problem(
        "POST", ROOM + "/join", 403, "banned", json={"invitation_code": code}, room_id=room["id"]
    )


@pytest.mark.parametrize(
    "body",
    [
        {"expires_in_minutes": 0.5},
        {"expires_in_minutes": 5_256_001},
        {"expires_in_minutes": None},
        {"reason": None},
        {"reason": "r" * 501},
        {"for": "ever"},
    ],
)
def test_sanction_bodies_are_checked(daemon: DaemonProcess, body: dict[str, Any]) -> None:
    owner = api(daemon, "owner")
    room = owner.create_room(is_public=True)
    (member,) = joined(daemon, room, "member")
    for template in (BAN, MUTE):
        problem = owner.problem(
            "PUT", template, 422, "validation-failed", json=body,
            room_id=room["id"], user_id=uid(member),
        )  # fmt: skip
        assert problem["errors"][0]["field"] == next(iter(body))
    assert roles(owner, room["id"])["member"] == ("member", False)


def test_moderators_act_on_moderators_only_where_the_room_allows(daemon: DaemonProcess) -> None:
    owner, admin = api(daemon, "owner"), api(daemon, "admin", admin=True)
    room = owner.create_room(is_public=True)
    assert room["moderators_manage_moderators"] is False
    first, second = joined(daemon, room, "first", "second")
    promote(owner, room["id"], first, second)
    on_second = {"room_id": room["id"], "user_id": uid(second)}
    on_owner = {"room_id": room["id"], "user_id": uid(owner)}
    for method, template in (("PUT", BAN), ("PUT", MUTE), ("POST", KICK)):
        problem = first.problem(method, template, 403, "forbidden", **on_second)
        assert "other moderators" in problem["detail"]
        first.problem(method, template, 403, "forbidden", **on_owner)
    # Only the owner (or an admin) changes the setting.
    first.problem(
        "PUT", ROOM, 403, "forbidden", json={"moderators_manage_moderators": True},
        room_id=room["id"],
    )  # fmt: skip
    updated = owner.call(
        "PUT", ROOM, 200, json={"moderators_manage_moderators": True}, room_id=room["id"]
    ).json()
    assert updated["moderators_manage_moderators"] is True
    shown = second.call("GET", ROOM, 200, room_id=room["id"]).json()
    assert shown["moderators_manage_moderators"] is True
    first.call("PUT", MUTE, 200, **on_second)
    # Still never the owner, and nobody bans or mutes the owner, administrators included.
    first.problem("PUT", BAN, 403, "forbidden", **on_owner)
    for template in (BAN, MUTE):
        problem = admin.problem("PUT", template, 403, "forbidden", **on_owner)
        assert problem["detail"] == "nobody can do that to the room's owner"
    first.call("PUT", BAN, 200, **on_second)
    second.problem("POST", ROOM + "/join", 403, "banned", room_id=room["id"])
    owner.call("PUT", ROOM, 200, json={"moderators_manage_moderators": False}, room_id=room["id"])
    # The ban removed the moderator: no longer one, they are anybody's to unban.
    first.call("DELETE", BAN, 204, **on_second)


# -- mutes -------------------------------------------------------------------------------
def test_a_muted_member_watches_but_does_not_chat(daemon: DaemonProcess) -> None:
    owner, stranger = api(daemon, "owner"), api(daemon, "stranger")
    room = owner.create_room(is_public=True)
    (member,) = joined(daemon, room, "member")
    path = {"room_id": room["id"], "user_id": uid(member)}
    owner.problem("PUT", MUTE, 404, "not-a-member", room_id=room["id"], user_id=uid(stranger))
    mute = owner.call(
        "PUT", MUTE, 200, json={"reason": "calm down", "expires_in_minutes": 30}, **path
    ).json()
    assert (mute["user_name"], mute["reason"]) == ("member", "calm down")
    assert roles(owner, room["id"])["member"] == ("member", True)
    refused = member.problem("POST", CHAT, 403, "muted", json={"message": "hey"}, **path)
    assert refused["detail"].endswith(f"until {to_the_second(mute['expires_at'])}: calm down")
    # Still in the room, and the mute outlasts leaving and coming back.
    member.call("GET", CHAT, 200, room_id=room["id"])
    member.call("POST", ROOM + "/leave", 204, room_id=room["id"])
    again = member.call("POST", ROOM + "/join", 200, room_id=room["id"]).json()
    assert again["participant"]["muted"] is True
    member.problem("POST", CHAT, 403, "muted", json={"message": "hey"}, room_id=room["id"])
    promoted = owner.call("PUT", ROLE, 200, json={"role": "moderator"}, **path).json()
    assert (promoted["role"], promoted["muted"]) == ("moderator", True)
    owner.call("DELETE", MUTE, 204, **path)
    owner.problem("DELETE", MUTE, 404, "not-found", **path)
    assert roles(owner, room["id"])["member"] == ("moderator", False)
    member.call("POST", CHAT, 201, json={"message": "thanks"}, room_id=room["id"])


# -- chat deletion ---------------------------------------------------------------------
def test_who_deletes_which_chat_message(daemon: DaemonProcess) -> None:
    owner, admin = api(daemon, "owner"), api(daemon, "admin", admin=True)
    room = owner.create_room(is_public=True)
    moderator, member = joined(daemon, room, "moderator", "member")
    promote(owner, room["id"], moderator)

    def say(who: Api, text: str) -> str:
        message: str = who.call(
            "POST", CHAT, 201, json={"message": text}, room_id=room["id"]
        ).json()["id"]
        return message

    def delete(who: Api, message_id: str, status: int, code: str | None = None) -> None:
        path = {"room_id": room["id"], "message_id": message_id}
        if code is None:
            who.call("DELETE", CHAT + "/{message_id}", status, **path)
        else:
            who.problem("DELETE", CHAT + "/{message_id}", status, code, **path)

    own, members, moderators, owners = (
        say(member, "mine"),
        say(member, "a member's"),
        say(moderator, "a moderator's"),
        say(owner, "the owner's"),
    )
    delete(member, own, 204)
    delete(member, own, 404, "not-found")
    delete(member, owners, 403, "forbidden")
    delete(moderator, owners, 403, "forbidden")
    delete(member, moderators, 403, "forbidden")
    delete(moderator, members, 204)
    delete(admin, owners, 204)
    delete(owner, moderators, 204)
    history = owner.call("GET", CHAT, 200, room_id=room["id"]).json()
    assert history["items"] == []
    # A message is deleted through its own room only.
    elsewhere = owner.create_room(is_public=True)
    other = owner.call(
        "POST", CHAT, 201, json={"message": "over there"}, room_id=elsewhere["id"]
    ).json()
    delete(owner, other["id"], 404, "not-found")
    assert owner.call("GET", CHAT, 200, room_id=elsewhere["id"]).json()["total"] == 1


# -- ended rooms and the event log -------------------------------------------------------
def test_an_ended_room_takes_kicks_only(daemon: DaemonProcess) -> None:
    owner = api(daemon, "owner")
    room = owner.create_room(is_public=True)
    moderator, member = joined(daemon, room, "moderator", "member")
    promote(owner, room["id"], moderator)
    owner.call("DELETE", ROOM, 204, room_id=room["id"])
    path = {"room_id": room["id"], "user_id": uid(member)}
    owner.problem("PUT", ROLE, 410, "room-ended", json={"role": "moderator"}, **path)
    owner.problem("PUT", BAN, 410, "room-ended", **path)
    owner.problem("PUT", MUTE, 410, "room-ended", **path)
    owner.problem(
        "POST", ROOM + "/transfer", 410, "room-ended", json={"user_id": uid(member)},
        room_id=room["id"],
    )  # fmt: skip
    owner.call("POST", KICK, 204, **path)
    # The rules still come before the room's end.
    member.problem("PUT", BAN, 403, "forbidden", room_id=room["id"], user_id=uid(moderator))


def test_the_event_log_names_who_acted(daemon: DaemonProcess) -> None:
    owner, admin = api(daemon, "owner"), api(daemon, "admin", admin=True)
    room = owner.create_room(is_public=True)
    moderator, member = joined(daemon, room, "moderator", "member")
    on_member = {"room_id": room["id"], "user_id": uid(member)}
    promote(owner, room["id"], moderator)
    moderator.call("PUT", MUTE, 200, json={"reason": "shh"}, **on_member)
    moderator.call("DELETE", MUTE, 204, **on_member)
    message = member.call("POST", CHAT, 201, json={"message": "x"}, room_id=room["id"]).json()
    moderator.call(
        "DELETE", CHAT + "/{message_id}", 204, room_id=room["id"], message_id=message["id"]
    )
    moderator.call("POST", KICK, 204, json={"reason": "go"}, **on_member)
    member.call("POST", ROOM + "/join", 200, room_id=room["id"])
    moderator.call("PUT", BAN, 200, json={"expires_in_minutes": 5}, **on_member)
    moderator.call("DELETE", BAN, 204, **on_member)
    owner.call(
        "POST", ROOM + "/transfer", 200, json={"user_id": uid(moderator)}, room_id=room["id"]
    )
    response = admin.http.get(f"/api/v1/admin/rooms/{room['id']}/events", params={"limit": 100})
    assert response.status_code == 200, response.text
    ours = {
        "role", "owner", "kicked", "banned", "unbanned", "muted", "unmuted", "chat_deleted"
    }  # fmt: skip
    events = [e for e in response.json()["items"] if e["type"] in ours]
    events.sort(key=lambda e: e["id"])
    seen = [(e["type"], e["user_id"], e["payload"]) for e in events]
    by_owner, by_moderator = {"by": uid(owner)}, {"by": uid(moderator)}
    expires_at = seen[5][2]["expires_at"]
    assert expires_at is not None
    assert seen == [
        ("role", uid(moderator), by_owner | {"role": "moderator"}),
        ("muted", uid(member), by_moderator | {"reason": "shh", "expires_at": None}),
        ("unmuted", uid(member), by_moderator),
        ("chat_deleted", uid(member), by_moderator | {
            "message_id": message["id"], "author": uid(member)
        }),
        ("kicked", uid(member), by_moderator | {"sessions": 0, "reason": "go"}),
        ("banned", uid(member), by_moderator | {
            "reason": None, "expires_at": expires_at, "removed": True, "sessions": 0
        }),
        ("unbanned", uid(member), by_moderator),
        ("owner", uid(moderator), by_owner | {"from": uid(owner), "to": uid(moderator)}),
    ]  # fmt: skip
