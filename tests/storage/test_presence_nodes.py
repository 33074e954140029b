"""Presence written by two nodes at once (PostgreSQL): around a room's hand-over the old
node and the new one may both write its members' presence, in batches."""

from __future__ import annotations

import uuid

import pytest
import trio

from syncplayd.storage import PresenceUpdate, Repository, Role
from tests.storage.factories import at, new_room


@pytest.mark.postgres
async def test_batches_naming_members_in_opposite_orders_do_not_deadlock(
    nodes: tuple[Repository, Repository],
) -> None:
    repo = nodes[0]
    room = await repo.create_room(new_room(max_participants=100))
    users = [uuid.uuid4() for _ in range(40)]
    for user in users:
        await repo.add_participant(room.id, user, "Member", Role.MEMBER, at(1))

    async def write(node: Repository, order: list[uuid.UUID], connected: bool) -> None:
        await node.record_presence([PresenceUpdate(room.id, u, connected, at(2)) for u in order])

    with trio.fail_after(30):
        for _ in range(10):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(write, nodes[0], users, True)
                nursery.start_soon(write, nodes[1], users[::-1], False)
    # Both went in, one after the other: every member written has the state of the last
    # (the room's owner, a participant too, was not written).
    written = set(users)
    states = {m.is_connected for m in await repo.list_participants(room.id) if m.user_id in written}
    assert len(states) == 1
