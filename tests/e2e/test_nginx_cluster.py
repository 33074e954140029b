"""docs/examples/nginx-cluster.conf, run by a real nginx in front of three stand-in nodes.

What the multi-node design needs of the proxy: every member of a room reaches the same
node (the key is ``?room=`` in the WebSocket URL), rooms spread over the nodes, a node that
stops hands only its own rooms to the others (consistent hashing), and gets them back once
it answers again. The nodes are ``StandIn`` servers that answer with their name: routing
is nginx's business, and no daemon could show it more plainly.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path
from uuid import NAMESPACE_URL, uuid5

import httpx
import pytest
import trio

from tests.e2e.nginx import require_nginx
from tests.e2e.nginx_cluster import StandIn, run_nginx_cluster

WS = "/api/v1/syncplay/ws"
ROOMS = [str(uuid5(NAMESPACE_URL, f"https://media.example/rooms/{n}")) for n in range(100)]
RETURN_LIMIT = 2.0  # the example never leaves a node out (max_fails=0): it is back at once


@dataclass
class Cluster:
    http: httpx.AsyncClient  # to nginx
    nodes: list[StandIn]
    nursery: trio.Nursery  # the nodes run here; a stopped one starts again in it

    def node(self, name: str) -> StandIn:
        return next(node for node in self.nodes if node.name == name)

    async def node_of(self, room: str) -> str:
        return await node_of(self.http, room)

    async def owners(self, rooms: Iterable[str] = ROOMS) -> dict[str, str]:
        return {room: await node_of(self.http, room) for room in rooms}


async def node_of(http: httpx.AsyncClient, room: str) -> str:
    """The node that answered a WebSocket URL naming ``room``."""
    response = await http.get(WS, params={"room": room})
    assert response.status_code == 200, response.text
    name: str = response.json()["node"]
    return name


@pytest.fixture
async def cluster(tmp_path: Path, nursery: trio.Nursery) -> AsyncIterator[Cluster]:
    require_nginx()
    nodes = [StandIn(name) for name in ("a", "b", "c")]
    for node in nodes:
        await nursery.start(node.serve)
    with run_nginx_cluster(tmp_path, [node.address for node in nodes]) as base:
        async with httpx.AsyncClient(base_url=base, timeout=10) as http:
            yield Cluster(http, nodes, nursery)


async def test_a_room_always_reaches_the_same_node(cluster: Cluster) -> None:
    first = await cluster.owners()
    # Again, in the other order, and through new connections to nginx.
    async with httpx.AsyncClient(base_url=cluster.http.base_url, timeout=10) as other:
        again = {room: await node_of(other, room) for room in ROOMS}
    assert again == first
    assert await cluster.owners(reversed(ROOMS)) == first


async def test_rooms_spread_over_every_node(cluster: Cluster) -> None:
    shares = Counter((await cluster.owners()).values())
    # nginx hashes each node's address (its port is random here) to 160 points on the ring.
    # Over 300 runs with random ports, the smallest node's share averaged 28 rooms (standard
    # deviation 2.7, lowest 19): under 15 would be a 5-sigma accident.
    assert set(shares) == {"a", "b", "c"}
    assert min(shares.values()) >= 15, shares


async def test_requests_without_a_room_are_spread_over_the_nodes(cluster: Cluster) -> None:
    """nginx's hash falls back to round robin for an empty key: any node answers REST."""
    requests = [
        ("GET", "/api/v1/syncplay/rooms"),
        ("POST", "/api/v1/syncplay/rooms"),
        ("GET", "/api/v1/syncplay/rooms/1234/participants"),
        ("GET", WS),
        ("GET", f"{WS}?room="),
        ("GET", "/syncplay/"),
    ]
    nodes: Counter[str] = Counter()
    for method, target in requests * 5:
        answer = await cluster.http.request(method, target)
        assert answer.status_code == 200
        nodes[answer.json()["node"]] += 1
    assert set(nodes) == {"a", "b", "c"}, nodes


async def test_the_node_gets_the_upgrade_the_host_and_the_client(cluster: Cluster) -> None:
    upgrade = {"Upgrade": "websocket", "Connection": "Upgrade", "Host": "media.example:8443"}
    answer = await cluster.http.get(WS, params={"room": ROOMS[0]}, headers=upgrade)
    seen = answer.json()
    assert seen["target"] == f"{WS}?room={ROOMS[0]}"  # path and query unchanged
    assert seen["headers"]["upgrade"] == "websocket"
    assert seen["headers"]["connection"] == "upgrade"
    assert seen["headers"]["host"] == "media.example:8443"  # port included: the origin check
    assert seen["headers"]["x-forwarded-for"] == "127.0.0.1"
    assert seen["headers"]["x-forwarded-proto"] == "http"
    plain = (await cluster.http.get("/api/v1/syncplay/rooms")).json()
    assert plain["headers"]["connection"] == "close"
    assert "upgrade" not in plain["headers"]
    # The watch page's location passes the Host too (server.allowed_hosts checks it there).
    page = await cluster.http.get("/syncplay/", headers={"Host": "media.example"})
    assert page.json()["headers"]["host"] == "media.example"


async def test_a_stopped_node_s_rooms_move_and_come_back(cluster: Cluster) -> None:
    before = await cluster.owners()
    gone = cluster.node(Counter(before.values()).most_common(1)[0][0])
    others = {node.name for node in cluster.nodes} - {gone.name}
    await gone.stop()

    during = await cluster.owners()
    # Its rooms went to the others (both of them: its points lie all around the ring)...
    assert {during[room] for room in ROOMS if before[room] == gone.name} == others
    # ...and no other room moved.
    assert {room: during[room] for room in ROOMS if before[room] != gone.name} == {
        room: owner for room, owner in before.items() if owner != gone.name
    }
    # A POST for one of its rooms reaches one other node once: nginx resends a request to
    # the next node when the connection was refused, before anything was sent.
    room = next(room for room in ROOMS if before[room] == gone.name)
    posted = await cluster.http.post(WS, params={"room": room}, content=b"{}")
    assert posted.status_code == 200
    assert posted.json()["node"] == during[room]
    assert sum(r.method == "POST" for node in cluster.nodes for r in node.requests) == 1

    await cluster.nursery.start(gone.serve)  # the same port again
    # nginx tries the node for each of its rooms' requests (max_fails=0): the first request
    # after it listens again reaches it. Nothing announces that, so polling, every 50 ms.
    with trio.fail_after(RETURN_LIMIT):
        while await cluster.node_of(room) != gone.name:  # noqa: ASYNC110
            await trio.sleep(0.05)
    assert await cluster.owners() == before


async def test_a_node_taken_off_or_added_to_the_list_moves_only_its_rooms(
    cluster: Cluster, tmp_path: Path
) -> None:
    """Consistent hashing proper: after ``nginx -s reload`` with one node less or one more,
    every other room stays where it was (a plain hash would move most of them)."""
    before = await cluster.owners()
    a, b, c = cluster.nodes
    d = StandIn("d")
    await cluster.nursery.start(d.serve)
    for listed in ([a, c], [a, b, c, d]):
        folder = tmp_path / "".join(node.name for node in listed)
        folder.mkdir()
        with run_nginx_cluster(folder, [node.address for node in listed]) as base:
            async with httpx.AsyncClient(base_url=base, timeout=10) as http:
                after = {room: await node_of(http, room) for room in ROOMS}
        moved = {room: after[room] for room in ROOMS if after[room] != before[room]}
        if b in listed:  # d joined: the rooms it took are all that moved
            assert set(moved.values()) == {"d"}
        else:  # b left: its rooms are all that moved
            assert set(moved) == {room for room in ROOMS if before[room] == "b"}


async def test_a_get_answered_502_is_sent_to_the_next_node(cluster: Cluster) -> None:
    owners = await cluster.owners(ROOMS[:10])
    failing = cluster.node(owners[ROOMS[0]])
    failing.status = 502
    failing.requests.clear()
    answer = await cluster.http.get(WS, params={"room": ROOMS[0]})
    assert answer.status_code == 200
    assert answer.json()["node"] != failing.name
    assert [r.target for r in failing.requests] == [f"{WS}?room={ROOMS[0]}"]  # tried first


async def test_a_post_answered_502_is_not_sent_again(cluster: Cluster) -> None:
    owners = await cluster.owners(ROOMS[:10])
    failing = cluster.node(owners[ROOMS[0]])
    failing.status = 502
    answer = await cluster.http.post(WS, params={"room": ROOMS[0]}, content=b"{}")
    # The node got it: sending it elsewhere could apply it twice. The client sees the 502.
    assert answer.status_code == 502
    posts = [node.name for node in cluster.nodes for r in node.requests if r.method == "POST"]
    assert posts == [failing.name]
