"""``syncplayctl`` against a real daemon, over the unix socket and over HTTP.

One daemon process serves the whole module (the fixtures are in ``conftest.py``).
Every online command runs on both transports (the ``via`` fixture) with
``--json``, and its output is parsed. Failures are checked for their exit status
and their one-line reason: daemon down, token refused, unknown room. Moderation
(roles, bans, mutes) is in ``test_ctl_moderation.py``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sqlite3
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
import trio
from click.testing import CliRunner

from syncplayd.cli.ctl import main
from syncplayd.identity import Principal
from syncplayd.server.process.admin_socket import (
    SOCKET_SCOPE_KEY,
    AdminSocketError,
    bind_admin_socket,
    serve_admin_socket,
)
from tests.cli.ctl_support import REFUSED, UNREACHABLE, Daemon, ctl, failing, new_room
from tests.daemon_process import new_user
from tests.e2e.raw import raw_client, read_until_closed

ROOT = Path(__file__).resolve().parents[2]


# -- status, config ------------------------------------------------------------------------------
def test_status(runner: CliRunner, via: list[str], daemon: Daemon) -> None:
    status = ctl(runner, via, "status")
    assert status["via"] == ("unix-socket" if "unix:" in via[1] else "http")
    assert status["database"]["ok"] is True
    assert status["uptime_seconds"] > 0
    assert {"version", "live_rooms", "connections", "connected_users"} <= status.keys()


def test_status_in_human_form(runner: CliRunner, via: list[str]) -> None:
    result = runner.invoke(main, [*via, "status"])
    assert result.exit_code == 0, result.output
    assert "database:" in result.stdout and "ok (" in result.stdout


def test_the_socket_is_group_accessible_only(daemon: Daemon) -> None:
    assert stat.S_IMODE(daemon.socket.stat().st_mode) == 0o660


def test_default_url_is_the_configured_socket(runner: CliRunner, daemon: Daemon) -> None:
    result = runner.invoke(
        main, ["--json", "status"], env={"SYNCPLAY_ADMIN_SOCKET": str(daemon.socket)}
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["via"] == "unix-socket"
    result = runner.invoke(
        main, ["--json", "status"], env={"SYNCPLAYCTL_URL": f"unix:{daemon.socket}"}
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["via"] == "unix-socket"


# -- rooms -----------------------------------------------------------------------------------------
def test_rooms_create_list_show_update_end(runner: CliRunner, via: list[str]) -> None:
    owner = str(uuid4())
    args = ["rooms", "create", "--owner", owner, "--owner-name", "Ada", "--name", "Friday  film"]
    args += ["--content-type", "movie", "--content-id", "tt1", "--public"]
    args += ["--password-file", "-", "--max-participants", "5"]
    created = ctl(runner, via, *args, stdin="popcorn\n")
    assert created["name"] == "Friday film"
    assert (created["owner_id"], created["owner_name"]) == (owner, "Ada")
    assert (created["is_public"], created["has_password"], created["max_participants"]) == (
        True,
        True,
        5,
    )
    room_id = created["id"]

    listed = ctl(runner, via, "rooms", "list", "--user", owner)
    assert [r["id"] for r in listed["items"]] == [room_id]
    assert listed["items"][0]["connections"] == 0
    assert listed["items"][0]["owner_name"] == "Ada"
    assert listed["total"] == 1

    shown = ctl(runner, via, "rooms", "show", room_id)
    assert shown["id"] == room_id and shown["live"] is None
    assert shown["owner_name"] == "Ada"

    updated = ctl(
        runner, via, "rooms", "update", room_id, "--private", "--no-password",
        "--max-participants", "10", "--playback-control", "moderators",
    )  # fmt: skip
    assert (updated["is_public"], updated["has_password"]) == (False, False)
    assert (updated["max_participants"], updated["playback_control"]) == (10, "moderators")

    # Private rooms are listed too: the admin sees everything.
    everyone = ctl(runner, via, "rooms", "list", "--limit", "1000")
    assert room_id in {r["id"] for r in everyone["items"]}

    ended = ctl(runner, via, "rooms", "end", room_id)
    assert ended == {"room_id": room_id, "ended": True, "already_ended": False, "purged": False}
    again = ctl(runner, via, "rooms", "end", room_id)
    assert again == {"room_id": room_id, "ended": True, "already_ended": True, "purged": False}
    assert ctl(runner, via, "rooms", "show", room_id)["ended_at"] is not None
    ended_rooms = ctl(runner, via, "rooms", "list", "--status", "ended", "--user", owner)
    assert [r["id"] for r in ended_rooms["items"]] == [room_id]
    assert ctl(runner, via, "rooms", "list", "--user", owner)["items"] == []

    assert ctl(runner, via, "rooms", "end", room_id, "--purge")["purged"] is True
    line = failing(runner, [*via, "rooms", "show", room_id])
    assert line == "syncplayctl: room not found (404 not-found)"


def test_rooms_in_human_form(runner: CliRunner, via: list[str]) -> None:
    room = new_room(runner, via)
    result = runner.invoke(main, [*via, "rooms", "list", "--limit", "1000"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("ID ")
    assert room["id"] in result.stdout
    result = runner.invoke(main, [*via, "rooms", "show", room["id"]])
    assert result.exit_code == 0, result.output
    assert "name:" in result.stdout and "CLI room" in result.stdout


def test_rooms_create_needs_the_owners_name(runner: CliRunner, via: list[str]) -> None:
    args = ["rooms", "create", "--owner", str(uuid4()), "--name", "x"]
    result = runner.invoke(main, [*via, *args, "--content-type", "m", "--content-id", "1"])
    assert result.exit_code == 2
    assert "Missing option '--owner-name'" in result.stderr


def test_owners_are_shown_by_name(runner: CliRunner, via: list[str]) -> None:
    owner = str(uuid4())
    room = new_room(runner, via, owner=owner, owner_name="Grace")
    listed = runner.invoke(main, [*via, "rooms", "list", "--user", owner])
    assert listed.exit_code == 0, listed.output
    assert f"Grace ({owner[:8]})" in listed.stdout.splitlines()[1]
    shown = runner.invoke(main, [*via, "rooms", "show", room["id"]])
    assert f"Grace ({owner})" in shown.stdout
    # Once the owner is no longer a member, the id is all there is to show.
    ctl(runner, via, "participants", "kick", room["id"], owner)
    assert ctl(runner, via, "rooms", "show", room["id"])["owner_name"] is None
    shown = runner.invoke(main, [*via, "rooms", "show", room["id"]])
    assert _field(shown.stdout, "owner") == owner


def _field(text: str, name: str) -> str:
    (line,) = [line for line in text.splitlines() if line.startswith(f"{name}:")]
    return line.split(":", 1)[1].strip()


def test_rooms_show_aligns_every_field(runner: CliRunner, via: list[str], daemon: Daemon) -> None:
    room = new_room(runner, via)
    result = runner.invoke(main, [*via, "rooms", "show", room["id"]])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[-1].startswith("live:")
    starts = {len(line) - len(line.split(":", 1)[1].lstrip()) for line in lines}
    assert len(starts) == 1, result.stdout  # every value starts in the same column


def test_ending_an_ended_room_says_so(runner: CliRunner, via: list[str]) -> None:
    room_id = new_room(runner, via)["id"]
    first = runner.invoke(main, [*via, "rooms", "end", room_id])
    assert (first.exit_code, first.stdout) == (0, f"ended room {room_id}\n")
    second = runner.invoke(main, [*via, "rooms", "end", room_id])
    assert (second.exit_code, second.stdout) == (
        0,
        f"room {room_id} had already ended: nothing changed\n",
    )
    purged = runner.invoke(main, [*via, "rooms", "end", room_id, "--purge"])
    assert purged.stdout == f"purged room {room_id} (it had already ended)\n"


# -- global options after the command, ids by prefix, watch links --------------------------------
def test_global_options_may_follow_the_command(runner: CliRunner, via: list[str]) -> None:
    room = new_room(runner, via)
    result = runner.invoke(main, ["events", room["id"], *via, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["total"] == 0
    result = runner.invoke(main, ["rooms", "--json", "show", *via, room["id"]])
    assert json.loads(result.stdout)["id"] == room["id"]


def test_an_option_after_the_command_wins(
    runner: CliRunner, via: list[str], tmp_path: Path
) -> None:
    missing = f"unix:{tmp_path / 'nobody.sock'}"
    result = runner.invoke(main, ["--url", missing, "--json", "status", *via])
    assert result.exit_code == 0, result.output
    # Over the environment too: the environment only fills what no option gives.
    result = runner.invoke(main, ["--json", "status", *via], env={"SYNCPLAYCTL_URL": missing})
    assert result.exit_code == 0, result.output
    line = failing(runner, [*via, "status", "--url", missing])
    assert line.startswith(f"syncplayctl: {UNREACHABLE} {missing}")


def test_room_ids_by_unique_prefix(runner: CliRunner, via: list[str]) -> None:
    room = new_room(runner, via)
    for prefix in (room["id"][:8], room["id"][:13].upper()):
        assert ctl(runner, via, "rooms", "show", prefix)["id"] == room["id"]
    assert ctl(runner, via, "events", room["id"][:10])["total"] == 0

    taken = {r["id"][:6] for r in ctl(runner, via, "rooms", "list", "--status", "all",
                                      "--limit", "1000")["items"]}  # fmt: skip
    unused = next(p for p in (f"{n:06x}" for n in range(1 << 24)) if p not in taken)
    line = failing(runner, [*via, "rooms", "show", unused])
    assert line == f"syncplayctl: no room id starts with {unused}"

    short = runner.invoke(main, [*via, "rooms", "show", room["id"][:3]])
    assert short.exit_code == 2
    assert "nor 4 or more of its first characters" in short.stderr


def test_user_ids_by_unique_prefix(runner: CliRunner, via: list[str], daemon: Daemon) -> None:
    room = new_room(runner, via, public="")
    # Two members whose ids share their first 8 characters.
    shared = uuid4().hex[:8]
    first, second = (str(UUID(shared + uuid4().hex[8:])) for _ in range(2))
    _join(daemon, room["id"], first)
    _join(daemon, room["id"], second)
    line = failing(runner, [*via, "participants", "kick", room["id"], shared])
    assert line.startswith(f"syncplayctl: {shared} is ambiguous: 2 participant ids start with it:")
    assert first in line and second in line and line.endswith("give more characters")
    kicked = ctl(runner, via, "participants", "kick", room["id"][:8], first[:13])
    assert kicked["user_id"] == first


def test_watch_links(runner: CliRunner, via: list[str], daemon: Daemon) -> None:
    owner = str(uuid4())
    args = ["rooms", "create", "--owner", owner, "--owner-name", "Ann", "--name", "Film"]
    args += ["--content-type", "movie", "--content-id", "tt1"]
    made = runner.invoke(main, [*via, *args])
    assert made.exit_code == 0, made.output
    room_id = made.stdout.split()[2]
    lines = made.stdout.splitlines()
    assert lines[0] == f"created room {room_id} (Film) for Ann ({owner})"
    if "unix:" in via[1]:
        # The test daemon listens on port 0: there is no address to build a link from.
        assert lines[1].startswith("no watch link: the daemon's port is picked at start")
        assert "--public-url" in lines[1]
    else:
        link = f"{daemon.base_url}/syncplay/?room={room_id}"
        assert lines[1:] == [
            f"watch link: {link}",
            "  (built from --url; pass --public-url or set SYNCPLAYCTL_PUBLIC_URL for the"
            " address people use)",
        ]
        with httpx.Client() as http:
            page = http.get(link)
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]

    public = ["--public-url", "https://watch.example.org/"]
    invited = runner.invoke(main, [*via, *public, "invitations", "create", room_id])
    assert invited.exit_code == 0, invited.output
    code = _field(invited.stdout, "code")
    assert invited.stdout.splitlines()[-1] == (
        f"watch link: https://watch.example.org/syncplay/?invite={code}"
    )
    made = runner.invoke(main, [*via, *args], env={"SYNCPLAYCTL_PUBLIC_URL": "https://w.example"})
    assert "watch link: https://w.example/syncplay/?room=" in made.stdout


def test_rooms_update_needs_a_change(runner: CliRunner, via: list[str]) -> None:
    room = new_room(runner, via)
    result = runner.invoke(main, [*via, "rooms", "update", room["id"]])
    assert result.exit_code == 2
    assert "give at least one setting" in result.output


def test_invalid_fields_are_reported_by_name(runner: CliRunner, via: list[str]) -> None:
    line = failing(
        runner,
        [*via, "rooms", "create", "--owner", str(uuid4()), "--owner-name", "x", "--name", "x",
         "--content-type", "not allowed!", "--content-id", "1"],
    )  # fmt: skip
    assert line.startswith("syncplayctl: content_type: ")
    assert line.endswith("(422 validation-failed)")


UNKNOWN = str(uuid4())


@pytest.mark.parametrize(
    "args",
    [
        ["rooms", "show", UNKNOWN],
        ["rooms", "update", UNKNOWN, "--name", "x"],
        ["rooms", "end", UNKNOWN],
        ["participants", "list", UNKNOWN],
        ["participants", "kick", UNKNOWN, str(uuid4())],
        ["chat", "history", UNKNOWN],
        ["invitations", "create", UNKNOWN],
        ["events", UNKNOWN],
    ],
    ids=lambda args: " ".join(args[:2]),
)
def test_unknown_room(runner: CliRunner, via: list[str], args: list[str]) -> None:
    line = failing(runner, [*via, *args])
    assert line == "syncplayctl: room not found (404 not-found)"


# -- participants, live state and kick -------------------------------------------------------------
async def test_participants_live_state_and_kick(
    runner: CliRunner, via: list[str], daemon: Daemon
) -> None:
    owner, guest = new_user("Owner"), new_user("Guest")

    def run(*args: str) -> Any:
        return ctl(runner, via, *args)

    async def call(*args: str) -> Any:
        return await trio.to_thread.run_sync(lambda: run(*args))

    room = await call(
        "rooms", "create", "--owner", str(owner.user_id), "--owner-name", "Owner",
        "--name", "live", "--content-type", "movie", "--content-id", "1", "--public",
    )  # fmt: skip
    room_id = room["id"]
    async with (
        raw_client(daemon.process, owner, room_id) as watcher,
        raw_client(daemon.process, guest, room_id) as kicked,
    ):
        people = {p["user_id"]: p for p in (await call("participants", "list", room_id))["items"]}
        assert people[str(guest.user_id)]["sessions"] == 1
        assert people[str(owner.user_id)]["role"] == "owner"
        connected = await call("participants", "list", room_id, "--connected")
        assert {p["user_id"] for p in connected["items"]} <= set(people)

        shown = await call("rooms", "show", room_id)
        live = shown["live"]
        assert live["connections"] == 2
        assert {s["user_id"] for s in live["sessions"]} == {str(owner.user_id), str(guest.user_id)}
        assert live["playback"]["state"] == "paused"
        assert {m["user_name"] for m in live["members"]} == {"Owner", "Guest"}
        status = await call("status")
        assert status["live_rooms"] >= 1 and status["connections"] >= 2

        result = await call("participants", "kick", room_id, str(guest.user_id))
        assert result == {
            "room_id": room_id,
            "user_id": str(guest.user_id),
            "removed": True,
            "sessions_closed": 1,
        }
        messages, code = await read_until_closed(kicked)
        assert code == 4002
        assert messages[-1]["type"] == "closing" and messages[-1]["reason"] == "kicked"
        left = await watcher.expect("presence", event="left")
        assert left["member"]["user_id"] == str(guest.user_id)

    people_after = (await call("participants", "list", room_id))["items"]
    assert [p["user_id"] for p in people_after] == [str(owner.user_id)]
    line = await trio.to_thread.run_sync(
        lambda: failing(runner, [*via, "participants", "kick", room_id, str(guest.user_id)])
    )
    assert line.endswith("(404 not-a-member)")
    types = [e["type"] for e in (await call("events", room_id))["items"]]
    assert "kicked" in types


# -- chat ------------------------------------------------------------------------------------------
def test_chat_history_and_delete(runner: CliRunner, via: list[str], daemon: Daemon) -> None:
    owner = new_user("Chatty")
    room = new_room(runner, via, owner=str(owner.user_id), owner_name="Chatty")
    with daemon.process.client(owner) as http:
        for text in ("first", "second"):
            answer = http.post(f"/api/v1/syncplay/rooms/{room['id']}/chat", json={"message": text})
            assert answer.status_code == 201, answer.text
    history = ctl(runner, via, "chat", "history", room["id"])
    assert [m["message"] for m in history["items"]] == ["second", "first"]
    assert history["total"] == 2
    assert [m["message"] for m in ctl(runner, via, "chat", "history", room["id"], "--limit", "1",
                                      "--offset", "1")["items"]] == ["first"]  # fmt: skip

    newest = history["items"][0]["id"]
    assert ctl(runner, via, "chat", "delete", newest) == {"id": newest, "deleted": True}
    assert [m["message"] for m in ctl(runner, via, "chat", "history", room["id"])["items"]] == [
        "first"
    ]
    line = failing(runner, [*via, "chat", "delete", newest])
    assert line == "syncplayctl: chat message not found (404 not-found)"

    human = runner.invoke(main, [*via, "chat", "history", room["id"]])
    assert human.exit_code == 0 and "first" in human.stdout


# -- invitations -----------------------------------------------------------------------------------
def test_invitations_create_show_revoke(runner: CliRunner, via: list[str]) -> None:
    room = new_room(runner, via)
    invitee = str(uuid4())
    created = ctl(
        runner, via, "invitations", "create", room["id"], "--user", invitee,
        "--expires-in-hours", "2", "--max-uses", "3",
    )  # fmt: skip
    assert (created["room_id"], created["invited_user_id"], created["max_uses"]) == (
        room["id"],
        invitee,
        3,
    )
    code = created["code"]
    # Codes are typed by people: case and dashes do not matter.
    shown = ctl(runner, via, "invitations", "show", f"{code[:4].lower()}-{code[4:]}")
    assert shown["code"] == code and shown["room"]["id"] == room["id"]
    assert (shown["expired"], shown["used_up"]) == (False, False)

    assert ctl(runner, via, "invitations", "revoke", code) == {"code": code, "revoked": True}
    line = failing(runner, [*via, "invitations", "show", code])
    assert line == "syncplayctl: invitation not found (404 not-found)"
    assert failing(runner, [*via, "invitations", "revoke", code]) == line


def test_invitations_list(runner: CliRunner, via: list[str], daemon: Daemon) -> None:
    owner = new_user("Olga")
    room = new_room(runner, via, owner=str(owner.user_id), owner_name="Olga")
    other = new_room(runner, via)
    first = ctl(runner, via, "invitations", "create", room["id"], "--max-uses", "2")
    with daemon.process.client(owner) as http:  # one made by the owner, by name
        answer = http.post(f"/api/v1/syncplay/rooms/{room['id']}/invitations", json={})
        assert answer.status_code == 201, answer.text
    by_owner = answer.json()["code"]
    elsewhere = ctl(runner, via, "invitations", "create", other["id"])["code"]
    expired = (datetime.now(UTC) - timedelta(minutes=1)).isoformat(timespec="microseconds")
    with sqlite3.connect(daemon.database) as db:
        db.execute("UPDATE invitations SET expires_at = ? WHERE code = ?", [expired, first["code"]])

    page = ctl(runner, via, "invitations", "list", room["id"][:8])
    assert [i["code"] for i in page["items"]] == [by_owner, first["code"]]  # newest first
    assert page["total"] == 2
    made_by = {i["code"]: (i["created_by_name"], i["expired"]) for i in page["items"]}
    assert made_by == {
        by_owner: ("Olga", False),
        first["code"]: ("syncplayctl (admin socket)" if "unix:" in via[1] else None, True),
    }
    every = ctl(runner, via, "invitations", "list", "--limit", "1000")
    assert {by_owner, first["code"], elsewhere} <= {i["code"] for i in every["items"]}

    human = runner.invoke(main, [*via, "invitations", "list", room["id"]])
    assert human.exit_code == 0, human.output
    header, newest, oldest = human.stdout.splitlines()
    assert header.split() == ["CODE", "STATE", "USES", "FOR", "EXPIRES", "CREATED", "BY"]
    assert newest.split()[:5] == [by_owner, "live", "0/any", "anyone", newest.split()[4]]
    assert f"Olga ({str(owner.user_id)[:8]})" in newest
    assert oldest.split()[:4] == [first["code"], "expired", "0/2", "anyone"]
    everyone = runner.invoke(main, [*via, "invitations", "list"])
    assert everyone.stdout.split()[:3] == ["CODE", "ROOM", "STATE"]
    assert failing(runner, [*via, "invitations", "list", UNKNOWN]) == (
        "syncplayctl: room not found (404 not-found)"
    )


def test_invitations_by_unique_prefix(runner: CliRunner, via: list[str]) -> None:
    room = new_room(runner, via)
    code = ctl(runner, via, "invitations", "create", room["id"])["code"]
    codes = {i["code"] for i in ctl(runner, via, "invitations", "list", "--limit", "1000")["items"]}
    prefix = next(
        code[:n] for n in range(4, len(code) + 1) if sum(c.startswith(code[:n]) for c in codes) == 1
    )
    assert ctl(runner, via, "invitations", "show", prefix.lower())["code"] == code
    assert ctl(runner, via, "invitations", "revoke", prefix) == {"code": code, "revoked": True}
    assert failing(runner, [*via, "invitations", "show", prefix]) == (
        "syncplayctl: invitation not found (404 not-found)"
    )


def test_what_the_socket_created_is_named(runner: CliRunner, daemon: Daemon) -> None:
    via = ["--url", f"unix:{daemon.socket}"]
    room = new_room(runner, via)
    made = runner.invoke(main, [*via, "invitations", "create", room["id"]])
    assert made.exit_code == 0, made.output
    assert _field(made.stdout, "created by") == "syncplayctl (admin socket)"
    shown = runner.invoke(main, [*via, "invitations", "show", _field(made.stdout, "code")])
    assert _field(shown.stdout, "created by") == "syncplayctl (admin socket)"


def test_invitations_purge_expired(
    runner: CliRunner, via: list[str], daemon: Daemon, tmp_path: Path
) -> None:
    room = new_room(runner, via)
    code = ctl(runner, via, "invitations", "create", room["id"], "--expires-in-hours", "1")["code"]
    # An invitation lasts at least a minute; one that expired a minute ago is written here.
    expired = (datetime.now(UTC) - timedelta(minutes=1)).isoformat(timespec="microseconds")
    with sqlite3.connect(daemon.database) as db:
        db.execute("UPDATE invitations SET expires_at = ? WHERE code = ?", [expired, code])
    assert ctl(runner, via, "invitations", "show", code)["expired"] is True
    kept = ctl(runner, via, "invitations", "purge-expired", "--older-than-hours", "1")
    assert kept["purged"] == 0
    purged = ctl(runner, via, "invitations", "purge-expired")
    assert purged["purged"] >= 1
    failing(runner, [*via, "invitations", "show", code])


# -- events ----------------------------------------------------------------------------------------
def test_events_paging(runner: CliRunner, via: list[str]) -> None:
    owner = str(uuid4())
    room = new_room(runner, via, owner=owner)
    assert ctl(runner, via, "events", room["id"]) == {
        "items": [],
        "total": 0,
        "limit": 50,
        "offset": 0,
    }
    ctl(runner, via, "participants", "kick", room["id"], owner)  # logs a "kicked" event
    page = ctl(runner, via, "events", room["id"], "--limit", "5")
    assert page["total"] == 1
    (event,) = page["items"]
    assert (event["type"], event["user_id"], event["payload"]["sessions"]) == ("kicked", owner, 0)
    human = runner.invoke(main, [*via, "events", room["id"]])
    assert human.exit_code == 0 and "kicked" in human.stdout


async def test_events_name_their_users(runner: CliRunner, via: list[str], daemon: Daemon) -> None:
    owner, guest = new_user("Owner"), new_user("Guest")

    async def call(*args: str) -> Any:
        return await trio.to_thread.run_sync(lambda: ctl(runner, via, *args))

    room = await call(
        "rooms", "create", "--owner", str(owner.user_id), "--owner-name", "Owner",
        "--name", "named", "--content-type", "movie", "--content-id", "1", "--public",
    )  # fmt: skip
    guest_id = str(guest.user_id)

    async def joined() -> dict[str, Any]:
        events = (await call("events", room["id"]))["items"]
        found: dict[str, Any] = next(e for e in events if e["type"] == "joined")
        return found

    async def human() -> str:
        result = await trio.to_thread.run_sync(
            lambda: runner.invoke(main, [*via, "events", room["id"]])
        )
        return result.stdout

    async with raw_client(daemon.process, guest, room["id"]):
        # The daemon writes events behind, in another process: poll, bounded, until the
        # join is stored.
        for _ in range(200):
            if any(e["type"] == "joined" for e in (await call("events", room["id"]))["items"]):
                break
            await trio.sleep(0.05)
        assert ((await joined())["user_id"], (await joined())["user_name"]) == (guest_id, "Guest")
        assert f"Guest ({guest_id[:8]})" in await human()
    await call("participants", "kick", room["id"], guest_id)
    # Once they are gone, only their id is known.
    assert (await joined())["user_name"] is None
    assert guest_id in await human()


def test_events_follow_until_ctrl_c(runner: CliRunner, via: list[str], daemon: Daemon) -> None:
    first, second = str(uuid4()), str(uuid4())
    room = new_room(runner, via, owner=first, public="")
    _join(daemon, room["id"], second)
    ctl(runner, via, "participants", "kick", room["id"], first)
    follower = subprocess.Popen(
        [sys.executable, "-m", "syncplayd.cli.ctl", *via, "--json", "events", room["id"],
         "--follow"],
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if not k.startswith("SYNCPLAY")},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert follower.stdout is not None
        assert json.loads(follower.stdout.readline())["user_id"] == first  # the backlog
        ctl(runner, via, "participants", "kick", room["id"], second)
        followed = json.loads(follower.stdout.readline())  # polled within a second or so
        assert (followed["type"], followed["user_id"]) == ("kicked", second)
    finally:
        follower.send_signal(signal.SIGINT)
        _, stderr = follower.communicate(timeout=10)
    assert follower.returncode == 0, stderr
    assert "Traceback" not in stderr


def _join(daemon: Daemon, room_id: str, user_id: str) -> None:
    with daemon.process.client(Principal(UUID(user_id), "joiner")) as http:
        answer = http.post(f"/api/v1/syncplay/rooms/{room_id}/join")
        assert answer.status_code == 200, answer.text


# -- failures: daemon down, token refused ----------------------------------------------------------
ONLINE = [
    ["status"],
    ["rooms", "list"],
    ["rooms", "show", UNKNOWN],
    ["rooms", "create", "--owner", UNKNOWN, "--owner-name", "x", "--name", "x",
     "--content-type", "m", "--content-id", "1"],
    ["rooms", "update", UNKNOWN, "--name", "x"],
    ["rooms", "end", UNKNOWN],
    ["participants", "list", UNKNOWN],
    ["participants", "kick", UNKNOWN, UNKNOWN],
    ["participants", "promote", UNKNOWN, UNKNOWN],
    ["participants", "demote", UNKNOWN, UNKNOWN],
    ["participants", "ban", UNKNOWN, UNKNOWN],
    ["participants", "unban", UNKNOWN, UNKNOWN],
    ["participants", "mute", UNKNOWN, UNKNOWN],
    ["participants", "unmute", UNKNOWN, UNKNOWN],
    ["rooms", "bans", UNKNOWN],
    ["rooms", "transfer", UNKNOWN, UNKNOWN],
    ["chat", "history", UNKNOWN],
    ["chat", "delete", UNKNOWN],
    ["invitations", "create", UNKNOWN],
    ["invitations", "show", "ABCDEFGH"],
    ["invitations", "revoke", "ABCDEFGH"],
    ["invitations", "purge-expired"],
    ["events", UNKNOWN],
    ["events", UNKNOWN, "--follow"],
]  # fmt: skip
_IDS = [" ".join(a[:2]) if a[0] != "events" else " ".join(a[::2]) for a in ONLINE]


@pytest.mark.parametrize("args", ONLINE, ids=_IDS)
def test_daemon_down_unix(runner: CliRunner, tmp_path: Path, args: list[str]) -> None:
    missing = tmp_path / "admin.sock"
    line = failing(runner, ["--url", f"unix:{missing}", "--json", *args])
    assert line.startswith(f"syncplayctl: {UNREACHABLE} unix:{missing}: ")


@pytest.mark.parametrize("args", ONLINE, ids=_IDS)
def test_daemon_down_http(runner: CliRunner, args: list[str]) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    line = failing(runner, ["--url", f"http://127.0.0.1:{port}", *args])
    assert line.startswith(f"syncplayctl: {UNREACHABLE} http://127.0.0.1:{port}: ")
    assert "Connection refused" in line


def test_daemon_down_default_socket(runner: CliRunner, tmp_path: Path) -> None:
    line = failing(runner, ["status"])  # the socket in the (empty) state folder
    socket_path = tmp_path / "state" / "admin.sock"
    assert line.startswith(f"syncplayctl: {UNREACHABLE} unix:{socket_path}")
    # Where it looked, why, and how to point it elsewhere.
    assert f"{socket_path} is admin.sock in the state folder {tmp_path / 'state'}" in line
    assert "(from SYNCPLAY_STATE_DIR)" in line
    assert "If the daemon uses another state folder, set SYNCPLAY_STATE_DIR to it" in line
    assert "--url unix:/path/admin.sock" in line


def test_daemon_down_hint_from_a_checkout(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What a newcomer runs into: the daemon started with `make run` keeps its state in
    # ./.state, and syncplayctl without SYNCPLAY_STATE_DIR looks in ~/.local/state.
    monkeypatch.delenv("SYNCPLAY_STATE_DIR")
    checkout = tmp_path / "checkout"
    (checkout / ".state").mkdir(parents=True)
    (checkout / ".state" / "admin.sock").touch()
    monkeypatch.chdir(checkout)
    home = tmp_path / "home"
    line = failing(runner, ["status"], env={"HOME": str(home), "XDG_STATE_HOME": None})
    default = home / ".local" / "state" / "syncplayd"
    assert line.startswith(f"syncplayctl: {UNREACHABLE} unix:{default / 'admin.sock'}")
    assert "SYNCPLAY_STATE_DIR is not set and no --config is given" in line
    assert line.endswith(
        f"a daemon started from this checkout (make run) keeps it at"
        f" {checkout / '.state' / 'admin.sock'}: SYNCPLAY_STATE_DIR={checkout / '.state'}"
    )
    # With a --url, the person chose the address: no guessing about state folders.
    explicit = failing(runner, ["--url", f"unix:{default / 'admin.sock'}", "status"])
    assert "SYNCPLAY_STATE_DIR" not in explicit


@pytest.mark.parametrize("args", ONLINE, ids=_IDS)
def test_wrong_token(runner: CliRunner, daemon: Daemon, args: list[str]) -> None:
    for token_file in (daemon.forged_token_file, daemon.user_token_file):
        line = failing(runner, ["--url", daemon.base_url, "--token-file", str(token_file), *args])
        assert line.startswith(f"syncplayctl: {REFUSED} (")


def test_missing_token(runner: CliRunner, daemon: Daemon, tmp_path: Path) -> None:
    line = failing(runner, ["--url", daemon.base_url, "status"])
    assert line == (
        f"syncplayctl: {REFUSED} (401: no token given: pass --token-file with an admin token)"
    )
    empty = tmp_path / "empty.jwt"
    empty.write_text("\n")
    line = failing(runner, ["--url", daemon.base_url, "--token-file", str(empty), "status"])
    assert line == f"syncplayctl: the token file {empty} is empty"


def test_the_public_port_needs_a_token_for_the_admin_api(daemon: Daemon) -> None:
    # The trust of the socket is a mark on the scope, not a header a client could send.
    with httpx.Client(base_url=daemon.base_url) as http:
        answer = http.get("/api/v1/admin/status", headers={SOCKET_SCOPE_KEY: "true"})
    assert answer.status_code == 401
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["code"] == "unauthorized"


# -- the socket server itself ----------------------------------------------------------------------
async def _echo_scope(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    body = json.dumps(
        {"marked": scope.get(SOCKET_SCOPE_KEY), "server": scope.get("server")}
    ).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture
def short_dir() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="spctl-", dir="/tmp"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


async def test_serve_admin_socket_marks_scopes_and_cleans_up(short_dir: Path) -> None:
    path = short_dir / "run" / "admin.sock"
    stale = socket.socket(socket.AF_UNIX)
    path.parent.mkdir()
    stale.bind(str(path))  # a socket file nobody listens on: left by a crash
    stale.close()
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(
            lambda task_status: serve_admin_socket(
                _echo_scope, path, shutdown_trigger=stop.wait, task_status=task_status
            )
        )
        assert binds == [f"http://unix:{path}"]
        assert stat.S_IMODE(path.stat().st_mode) == 0o660

        def get() -> Any:
            with httpx.Client(transport=httpx.HTTPTransport(uds=str(path))) as http:
                return http.get("http://syncplayd/").json()

        # hypercorn 0.18 gives a unix socket connection no server address.
        assert await trio.to_thread.run_sync(get) == {"marked": True, "server": None}
        with pytest.raises(AdminSocketError, match="another process serves"):
            await trio.to_thread.run_sync(bind_admin_socket, path)
        stop.set()
    assert not path.exists()


def test_bind_admin_socket_refuses_to_replace_a_file(short_dir: Path) -> None:
    path = short_dir / "admin.sock"
    path.write_text("not a socket")
    with pytest.raises(AdminSocketError, match="not a socket"):
        bind_admin_socket(path)
    assert path.read_text() == "not a socket"
