"""Three daemons on one PostgreSQL behind a real nginx: rooms spread over nodes, failover.

Real processes throughout: three ``syncplayd`` nodes (multi-node mode, one database), nginx
configured by docs/examples/nginx-cluster.conf (``hash $arg_room consistent``), and Python
clients connecting through nginx with the room in the URL. The acceptance of issue 18:

* a REST chat post and a room update sent to each node reach the members of a room live on
  another node (measured: p99 within 50 ms);
* kill -9 of the node running the most rooms: every affected client is back in its room on
  another node within 5 s, no acknowledged chat is lost, playing rooms go on from where they
  were; the node restarts and the rooms it ran go back to it, with no room live on two nodes
  at any sampled instant (a checker asks every node every 100 ms).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from syncplayd.client import ClientOptions, SyncClient, open_sync_client
from syncplayd.core.protocol import ChatOut, Joined, RoomChanged
from syncplayd.identity import Principal
from syncplayd.server.live.cluster import STARTUP_GRACE_SECONDS
from tests.daemon_process import DaemonProcess, new_user, run_daemon
from tests.e2e.conftest import E2E_ENV
from tests.e2e.desktop import free_port
from tests.e2e.nginx import frame
from tests.e2e.nginx_cluster import cluster_http_block, run_nginx_cluster
from tests.e2e.raw import token
from tests.server.conftest import create_postgres_database, to_url

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

NODES = 3
FAILOVER_LIMIT = 5.0
CROSS_NODE_P99 = 0.050
ENV = E2E_ENV | {
    "SYNCPLAY_CLUSTER_ENABLED": "true",
    "SYNCPLAY_WS_MAX_CONNECTIONS_PER_USER": "5",
    "SYNCPLAY_ROOMS_MAX_ROOMS_PER_USER": "100",
    "SYNCPLAY_ROOMS_CREATES_PER_HOUR": "1000",
    "SYNCPLAY_WS_JOINS_PER_MINUTE": "10000",
}
FAST = ClientOptions(
    fast_ping_interval=0.05,
    reconnect_initial_delay=0.1,
    reconnect_max_delay=0.5,
    request_timeout=10.0,
)


@dataclass
class Node:
    name: str
    port: int
    folder: Path
    process: DaemonProcess | None = None
    stack: ExitStack = field(default_factory=ExitStack)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Cluster:
    database_url: str
    nodes: list[Node]
    proxy: str  # http://127.0.0.1:PORT, nginx
    nginx_folder: Path | None = None
    started: float = 0.0  # time.monotonic() once every node was up
    admin: Principal = field(default_factory=lambda: new_user("operator", admin=True))

    def start(self, node: Node) -> None:
        env = ENV | {
            "SYNCPLAY_LISTEN": f"127.0.0.1:{node.port}",
            "SYNCPLAY_CLUSTER_NODE_ID": node.name,
        }
        node.stack = ExitStack()
        node.process = node.stack.enter_context(run_daemon(self.database_url, node.folder, env))

    def reload_proxy(self) -> None:
        """nginx reads its configuration again, with every node now in the list (SIGHUP)."""
        assert self.nginx_folder is not None
        port = int(self.proxy.rsplit(":", 1)[1])
        upstreams = [f"127.0.0.1:{node.port}" for node in self.nodes]
        conf = self.nginx_folder / "nginx.conf"
        conf.write_text(frame(self.nginx_folder, cluster_http_block(port, upstreams), master=True))
        pid = int((self.nginx_folder / "nginx.pid").read_text())
        os.kill(pid, signal.SIGHUP)

    def kill(self, node: Node) -> None:
        assert node.process is not None
        node.process.stop(signal.SIGKILL)
        node.stack.close()
        node.process = None

    def status(self, node: Node) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {token(self.admin)}"}
        answer = httpx.get(f"{node.url}/api/v1/admin/status", headers=headers, timeout=5)
        answer.raise_for_status()
        result: dict[str, Any] = answer.json()
        return result

    def live_here(self) -> dict[str, set[str]]:
        """Each running node's live rooms, asked now."""
        return {
            node.name: set(self.status(node)["cluster"]["live_here"])
            for node in self.nodes
            if node.process is not None
        }

    def live_twice(self) -> set[str]:
        """Rooms live on two nodes at one instant, as sampling can prove it.

        The nodes are asked one after the other, twice: a room found on node X in both
        rounds was live there throughout, from X's first answer to its second; found on Y
        in both rounds too, it was live on Y at Y's first answer, which came in between.
        (One round alone would report a room that moved from X to Y between the questions.)
        """
        first, second = self.live_here(), self.live_here()
        held = [first[name] & second.get(name, set()) for name in first]
        return {room for i, a in enumerate(held) for b in held[i + 1 :] for room in a & b}

    def rest(self, principal: Principal, node: Node | None = None) -> httpx.Client:
        base = node.url if node is not None else self.proxy
        return httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {token(principal)}"}, timeout=10
        )

    @property
    def ws(self) -> str:
        return self.proxy.replace("http://", "ws://") + "/api/v1/syncplay/ws"


@pytest.fixture(scope="module")
def cluster(
    postgres_server_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    folder = tmp_path_factory.mktemp("cluster")
    database = to_url(create_postgres_database(postgres_server_url))
    nodes = [Node(f"n{i}", free_port(), folder / f"n{i}") for i in range(1, NODES + 1)]
    found = Cluster(database, nodes, proxy="")
    try:
        for node in nodes:
            found.start(node)
        found.started = time.monotonic()
        upstreams = [f"127.0.0.1:{node.port}" for node in nodes]
        (folder / "nginx").mkdir()
        with run_nginx_cluster(folder / "nginx", upstreams, master=True) as proxy:
            found.proxy = proxy
            found.nginx_folder = folder / "nginx"
            yield found
        for node in nodes:
            if node.process is not None:
                assert not any("Traceback" in line for line in node.process.log_lines), "\n".join(
                    node.process.log_lines[-80:]
                )
    finally:
        for node in nodes:
            node.stack.close()


def new_room(cluster: Cluster, owner: Principal, name: str) -> str:
    with cluster.rest(owner) as client:
        answer = client.post(
            "/api/v1/syncplay/rooms",
            json={"name": name, "content_type": "movie", "content_id": "m1", "is_public": True},
        )
        assert answer.status_code == 201, answer.text
        room_id: str = answer.json()["id"]
        return room_id


@asynccontextmanager
async def member(cluster: Cluster, principal: Principal, room_id: str) -> AsyncIterator[SyncClient]:
    async with open_sync_client(
        cluster.ws, token(principal), room_id=room_id, options=FAST
    ) as client:
        yield client


def owner_of(cluster: Cluster, room_id: str) -> Node:
    for name, rooms in cluster.live_here().items():
        if room_id in rooms:
            return next(node for node in cluster.nodes if node.name == name)
    raise AssertionError(f"room {room_id} is live nowhere")


def test_status_lists_the_nodes_and_their_rooms(cluster: Cluster, tmp_path: Path) -> None:
    owner = new_user("Cy")
    room_id = new_room(cluster, owner, "status")
    # Live once somebody is in it.

    async def visit() -> dict[str, Any]:
        async with member(cluster, owner, room_id):
            home = owner_of(cluster, room_id)
            return cluster.status(cluster.nodes[0]) | {"home": home.name}

    data = trio.run(visit)
    nodes = {node["node_id"]: node for node in data["cluster"]["nodes"]}
    assert set(nodes) == {"n1", "n2", "n3"} and all(n["alive"] for n in nodes.values())
    assert room_id in nodes[data["home"]]["rooms"]
    assert data["cluster"]["node_id"] == "n1"
    # syncplayctl shows the same, as a table.
    token_file = tmp_path / "admin.token"
    token_file.write_text(token(cluster.admin))
    shown = subprocess.run(
        [sys.executable, "-m", "syncplayd.cli.ctl", "--url", cluster.nodes[1].url,
         "--token-file", str(token_file), "status"],
        capture_output=True, text=True, timeout=30, check=True,
    ).stdout  # fmt: skip
    assert "nodes (this is n2):" in shown
    for name in ("n1", "n2", "n3"):
        assert re.search(rf"^{name}\s+http://127\.0\.0\.1:\d+\s+alive", shown, re.M), shown


async def test_changes_made_on_any_node_reach_the_room_on_its_node(cluster: Cluster) -> None:
    owner = new_user("Ada")
    room_id = new_room(cluster, owner, "cross-node")
    async with member(cluster, owner, room_id) as ada:
        home = owner_of(cluster, room_id)
        delays: list[float] = []
        for node in cluster.nodes:
            with cluster.rest(owner, node) as rest:
                for n in range(10):
                    mark = ada.received_count
                    sent = trio.current_time()
                    text = f"from {node.name} #{n}"
                    answer = rest.post(
                        f"/api/v1/syncplay/rooms/{room_id}/chat", json={"message": text}
                    )
                    assert answer.status_code == 201, answer.text
                    await ada.wait_for(
                        lambda m, t=text: isinstance(m, ChatOut) and m.message.message == t,
                        since=mark,
                    )
                    delays.append(trio.current_time() - sent)
                for n in range(5):
                    mark = ada.received_count
                    sent = trio.current_time()
                    renamed = f"renamed on {node.name} #{n}"
                    answer = rest.put(f"/api/v1/syncplay/rooms/{room_id}", json={"name": renamed})
                    assert answer.status_code == 200, answer.text
                    await ada.wait_for(
                        lambda m, r=renamed: isinstance(m, RoomChanged) and m.room.name == r,
                        since=mark,
                    )
                    delays.append(trio.current_time() - sent)
        # In order: changes a node sends reach the room in the order it made them.
        other = next(node for node in cluster.nodes if node is not home)
        mark = ada.received_count
        with cluster.rest(owner, other) as rest:
            for n in range(20):
                answer = rest.post(
                    f"/api/v1/syncplay/rooms/{room_id}/chat", json={"message": f"in order {n}"}
                )
                assert answer.status_code == 201, answer.text
        await ada.wait_for(
            lambda m: isinstance(m, ChatOut) and m.message.message == "in order 19", since=mark
        )
        seen = [e.message for e in ada.chat_history if e.message.startswith("in order")]
        assert seen == [f"in order {n}" for n in range(20)]
        delays.sort()
        p99 = delays[int(0.99 * (len(delays) - 1))]
        median = statistics.median(delays)
        print(f"cross-node chat and room updates via REST: p50 {median * 1000:.1f} ms,"
              f" p99 {p99 * 1000:.1f} ms; room live on {home.name}")  # fmt: skip
        assert p99 <= CROSS_NODE_P99


async def test_a_killed_node_s_rooms_come_back_on_the_others(cluster: Cluster) -> None:
    rooms = 30
    per_room = 5
    owners = [new_user(f"Owner{r}") for r in range(rooms)]
    room_ids = [new_room(cluster, owners[r], f"room {r}") for r in range(rooms)]
    people = {room: [owners[r]] + [new_user(f"P{r}-{i}") for i in range(per_room - 1)]
              for r, room in enumerate(room_ids)}  # fmt: skip
    async with contextlib.AsyncExitStack() as stack:
        clients: dict[str, list[SyncClient]] = {}
        for room in room_ids:
            clients[room] = [
                await stack.enter_async_context(member(cluster, p, room)) for p in people[room]
            ]
        for room in room_ids:
            await clients[room][0].play(0.0)
        acked: dict[str, list[str]] = {room: [] for room in room_ids}
        for room in room_ids:
            acked[room].append(await clients[room][1].chat("before the crash"))
        # This test's rooms only (the module's other tests leave rooms live too).
        where = {name: rooms & set(room_ids) for name, rooms in cluster.live_here().items()}
        victim_name = max(where, key=lambda name: len(where[name]))
        victim = next(node for node in cluster.nodes if node.name == victim_name)
        affected = sorted(where[victim_name])
        assert affected, "the busiest node runs no room"
        before = {room: clients[room][0].room_position() for room in affected}
        marks = {room: [c.received_count for c in clients[room]] for room in affected}
        killed_at = trio.current_time()
        cluster.kill(victim)
        back: list[float] = []

        async def wait_back(room: str, index: int) -> None:
            client = clients[room][index]
            await client.wait_for(
                lambda m: isinstance(m, Joined), timeout=10, since=marks[room][index]
            )
            back.append(trio.current_time() - killed_at)

        async with trio.open_nursery() as nursery:
            for room in affected:
                for index in range(per_room):
                    nursery.start_soon(wait_back, room, index)
        print(f"{len(affected)} rooms, {len(back)} clients back: p50"
              f" {statistics.median(back):.2f} s, max {max(back):.2f} s")  # fmt: skip
        assert max(back) <= FAILOVER_LIMIT
        # Playing on from where they were (their stored state and the time since).
        elapsed = trio.current_time() - killed_at
        for room in affected:
            now = clients[room][0].room_position()
            assert abs(now - (before[room] + elapsed)) <= 2.0, (room, before[room], now)
        # Nothing acknowledged is lost.
        with cluster.rest(owners[0]) as rest:
            for room in room_ids:
                history = rest.get(f"/api/v1/syncplay/rooms/{room}/chat").json()
                stored = {message["id"] for message in history["items"]}
                assert set(acked[room]) <= stored
        # Back it comes: its rooms go home, never live on two nodes at once.
        seen_twice: list[tuple[str, set[str]]] = []
        stop = trio.Event()

        async def checker() -> None:
            while not stop.is_set():
                twice = await trio.to_thread.run_sync(cluster.live_twice)
                seen_twice.extend((room, set()) for room in twice)
                await trio.sleep(0.1)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(checker)
            await trio.to_thread.run_sync(cluster.start, victim)
            # Every room it ran goes back to it (the proxy prefers it for them).
            try:
                with trio.fail_after(30):
                    # Polling the nodes: nothing announces a move to a test.
                    while not set(affected) <= cluster.live_here().get(victim.name, set()):  # noqa: ASYNC110
                        await trio.sleep(0.2)
            except trio.TooSlowError:
                view = cluster.live_here()
                where_now = {room: [n for n, rs in view.items() if room in rs] for room in affected}
                raise AssertionError(f"not all home on {victim.name}: {where_now}") from None
            returned_at = trio.current_time()
            # A chat during the move still lands.
            for room in affected[:5]:
                acked[room].append(await clients[room][2].chat("after the return"))
            stop.set()
        print(f"all {len(affected)} rooms home {returned_at - killed_at:.1f} s after the kill")
        assert seen_twice == []
        # And every member is back in its room (the last ones may still be reconnecting).
        everyone = [client for room in room_ids for client in clients[room]]
        with trio.fail_after(10):
            while not all(c.connected and c.joined is not None for c in everyone):  # noqa: ASYNC110
                await trio.sleep(0.1)  # polling: a client announces no settled state
        with cluster.rest(owners[0]) as rest:
            for room in affected[:5]:
                history = rest.get(f"/api/v1/syncplay/rooms/{room}/chat").json()
                assert set(acked[room]) <= {message["id"] for message in history["items"]}


async def test_a_new_node_gets_the_paused_rooms_the_proxy_now_sends_it(
    cluster: Cluster, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # Rooms standing paused (nobody's film is interrupted by a reconnect). Enough that nginx
    # prefers the newcomer for some: its share is about a quarter, (3/4)^24 < 0.1 %.
    owners = [new_user(f"Pa{r}") for r in range(24)]
    room_ids = [new_room(cluster, owner, f"paused {r}") for r, owner in enumerate(owners)]
    async with contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(member(cluster, owner, room))
            for owner, room in zip(owners, room_ids, strict=True)
        ]
        before = {
            room: name for name, rooms in cluster.live_here().items() for room in rooms
            if room in room_ids
        }  # fmt: skip
        assert set(before) == set(room_ids)
        seen_twice: list[str] = []
        stop = trio.Event()

        async def checker() -> None:
            while not stop.is_set():
                seen_twice.extend(await trio.to_thread.run_sync(cluster.live_twice))
                await trio.sleep(0.1)

        # A newcomer, not a node starting with the others (STARTUP_GRACE_SECONDS).
        await trio.sleep(max(0.0, cluster.started + STARTUP_GRACE_SECONDS + 1 - time.monotonic()))
        newcomer = Node("n4", free_port(), tmp_path_factory.mktemp("n4"))
        cluster.nodes.append(newcomer)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(checker)
            await trio.to_thread.run_sync(cluster.start, newcomer)
            cluster.reload_proxy()
            # nginx now prefers n4 for about a quarter of the rooms: those go there.
            with trio.fail_after(30):
                while not cluster.live_here().get("n4"):  # noqa: ASYNC110
                    await trio.sleep(0.2)  # polling the nodes: nothing announces a move
            # Settled once every client is back and every room live somewhere: a room
            # handed over is live nowhere until its member has come back through the proxy.
            # The rooms are read once per look, and that reading is the one checked below
            # (read again, it could catch the next room in its hand-over).
            with trio.fail_after(15):
                while True:
                    after = {
                        room: name for name, rooms in cluster.live_here().items()
                        for room in rooms if room in room_ids
                    }  # fmt: skip
                    back = all(c.connected and c.joined is not None for c in clients)
                    if back and set(after) == set(room_ids):
                        break
                    await trio.sleep(0.1)
            stop.set()
        assert seen_twice == []
        moved = {room: after.get(room) for room in room_ids if after.get(room) != before[room]}
        print(f"n4 joined: {len(moved)} of {len(room_ids)} paused rooms moved to it")
        # Consistent hashing: a room either went to the newcomer or stayed where it was.
        assert moved and set(moved.values()) == {"n4"}, moved
        # Every other node took n4 for a newcomer, the one restarted by the test before too
        # (it once counted from its own start, took n4 for a peer and kept its rooms).
        for node in cluster.nodes:
            if node is not newcomer and node.process is not None:
                assert any("['n4'] joined" in line for line in node.process.log_lines), node.name
