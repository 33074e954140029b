"""The repository contract for the play queue and the room's new sync settings.

A room's queue (``get_queue``/``save_queue``/``set_item_duration``), the one-item queue of
a new room, the room's content mirroring the current item (and ``update_room`` moving the
current item with it), and the cascades. On memory, SQLite and PostgreSQL (the ``repo``
fixture); persistence across a reopen on the two real databases (``database_url``).
"""

from __future__ import annotations

import dataclasses
import math
import uuid
from uuid import UUID

import pytest
import trio

from syncplayd.core import queue as q
from syncplayd.core.queue import MAX_DURATION, MAX_QUEUE_ITEMS, Queue, QueueItem
from syncplayd.storage import (
    Repository,
    RoomEnded,
    RoomFilters,
    RoomNotFound,
    RoomUpdate,
    StorageError,
    open_repository,
)
from tests.storage.factories import at, new_room


def item(content_id: str, *, rank: float = 0.5, duration: float | None = None) -> QueueItem:
    return QueueItem(uuid.uuid4(), "episode", content_id, f"Title {content_id}", duration, rank)


def three_more(queue: Queue) -> Queue:
    """``queue`` with e-1 (duration 1500.25), e-2 and e-3 added at the end."""
    queue = q.add(queue, item("e-1", rank=0.75, duration=1500.25), play_next=False)
    queue = q.add(queue, item("e-2", rank=0.125), play_next=False)
    return q.add(queue, item("e-3", rank=0.0), play_next=False)


async def queue_of(repo: Repository, room_id: UUID) -> Queue:
    found = await repo.get_queue(room_id)
    assert found is not None
    return found


# -- a new room --------------------------------------------------------------------------------


async def test_a_new_room_has_its_content_as_a_one_item_queue(repo: Repository) -> None:
    new = dataclasses.replace(new_room(), content_title="Pilot", content_duration=1320.5)
    room = await repo.create_room(new)
    queue = await queue_of(repo, room.id)

    (first,) = queue.items
    assert (first.content_type, first.content_id) == (new.content_type, new.content_id)
    assert (first.title, first.duration) == ("Pilot", 1320.5)
    assert first.id.version == 4
    assert 0 <= first.shuffle_rank < 1
    assert (queue.current_id, queue.repeat, queue.shuffle) == (first.id, "none", False)
    assert room.current_item_id == first.id
    assert (room.wait_for_slow_members, room.start_when_ready) == ("policy", False)
    assert await repo.get_room(room.id) == room
    assert (await repo.list_rooms(RoomFilters(), 10, 0))[0] == [room]

    # Without a title or duration, and every room's item its own.
    other = await repo.create_room(new_room())
    (second,) = (await queue_of(repo, other.id)).items
    assert (second.title, second.duration) == (None, None)
    assert second.id not in (first.id, other.id, room.id)


async def test_a_new_room_takes_its_sync_settings(repo: Repository) -> None:
    new = dataclasses.replace(new_room(), wait_for_slow_members="never", start_when_ready=True)
    room = await repo.create_room(new)
    assert (room.wait_for_slow_members, room.start_when_ready) == ("never", True)
    assert await repo.get_room(room.id) == room


@pytest.mark.parametrize("duration", [0.0, -1.0, math.nan, math.inf, MAX_DURATION + 1])
async def test_a_new_room_refuses_a_bad_duration(repo: Repository, duration: float) -> None:
    new = dataclasses.replace(new_room(), content_duration=duration)
    with pytest.raises(StorageError):
        await repo.create_room(new)
    assert await repo.get_room(new.id) is None


async def test_a_new_room_refuses_an_unknown_slow_policy(repo: Repository) -> None:
    new = dataclasses.replace(new_room(), wait_for_slow_members="sometimes")  # type: ignore[arg-type]
    with pytest.raises(StorageError):
        await repo.create_room(new)
    assert await repo.get_room(new.id) is None


async def test_get_queue_of_an_unknown_room_is_none(repo: Repository) -> None:
    assert await repo.get_queue(uuid.uuid4()) is None


# -- save_queue --------------------------------------------------------------------------------


async def test_save_queue_round_trips_and_mirrors_the_current_item(repo: Repository) -> None:
    room = await repo.create_room(new_room(content_id="m-1"))
    first = (await queue_of(repo, room.id)).items[0]
    queue = three_more(await queue_of(repo, room.id))
    queue = q.move(queue, queue.items[3].id, 1)  # e-3 right after the first
    queue = q.set_mode(queue, repeat="all", shuffle=True)
    queue = q.play(queue, queue.items[2].id)  # e-1

    saved = await repo.save_queue(room.id, queue, at(30))
    assert await queue_of(repo, room.id) == queue
    assert [i.content_id for i in (await queue_of(repo, room.id)).items] == [
        "m-1", "e-3", "e-1", "e-2",
    ]  # fmt: skip
    assert (saved.content_type, saved.content_id) == ("episode", "e-1")
    assert saved.current_item_id == queue.items[2].id
    assert saved.updated_at == at(30)
    # Nothing else of the room moved.
    assert dataclasses.replace(
        saved, content_type=room.content_type, content_id=room.content_id,
        current_item_id=first.id, updated_at=room.updated_at,
    ) == room  # fmt: skip
    assert await repo.get_room(room.id) == saved
    assert (await repo.list_rooms(RoomFilters(content_id="e-1"), 10, 0))[0] == [saved]
    assert (await repo.list_rooms(RoomFilters(content_id="m-1"), 10, 0))[0] == []

    # Removing the current item: the next in play order (by rank: e-3 0.0, e-2 0.125,
    # m-1, e-1 0.75) is after e-1 the end, so the previous one, m-1 or e-2, plays.
    after = q.remove(queue, queue.items[2].id)
    saved = await repo.save_queue(room.id, after, at(31))
    assert await queue_of(repo, room.id) == after
    assert after.current is not None
    assert (saved.content_id, saved.current_item_id) == (after.current.content_id, after.current_id)


async def test_an_empty_queue_keeps_the_rooms_last_content(repo: Repository) -> None:
    room = await repo.create_room(new_room(content_id="m-1"))
    queue = await queue_of(repo, room.id)
    empty = q.remove(queue, queue.items[0].id)
    saved = await repo.save_queue(room.id, empty, at(5))
    assert (saved.current_item_id, saved.content_id, saved.updated_at) == (None, "m-1", at(5))
    assert await queue_of(repo, room.id) == Queue((), None)

    # And it fills again.
    again = q.add(empty, item("e-9"), play_next=False)
    saved = await repo.save_queue(room.id, again, at(6))
    assert (saved.current_item_id, saved.content_id) == (again.items[0].id, "e-9")
    assert await queue_of(repo, room.id) == again


async def test_save_queue_refuses_unknown_and_ended_rooms(repo: Repository) -> None:
    with pytest.raises(RoomNotFound):
        await repo.save_queue(uuid.uuid4(), Queue((), None), at(1))

    room = await repo.create_room(new_room())
    before = await queue_of(repo, room.id)
    assert await repo.end_room(room.id, at(2))
    with pytest.raises(RoomEnded):
        await repo.save_queue(room.id, three_more(before), at(3))
    assert await queue_of(repo, room.id) == before  # an ended room's queue is still read
    ended = await repo.get_room(room.id)
    assert ended is not None
    assert ended.updated_at == at(2)


async def test_a_stored_duration_wins_over_a_stale_queue(repo: Repository) -> None:
    room = await repo.create_room(new_room())
    stale = three_more(await queue_of(repo, room.id))
    await repo.save_queue(room.id, stale, at(1))
    e2 = stale.items[2]
    assert await repo.set_item_duration(room.id, e2.id, 61.5)
    # A change made from the queue read before the duration came keeps the duration.
    moved = q.move(stale, e2.id, 0)
    await repo.save_queue(room.id, moved, at(2))
    stored = await queue_of(repo, room.id)
    assert stored.items[0].id == e2.id
    assert stored.items[0].duration == 61.5
    assert stored == q.with_duration(moved, e2.id, 61.5)


async def test_durations_racing_saves_are_never_lost(repo: Repository) -> None:
    room = await repo.create_room(new_room())
    stale = three_more(await queue_of(repo, room.id))
    await repo.save_queue(room.id, stale, at(1))
    untimed = [i for i in stale.items if i.duration is None]

    async with trio.open_nursery() as nursery:
        for n, entry in enumerate(untimed):
            nursery.start_soon(repo.set_item_duration, room.id, entry.id, 10.0 + n)
            nursery.start_soon(repo.save_queue, room.id, q.move(stale, entry.id, 0), at(2 + n))

    stored = await queue_of(repo, room.id)
    durations = {i.id: i.duration for i in stored.items}
    assert [durations[entry.id] for entry in untimed] == [10.0 + n for n in range(len(untimed))]


async def test_an_item_belongs_to_one_room(repo: Repository) -> None:
    one = await repo.create_room(new_room())
    two = await repo.create_room(new_room())
    theirs = (await queue_of(repo, one.id)).items[0]
    ours = await queue_of(repo, two.id)
    with pytest.raises(StorageError):
        await repo.save_queue(two.id, q.add(ours, theirs, play_next=False), at(1))
    assert await queue_of(repo, two.id) == ours
    assert len((await queue_of(repo, one.id)).items) == 1


async def test_a_full_queue_round_trips_in_order(repo: Repository) -> None:
    room = await repo.create_room(new_room())
    queue = await queue_of(repo, room.id)
    for n in range(MAX_QUEUE_ITEMS - 1):
        queue = q.add(queue, item(f"e-{n}", rank=n / MAX_QUEUE_ITEMS), play_next=n % 3 == 0)
    assert len(queue.items) == MAX_QUEUE_ITEMS
    await repo.save_queue(room.id, queue, at(1))
    assert await queue_of(repo, room.id) == queue


# -- set_item_duration -------------------------------------------------------------------------


async def test_set_item_duration_first_value_wins(repo: Repository) -> None:
    room = await repo.create_room(new_room())
    other = await repo.create_room(new_room())
    first = (await queue_of(repo, room.id)).items[0]

    assert await repo.set_item_duration(room.id, first.id, 42.25)
    assert not await repo.set_item_duration(room.id, first.id, 50.0)
    assert (await queue_of(repo, room.id)).items[0].duration == 42.25
    # An unknown item, another room's item, an unknown room: nothing to set.
    assert not await repo.set_item_duration(room.id, uuid.uuid4(), 1.0)
    assert not await repo.set_item_duration(other.id, first.id, 1.0)
    assert not await repo.set_item_duration(uuid.uuid4(), first.id, 1.0)
    assert (await queue_of(repo, other.id)).items[0].duration is None
    # The room itself is not touched (a measurement is not a change of the room).
    assert await repo.get_room(room.id) == room


@pytest.mark.parametrize("duration", [0.0, -5.0, math.nan, math.inf, -math.inf, MAX_DURATION * 2])
async def test_set_item_duration_refuses_bad_values(repo: Repository, duration: float) -> None:
    room = await repo.create_room(new_room())
    first = (await queue_of(repo, room.id)).items[0]
    with pytest.raises(StorageError):
        await repo.set_item_duration(room.id, first.id, duration)
    assert (await queue_of(repo, room.id)).items[0].duration is None
    assert await repo.set_item_duration(room.id, first.id, MAX_DURATION)


# -- update_room and the queue -----------------------------------------------------------------


async def test_new_content_changes_the_current_item_in_place(repo: Repository) -> None:
    new = dataclasses.replace(new_room(content_id="m-1"), content_title="Old", content_duration=9.0)
    room = await repo.create_room(new)
    queue = three_more(await queue_of(repo, room.id))
    await repo.save_queue(room.id, queue, at(1))

    updated = await repo.update_room(room.id, RoomUpdate(updated_at=at(2), content_id="m-2"))
    assert updated is not None
    assert (updated.content_type, updated.content_id) == ("movie", "m-2")
    assert updated.current_item_id == queue.items[0].id  # the same entry
    changed = await queue_of(repo, room.id)
    current = changed.items[0]
    assert (current.id, current.content_type, current.content_id) == (
        queue.items[0].id, "movie", "m-2",
    )  # fmt: skip
    assert (current.title, current.duration) == (None, None)  # the old content's
    assert changed.items[1:] == queue.items[1:]

    # Both parts; then the same content again, which keeps what the item knows.
    await repo.update_room(
        room.id, RoomUpdate(updated_at=at(3), content_type="episode", content_id="e-7")
    )
    assert await repo.set_item_duration(room.id, current.id, 30.0)
    await repo.update_room(room.id, RoomUpdate(updated_at=at(4), content_id="e-7", name="Same"))
    kept = (await queue_of(repo, room.id)).items[0]
    assert (kept.content_type, kept.content_id, kept.duration) == ("episode", "e-7", 30.0)

    # Changing other settings leaves the queue alone.
    before = await queue_of(repo, room.id)
    await repo.update_room(room.id, RoomUpdate(updated_at=at(5), name="Renamed"))
    assert await queue_of(repo, room.id) == before


async def test_new_content_fills_an_empty_queue(repo: Repository) -> None:
    room = await repo.create_room(new_room(content_id="m-1"))
    queue = await queue_of(repo, room.id)
    await repo.save_queue(room.id, q.remove(queue, queue.items[0].id), at(1))

    updated = await repo.update_room(room.id, RoomUpdate(updated_at=at(2), content_id="m-2"))
    assert updated is not None
    filled = await queue_of(repo, room.id)
    (only,) = filled.items
    assert (only.content_type, only.content_id, only.title, only.duration) == (
        "movie", "m-2", None, None,
    )  # fmt: skip
    assert only.id not in (queue.items[0].id, room.id)
    assert filled.current_id == updated.current_item_id == only.id


async def test_sync_settings_update_and_stay(repo: Repository) -> None:
    room = await repo.create_room(new_room())
    updated = await repo.update_room(
        room.id,
        RoomUpdate(updated_at=at(1), wait_for_slow_members="always", start_when_ready=True),
    )
    assert updated is not None
    assert (updated.wait_for_slow_members, updated.start_when_ready) == ("always", True)
    assert dataclasses.replace(
        updated, wait_for_slow_members="policy", start_when_ready=False, updated_at=at(0)
    ) == room  # fmt: skip
    renamed = await repo.update_room(room.id, RoomUpdate(updated_at=at(2), name="Other"))
    assert renamed is not None
    assert (renamed.wait_for_slow_members, renamed.start_when_ready) == ("always", True)
    off = await repo.update_room(room.id, RoomUpdate(updated_at=at(3), start_when_ready=False))
    assert off is not None
    assert off.start_when_ready is False

    with pytest.raises(StorageError):
        await repo.update_room(
            room.id,
            RoomUpdate(updated_at=at(4), wait_for_slow_members="sometimes"),  # type: ignore[arg-type]
        )
    assert await repo.get_room(room.id) == off


# -- cascades ----------------------------------------------------------------------------------


async def test_deleting_a_room_deletes_its_queue(repo: Repository) -> None:
    room = await repo.create_room(new_room())
    queue = three_more(await queue_of(repo, room.id))
    await repo.save_queue(room.id, queue, at(1))
    assert await repo.delete_room(room.id)
    assert await repo.get_queue(room.id) is None
    assert not await repo.set_item_duration(room.id, queue.items[1].id, 5.0)
    # The rows are gone: another room may hold items with those ids now.
    other = await repo.create_room(new_room())
    moved = Queue(queue.items, queue.items[1].id)
    await repo.save_queue(other.id, moved, at(2))
    assert await queue_of(repo, other.id) == moved


async def test_purging_ended_rooms_deletes_their_queues(repo: Repository) -> None:
    room = await repo.create_room(new_room())
    items = (await queue_of(repo, room.id)).items
    assert await repo.end_room(room.id, at(1))
    assert await repo.purge_ended_rooms(at(2), 10) == 1
    assert await repo.get_queue(room.id) is None
    other = await repo.create_room(new_room())
    await repo.save_queue(other.id, Queue(items, items[0].id), at(3))


# -- persistence -------------------------------------------------------------------------------


async def test_the_queue_survives_a_reopen(database_url: str) -> None:
    repo = await open_repository(database_url)
    try:
        room = await repo.create_room(new_room())
        queue = q.set_mode(three_more(await queue_of(repo, room.id)), repeat="one", shuffle=True)
        queue = q.play(queue, queue.items[3].id)
        saved = await repo.save_queue(room.id, queue, at(1), added_by=room.owner_id)
        await repo.update_room(room.id, RoomUpdate(updated_at=at(2), wait_for_slow_members="never"))
    finally:
        await repo.aclose()
    repo = await open_repository(database_url)
    try:
        assert await repo.get_queue(room.id) == queue
        reopened = await repo.get_room(room.id)
        assert reopened is not None
        assert (reopened.current_item_id, reopened.content_id) == (
            saved.current_item_id, "e-3",
        )  # fmt: skip
        assert reopened.wait_for_slow_members == "never"
    finally:
        await repo.aclose()
