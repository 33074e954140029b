"""``syncplayctl`` moderation against a real daemon: roles, ownership, kicks, bans, mutes.

Every command runs on both transports (the ``via`` fixture, ``conftest.py``). What
the admin does must reach the room as any moderator's act would: the REST join is
refused for a banned user, chat for a muted one, and live sockets hear of it at
once (closed with ``banned``, told ``muted``). Refusals of the rules come back as
one line and status 1, not as a refused token.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
import trio
from click.testing import CliRunner

from syncplayd.cli.ctl import main
from syncplayd.identity import Principal, decode_token
from tests.cli.ctl_support import Daemon, ctl, failing, new_room
from tests.daemon_process import SECRET, new_user
from tests.e2e.raw import raw_client, read_until_closed

API = "/api/v1/syncplay"
SOCKET_ADMIN_ID = str(UUID(int=0))
NOT_ON_THE_OWNER = "syncplayctl: nobody can do that to the room's owner (403 forbidden)"


def _admin_id(daemon: Daemon, via: list[str]) -> str:
    """Who the admin API acts as on this transport: the socket's nil UUID, or the token's."""
    if via[1].startswith("unix:"):
        return SOCKET_ADMIN_ID
    token = daemon.admin_token_file.read_text().strip()
    return str(decode_token(token, SECRET).user_id)


def _join(daemon: Daemon, room_id: str, person: Principal) -> httpx.Response:
    with daemon.process.client(person) as http:
        return http.post(f"{API}/rooms/{room_id}/join")


def _room_with_guest(
    runner: CliRunner, via: list[str], daemon: Daemon
) -> tuple[str, Principal, Principal]:
    """A public room of a new owner, joined by a new guest: (room id, owner, guest)."""
    owner, guest = new_user("Owner"), new_user("Guest")
    room = new_room(runner, via, owner=str(owner.user_id), owner_name="Owner", public="")
    answer = _join(daemon, room["id"], guest)
    assert answer.status_code == 200, answer.text
    return room["id"], owner, guest


def _roles(runner: CliRunner, via: list[str], room_id: str) -> dict[str, str]:
    people = ctl(runner, via, "participants", "list", room_id)["items"]
    return {p["user_id"]: p["role"] for p in people}


def _events(runner: CliRunner, via: list[str], room_id: str, kind: str) -> list[dict[str, Any]]:
    return [e for e in ctl(runner, via, "events", room_id)["items"] if e["type"] == kind]


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# -- roles and ownership ---------------------------------------------------------------------------
def test_promote_and_demote(runner: CliRunner, via: list[str], daemon: Daemon) -> None:
    room_id, owner, guest = _room_with_guest(runner, via, daemon)
    guest_id = str(guest.user_id)

    promoted = ctl(runner, via, "participants", "promote", room_id, guest_id)
    assert (promoted["user_id"], promoted["user_name"], promoted["role"]) == (
        guest_id,
        "Guest",
        "moderator",
    )
    assert _roles(runner, via, room_id)[guest_id] == "moderator"
    # The role someone already has: no change, and no second event.
    assert ctl(runner, via, "participants", "promote", room_id, guest_id)["role"] == "moderator"
    roles = _events(runner, via, room_id, "role")
    assert [(e["user_id"], e["payload"]) for e in roles] == [
        (guest_id, {"role": "moderator", "by": _admin_id(daemon, via)})
    ]

    demoted = ctl(runner, via, "participants", "demote", room_id, guest_id[:8])  # by prefix
    assert demoted["role"] == "member"
    assert _roles(runner, via, room_id)[guest_id] == "member"

    line = failing(runner, [*via, "participants", "demote", room_id, str(owner.user_id)])
    assert line == NOT_ON_THE_OWNER
    assert _roles(runner, via, room_id)[str(owner.user_id)] == "owner"


def test_roles_in_human_form(runner: CliRunner, via: list[str], daemon: Daemon) -> None:
    room_id, _, guest = _room_with_guest(runner, via, daemon)
    result = runner.invoke(main, [*via, "participants", "promote", room_id, str(guest.user_id)])
    assert result.exit_code == 0, result.output
    assert result.stdout == f"Guest ({guest.user_id}) is a moderator of room {room_id}\n"


def test_transfer(runner: CliRunner, via: list[str], daemon: Daemon) -> None:
    room_id, owner, guest = _room_with_guest(runner, via, daemon)
    room = ctl(runner, via, "rooms", "transfer", room_id, str(guest.user_id))
    assert (room["id"], room["owner_id"], room["owner_name"]) == (
        room_id,
        str(guest.user_id),
        "Guest",
    )
    # The old owner stays, as a moderator.
    assert _roles(runner, via, room_id) == {
        str(owner.user_id): "moderator",
        str(guest.user_id): "owner",
    }
    (event,) = _events(runner, via, room_id, "owner")
    assert event["payload"] == {
        "from": str(owner.user_id),
        "to": str(guest.user_id),
        "by": _admin_id(daemon, via),
    }

    stranger = str(uuid4())
    line = failing(runner, [*via, "rooms", "transfer", room_id, stranger])
    assert line.startswith("syncplayctl: ") and line.endswith("(404 not-a-member)")

    human = runner.invoke(main, [*via, "rooms", "transfer", room_id, str(owner.user_id)])
    assert human.exit_code == 0, human.output
    assert human.stdout == f"room {room_id} (CLI room) now belongs to Owner ({owner.user_id})\n"


def test_moderators_manage_moderators_setting(runner: CliRunner, via: list[str]) -> None:
    room = new_room(runner, via)
    assert room["moderators_manage_moderators"] is False
    args = ["rooms", "update", room["id"], "--moderators-manage-moderators"]
    assert ctl(runner, via, *args)["moderators_manage_moderators"] is True
    shown = runner.invoke(main, [*via, "rooms", "show", room["id"]])
    assert shown.exit_code == 0, shown.output
    assert "moderators:  may act on other moderators" in shown.stdout
    args = ["rooms", "update", room["id"], "--no-moderators-manage-moderators"]
    assert ctl(runner, via, *args)["moderators_manage_moderators"] is False


# -- bans ------------------------------------------------------------------------------------------
def test_ban_list_and_unban(runner: CliRunner, via: list[str], daemon: Daemon) -> None:
    room_id, owner, guest = _room_with_guest(runner, via, daemon)
    guest_id = str(guest.user_id)
    before = datetime.now(UTC)

    args = ["participants", "ban", room_id, guest_id, "--reason", "spoilers", "--for", "2h"]
    ban = ctl(runner, via, *args)
    assert (ban["room_id"], ban["user_id"], ban["user_name"], ban["reason"]) == (
        room_id,
        guest_id,
        "Guest",
        "spoilers",
    )
    assert ban["created_by"] == _admin_id(daemon, via)
    expires = _instant(ban["expires_at"])
    assert before + timedelta(hours=2) <= expires <= datetime.now(UTC) + timedelta(hours=2)

    # Removed, and refused at the door with the terms.
    assert guest_id not in _roles(runner, via, room_id)
    refused = _join(daemon, room_id, guest)
    assert (refused.status_code, refused.json()["code"]) == (403, "banned")
    assert "spoilers" in refused.json()["detail"]

    # A pre-emptive ban of someone who never came: no name, no expiry.
    stranger = str(uuid4())
    preemptive = ctl(runner, via, "participants", "ban", room_id, stranger)
    assert (preemptive["user_name"], preemptive["reason"], preemptive["expires_at"]) == (
        None,
        None,
        None,
    )

    bans = ctl(runner, via, "rooms", "bans", room_id)
    assert [b["user_id"] for b in bans["items"]] == [stranger, guest_id]  # newest first
    assert bans["total"] == 2
    if via[1].startswith("unix:"):
        assert bans["items"][0]["created_by_name"] == "syncplayctl (admin socket)"
    human = runner.invoke(main, [*via, "rooms", "bans", room_id])
    assert human.exit_code == 0, human.output
    assert "spoilers" in human.stdout and "Guest" in human.stdout

    # A banned user is no participant: the prefix is looked up among the bans.
    unbanned = ctl(runner, via, "participants", "unban", room_id, guest_id[:8])
    assert unbanned["unbanned"] is True
    assert _join(daemon, room_id, guest).status_code == 200
    line = failing(runner, [*via, "participants", "unban", room_id, guest_id])
    assert line == "syncplayctl: ban not found (404 not-found)"
    assert [b["user_id"] for b in ctl(runner, via, "rooms", "bans", room_id)["items"]] == [stranger]
    kinds = [e["type"] for e in ctl(runner, via, "events", room_id)["items"]]
    assert {"banned", "unbanned"} <= set(kinds)
    assert _roles(runner, via, room_id)[str(owner.user_id)] == "owner"


def test_the_owner_cannot_be_banned_or_muted(
    runner: CliRunner, via: list[str], daemon: Daemon
) -> None:
    room_id, owner, _ = _room_with_guest(runner, via, daemon)
    for verb in ("ban", "mute"):
        line = failing(runner, [*via, "participants", verb, room_id, str(owner.user_id)])
        # The service's refusal, not "the admin token was refused".
        assert line == NOT_ON_THE_OWNER
    assert ctl(runner, via, "rooms", "bans", room_id)["items"] == []
    assert _join(daemon, room_id, owner).status_code == 200


def test_ban_in_human_form(runner: CliRunner, via: list[str], daemon: Daemon) -> None:
    room_id, _, guest = _room_with_guest(runner, via, daemon)
    args = ["participants", "ban", room_id, str(guest.user_id), "--reason", "spoilers"]
    result = runner.invoke(main, [*via, *args])
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        f"banned Guest ({guest.user_id}) from room {room_id} for good: spoilers\n"
    )
    result = runner.invoke(main, [*via, "participants", "unban", room_id, str(guest.user_id)])
    assert result.exit_code == 0, result.output
    assert result.stdout == f"unbanned {guest.user_id} from room {room_id}\n"


@pytest.mark.parametrize("length", ["30s", "3651d", "forever", "0m"])
def test_sanction_lengths_out_of_bounds_are_usage_errors(
    runner: CliRunner, via: list[str], length: str
) -> None:
    room = new_room(runner, via)
    for verb in ("ban", "mute"):
        args = ["participants", verb, room["id"], str(uuid4()), "--for", length]
        result = runner.invoke(main, [*via, *args])
        assert result.exit_code == 2, result.output
        assert "--for" in result.stderr


def test_a_reason_too_long_is_refused_by_name(runner: CliRunner, via: list[str]) -> None:
    room = new_room(runner, via)
    args = ["participants", "ban", room["id"], str(uuid4()), "--reason", "x" * 501]
    line = failing(runner, [*via, *args])
    assert line.startswith("syncplayctl: reason: ") and line.endswith("(422 validation-failed)")


# -- live: kick, ban and mute reach the sockets ----------------------------------------------------
async def test_kick_ban_and_mute_reach_live_sockets(
    runner: CliRunner, via: list[str], daemon: Daemon
) -> None:
    owner, guest, other = new_user("Owner"), new_user("Guest"), new_user("Other")

    async def call(*args: str) -> Any:
        return await trio.to_thread.run_sync(lambda: ctl(runner, via, *args))

    async def chat(person: Principal, text: str) -> httpx.Response:
        def post() -> httpx.Response:
            with daemon.process.client(person) as http:
                return http.post(f"{API}/rooms/{room_id}/chat", json={"message": text})

        return await trio.to_thread.run_sync(post)

    room = await call(
        "rooms", "create", "--owner", str(owner.user_id), "--owner-name", "Owner",
        "--name", "live", "--content-type", "movie", "--content-id", "1", "--public",
    )  # fmt: skip
    room_id = room["id"]
    async with (
        raw_client(daemon.process, owner, room_id) as watcher,
        raw_client(daemon.process, guest, room_id) as muted,
        raw_client(daemon.process, other, room_id) as kicked,
    ):
        # Mute: the member stays, everyone (the member too) is told, chat is refused.
        mute = await call(
            "participants", "mute", room_id, str(guest.user_id), "--reason", "calm down"
        )
        assert (mute["user_id"], mute["reason"]) == (str(guest.user_id), "calm down")
        for socket in (muted, watcher):
            told = await socket.expect("presence", event="muted")
            assert told["member"]["user_id"] == str(guest.user_id)
            assert told["member"]["muted"] is True
        refused = await chat(guest, "hello?")
        assert (refused.status_code, refused.json()["code"]) == (403, "muted")
        people = {p["user_id"]: p for p in (await call("participants", "list", room_id))["items"]}
        assert people[str(guest.user_id)]["muted"] is True

        await call("participants", "unmute", room_id, str(guest.user_id))
        await muted.expect("presence", event="unmuted")
        assert (await chat(guest, "sorry")).status_code == 201
        line = await trio.to_thread.run_sync(
            lambda: failing(runner, [*via, "participants", "unmute", room_id, str(guest.user_id)])
        )
        assert line == "syncplayctl: mute not found (404 not-found)"

        # Kick with a reason: the person reads it in the closing message.
        await call("participants", "kick", room_id, str(other.user_id), "--reason", "bye")
        messages, code = await read_until_closed(kicked)
        assert code == 4002
        assert messages[-1] == {
            "type": "closing",
            "reason": "kicked",
            "message": "an administrator removed you from the room: bye",
        }
        (event,) = [e for e in (await call("events", room_id))["items"] if e["type"] == "kicked"]
        assert event["payload"]["reason"] == "bye"

        # Ban: closed for good with the terms, the others see them leave.
        await call("participants", "ban", room_id, str(guest.user_id), "--reason", "spoilers")
        messages, code = await read_until_closed(muted)
        assert code == 4007
        assert messages[-1] == {
            "type": "closing",
            "reason": "banned",
            "message": "an administrator banned you from the room for good: spoilers",
        }
        with trio.fail_after(10):
            while True:  # the kicked user's "left" may come first
                left = await watcher.expect("presence", event="left")
                if left["member"]["user_id"] == str(guest.user_id):
                    break
    refused = await trio.to_thread.run_sync(lambda: _join(daemon, room_id, guest))
    assert (refused.status_code, refused.json()["code"]) == (403, "banned")
