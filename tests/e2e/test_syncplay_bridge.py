"""The Syncplay-protocol listener against a real daemon process, line by line.

A bare line client (tests/e2e/syncplay_raw.py) plays the Syncplay desktop client; the
browser side is the WebSocket raw client, and the owner's moderation goes over REST.
What is checked is what a Syncplay 1.6.9 client depends on (syncplay/protocols.py):
the framing and its refusals (an ``Error`` and the end of the stream), STARTTLS, the
answer to ``Hello``, the ``ignoringOnTheFly`` echo counters, the State every second and
the drop of a silent client; and what the bridge promises syncplayd's rooms: a guest per
connection that is a member like any other (presence, roles, bans, kicks, the room's
end), playback and chat both ways, a change sent to the desktop when it takes effect.

The access rules run on both storage backends; the framing, which touches no storage,
on SQLite only.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import subprocess
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trio

from syncplayd.identity import Principal
from tests.daemon_process import DaemonProcess, new_user
from tests.e2e.conftest import E2E_ENV
from tests.e2e.raw import Raw, new_room, raw_client, rest
from tests.e2e.syncplay_raw import SyncplayRaw, context_trusting, fresh_address, syncplay_client
from tests.e2e.syncplay_room import bridge_port, chat_both_ways, desktop_joined
from tests.server.conftest import BACKENDS, backend_daemon

API = "/api/v1/syncplay"
LIMIT = 10.0
PASSWORD = "popcorn"

BRIDGE_ENV = E2E_ENV | {
    "SYNCPLAY_BRIDGE_LISTEN": "127.0.0.1:0",
    # The room's own idle rule (no heartbeat for this long) must not be what drops a
    # silent desktop client before the bridge's 12.5 s silence rule can be measured; and
    # WebSocket members that only watch need no heartbeat task for a test's duration.
    "SYNCPLAY_DISCONNECT_TIMEOUT_SECONDS": "30",
}


@dataclass(frozen=True)
class Bridge:
    daemon: DaemonProcess
    port: int
    #: The STARTTLS certificate the daemon has (``None``: none configured).
    certificate: str | None


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A throwaway self-signed certificate for localhost, and its key."""
    folder = tmp_path_factory.mktemp("syncplay-tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost", "-days", "1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


@pytest.fixture(scope="module", params=BACKENDS)
def bridge(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    certificate: tuple[Path, Path],
) -> Iterator[Bridge]:
    """A daemon with the Syncplay listener and STARTTLS, on each backend."""
    cert, key = certificate
    env = BRIDGE_ENV | {
        "SYNCPLAY_BRIDGE_TLS_CERTIFICATE": str(cert),
        "SYNCPLAY_BRIDGE_TLS_PRIVATE_KEY": str(key),
    }
    with backend_daemon(request, tmp_path_factory, "bridge", env) as process:
        yield Bridge(process, bridge_port(process), str(cert))
        # What a Syncplay client sends for a password is as good as the password here.
        assert not any(md5(PASSWORD) in line for line in process.log_lines)


@pytest.fixture(scope="module", params=[pytest.param("sqlite")])
def plain_bridge(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Bridge]:
    """A daemon with the Syncplay listener and no certificate; framing needs no storage."""
    with backend_daemon(request, tmp_path_factory, "plain-bridge", BRIDGE_ENV) as process:
        yield Bridge(process, bridge_port(process), None)


# -- helpers ---------------------------------------------------------------------------------
def md5(password: str) -> str:
    """What Syncplay's client sends for a password."""
    return hashlib.md5(password.encode(), usedforsecurity=False).hexdigest()


async def call(
    daemon: DaemonProcess, principal: Principal, method: str, path: str, status: int, **kw: Any
) -> Any:
    """One REST call off the event loop, its status checked; the JSON body, if any."""

    def run() -> Any:
        response = rest(daemon, principal).request(method, API + path, **kw)
        assert response.status_code == status, (method, path, response.status_code, response.text)
        return response.json() if response.content else None

    return await trio.to_thread.run_sync(run)


async def participants(daemon: DaemonProcess, owner: Principal, room_id: str) -> list[str]:
    page = await call(daemon, owner, "GET", f"/rooms/{room_id}/participants", 200)
    return [p["user_name"] for p in page["items"]]


def shape(message: dict[str, Any]) -> str:
    """``Set.ready``, ``Hello``, ``State``…: what a line is, for comparing sequences."""
    (command,) = message
    if command == "Set":
        (sub,) = message["Set"]
        return f"Set.{sub}"
    return str(command)


async def clock_offset(ws: Raw) -> float:
    """The server clock minus trio's, from the best of three ping/pong exchanges (NTP)."""
    best: tuple[float, float] | None = None
    for n in range(3):
        t0 = trio.current_time()
        await ws.send({"type": "ping", "id": n, "t0": t0})
        pong = await ws.expect("pong", id=n)
        t3 = trio.current_time()
        rtt = (t3 - t0) - (pong["t2"] - pong["t1"])
        offset = ((pong["t1"] - t0) + (pong["t2"] - t3)) / 2
        if best is None or rtt < best[0]:
            best = (rtt, offset)
    assert best is not None
    return best[1]


def paused_is(paused: bool) -> Any:
    def check(state: Any) -> bool:
        return bool(state.get("playstate", {}).get("paused") is paused)

    return check


@asynccontextmanager
async def guest_in(bridge: Bridge, name: str, room: str) -> AsyncIterator[SyncplayRaw]:
    """A Syncplay client joined to ``room`` that answers every State (as Syncplay does)."""
    async with syncplay_client(bridge.port) as guest:
        await guest.hello(name, room)
        guest.auto_echo = True
        await guest.echo_state()
        yield guest


# -- 1. framing and errors -------------------------------------------------------------------
BAD_LINES = [
    pytest.param(b"{nope\r\n", "not a JSON-encoded line", id="not-json"),
    pytest.param(b"[1, 2]\r\n", "a line must be a JSON object of commands", id="array"),
    pytest.param(b'{"Chat": "caf\xe9"}\r\n', "the line is not UTF-8", id="not-utf8"),
    pytest.param(b'{"Foo": 1}\r\n', "unknown command 'Foo'", id="unknown-command"),
]


@pytest.mark.parametrize(("line", "error"), BAD_LINES)
async def test_a_bad_line_before_hello_is_an_error_then_the_end(
    plain_bridge: Bridge, line: bytes, error: str
) -> None:
    async with syncplay_client(plain_bridge.port) as client:
        await client.send_raw(line)
        assert await client.refused() == error


@pytest.mark.parametrize(("line", "error"), BAD_LINES)
async def test_a_bad_line_after_joining_is_an_error_then_the_end(
    plain_bridge: Bridge, line: bytes, error: str
) -> None:
    owner = new_user("Ada")
    room_id = await new_room(plain_bridge.daemon, owner)
    async with syncplay_client(plain_bridge.port) as client:
        await client.hello("desk", room_id)
        await client.send_raw(line)
        seen = await client.read_until_closed()
        assert seen and seen[-1] == {"Error": {"message": error}}, seen


@pytest.mark.parametrize("joined", [False, True], ids=["before-hello", "after-joining"])
async def test_an_oversized_line_is_an_error_naming_the_limit(
    plain_bridge: Bridge, joined: bool
) -> None:
    room_id = await new_room(plain_bridge.daemon, new_user("Ada"))
    async with syncplay_client(plain_bridge.port) as client:
        if joined:
            await client.hello("desk", room_id)
        # 17 KiB and no newline yet: refused before the line ends.
        await client.send_raw(b'{"Chat": "' + b"x" * (17 * 1024))
        seen = await client.read_until_closed()
        assert seen and seen[-1] == {"Error": {"message": "lines are limited to 16384 bytes"}}


@pytest.mark.parametrize(
    ("message", "error"),
    [
        pytest.param({"State": {"playstate": {"position": 0, "paused": True}}}, "say Hello first",
                     id="state"),
        pytest.param({"Chat": "hi"}, "say Hello first", id="chat"),
        pytest.param({"Hello": {"username": "desk", "version": "1.6.9"}},
                     "Hello needs a room name", id="hello-without-room"),
        pytest.param({"Hello": {"username": " ", "room": {"name": "x"}, "version": "1.6.9"}},
                     "Hello needs a username", id="hello-without-username"),
    ],
)  # fmt: skip
async def test_anything_but_a_good_hello_first_is_an_error_then_the_end(
    plain_bridge: Bridge, message: dict[str, Any], error: str
) -> None:
    async with syncplay_client(plain_bridge.port) as client:
        await client.send(message)
        assert await client.refused() == error


async def test_empty_lines_are_ignored_and_each_command_of_a_line_is_answered(
    plain_bridge: Bridge,
) -> None:
    room_id = await new_room(plain_bridge.daemon, new_user("Ada"))
    async with syncplay_client(plain_bridge.port) as client:
        await client.send_raw(b"\r\n\n  \r\n")
        answer = await client.hello("desk", room_id)
        assert "Hello" in answer[3]
        await client.send_raw(b"\r\n")
        # Two commands on one line: both answered, in order.
        await client.send({"Set": {"room": {"name": room_id}}, "List": None})
        room = await client.expect("Set", lambda body: "room" in body)
        assert room == {"room": {"name": room_id}}
        listed = await client.expect("List")
        assert list(listed) == [room_id]
        assert list(listed[room_id]) == ["desk"]
        # Nothing in between was an Error, and the connection is still served (regular
        # States wait for the echo of the join's forced one, as in Syncplay's server).
        assert not any("Error" in m for m in client.received)
        await client.echo_state()
        await client.expect("State")


# -- 2. STARTTLS -----------------------------------------------------------------------------
async def test_starttls_then_hello_inside_tls(bridge: Bridge) -> None:
    assert bridge.certificate is not None
    room_id = await new_room(bridge.daemon, new_user("Ada"))
    async with syncplay_client(bridge.port) as client:
        tls = await client.start_tls(context_trusting(bridge.certificate))
        assert tls.version() in ("TLSv1.2", "TLSv1.3")
        answer = await client.hello("secure desk", room_id)
        assert answer[3]["Hello"]["username"] == "secure desk"
        # Once joined, a STARTTLS is nothing to the bridge: the stream just goes on.
        await client.send({"TLS": {"startTLS": "send"}})
        await client.echo_state()
        await client.expect("State")


async def test_without_a_certificate_starttls_is_declined_and_plain_text_works(
    plain_bridge: Bridge,
) -> None:
    room_id = await new_room(plain_bridge.daemon, new_user("Ada"))
    async with syncplay_client(plain_bridge.port) as client:
        await client.send({"TLS": {"startTLS": "send"}})
        assert await client.expect("TLS") == {"startTLS": "false"}
        answer = await client.hello("desk", room_id)
        assert "Hello" in answer[3]


async def test_nothing_may_follow_a_starttls_request_in_plain_text(bridge: Bridge) -> None:
    """Bytes sent after STARTTLS but before the handshake would be read as if inside TLS."""
    room_id = await new_room(bridge.daemon, new_user("Ada"))
    async with syncplay_client(bridge.port) as client:
        hello = {"Hello": {"username": "desk", "room": {"name": room_id}, "version": "1.6.9"}}
        await client.send_raw(
            b'{"TLS": {"startTLS": "send"}}\r\n' + json.dumps(hello).encode() + b"\r\n"
        )
        assert await client.refused() == "nothing may follow a STARTTLS request"


# -- 3. join and presence --------------------------------------------------------------------
async def test_the_answer_to_hello_then_a_state_every_second(bridge: Bridge) -> None:
    owner = new_user("Ada")
    room_id = await new_room(bridge.daemon, owner)
    async with (
        raw_client(bridge.daemon, owner, room_id),
        syncplay_client(bridge.port) as guest,
    ):
        answer = await guest.hello("desk", room_id)
        assert [shape(m) for m in answer] == [
            "Set.ready", "Set.playlistChange", "Set.playlistIndex", "Hello", "Set.user", "State",
        ]  # fmt: skip
        ready, _, index, hello, user, state = answer
        assert ready["Set"]["ready"] == {"username": "desk", "isReady": None,
                                         "manuallyInitiated": False}  # fmt: skip
        assert index["Set"]["playlistIndex"] == {"user": None, "index": 0}
        body = hello["Hello"]
        assert (body["username"], body["room"], body["realversion"]) == (
            "desk", {"name": room_id}, "1.6.9",
        )  # fmt: skip
        features = body["features"]
        assert features["chat"] is True and features["readiness"] is True
        assert features["isolateRooms"] is True and features["managedRooms"] is False
        assert features["maxChatMessageLength"] == 10000  # the daemon's chat limit
        assert user["Set"]["user"] == {
            "Ada": {"room": {"name": room_id}, "event": {"joined": True}}
        }
        first = state["State"]
        assert first["playstate"]["paused"] is True and first["playstate"]["position"] == 0
        # The join state is forced: the client must echo the counter.
        assert first["ignoringOnTheFly"] == {"server": 1}
        assert "latencyCalculation" in first["ping"]
        # Once the client has echoed it, a State about every second, unasked. (Until then
        # only forced States are sent, as by Syncplay's server.)
        guest.auto_echo = True
        await guest.echo_state()
        times = []
        for _ in range(3):
            await guest.expect("State")
            times.append(trio.current_time())
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert all(0.7 <= gap <= 1.5 for gap in gaps), gaps


async def test_a_member_present_at_the_join_is_announced_once(plain_bridge: Bridge) -> None:
    """Syncplay shows each ``Set user … joined`` as "Ada has joined the room".

    The case that matters is a guest that joins within the room's presence window (50 ms)
    after Ada: Ada is in its ``joined`` snapshot, and then the window's ``presence joined``
    for Ada reaches it too. A join on SQLite is quick enough to land in that window every
    time; on PostgreSQL it often takes longer, hence SQLite only.
    """
    owner = new_user("Ada")
    room_id = await new_room(plain_bridge.daemon, owner)
    async with (
        raw_client(plain_bridge.daemon, owner, room_id),
        syncplay_client(plain_bridge.port) as guest,
    ):
        await guest.hello("desk", room_id)
        guest.auto_echo = True
        await guest.echo_state()
        # The next regular State comes a second after the join: by then the room's
        # presence window (0.05 to 0.5 s) in which Ada joined has been sent too.
        await guest.expect("State")
        announced = [m for m in guest.received if "Ada" in m.get("Set", {}).get("user", {})]
        assert len(announced) == 1, announced


async def test_a_desktop_guest_is_a_member_while_connected(bridge: Bridge) -> None:
    owner = new_user("Ada")
    daemon = bridge.daemon
    room_id = await new_room(daemon, owner)
    async with raw_client(daemon, owner, room_id) as ada:
        async with syncplay_client(bridge.port) as guest:
            await guest.hello("Desk Top", room_id)
            member = await desktop_joined(ada, "Desk Top")
            assert (member["role"], member["is_connected"]) == ("member", True)
            assert member["user_id"] != str(owner.user_id)
            # The guest's List: the browser member and itself.
            await guest.send({"List": None})
            listed = (await guest.expect("List"))[room_id]
            assert set(listed) == {"Ada", "Desk Top"}
            assert listed["Ada"]["controller"] is True
            assert listed["Desk Top"]["controller"] is False
            assert await participants(daemon, owner, room_id) == ["Ada", "Desk Top"]
        # The connection ended: the bridge left the room for the guest.
        left = await ada.expect("presence", event="left")
        assert left["member"]["user_id"] == member["user_id"]
        assert await participants(daemon, owner, room_id) == ["Ada"]


async def test_each_connection_is_a_new_guest_even_with_the_same_name(bridge: Bridge) -> None:
    owner = new_user("Ada")
    room_id = await new_room(bridge.daemon, owner)
    async with (
        raw_client(bridge.daemon, owner, room_id) as ada,
        guest_in(bridge, "twin", room_id) as one,
        guest_in(bridge, "twin", room_id),
    ):
        first = await desktop_joined(ada, "twin")
        second = await desktop_joined(ada, "twin")
        assert first["user_id"] != second["user_id"]
        # Syncplay keys users by name: the first sees the second under another one.
        joined = await one.expect("Set", lambda body: "twin_" in body.get("user", {}))
        assert joined["user"] == {"twin_": {"room": {"name": room_id}, "event": {"joined": True}}}


# -- 4. the access matrix --------------------------------------------------------------------
async def test_a_private_room_is_not_reachable_by_its_id(bridge: Bridge) -> None:
    owner = new_user("Ada")
    room_id = await new_room(bridge.daemon, owner, is_public=False)
    async with syncplay_client(bridge.port) as guest:
        await guest.send_hello("desk", room_id)
        message = await guest.refused()
    assert message == "This room is private: use an invitation code as the room name."
    assert await participants(bridge.daemon, owner, room_id) == ["Ada"]


async def test_a_private_room_by_an_invitation_code(bridge: Bridge) -> None:
    owner = new_user("Ada")
    room_id = await new_room(bridge.daemon, owner, is_public=False)
    invitation = await call(bridge.daemon, owner, "POST", f"/rooms/{room_id}/invitations", 201,
                            json={})  # fmt: skip
    code = invitation["code"]
    async with syncplay_client(bridge.port) as guest:
        answer = await guest.hello("desk", code)
        # The client's room is the name it typed: the code.
        assert answer[3]["Hello"]["room"] == {"name": code}
        assert await participants(bridge.daemon, owner, room_id) == ["Ada", "desk"]


async def test_an_unknown_room_name_is_refused(bridge: Bridge) -> None:
    async with syncplay_client(bridge.port) as guest:
        await guest.send_hello("desk", "NOSUCHCODE")
        message = await guest.refused()
    assert "invitation code" in message


async def test_joins_from_one_address_are_limited_to_bursts_of_20(bridge: Bridge) -> None:
    """Each connection is a join (a guest): one address gets 20 at once, then one a second.
    Counted at the Hello (where a relaying node's ticket would exempt it), not before."""
    owner = new_user("Ada")
    room_id = await new_room(bridge.daemon, owner)
    address = fresh_address()
    joined = refused = 0
    started = trio.current_time()
    for n in range(30):
        stream = await trio.open_tcp_stream("127.0.0.1", bridge.port, local_address=address)
        async with stream:
            guest = SyncplayRaw(stream)
            await guest.send_hello(f"desk {n}", room_id)
            first = await guest.recv()
            if "Error" in first:
                assert "Too many connections from your address" in first["Error"]["message"]
                refused += 1
            else:
                joined += 1
    elapsed = trio.current_time() - started
    # 60 a minute: one more token per second since the first join.
    assert 20 <= joined <= 20 + int(elapsed) + 1, (joined, elapsed)
    assert refused == 30 - joined
    assert refused > 0, elapsed


async def test_a_password_room_needs_the_password_md5(bridge: Bridge) -> None:
    owner = new_user("Ada")
    room_id = await new_room(bridge.daemon, owner, password=PASSWORD)
    async with syncplay_client(bridge.port) as guest:
        await guest.send_hello("desk", room_id)
        assert "password" in (await guest.refused()).lower()
    async with syncplay_client(bridge.port) as guest:
        await guest.send_hello("desk", room_id, md5("popcorm"))
        assert "password" in (await guest.refused()).lower()
    # The password itself is not what Syncplay sends: it is refused too.
    async with syncplay_client(bridge.port) as guest:
        await guest.send_hello("desk", room_id, PASSWORD)
        assert "password" in (await guest.refused()).lower()
    assert await participants(bridge.daemon, owner, room_id) == ["Ada"]
    async with syncplay_client(bridge.port) as guest:
        await guest.hello("desk", room_id, md5(PASSWORD))
        assert await participants(bridge.daemon, owner, room_id) == ["Ada", "desk"]


async def test_a_ban_ends_the_desktop_connection(bridge: Bridge) -> None:
    owner = new_user("Ada")
    daemon = bridge.daemon
    room_id = await new_room(daemon, owner)
    async with (
        raw_client(daemon, owner, room_id) as ada,
        guest_in(bridge, "troll", room_id) as guest,
    ):
        member = await desktop_joined(ada, "troll")
        await call(daemon, owner, "PUT", f"/rooms/{room_id}/bans/{member['user_id']}", 200, json={})
        assert await guest.refused() == "Ada banned you from the room for good"
        left = await ada.expect("presence", event="left")
        assert left["member"]["user_id"] == member["user_id"]
    assert await participants(daemon, owner, room_id) == ["Ada"]


async def test_a_kick_ends_that_guest_only(bridge: Bridge) -> None:
    owner = new_user("Ada")
    daemon = bridge.daemon
    room_id = await new_room(daemon, owner)
    async with (
        raw_client(daemon, owner, room_id) as ada,
        guest_in(bridge, "stays", room_id) as stays,
        guest_in(bridge, "goes", room_id) as goes,
    ):
        await desktop_joined(ada, "stays")
        member = await desktop_joined(ada, "goes")
        path = f"/rooms/{room_id}/participants/{member['user_id']}/kick"
        await call(daemon, owner, "POST", path, 204, json={"reason": "spoilers"})
        assert await goes.refused() == "Ada removed you from the room: spoilers"
        # The other guest sees it go, and stays.
        await stays.expect("Set", lambda body: body.get("user", {}).get("goes", {}).get("event")
                           == {"left": True})  # fmt: skip
        await stays.send({"List": None})
        assert set((await stays.expect("List"))[room_id]) == {"Ada", "stays"}
        assert await participants(daemon, owner, room_id) == ["Ada", "stays"]


async def test_an_ended_room_ends_connections_and_refuses_new_ones(bridge: Bridge) -> None:
    owner = new_user("Ada")
    daemon = bridge.daemon
    room_id = await new_room(daemon, owner)
    async with guest_in(bridge, "desk", room_id) as guest:
        await call(daemon, owner, "DELETE", f"/rooms/{room_id}", 204)
        assert await guest.refused() == "the room has ended"
    async with syncplay_client(bridge.port) as late:
        await late.send_hello("late", room_id)
        assert await late.refused() == "the room has ended (room-ended)"


# -- 5. playback and chat both ways ----------------------------------------------------------
async def test_a_play_reaches_the_desktop_when_it_takes_effect(bridge: Bridge) -> None:
    owner = new_user("Ada")
    room_id = await new_room(bridge.daemon, owner)
    async with raw_client(bridge.daemon, owner, room_id) as ada:
        offset = await clock_offset(ada)
        async with syncplay_client(bridge.port) as guest:
            await guest.hello("desk", room_id)
            await guest.echo_state()
            arrived = trio.Event()
            arrival: list[tuple[float, dict[str, Any]]] = []

            async def watch() -> None:
                # Reads (and answers) the guest's lines as they come, stamping the first
                # State that plays.
                guest.auto_echo = True
                while True:
                    message = await guest.recv()
                    state = message.get("State", {})
                    if state.get("playstate", {}).get("paused") is False:
                        arrival.append((trio.current_time() + offset, state))
                        arrived.set()
                        return

            async with trio.open_nursery() as nursery:
                nursery.start_soon(watch)
                await desktop_joined(ada, "desk")
                await ada.send({"type": "play"})
                playback = await ada.expect("playback", reason="play")
                with trio.fail_after(LIMIT):
                    await arrived.wait()
            ((at, state),) = arrival
            execute_at = playback["execute_at"]
            # Not before the room starts (the client applies a State on arrival), and not
            # much later either.
            assert execute_at - 0.05 <= at <= execute_at + 0.5, (at - execute_at, playback)
            assert state["playstate"]["setBy"] == "Ada"
            assert state["playstate"]["position"] == pytest.approx(0.0, abs=0.1)


async def test_a_desktop_pause_and_seek_reach_the_room(bridge: Bridge) -> None:
    owner = new_user("Ada")
    room_id = await new_room(bridge.daemon, owner)
    async with (
        raw_client(bridge.daemon, owner, room_id) as ada,
        guest_in(bridge, "desk", room_id) as guest,
    ):
        await desktop_joined(ada, "desk")
        await ada.send({"type": "play"})
        await ada.expect("playback", reason="play")
        await guest.expect("State", paused_is(False))
        # Paused at 12 s in the desktop player (after the echo of the server's counter,
        # which auto_echo sent for the State just read).
        await guest.send_state(12.0, True, change=True)
        paused = await ada.expect("playback", reason="pause")
        assert paused["playback"]["state"] == "paused"
        assert paused["playback"]["position"] == pytest.approx(12.0, abs=0.01)
        assert paused["playback"]["set_by"] == "desk"
        # The room confirms the pause to the desktop (forced: echoed by auto_echo); only
        # then does the client's next change count (Syncplay's ignoringOnTheFly).
        await guest.expect("State", paused_is(True))
        assert guest.client_ignoring == 0
        await guest.send_state(30.0, True, do_seek=True, change=True)
        seek = await ada.expect("playback", reason="seek")
        assert seek["playback"]["state"] == "paused"
        assert seek["playback"]["position"] == pytest.approx(30.0, abs=0.01)


async def test_a_stale_state_does_not_undo_a_change(bridge: Bridge) -> None:
    """A State that does not echo the server's counter is ignored: without the counters, a
    report written before the client heard of the play ("paused") would pause the room."""
    owner = new_user("Ada")
    room_id = await new_room(bridge.daemon, owner)
    async with (
        raw_client(bridge.daemon, owner, room_id) as ada,
        syncplay_client(bridge.port) as guest,
    ):
        await guest.hello("desk", room_id)
        await guest.echo_state()
        await desktop_joined(ada, "desk")
        await ada.send({"type": "play"})
        await ada.expect("playback", reason="play")
        forced = await guest.expect("State", paused_is(False))
        assert "server" in forced["ignoringOnTheFly"]
        # A report from before that State: paused, no counter.
        await guest.send({"State": {"playstate": {"position": 0.0, "paused": True},
                                        "ping": {"clientRtt": 0}}})  # fmt: skip
        # The room is still playing: the owner's ping is answered with no pause before it.
        await ada.send({"type": "ping", "id": 99, "t0": 0.0})
        while (message := await ada.recv())["type"] != "pong":
            assert message["type"] != "playback", message


async def test_chat_both_ways(bridge: Bridge) -> None:
    owner = new_user("Ada")
    room_id = await new_room(bridge.daemon, owner)
    async with (
        raw_client(bridge.daemon, owner, room_id) as ada,
        guest_in(bridge, "desk", room_id) as guest,
    ):
        await desktop_joined(ada, "desk")
        await chat_both_ways(ada, guest, "Ada", "desk")


async def test_the_desktop_playlist_is_the_room_queue_and_selects_its_item(bridge: Bridge) -> None:
    owner = new_user("Ada")
    daemon = bridge.daemon
    room_id = await new_room(daemon, owner)
    queue = await call(daemon, owner, "POST", f"/rooms/{room_id}/queue/items", 201,
                       json={"content_type": "episode", "content_id": "s01e02",
                             "title": "The Second"})  # fmt: skip
    second = queue["items"][1]["id"]
    async with (
        raw_client(daemon, owner, room_id) as ada,
        syncplay_client(bridge.port) as guest,
    ):
        answer = await guest.hello("desk", room_id)
        assert answer[1]["Set"]["playlistChange"] == {"user": None, "files": ["1", "The Second"]}
        assert answer[2]["Set"]["playlistIndex"] == {"user": None, "index": 0}
        guest.auto_echo = True
        await guest.echo_state()
        # Syncplay's "play this playlist entry": the room's queue moves to that item.
        await guest.send({"Set": {"playlistIndex": {"user": "desk", "index": 1}}})
        moved = None
        with trio.move_on_after(5):
            moved = await ada.expect("queue")
        assert moved is not None, "the desktop's playlist selection never reached the room"
        assert moved["queue"]["current_item_id"] == second
        index = await guest.expect("Set", lambda body: "playlistIndex" in body)
        assert index["playlistIndex"]["index"] == 1


async def test_readiness_both_ways(bridge: Bridge) -> None:
    owner = new_user("Ada")
    room_id = await new_room(bridge.daemon, owner)
    async with (
        raw_client(bridge.daemon, owner, room_id) as ada,
        guest_in(bridge, "desk", room_id) as guest,
    ):
        member = await desktop_joined(ada, "desk")
        # Syncplay toggles readiness by itself with every pause: only the user's own
        # choice (manuallyInitiated) is the room's readiness.
        await guest.send({"Set": {"ready": {"isReady": True, "manuallyInitiated": False}}})
        await guest.send({"Set": {"ready": {"isReady": True, "manuallyInitiated": True}}})
        ready = await ada.expect("presence", event="readiness")
        assert ready["member"]["user_id"] == member["user_id"]
        assert ready["member"]["ready"] is True
        await ada.send({"type": "readiness", "ready": True})
        told = await guest.expect(
            "Set", lambda body: body.get("ready", {}).get("username") == "Ada"
        )
        assert told["ready"] == {"username": "Ada", "isReady": True, "manuallyInitiated": True}


# -- 6. silence ------------------------------------------------------------------------------
@pytest.mark.slow
async def test_a_silent_client_is_dropped_without_an_error(plain_bridge: Bridge) -> None:
    owner = new_user("Ada")
    room_id = await new_room(plain_bridge.daemon, owner)
    async with raw_client(plain_bridge.daemon, owner, room_id) as ada:
        async with syncplay_client(plain_bridge.port) as guest:
            start = trio.current_time()
            await guest.hello("quiet", room_id)  # the last line it sends
            seen = await guest.read_until_closed(limit=20)
            silent_for = trio.current_time() - start
        assert 12.0 <= silent_for <= 15.0, silent_for
        # No Error: Syncplay's client reconnects after a plain drop, not after an Error.
        assert not any("Error" in m for m in seen), seen[-3:]
        # (It never echoed the join's forced State: no regular ones came either.)
        assert "State" not in {shape(m) for m in seen}, seen
        await desktop_joined(ada, "quiet")
        await ada.expect("presence", event="left")


# -- 7. a room where only moderators control playback ----------------------------------------
async def test_a_refused_pause_is_undone_on_the_desktop(bridge: Bridge) -> None:
    owner = new_user("Ada")
    daemon = bridge.daemon
    room_id = await new_room(daemon, owner)
    await call(daemon, owner, "PUT", f"/rooms/{room_id}", 200,
               json={"playback_control": "moderators"})  # fmt: skip
    async with (
        raw_client(daemon, owner, room_id) as ada,
        guest_in(bridge, "desk", room_id) as guest,
    ):
        await desktop_joined(ada, "desk")
        await ada.send({"type": "play"})
        await ada.expect("playback", reason="play")
        # Well after the start (the edge right at the start is the next test's).
        await guest.expect("State", lambda s: s["playstate"]["position"] > 0.5)
        await guest.send_state(5.0, True, change=True)
        notice = await guest.expect("Chat")
        assert notice == {
            "username": "syncplayd",
            "message": "only moderators control playback in this room",
        }
        # The player is put back: playing, where the room is.
        back = (await guest.expect("State"))["playstate"]
        assert (back["paused"], back["doSeek"]) == (False, True)
        assert back["position"] > 0.5
        # And the room never paused.
        await ada.send({"type": "ping", "id": 7, "t0": 0.0})
        while (message := await ada.recv())["type"] != "pong":
            assert message["type"] != "playback", message


async def test_a_pause_refused_right_after_the_start_is_put_back_to_playing(
    bridge: Bridge,
) -> None:
    """The play reaches the desktop a forward delay before the room's start; a pause
    refused within that delay must still be put back to *playing*, as the client was told.

    The guest's first round trips look 100 ms long, then one is short: the forward delay
    the bridge sends ahead by shrinks from about 0.15 s to about 0.05 s, as on a jittery link.
    """
    owner = new_user("Ada")
    daemon = bridge.daemon
    room_id = await new_room(daemon, owner)
    await call(daemon, owner, "PUT", f"/rooms/{room_id}", 200,
               json={"playback_control": "moderators"})  # fmt: skip
    async with raw_client(daemon, owner, room_id) as ada, syncplay_client(bridge.port) as guest:
        guest.extra_rtt = 0.1
        await guest.hello("desk", room_id)
        guest.auto_echo = True
        await guest.echo_state()
        await desktop_joined(ada, "desk")
        await guest.expect("State")  # a regular one: the slow round trip was measured
        await ada.send({"type": "play"})
        await ada.expect("playback", reason="play")
        guest.extra_rtt = 0.0
        await guest.expect("State", paused_is(False))  # echoed at once, a short round trip
        await guest.send_state(0.0, True, change=True)
        await guest.expect("Chat", lambda body: body["username"] == "syncplayd")
        back = (await guest.expect("State"))["playstate"]
        assert (back["paused"], back["doSeek"]) == (False, True), back
