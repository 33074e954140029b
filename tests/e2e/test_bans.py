"""Bans and mutes through a daemon process, on SQLite and on PostgreSQL.

A ban must shut every way into the room: the REST join, the WebSocket join, a
join with an invitation, and the resume of a session the user had before the
ban. All four go through ``RoomService.join``, whose ban check comes first; each
test here would let the user in without it (public rooms, or a valid
invitation, so that nothing else refuses them). A mute keeps a member in the
room, watching, but out of the chat.

That a ban stops refusing once it has expired is tested at the service level
(tests/service/test_moderation.py), where the clock is the test's: the shortest
ban over the API is a minute.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import trio

from syncplayd.identity import Principal
from tests.daemon_process import DaemonProcess, new_user
from tests.e2e.raw import Raw, new_room, raw_client, read_until_closed
from tests.security.support import Http, in_thread

ROOM = "/rooms/{room_id}"
JOIN = ROOM + "/join"
CHAT = ROOM + "/chat"
BAN = ROOM + "/bans/{user_id}"
MUTE = ROOM + "/mutes/{user_id}"
PARTICIPANTS = ROOM + "/participants"


async def rest(
    daemon: DaemonProcess,
    principal: Principal,
    method: str,
    template: str,
    status: int,
    problem: str | None = None,
    /,
    **kwargs: Any,
) -> Any:
    """One REST call off the event loop, checked against the contract, status and code."""

    def call() -> Any:
        response = Http(daemon, principal).expect(method, template, status, problem, **kwargs)
        return response.json() if response.content else None

    return await in_thread(call)


async def ban(
    daemon: DaemonProcess, owner: Principal, room_id: str, user_id: UUID, **terms: Any
) -> dict[str, Any]:
    restriction: dict[str, Any] = await rest(
        daemon, owner, "PUT", BAN, 200, json=terms, room_id=room_id, user_id=user_id
    )
    return restriction


async def refused_over_the_websocket(client: Raw, room_id: str, **join: Any) -> dict[str, Any]:
    """Send a join and return the error frame it gets (failing on ``joined``)."""
    await client.send({"type": "join", "room_id": room_id} | join)
    with trio.fail_after(10):
        while True:
            message = await client.recv()
            assert message["type"] != "joined", "a banned user joined the room"
            if message["type"] == "error":
                return message


# -- every way in is shut --------------------------------------------------------------------
async def test_a_banned_member_is_refused_at_the_rest_join(live_daemon: DaemonProcess) -> None:
    owner, bob = new_user("Ada"), new_user("bob")
    room_id = await new_room(live_daemon, owner)  # public: anyone may join
    await rest(live_daemon, bob, "POST", JOIN, 200, room_id=room_id)
    await ban(live_daemon, owner, room_id, bob.user_id, reason="spoilers")
    people = await rest(live_daemon, owner, "GET", PARTICIPANTS, 200, room_id=room_id)
    assert [p["user_name"] for p in people["items"]] == ["Ada"]
    refused = await rest(live_daemon, bob, "POST", JOIN, 403, "banned", room_id=room_id)
    assert refused["detail"] == "you are banned from this room: spoilers"
    # Not even a password or a code gets past it.
    await rest(
        live_daemon, bob, "POST", JOIN, 403, "banned", json={"password": "x"}, room_id=room_id
    )


async def test_a_banned_user_is_refused_at_the_websocket_join(
    live_daemon: DaemonProcess,
) -> None:
    owner, bob = new_user("Ada"), new_user("bob")
    room_id = await new_room(live_daemon, owner)
    ban_terms = await ban(
        live_daemon, owner, room_id, bob.user_id, reason="trolling", expires_in_minutes=60
    )
    async with raw_client(live_daemon, bob) as client:
        error = await refused_over_the_websocket(client, room_id)
        assert error["code"] == "banned"
        until = ban_terms["expires_at"].split(".")[0].removesuffix("Z") + "Z"
        assert error["message"] == f"you are banned from this room until {until}: trolling"
        # The socket stays usable: only the room is closed to it.
        await client.send({"type": "ping", "id": 1, "t0": 0.0})
        assert (await client.expect("pong"))["id"] == 1


async def test_an_invitation_does_not_open_the_room_to_a_banned_user(
    live_daemon: DaemonProcess,
) -> None:
    owner, bob = new_user("Ada"), new_user("bob")
    room_id = await new_room(live_daemon, owner, is_public=False)
    invitation = await rest(
        live_daemon, owner, "POST", ROOM + "/invitations", 201, json={}, room_id=room_id
    )
    code = invitation["code"]
    # Banned before ever coming: a ban needs no membership.
    restriction = await ban(live_daemon, owner, room_id, bob.user_id)
    assert restriction["user_name"] is None
    with_code = {"invitation_code": code}
    await rest(live_daemon, bob, "POST", JOIN, 403, "banned", json=with_code, room_id=room_id)
    async with raw_client(live_daemon, bob) as client:
        error = await refused_over_the_websocket(client, room_id, invitation_code=code)
        assert error["code"] == "banned"
    # The invite page is told too, rather than offered a join that will be refused.
    await rest(live_daemon, bob, "GET", "/invitations/{code}", 403, "banned", code=code)
    # Refused before the invitation was looked at: none of its uses went.
    looked_up = await rest(live_daemon, owner, "GET", "/invitations/{code}", 200, code=code)
    assert looked_up["use_count"] == 0


async def test_a_banned_user_cannot_resume_their_session(live_daemon: DaemonProcess) -> None:
    owner, bob = new_user("Ada"), new_user("bob")
    room_id = await new_room(live_daemon, owner)
    async with raw_client(live_daemon, bob, room_id) as socket:
        session = socket.session_id
        assert session is not None
        await ban(live_daemon, owner, room_id, bob.user_id, reason="spoilers")
        seen, code = await read_until_closed(socket)
    closing = seen[-1]
    assert (closing["type"], closing["reason"], code) == ("closing", "banned", 4007)
    assert closing["message"] == "Ada banned you from the room for good: spoilers"
    async with raw_client(live_daemon, bob) as again:
        error = await refused_over_the_websocket(again, room_id, resume=session)
        assert error["code"] == "banned"


async def test_unbanning_lets_them_back(live_daemon: DaemonProcess) -> None:
    owner, bob = new_user("Ada"), new_user("bob")
    room_id = await new_room(live_daemon, owner)
    await ban(live_daemon, owner, room_id, bob.user_id)
    await rest(live_daemon, bob, "POST", JOIN, 403, "banned", room_id=room_id)
    await rest(live_daemon, owner, "DELETE", BAN, 204, room_id=room_id, user_id=bob.user_id)
    await rest(
        live_daemon, owner, "DELETE", BAN, 404, "not-found", room_id=room_id, user_id=bob.user_id
    )
    async with raw_client(live_daemon, bob) as client:
        joined = await client.join(room_id)
        assert joined["you"]["role"] == "member"
    await rest(live_daemon, bob, "POST", JOIN, 200, room_id=room_id)


# -- mutes -----------------------------------------------------------------------------------
async def test_a_muted_member_watches_but_cannot_chat(live_daemon: DaemonProcess) -> None:
    owner, bob = new_user("Ada"), new_user("bob")
    room_id = await new_room(live_daemon, owner)
    async with (
        raw_client(live_daemon, owner, room_id) as ada_socket,
        raw_client(live_daemon, bob, room_id) as bob_socket,
    ):
        mute = await rest(
            live_daemon, owner, "PUT", MUTE, 200, json={"reason": "caps"},
            room_id=room_id, user_id=bob.user_id,
        )  # fmt: skip
        assert mute["reason"] == "caps" and mute["expires_at"] is None
        await bob_socket.send({"type": "chat", "message": "HELLO", "client_id": "c1"})
        error = await bob_socket.expect("error")
        assert (error["code"], error["message"]) == ("muted", "you are muted in this room: caps")
        refused = await rest(
            live_daemon, bob, "POST", CHAT, 403, "muted", json={"message": "hi"}, room_id=room_id
        )
        assert refused["detail"] == "you are muted in this room: caps"
        # Still in the room: the owner's play reaches the muted member.
        await ada_socket.send({"type": "play"})
        playback = await bob_socket.expect("playback")
        assert playback["playback"]["state"] == "playing"
        people = await rest(live_daemon, owner, "GET", PARTICIPANTS, 200, room_id=room_id)
        assert {p["user_name"]: p["muted"] for p in people["items"]} == {"Ada": False, "bob": True}
    # Leaving and joining again does not shed the mute.
    await rest(live_daemon, bob, "POST", ROOM + "/leave", 204, room_id=room_id)
    async with raw_client(live_daemon, bob) as client:
        joined = await client.join(room_id)
        assert joined["you"]["muted"] is True
        await rest(live_daemon, owner, "DELETE", MUTE, 204, room_id=room_id, user_id=bob.user_id)
        await client.send({"type": "chat", "message": "sorry", "client_id": "c2"})
        assert (await client.expect("chat_ack"))["client_id"] == "c2"
