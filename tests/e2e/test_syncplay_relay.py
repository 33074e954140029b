"""A Syncplay client may reach any node: the node relays it to the one that runs its room.

Two real daemons in multi-node mode on one PostgreSQL, each with its Syncplay listener.
A room is made live on node A by a WebSocket member; a bare Syncplay client
(tests/e2e/syncplay_raw.py, from a loopback address of its own) connects to node B's
listener with the room's id. B admits it (the room's access rules, with the client's
address) and relays it to A behind a signed ticket; what the client then sees and does is
the room on A: playback and chat both ways, its presence, and the end of its membership
with its connection. A ticket not signed with the nodes' secret is refused; a relayed
client is cut when the room's node stops, and its next connection to B gets the room
there.
"""

from __future__ import annotations

import json
import signal
import time
import uuid
from collections.abc import Iterator
from contextlib import AsyncExitStack, ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trio

from syncplayd.core.syncplay import forward
from tests.daemon_process import DaemonProcess, new_user, run_daemon
from tests.e2e.conftest import E2E_ENV
from tests.e2e.desktop import free_port
from tests.e2e.raw import new_room, raw_client, rest
from tests.e2e.syncplay_raw import syncplay_client
from tests.e2e.syncplay_room import bridge_port, chat_both_ways, desktop_joined
from tests.server.conftest import create_postgres_database, to_url

pytestmark = [pytest.mark.postgres]

LIMIT = 10.0
ENV = E2E_ENV | {
    "SYNCPLAY_CLUSTER_ENABLED": "true",
    "SYNCPLAY_BRIDGE_LISTEN": "127.0.0.1:0",
    "SYNCPLAY_DISCONNECT_TIMEOUT_SECONDS": "30",
}


@dataclass
class Node:
    name: str
    daemon: DaemonProcess
    bridge_port: int


@pytest.fixture
def nodes(postgres_server_url: str, tmp_path: Path) -> Iterator[tuple[Node, Node]]:
    """Nodes ``a`` and ``b`` on one fresh database."""
    database = to_url(create_postgres_database(postgres_server_url))
    with ExitStack() as stack:
        started = []
        for name in ("a", "b"):
            env = ENV | {
                "SYNCPLAY_LISTEN": f"127.0.0.1:{free_port()}",
                "SYNCPLAY_CLUSTER_NODE_ID": name,
            }
            daemon = stack.enter_context(run_daemon(database, tmp_path / name, env))
            started.append(Node(name, daemon, bridge_port(daemon)))
        yield started[0], started[1]
        for node in started:
            assert not any("Traceback" in line for line in node.daemon.log_lines), "\n".join(
                node.daemon.log_lines[-60:]
            )


async def log_line(node: Node, pattern: str) -> dict[str, Any]:
    """The first log record of ``node`` whose message matches ``pattern``, once logged."""
    line = await trio.to_thread.run_sync(node.daemon.wait_for_log, pattern, LIMIT)
    record: dict[str, Any] = json.loads(line)
    return record


async def participant_names(node: Node, owner: Any, room_id: str) -> list[str]:
    def read() -> list[str]:
        page = rest(node.daemon, owner).get(f"/api/v1/syncplay/rooms/{room_id}/participants")
        assert page.status_code == 200, page.text
        return [p["user_name"] for p in page.json()["items"]]

    return await trio.to_thread.run_sync(read)


async def test_a_client_of_another_node_is_relayed_to_the_room(nodes: tuple[Node, Node]) -> None:
    a, b = nodes
    owner = new_user("Ada")
    room_id = await new_room(a.daemon, owner)
    async with raw_client(a.daemon, owner, room_id) as ada:
        async with syncplay_client(b.bridge_port) as guest:
            address = guest.stream.socket.getsockname()[0]  # type: ignore[attr-defined]
            answer = await guest.hello("desk", room_id)
            assert any("Hello" in message for message in answer), answer
            guest.auto_echo = True
            await guest.echo_state()
            await desktop_joined(ada, "desk")
            # Node A runs the connection, with the client's own address (not node B's).
            record = await log_line(a, r"syncplay client 'desk' joined")
            assert f"from {address} (relayed by node b)" in record["message"], record
            await log_line(b, rf"relayed to node a for room {room_id}")
            assert not any("'desk' joined" in line for line in b.daemon.log_lines)

            # Playback and chat, both ways.
            await ada.send({"type": "play"})
            state = await guest.expect(
                "State", lambda body: body.get("playstate", {}).get("paused") is False
            )
            assert state["playstate"]["setBy"] == "Ada"
            await chat_both_ways(ada, guest, "Ada", "desk")
            assert "desk" in await participant_names(a, owner, room_id)
        # The membership ends with the connection, on the node that ran it.
        left = await ada.expect("presence", event="left")
        assert left["member"]["user_name"] == "desk", left
        assert "desk" not in await participant_names(a, owner, room_id)


async def test_a_ticket_not_signed_with_the_nodes_secret_is_refused(
    nodes: tuple[Node, Node],
) -> None:
    a, _ = nodes
    owner = new_user("Ada")
    room_id = await new_room(a.daemon, owner)
    ticket = forward.Ticket(uuid.uuid4(), uuid.UUID(room_id), "203.0.113.9", "b")
    line = forward.ticket_line(ticket, forward.ticket_key("not the secret" * 4), time.time(), "x")
    async with syncplay_client(a.bridge_port) as forger:
        await forger.send_raw(line)
        await forger.send_hello("forger", room_id)
        message = await forger.refused()
    assert "invalid forwarding ticket" in message, message
    assert "forger" not in await participant_names(a, owner, room_id)


async def test_a_relayed_client_is_cut_when_the_room_s_node_stops_then_gets_the_room_back(
    nodes: tuple[Node, Node],
) -> None:
    a, b = nodes
    owner = new_user("Ada")
    room_id = await new_room(a.daemon, owner)
    async with raw_client(a.daemon, owner, room_id) as ada, syncplay_client(b.bridge_port) as guest:
        await guest.hello("desk", room_id)
        await desktop_joined(ada, "desk")
        a.daemon.process.send_signal(signal.SIGTERM)
        # Cut without an Error: a Syncplay client reconnects by itself after that.
        seen = await guest.read_until_closed(LIMIT)
        assert not any("Error" in message for message in seen), seen
    with trio.fail_after(LIMIT):
        await trio.to_thread.run_sync(a.daemon.process.wait)
    # Its next connection to node B: the room now runs there.
    async with syncplay_client(b.bridge_port) as guest:
        answer = await guest.hello("desk", room_id)
        assert any("Hello" in message for message in answer), answer
    await log_line(b, r"syncplay client 'desk' joined room .* from 127\.")


async def test_the_room_s_node_does_not_count_relayed_clients_against_the_relaying_node(
    nodes: tuple[Node, Node],
) -> None:
    """Every relayed connection reaches node A from node B's address: counted there, the
    listener's per-address budget (bursts of 20) would refuse the 21st desktop user of the
    site. Each client is counted under its own address, where it arrived."""
    a, b = nodes
    owner = new_user("Ada")
    room_id = await new_room(a.daemon, owner)
    count = 24
    async with raw_client(a.daemon, owner, room_id) as ada, AsyncExitStack() as stack:
        for n in range(count):
            guest = await stack.enter_async_context(syncplay_client(b.bridge_port))
            answer = await guest.hello(f"desk {n}", room_id)
            assert any("Hello" in message for message in answer), (n, answer)
            await desktop_joined(ada, f"desk {n}")
