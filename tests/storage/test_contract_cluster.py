"""The repository contract for the cluster: the node registry and the room owner rows.

On memory, SQLite and PostgreSQL (the ``repo`` fixture). SQLite refuses multi-node mode,
but its schema and repository stay parallel to PostgreSQL's.
"""

from __future__ import annotations

import dataclasses
import uuid
from datetime import timedelta, timezone

import pytest

from syncplayd.storage import NodeRecord, Repository, RoomNotFound, RoomOwner
from tests.storage.factories import T0, at, new_room


def node(node_id: str, *, started: float = 0.0, pid: int = 4242) -> NodeRecord:
    return NodeRecord(
        node_id=node_id,
        url=f"http://10.0.0.{len(node_id)}:8096",
        pid=pid,
        started_at=at(started),
        heartbeat_at=at(started),
    )


# -- nodes -----------------------------------------------------------------------------------


async def test_nodes_register_and_list_oldest_first(repo: Repository) -> None:
    assert await repo.list_nodes() == []
    b, a = node("node-b", started=5), node("node-a", started=10)
    await repo.upsert_node(a)
    await repo.upsert_node(b)
    assert await repo.list_nodes() == [b, a]


async def test_nodes_started_together_list_by_id(repo: Repository) -> None:
    for name in ("charlie", "alpha", "bravo"):
        await repo.upsert_node(node(name, started=1))
    assert [n.node_id for n in await repo.list_nodes()] == ["alpha", "bravo", "charlie"]


async def test_upsert_replaces_a_restarted_nodes_row(repo: Repository) -> None:
    await repo.upsert_node(node("node-a", started=0, pid=100))
    restarted = NodeRecord("node-a", "http://10.0.0.9:9000", 200, at(60), at(61))
    await repo.upsert_node(restarted)
    assert await repo.list_nodes() == [restarted]


async def test_a_nodes_syncplay_bridge_round_trips(repo: Repository) -> None:
    ipv4 = dataclasses.replace(node("node-a"), syncplay_bridge="10.0.0.6:8999")
    ipv6 = dataclasses.replace(node("node-b", started=1), syncplay_bridge="[::1]:8999")
    none = node("node-c", started=2)
    assert none.syncplay_bridge is None  # the default: no listener
    for record in (ipv4, ipv6, none):
        await repo.upsert_node(record)
    assert await repo.list_nodes() == [ipv4, ipv6, none]
    assert [n.syncplay_bridge for n in await repo.list_nodes()] == [
        "10.0.0.6:8999",
        "[::1]:8999",
        None,
    ]


async def test_upsert_sets_and_clears_the_syncplay_bridge(repo: Repository) -> None:
    await repo.upsert_node(node("node-a"))
    # The node restarts with a Syncplay listener, then without one again.
    bridged = dataclasses.replace(node("node-a", started=5), syncplay_bridge="127.0.0.1:8999")
    await repo.upsert_node(bridged)
    assert await repo.list_nodes() == [bridged]
    unbridged = dataclasses.replace(bridged, syncplay_bridge=None)
    await repo.upsert_node(unbridged)
    assert await repo.list_nodes() == [unbridged]
    # A heartbeat keeps it.
    await repo.upsert_node(bridged)
    assert await repo.touch_node("node-a", at(30)) is True
    (stored,) = await repo.list_nodes()
    assert stored.syncplay_bridge == "127.0.0.1:8999"


async def test_node_times_come_back_in_utc_with_microseconds(repo: Repository) -> None:
    plus_two = timezone(timedelta(hours=2))
    started = T0.astimezone(plus_two).replace(microsecond=654321)
    naive_beat = (T0 + timedelta(seconds=3)).replace(tzinfo=None)  # taken as UTC
    await repo.upsert_node(NodeRecord("node-a", "http://a", 1, started, naive_beat))
    (stored,) = await repo.list_nodes()
    assert stored.started_at == started
    assert stored.started_at.utcoffset() == timedelta(0)
    assert stored.heartbeat_at == at(3)


async def test_touch_moves_only_the_heartbeat(repo: Repository) -> None:
    a, b = node("node-a"), node("node-b", started=1)
    await repo.upsert_node(a)
    await repo.upsert_node(b)
    assert await repo.touch_node("node-a", at(30)) is True
    assert await repo.list_nodes() == [dataclasses.replace(a, heartbeat_at=at(30)), b]


async def test_touch_tells_a_node_that_its_row_is_gone(repo: Repository) -> None:
    assert await repo.touch_node("node-a", at(1)) is False
    await repo.upsert_node(node("node-a"))
    assert await repo.remove_node("node-a") is True
    assert await repo.touch_node("node-a", at(2)) is False
    assert await repo.list_nodes() == []  # a touch does not bring the row back


async def test_remove_node_leaves_the_others_and_its_owner_rows(repo: Repository) -> None:
    room = await repo.create_room(new_room())
    await repo.upsert_node(node("node-a"))
    await repo.upsert_node(node("node-b", started=1))
    await repo.set_room_owner(room.id, "node-a", at(2))
    assert await repo.remove_node("node-a") is True
    assert await repo.remove_node("node-a") is False
    assert [n.node_id for n in await repo.list_nodes()] == ["node-b"]
    # The owner row goes with clear_node_rooms, not with the registry row.
    assert await repo.room_owner(room.id) == RoomOwner(room.id, "node-a", at(2))


# -- room owners -----------------------------------------------------------------------------


async def test_set_room_owner_records_and_replaces_the_owner(repo: Repository) -> None:
    room, other = await repo.create_room(new_room()), await repo.create_room(new_room())
    assert await repo.room_owner(room.id) is None
    await repo.set_room_owner(room.id, "node-a", at(1))
    assert await repo.room_owner(room.id) == RoomOwner(room.id, "node-a", at(1))
    # The row says the latest owner: another node took the room over.
    await repo.set_room_owner(room.id, "node-b", at(5))
    assert await repo.room_owner(room.id) == RoomOwner(room.id, "node-b", at(5))
    assert await repo.room_owners() == [RoomOwner(room.id, "node-b", at(5))]
    assert await repo.room_owner(other.id) is None


async def test_set_room_owner_of_an_unknown_room_is_refused(repo: Repository) -> None:
    with pytest.raises(RoomNotFound):
        await repo.set_room_owner(uuid.uuid4(), "node-a", at(1))
    assert await repo.room_owners() == []


async def test_clear_room_owner_only_for_the_node_named(repo: Repository) -> None:
    room = await repo.create_room(new_room())
    assert await repo.clear_room_owner(room.id, "node-a") is False  # no row
    await repo.set_room_owner(room.id, "node-b", at(1))
    # node-a letting go late must not erase node-b's row.
    assert await repo.clear_room_owner(room.id, "node-a") is False
    assert await repo.room_owner(room.id) == RoomOwner(room.id, "node-b", at(1))
    assert await repo.clear_room_owner(room.id, "node-b") is True
    assert await repo.room_owner(room.id) is None
    assert await repo.clear_room_owner(room.id, "node-b") is False


async def test_clear_node_rooms_clears_that_nodes_rows_only(repo: Repository) -> None:
    rooms = [await repo.create_room(new_room(created=i)) for i in range(4)]
    for i, room in enumerate(rooms):
        await repo.set_room_owner(room.id, "node-a" if i < 3 else "node-b", at(i))
    assert await repo.clear_node_rooms("node-a") == 3
    assert await repo.room_owners() == [RoomOwner(rooms[3].id, "node-b", at(3))]
    assert await repo.clear_node_rooms("node-a") == 0
    assert await repo.clear_node_rooms("node-c") == 0


async def test_room_owners_oldest_first_then_by_room(repo: Repository) -> None:
    rooms = [await repo.create_room(new_room()) for _ in range(4)]
    await repo.set_room_owner(rooms[0].id, "node-a", at(9))
    await repo.set_room_owner(rooms[1].id, "node-b", at(3))
    # Two taken at the same instant: by room id.
    await repo.set_room_owner(rooms[2].id, "node-a", at(6))
    await repo.set_room_owner(rooms[3].id, "node-b", at(6))
    twins = sorted([rooms[2].id, rooms[3].id])
    assert [o.room_id for o in await repo.room_owners()] == [
        rooms[1].id,
        *twins,
        rooms[0].id,
    ]


async def test_deleting_or_purging_a_room_deletes_its_owner_row(repo: Repository) -> None:
    deleted, ended, kept = [await repo.create_room(new_room()) for _ in range(3)]
    for room in (deleted, ended, kept):
        await repo.set_room_owner(room.id, "node-a", at(1))
    assert await repo.delete_room(deleted.id) is True
    assert await repo.end_room(ended.id, at(2)) is True
    # Ending a room leaves the row (the owner clears it when the room stops on it).
    assert await repo.room_owner(ended.id) is not None
    assert await repo.purge_ended_rooms(at(3), 10) == 1
    assert await repo.room_owners() == [RoomOwner(kept.id, "node-a", at(1))]
