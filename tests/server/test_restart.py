"""A daemon process restarted on the same database keeps everything it acknowledged."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest

from tests.daemon_process import new_user, run_daemon
from tests.server.api_client import Api
from tests.server.conftest import BACKENDS, backend_database_url

ROOM = "/rooms/{room_id}"


@pytest.mark.parametrize("backend", BACKENDS)
def test_everything_survives_a_restart(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    url = backend_database_url(backend, request, tmp_path)
    owner, member, invitee = new_user("Owner"), new_user("Member"), new_user("Invitee")
    before: dict[str, Any] = {}
    with run_daemon(url, tmp_path / "state") as daemon:
        as_owner, as_member = Api(daemon, owner), Api(daemon, member)
        room = as_owner.create_room(is_public=False, password="pw", max_participants=7)
        invitation = as_owner.call(
            "POST", ROOM + "/invitations", 201, json={"max_uses": 3}, room_id=room["id"]
        ).json()
        as_member.call(
            "POST",
            ROOM + "/join",
            200,
            json={"invitation_code": invitation["code"]},
            room_id=room["id"],
        )
        for i in range(5):
            as_member.call(
                "POST", ROOM + "/chat", 201, json={"message": f"line {i}"}, room_id=room["id"]
            )
        ended = as_owner.create_room(is_public=True)
        as_owner.call("DELETE", ROOM, 204, room_id=ended["id"])
        before["room"] = as_owner.call("GET", ROOM, 200, room_id=room["id"]).json()
        before["ended"] = as_owner.call("GET", ROOM, 200, room_id=ended["id"]).json()
        before["people"] = as_owner.call(
            "GET", ROOM + "/participants", 200, room_id=room["id"]
        ).json()
        before["chat"] = as_owner.call("GET", ROOM + "/chat", 200, room_id=room["id"]).json()
        before["invitation"] = (
            Api(daemon, invitee)
            .call("GET", "/invitations/{code}", 200, code=invitation["code"])
            .json()
        )
        assert daemon.stop(signal.SIGTERM) == 0

    with run_daemon(url, tmp_path / "state") as daemon:
        as_owner, as_invitee = Api(daemon, owner), Api(daemon, invitee)
        assert as_owner.call("GET", ROOM, 200, room_id=room["id"]).json() == before["room"]
        assert as_owner.call("GET", ROOM, 200, room_id=ended["id"]).json() == before["ended"]
        assert (
            as_owner.call("GET", ROOM + "/participants", 200, room_id=room["id"]).json()
            == before["people"]
        )
        assert (
            as_owner.call("GET", ROOM + "/chat", 200, room_id=room["id"]).json() == before["chat"]
        )
        assert (
            as_invitee.call("GET", "/invitations/{code}", 200, code=invitation["code"]).json()
            == before["invitation"]
        )
        # The stored password hash and invitation still work after the restart.
        as_invitee.call(
            "POST",
            ROOM + "/join",
            200,
            json={"invitation_code": invitation["code"]},
            room_id=room["id"],
        )
        Api(daemon, new_user("x")).problem(
            "POST",
            ROOM + "/join",
            403,
            "wrong-password",
            json={"password": "no"},
            room_id=room["id"],
        )
