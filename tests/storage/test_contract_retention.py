"""The repository contract for what bounds the database: live invitations per room, and the
purges of ended rooms and old events. On memory, SQLite and PostgreSQL."""

from __future__ import annotations

import uuid

import pytest
import trio

from syncplayd.storage import (
    ChatMessage,
    NewEvent,
    Repository,
    Role,
    RoomNotFound,
    TooManyInvitations,
)
from tests.storage.factories import at, invitation, new_room


async def test_create_invitation_counts_live_invitations(repo: Repository) -> None:
    room = await repo.create_room(new_room())
    other = await repo.create_room(new_room())
    # Not live at at(0): expired, or used up. Neither counts.
    await repo.create_invitation(invitation(room.id, expires=-1))
    await repo.create_invitation(invitation(room.id, max_uses=1, use_count=1))
    await repo.create_invitation(invitation(other.id), max_live=1)  # another room's
    for _ in range(2):
        await repo.create_invitation(invitation(room.id, max_uses=2, use_count=1), max_live=2)
    with pytest.raises(TooManyInvitations):
        await repo.create_invitation(invitation(room.id), max_live=2)
    await repo.create_invitation(invitation(room.id))  # no max_live: not counted
    with pytest.raises(RoomNotFound):
        await repo.create_invitation(invitation(uuid.uuid4()), max_live=5)


async def test_live_invitation_limit_holds_under_concurrency(repo: Repository) -> None:
    room = await repo.create_room(new_room())
    outcomes: list[str] = []

    async def create() -> None:
        try:
            await repo.create_invitation(invitation(room.id), max_live=3)
            outcomes.append("created")
        except TooManyInvitations:
            outcomes.append("refused")

    async with trio.open_nursery() as nursery:
        for _ in range(8):
            nursery.start_soon(create)
    assert sorted(outcomes) == ["created"] * 3 + ["refused"] * 5


async def test_purge_ended_rooms(repo: Repository) -> None:
    old = await repo.create_room(new_room(created=0))
    older = await repo.create_room(new_room(created=0))
    recent = await repo.create_room(new_room(created=0))
    active = await repo.create_room(new_room(created=0))
    user = uuid.uuid4()
    await repo.add_participant(old.id, user, "guest", Role.MEMBER, at(1))
    await repo.create_chat_message(ChatMessage(uuid.uuid4(), old.id, user, "guest", "hi", at(2)))
    await repo.log_events([NewEvent(old.id, "joined", at(1), user)])
    code = (await repo.create_invitation(invitation(old.id))).code
    await repo.end_room(older.id, at(10))
    await repo.end_room(old.id, at(20))
    await repo.end_room(recent.id, at(100))

    assert await repo.purge_ended_rooms(at(50), 1) == 1  # the limit: the oldest ended first
    assert await repo.get_room(older.id) is None
    assert await repo.get_room(old.id) is not None
    assert await repo.purge_ended_rooms(at(50), 10) == 1
    assert await repo.get_room(old.id) is None
    # With everything in it.
    assert await repo.get_participant(old.id, user) is None
    assert await repo.list_chat_messages(old.id, 10, 0) == ([], 0)
    assert await repo.list_events(old.id, 10, 0) == ([], 0)
    assert await repo.get_invitation(code) is None
    assert await repo.purge_ended_rooms(at(50), 10) == 0
    assert await repo.get_room(recent.id) is not None
    assert await repo.get_room(active.id) is not None
    assert await repo.purge_ended_rooms(at(10_000), 10) == 1  # the active room stays
    assert await repo.get_room(active.id) is not None
    with pytest.raises(ValueError, match="must be >= 0"):
        await repo.purge_ended_rooms(at(0), -1)


async def test_purge_events_by_age_and_per_room(repo: Repository) -> None:
    busy = await repo.create_room(new_room())
    quiet = await repo.create_room(new_room())
    await repo.log_events([NewEvent(busy.id, "seek", at(t)) for t in range(10)])
    await repo.log_events([NewEvent(quiet.id, "play", at(t)) for t in (1, 8)])
    newest_before = await repo.list_events(busy.id, 1, 0)

    # Older than at(2) everywhere (3 events), then the busy room down to its newest 4 (of 8 left).
    assert await repo.purge_events(at(2), 4) == 3 + 4
    busy_left, total = await repo.list_events(busy.id, 10, 0)
    assert total == 4
    assert [e.created_at for e in busy_left] == [at(t) for t in (9, 8, 7, 6)]
    assert [e.created_at for e in (await repo.list_events(quiet.id, 10, 0))[0]] == [at(8)]
    assert await repo.purge_events(at(2), 4) == 0

    # Ids are never reused: a reader paging "after id N" still sees only newer events.
    await repo.log_events([NewEvent(busy.id, "pause", at(20))])
    newest = (await repo.list_events(busy.id, 1, 0))[0][0]
    assert newest.id > newest_before[0][0].id
    assert await repo.purge_events(at(2), 0) == 5 + 1  # keep none: all of both rooms
    assert await repo.list_events(busy.id, 10, 0) == ([], 0)
    with pytest.raises(ValueError, match="must be >= 0"):
        await repo.purge_events(at(0), -1)
