"""The repository contract: chat, events, invitations and the repository's lifecycle.

Runs on memory, SQLite and PostgreSQL (the ``repo`` fixture); persistence across a
reopen on the two real databases (``database_url``).
"""

from __future__ import annotations

import dataclasses
import uuid
from pathlib import Path
from typing import Any

import pytest
import trio

from syncplayd.storage import (
    ChatMessage,
    DuplicateCode,
    Invitation,
    NewEvent,
    Playback,
    PlaybackState,
    Repository,
    Role,
    RoomFilters,
    RoomNotFound,
    RoomUpdate,
    StorageError,
    StorageUnavailable,
    open_repository,
)
from tests.storage.factories import at, invitation, new_room

# -- chat ------------------------------------------------------------------------------------


async def test_chat_messages(repo: Repository) -> None:
    room = await repo.create_room(new_room())
    user = uuid.uuid4()

    def message(second: float, text: str) -> ChatMessage:
        return ChatMessage(uuid.uuid4(), room.id, user, "Bob", text, at(second))

    sent = [await repo.create_chat_message(message(i, f"m{i}")) for i in range(4)]
    assert sent[0].message == "m0"
    assert sent[0].created_at == at(0)
    twins = [await repo.create_chat_message(message(10, "same time")) for _ in range(2)]
    newest_first = sorted(twins, key=lambda m: m.id, reverse=True) + sent[::-1]

    page, total = await repo.list_chat_messages(room.id, 4, 0)
    assert total == 6
    assert page == newest_first[:4]
    page, total = await repo.list_chat_messages(room.id, 4, 4)
    assert (page, total) == (newest_first[4:], 6)
    assert await repo.list_chat_messages(uuid.uuid4(), 4, 0) == ([], 0)

    assert await repo.delete_chat_message(sent[0].id)
    assert not await repo.delete_chat_message(sent[0].id)
    assert (await repo.list_chat_messages(room.id, 10, 0))[1] == 5
    with pytest.raises(RoomNotFound):
        await repo.create_chat_message(
            ChatMessage(uuid.uuid4(), uuid.uuid4(), user, "Bob", "lost", at(1))
        )
    with pytest.raises(ValueError, match="offset"):
        await repo.list_chat_messages(room.id, 10, -1)


# -- events ----------------------------------------------------------------------------------


async def test_events_batch_and_paging(repo: Repository) -> None:
    room = await repo.create_room(new_room())
    other = await repo.create_room(new_room())
    user = uuid.uuid4()
    payload = {"position": 12.5, "nested": {"list": [1, "two", None, True]}, "text": "ü"}
    await repo.log_events(
        [NewEvent(room.id, f"e{i}", at(i), user if i % 2 else None, {"i": i}) for i in range(5)]
        + [NewEvent(other.id, "elsewhere", at(1))]
    )
    await repo.log_events([NewEvent(room.id, "seek", at(9), user, payload)])
    await repo.log_events([])

    page, total = await repo.list_events(room.id, 3, 0)
    assert total == 6
    assert [e.type for e in page] == ["seek", "e4", "e3"]
    assert page[0].payload == payload
    assert (page[0].room_id, page[0].user_id, page[0].created_at) == (room.id, user, at(9))
    assert page[2].user_id == user
    assert page[1].user_id is None
    assert page[0].id > page[1].id > page[2].id
    page, _ = await repo.list_events(room.id, 3, 3)
    assert [e.type for e in page] == ["e2", "e1", "e0"]
    assert [e.payload for e in page] == [{"i": 2}, {"i": 1}, {"i": 0}]
    assert (await repo.list_events(other.id, 10, 0))[1] == 1


async def test_events_after_an_id_oldest_first(repo: Repository) -> None:
    room = await repo.create_room(new_room())
    other = await repo.create_room(new_room())
    await repo.log_events(
        [NewEvent(room.id, f"e{i}", at(i)) for i in range(5)] + [NewEvent(other.id, "x", at(1))]
    )
    everything = await repo.list_events_after(room.id, 0, 100)
    assert [e.type for e in everything] == ["e0", "e1", "e2", "e3", "e4"]
    newer = await repo.list_events_after(room.id, everything[1].id, 2)
    assert [e.type for e in newer] == ["e2", "e3"]
    assert await repo.list_events_after(room.id, everything[-1].id, 10) == []
    with pytest.raises(ValueError, match="limit"):
        await repo.list_events_after(room.id, 0, -1)


async def test_event_batch_is_all_or_nothing(repo: Repository) -> None:
    room = await repo.create_room(new_room())
    with pytest.raises(RoomNotFound):
        await repo.log_events([NewEvent(room.id, "ok", at(1)), NewEvent(uuid.uuid4(), "x", at(1))])
    assert await repo.list_events(room.id, 10, 0) == ([], 0)


# -- invitations -----------------------------------------------------------------------------


async def test_create_get_delete_invitation(repo: Repository) -> None:
    room = await repo.create_room(new_room())
    invited = uuid.uuid4()
    new = invitation(room.id, code="ABCDEFGHIJ", max_uses=5, invited_user_id=invited)
    stored = await repo.create_invitation(new)
    assert stored == new
    assert await repo.get_invitation("ABCDEFGHIJ") == new
    assert await repo.get_invitation("abcdefghij") is None  # codes are exact
    assert await repo.get_invitation("NOPE") is None

    with pytest.raises(DuplicateCode):
        await repo.create_invitation(invitation(room.id, code="ABCDEFGHIJ"))
    with pytest.raises(RoomNotFound):
        await repo.create_invitation(invitation(uuid.uuid4()))
    with pytest.raises(StorageError):
        await repo.create_invitation(invitation(room.id, max_uses=0))

    assert await repo.delete_invitation(new.id)
    assert not await repo.delete_invitation(new.id)
    assert await repo.get_invitation("ABCDEFGHIJ") is None


async def test_list_invitations_newest_first(repo: Repository) -> None:
    room = await repo.create_room(new_room())
    other = await repo.create_room(new_room())

    async def create(room_id: uuid.UUID, second: float, **options: Any) -> Invitation:
        made = dataclasses.replace(invitation(room_id, **options), created_at=at(second))
        return await repo.create_invitation(made)

    old = await create(room.id, 1, expires=2)  # expired and used up: still listed
    used = await create(room.id, 2, max_uses=1, use_count=1)
    new = await create(room.id, 3)
    elsewhere = await create(other.id, 4)
    assert await repo.list_invitations(room.id, 10, 0) == ([new, used, old], 3)
    assert await repo.list_invitations(room.id, 1, 1) == ([used], 3)
    assert await repo.list_invitations(None, 2, 0) == ([elsewhere, new], 4)
    assert await repo.list_invitations(uuid.uuid4(), 10, 0) == ([], 0)
    assert await repo.delete_room(room.id)
    assert await repo.list_invitations(None, 10, 0) == ([elsewhere], 1)


async def test_consume_respects_expiry_and_uses(repo: Repository) -> None:
    room = await repo.create_room(new_room())
    limited = await repo.create_invitation(invitation(room.id, expires=100, max_uses=2))
    unlimited = await repo.create_invitation(invitation(room.id, expires=100))

    first = await repo.consume_invitation(limited.code, at(10))
    assert first is not None
    assert first.use_count == 1
    second = await repo.consume_invitation(limited.code, at(10))
    assert second is not None
    assert second.use_count == 2
    assert second.is_used_up
    assert await repo.consume_invitation(limited.code, at(10)) is None

    await repo.release_invitation(limited.code)  # a join failed: one use comes back
    stored = await repo.get_invitation(limited.code)
    assert stored is not None
    assert stored.use_count == 1
    assert await repo.consume_invitation(limited.code, at(10)) is not None

    for _ in range(5):
        assert await repo.consume_invitation(unlimited.code, at(99)) is not None
    assert await repo.consume_invitation(unlimited.code, at(100)) is None  # expires_at is out
    assert await repo.consume_invitation("UNKNOWN", at(1)) is None
    await repo.release_invitation("UNKNOWN")

    fresh = await repo.create_invitation(invitation(room.id))
    await repo.release_invitation(fresh.code)  # never below zero
    stored = await repo.get_invitation(fresh.code)
    assert stored is not None
    assert stored.use_count == 0


async def test_consume_is_atomic_under_concurrency(repo: Repository) -> None:
    room = await repo.create_room(new_room())
    code = (await repo.create_invitation(invitation(room.id, max_uses=3))).code
    results: list[Invitation | None] = []

    async def consume() -> None:
        results.append(await repo.consume_invitation(code, at(1)))

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            for _ in range(10):
                nursery.start_soon(consume)
    granted = [r for r in results if r is not None]
    assert len(granted) == 3
    assert sorted(r.use_count for r in granted) == [1, 2, 3]
    stored = await repo.get_invitation(code)
    assert stored is not None
    assert stored.use_count == 3


async def test_purge_expired_invitations(repo: Repository) -> None:
    room = await repo.create_room(new_room())
    old = await repo.create_invitation(invitation(room.id, expires=10))
    edge = await repo.create_invitation(invitation(room.id, expires=20))
    live = await repo.create_invitation(invitation(room.id, expires=30))
    assert await repo.purge_expired_invitations(at(20)) == 1
    assert await repo.get_invitation(old.code) is None
    assert await repo.get_invitation(edge.code) is not None  # expired *at*, not before
    assert await repo.purge_expired_invitations(at(31)) == 2
    assert await repo.get_invitation(live.code) is None
    assert await repo.purge_expired_invitations(at(100)) == 0


async def test_list_inactive_rooms(repo: Repository) -> None:
    idle = await repo.create_room(new_room(created=10))
    renamed = await repo.create_room(new_room(created=10))
    await repo.update_room(renamed.id, RoomUpdate(updated_at=at(100), name="renamed"))
    played = await repo.create_room(new_room(created=10))
    await repo.update_playback(
        played.id, Playback(PlaybackState.PLAYING, 5.0, 1.0, 1, at(200), None)
    )
    ended = await repo.create_room(new_room(created=5))
    await repo.end_room(ended.id, at(6))
    assert await repo.list_inactive_rooms(at(50), 10) == [idle.id]
    assert await repo.list_inactive_rooms(at(150), 10) == [idle.id, renamed.id]
    assert await repo.list_inactive_rooms(at(300), 10) == [idle.id, renamed.id, played.id]
    assert await repo.list_inactive_rooms(at(300), 1) == [idle.id]


# -- lifecycle -------------------------------------------------------------------------------


async def test_closed_repository_is_unavailable(repo: Repository) -> None:
    await repo.ping()
    await repo.aclose()
    with pytest.raises(StorageUnavailable):
        await repo.ping()
    with pytest.raises(StorageUnavailable):
        await repo.get_room(uuid.uuid4())
    with pytest.raises(StorageUnavailable):
        await repo.create_room(new_room())
    await repo.aclose()  # idempotent


async def test_data_survives_reopening(database_url: str) -> None:
    repo = await open_repository(database_url)
    try:
        room = await repo.create_room(new_room())
        guest = uuid.uuid4()
        await repo.add_participant(room.id, guest, "Guest", Role.MEMBER, at(1))
        playback = Playback(PlaybackState.PLAYING, 42.0, 1.0, 7, at(2), guest)
        await repo.update_playback(room.id, playback)
        chat = await repo.create_chat_message(
            ChatMessage(uuid.uuid4(), room.id, guest, "Guest", "hello", at(3))
        )
        await repo.log_events([NewEvent(room.id, "play", at(2), guest, {"at": 0})])
        code = (await repo.create_invitation(invitation(room.id))).code
        before = await repo.get_room(room.id)
    finally:
        await repo.aclose()

    repo = await open_repository(database_url, auto_migrate=False)
    try:
        assert await repo.get_room(room.id) == before
        assert await repo.list_rooms(RoomFilters(), 10, 0) == ([before], 1)
        assert (await repo.list_chat_messages(room.id, 10, 0))[0] == [chat]
        events, _ = await repo.list_events(room.id, 10, 0)
        assert [(e.type, e.payload) for e in events] == [("play", {"at": 0})]
        assert await repo.get_invitation(code) is not None
        assert len(await repo.list_participants(room.id)) == 2
    finally:
        await repo.aclose()


async def test_open_repository_urls(tmp_path: Path) -> None:
    for bad in ("mysql://x", "sqlite:///", "sqlite:///:memory:", "sqlite://relative.db"):
        with pytest.raises(ValueError, match="URL"):
            await open_repository(bad)
    # The SQLite file's directory is created; the path follows the three slashes.
    repo = await open_repository(f"sqlite:///{tmp_path / 'a' / 'b' / 'db.sqlite3'}")
    await repo.aclose()
    assert (tmp_path / "a" / "b" / "db.sqlite3").is_file()


async def test_unreachable_postgres_is_unavailable(tmp_path: Path) -> None:
    url = f"postgresql://nobody@/nothing?host={tmp_path}&connect_timeout=1"
    with trio.fail_after(30), pytest.raises(StorageUnavailable):
        await open_repository(url)
