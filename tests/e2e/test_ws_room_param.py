"""The room in the WebSocket URL (``?room=``) and the ``moved`` closing reason.

A deployment of several daemons routes a room's members to one node by the URL's
``room`` (nginx: ``hash $arg_room consistent``); the daemon reads it on both ways in
(a connection's first request, which the front door reads, and an upgrade on a
kept-alive connection, which hypercorn parses and the front door takes back; a refusal
is Quart's route's answer either way), refuses a value nginx would hash differently from
the room's id, and lets the socket join only that room. Plain sockets speak the bytes (the front
door tests' ``Wire``), so that the answer of either path can be read, 400s included.
"""

from __future__ import annotations

import re
import typing
from pathlib import Path
from urllib.parse import urlsplit
from uuid import UUID

import pytest
import trio

from syncplayd.client import ClientOptions, open_sync_client
from syncplayd.core import protocol
from syncplayd.server.live.connection import CLOSE_CODES
from syncplayd.server.live.websocket import Refusal, room_in_url
from tests.daemon_process import DaemonProcess, new_user
from tests.e2e.conftest import E2E_ENV
from tests.e2e.raw import new_room, token, ws_url
from tests.server.conftest import backend_daemon
from tests.server.test_front_door import (
    WS_PATH,
    Response,
    Wire,
    get_request,
    host_of,
    wire,
)

LIMIT = 10.0
ROOM = "0b7e9c4e-5d1a-4f3e-8a2b-1c9d8e7f6a50"
PROTOCOL_DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"


@pytest.fixture(scope="module", params=[pytest.param("sqlite")])
def node(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> typing.Iterator[DaemonProcess]:
    # Reading the URL touches no storage: one backend is enough.
    with backend_daemon(request, tmp_path_factory, "room-param", E2E_ENV) as process:
        yield process


# -- what the URL may say (no daemon) --------------------------------------------------------------
@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (b"", None),
        (b"v=1", None),
        (b"rooms=x&aroom=y", None),  # other names, however alike
        (f"room={ROOM}".encode(), UUID(ROOM)),
        (f"v=1&room={ROOM}&x".encode(), UUID(ROOM)),
        (f"Room={ROOM}".encode(), UUID(ROOM)),  # nginx's $arg_room ignores the name's case
    ],
)
def test_the_room_the_url_names(query: bytes, expected: UUID | None) -> None:
    assert room_in_url(query) == expected


BAD_QUERIES = {
    "not-a-uuid": b"room=nope",
    "empty": b"room=",
    "no-value": b"room",
    "upper-case": f"room={ROOM.upper()}".encode(),
    "no-hyphens": f"room={UUID(ROOM).hex}".encode(),
    "braces": f"room={{{ROOM}}}".encode(),
    "percent-encoded": f"room={ROOM.replace('-', '%2D', 1)}".encode(),
    "two-rooms": f"room={ROOM}&room={ROOM}".encode(),
    "name-in-capitals": b"ROOM=nope",
}


@pytest.mark.parametrize("query", BAD_QUERIES.values(), ids=BAD_QUERIES.keys())
def test_a_room_nginx_would_hash_otherwise_is_refused(query: bytes) -> None:
    # One room, one spelling: another spelling of the same id would be routed elsewhere.
    refusal = room_in_url(query)
    assert isinstance(refusal, Refusal)
    assert (refusal.status, refusal.code) == (400, "bad-request")


def _close_table() -> dict[str, int]:
    """``reason -> close code`` from the table of docs/protocol.md §4.10."""
    text = PROTOCOL_DOC.read_text()
    start = text.index("\n### 4.10 Closing reasons and close codes\n")
    section = text[start : text.index("\n### 4.11 ", start)]
    rows = re.findall(r"^\| `([a-z-]+)` \| (\d{4}) \|", section, flags=re.MULTILINE)
    return {reason: int(code) for reason, code in rows}


def test_every_closing_reason_has_its_documented_close_code() -> None:
    documented = _close_table()
    assert documented == CLOSE_CODES
    assert set(documented) == set(typing.get_args(protocol.CloseReason))
    assert documented["moved"] == 4008
    # Only the reasons that send a client back somewhere say when to come back.
    assert {"moved", "server-restarting"} == protocol.RETRY_REASONS


# -- through a daemon, both ways in ------------------------------------------------------------
WAYS = ["front-door", "kept-alive"]


async def _upgrade(client: Wire, daemon: DaemonProcess, way: str, target: str) -> Response:
    """An upgrade to ``target``: the connection's first request (the front door reads it),
    or one after a request on a kept-alive connection (hypercorn parses it, and the app's
    route gives it back to the front door or refuses it)."""
    host = host_of(daemon)
    if way == "kept-alive":
        await client.send(get_request(host))
        assert (await client.response()).status == 200
    return await client.upgrade(host, target=target)


@pytest.mark.parametrize("way", WAYS)
async def test_a_join_of_another_room_than_the_url_is_refused_and_the_named_one_joins(
    node: DaemonProcess, way: str
) -> None:
    owner = new_user("Owner")
    named, other = await new_room(node, owner), await new_room(node, owner)
    with trio.fail_after(LIMIT):
        async with wire(node) as client:
            response = await _upgrade(client, node, way, f"{WS_PATH}?v=1&room={named}")
            assert response.status == 101
            # hypercorn marks its answers: either way, the front door serves the socket.
            assert "server" not in response.headers
            await client.send_json({"type": "hello", "protocol": 1, "token": token(owner)})
            assert (await client.message())["type"] == "welcome"
            await client.send_json({"type": "join", "room_id": other})
            error = await client.expect("error")
            assert error == {
                "type": "error",
                "code": "bad-message",
                "message": "the join names another room than the URL",
                "ref": None,
            }
            # Still authenticated, as after any refused join: the named room is joined.
            await client.send_json({"type": "join", "room_id": named})
            joined = await client.expect("joined")
    assert joined["room"]["id"] == named
    assert [p["user_name"] for p in joined["participants"]] == ["Owner"]


@pytest.mark.parametrize("way", WAYS)
@pytest.mark.parametrize("query", [q.decode() for q in BAD_QUERIES.values()], ids=list(BAD_QUERIES))
async def test_a_bad_room_in_the_url_refuses_the_upgrade(
    node: DaemonProcess, way: str, query: str
) -> None:
    with trio.fail_after(LIMIT):
        async with wire(node) as client:
            response = await _upgrade(client, node, way, f"{WS_PATH}?{query}")
    assert response.status == 400
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == "bad-request"
    assert "room" in problem["detail"]
    # Refused by Quart's route on both ways: the front door hands it over unanswered.
    assert "server" in response.headers


async def test_the_python_client_names_its_room_and_joins(node: DaemonProcess) -> None:
    owner = new_user("Owner")
    room_id = await new_room(node, owner)
    options = ClientOptions(fast_ping_interval=0.05, request_timeout=LIMIT)
    with trio.fail_after(LIMIT):
        async with open_sync_client(
            ws_url(node) + "?v=1", token(owner), room_id=room_id.upper(), options=options
        ) as client:
            assert client.room is not None and client.room.id == room_id
    # The canonical spelling whatever the caller's, the rest of the query kept.
    assert urlsplit(client.url).query == f"v=1&room={room_id}"
