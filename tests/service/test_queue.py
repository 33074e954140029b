"""A room's play queue through ``service.queue``: who may, one change at a time, who is told.

The world is the in-memory repository, whose every call checkpoints as a database's
would, so that concurrent changes really interleave. The repository notes each queue
save and each event in a journal, and the fake ``LiveRooms`` notes each call in the
same journal, with whether the room's queue lock was still held: a live room must hear
of a change only once it is stored and logged, and never while the lock is held. (The
queue operations themselves are tests/core/test_queue.py; the HTTP layer is
tests/server/test_api_queue.py.)
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
import trio

from syncplayd.config import load_settings
from syncplayd.core.queue import MAX_QUEUE_ITEMS, Queue
from syncplayd.core.roles import Role
from syncplayd.identity import Principal
from syncplayd.service import LiveRooms, PlayQueue, Removal, RoomChanges, RoomService, ServiceError
from syncplayd.storage import MemoryRepository
from syncplayd.storage.records import ChatMessage, PlaybackControl, Room

NOW = datetime(2026, 12, 12, 20, 0, tzinfo=UTC)
ADMIN = Principal(uuid4(), "root", is_admin=True)

#: ("stored", room_id), ("logged", op) or ("live", call, details), in the order they happened.
Journal = list[tuple[Any, ...]]


class JournaledRepository(MemoryRepository):
    def __init__(self, journal: Journal) -> None:
        super().__init__()
        self.journal = journal

    async def save_queue(self, room_id: UUID, queue: Queue, now: datetime, **kw: Any) -> Room:
        room = await super().save_queue(room_id, queue, now, **kw)
        self.journal.append(("stored", room_id))
        return room

    async def log_events(self, events: Any) -> None:
        await super().log_events(events)
        self.journal.extend(("logged", e.payload.get("op", e.type)) for e in events)


@dataclass
class RecordedRooms:
    """The live side: notes each call; ``queues`` is what it was told, in order."""

    journal: Journal
    queue_service: PlayQueue | None = None

    def __post_init__(self) -> None:
        self.told: list[tuple[Room, Queue, bool]] = []

    def queue_changed(self, room: Room, queue: Queue, current_changed: bool) -> None:
        assert self.queue_service is not None
        # The lock is let go before the live room hears (it may call back into the queue):
        # the telling task does not hold it (another change may, by now).
        lock = self.queue_service._locks.get(room.id)
        locked = lock is not None and lock.statistics().owner is trio.lowlevel.current_task()
        self.journal.append(("live", "queue_changed", current_changed, locked))
        self.told.append((room, queue, current_changed))

    def chat_posted(self, message: ChatMessage) -> None: ...
    def chat_deleted(self, room_id: UUID, message_id: UUID) -> None: ...
    def room_ended(self, room_id: UUID) -> None:
        self.journal.append(("live", "room_ended"))

    def room_updated(self, room: Room) -> None:
        self.journal.append(("live", "room_updated"))

    def role_changed(self, room_id: UUID, user_id: UUID, role: Role) -> None: ...
    def mute_changed(
        self, room_id: UUID, user_id: UUID, *, muted: bool, until: datetime | None = None
    ) -> None: ...
    def remove_user(self, room_id: UUID, user_id: UUID, reason: Removal, message: str) -> int:
        return 0


@dataclass
class World:
    """A public room owned by Ada (moderator Bob, member Cleo; Sam has not joined)."""

    service: RoomService
    repo: JournaledRepository
    live: RecordedRooms
    room: Room
    ada: Principal
    bob: Principal
    cleo: Principal
    sam: Principal
    journal: Journal

    @property
    def id(self) -> UUID:
        return self.room.id

    @property
    def queue(self) -> PlayQueue:
        return self.service.queue

    async def events(self) -> list[tuple[UUID | None, dict[str, Any]]]:
        """The room's ``queue`` events, oldest first, as (user, payload)."""
        items, _ = await self.repo.list_events(self.id, 1000, 0)
        return [(e.user_id, e.payload) for e in reversed(items) if e.type == "queue"]

    async def add(self, who: Principal | None = None, content_id: str = "2", **kw: Any) -> Queue:
        return await self.queue.add(
            who or self.ada, self.id, content_type="episode", content_id=content_id, **kw
        )

    async def controls(self, control: PlaybackControl) -> None:
        await self.service.update_room(self.ada, self.id, RoomChanges(playback_control=control))
        self.journal.clear()
        self.live.told.clear()


async def make_world(tmp_path: Path, *, public: bool = True) -> World:
    journal: Journal = []
    repo = JournaledRepository(journal)
    settings = load_settings(None, {"SYNCPLAY_STATE_DIR": str(tmp_path)}).syncplay
    service = RoomService(repo, settings, wall_clock=lambda: NOW)
    live = RecordedRooms(journal, service.queue)
    checked: LiveRooms = live  # the fake keeps to the protocol (mypy checks it)
    service.live = checked
    ada, bob, cleo, sam = (Principal(uuid4(), n) for n in ("Ada", "Bob", "Cleo", "Sam"))
    room = await service.create_room(
        ada, name="r", content_type="movie", content_id="1", is_public=public,
        password=None, max_participants=None, content_title="Pilot", content_duration=60.0,
    )  # fmt: skip
    for who in (bob, cleo):
        if public:
            await service.join(who, room.id)
        else:  # straight in storage: private rooms need invitations
            await repo.add_participant(room.id, who.user_id, who.name, Role.MEMBER, NOW)
    await repo.update_participant(room.id, bob.user_id, role=Role.MODERATOR)
    journal.clear()
    return World(service, repo, live, room, ada, bob, cleo, sam, journal)


@pytest.fixture
async def world(tmp_path: Path) -> World:
    return await make_world(tmp_path)


async def refusal(call: Awaitable[object]) -> tuple[int, str]:
    with pytest.raises(ServiceError) as refused:
        await call
    return refused.value.status, refused.value.code


def ids(queue: Queue) -> list[str]:
    return [item.content_id for item in queue.items]


def current(queue: Queue) -> str | None:
    item = queue.current
    return None if item is None else item.content_id


# -- the first item and reading ------------------------------------------------------------
async def test_a_new_room_has_its_content_as_a_one_item_queue(world: World) -> None:
    queue = await world.queue.get(world.sam, world.id)  # a public room: anyone reads
    (item,) = queue.items
    assert (item.content_type, item.content_id, item.title, item.duration) == (
        "movie", "1", "Pilot", 60.0,
    )  # fmt: skip
    assert queue.current_id == item.id == world.room.current_item_id
    assert (queue.repeat, queue.shuffle) == ("none", False)


async def test_a_private_rooms_queue_is_for_its_members(tmp_path: Path) -> None:
    world = await make_world(tmp_path, public=False)
    assert await refusal(world.queue.get(world.sam, world.id)) == (403, "not-a-member")
    assert await refusal(world.add(world.sam)) == (403, "not-a-member")
    assert len((await world.queue.get(world.cleo, world.id)).items) == 1
    assert len((await world.queue.get(ADMIN, world.id)).items) == 1
    assert await refusal(world.queue.get(world.ada, uuid4())) == (404, "not-found")


async def test_room_creation_checks_the_first_items_title_and_duration(world: World) -> None:
    async def create(**kw: Any) -> Room:
        return await world.service.create_room(
            world.sam, name="x", content_type="movie", content_id="1", is_public=True,
            password=None, max_participants=None, **kw,
        )  # fmt: skip

    room = await create(content_title="  The   Matrix ", content_duration=None)
    queue = await world.queue.get(world.sam, room.id)
    assert queue.items[0].title == "The Matrix" and queue.items[0].duration is None
    assert await refusal(create(content_title="\x1b[2J")) == (422, "validation-failed")
    assert await refusal(create(content_duration=0.0)) == (422, "validation-failed")
    assert await refusal(create(content_duration=float("inf"))) == (422, "validation-failed")


# -- changes: stored, logged, then told ---------------------------------------------------
async def test_adding_is_stored_logged_and_told_in_that_order(world: World) -> None:
    queue = await world.add(world.cleo, "2", title="  Part   two ", duration=42.5)
    assert ids(queue) == ["1", "2"] and current(queue) == "1"
    assert queue.items[1].title == "Part two" and queue.items[1].duration == 42.5
    assert world.journal == [
        ("stored", world.id),
        ("logged", "add"),
        ("live", "queue_changed", False, False),  # the lock let go first
    ]
    (room, told, current_changed), *_ = world.live.told
    assert told == queue == await world.queue.get(world.ada, world.id)
    assert room.current_item_id == queue.current_id and not current_changed
    ((user, payload),) = await world.events()
    assert user == world.cleo.user_id
    assert payload == {
        "by": str(world.cleo.user_id),
        "op": "add",
        "item_id": str(queue.items[1].id),
        "content_type": "episode",
        "content_id": "2",
        "play_next": False,
        "current_item_id": str(queue.current_id),
    }


async def test_play_next_goes_right_after_the_current_item(world: World) -> None:
    await world.add(content_id="2")
    await world.add(content_id="3")
    queue = await world.add(content_id="next", play_next=True)
    assert ids(queue) == ["1", "next", "2", "3"]


async def test_an_item_added_to_an_empty_queue_is_loaded(world: World) -> None:
    only = (await world.queue.get(world.ada, world.id)).items[0]
    emptied = await world.queue.remove(world.ada, world.id, only.id)
    assert emptied.items == () and emptied.current_id is None
    assert world.live.told[-1][2] is True  # the current item went
    room = await world.service.get_room(world.ada, world.id)
    assert (room.current_item_id, room.content_id) == (None, "1")  # keeps its last content
    queue = await world.add(content_id="fresh")
    assert current(queue) == "fresh" and world.live.told[-1][2] is True
    room = await world.service.get_room(world.ada, world.id)
    assert (room.current_item_id, room.content_type, room.content_id) == (
        queue.current_id, "episode", "fresh",
    )  # fmt: skip


async def test_remove_move_clear_play(world: World) -> None:
    for content in "234":
        queue = await world.add(content_id=content)
    _, two, three, four = queue.items
    queue = await world.queue.move(world.ada, world.id, four.id, 0)
    assert ids(queue) == ["4", "1", "2", "3"] and current(queue) == "1"
    assert world.live.told[-1][2] is False
    queue = await world.queue.move(world.ada, world.id, two.id, 99)  # past the end: the end
    assert ids(queue) == ["4", "1", "3", "2"]
    queue = await world.queue.play(world.ada, world.id, three.id)
    assert current(queue) == "3" and world.live.told[-1][2] is True
    room = await world.service.get_room(world.ada, world.id)
    assert (room.content_type, room.content_id) == ("episode", "3")  # the room plays it
    queue = await world.queue.remove(world.ada, world.id, three.id)  # the next one plays
    assert ids(queue) == ["4", "1", "2"] and current(queue) == "2"
    queue = await world.queue.clear(world.ada, world.id)
    assert ids(queue) == ["2"] and current(queue) == "2"
    ops = [payload["op"] for _, payload in await world.events()]
    assert ops == ["add", "add", "add", "move", "move", "play", "remove", "clear"]


async def test_unknown_items_and_a_full_queue_are_refused(world: World) -> None:
    nobody = uuid4()
    for call in (
        world.queue.remove(world.ada, world.id, nobody),
        world.queue.move(world.ada, world.id, nobody, 0),
        world.queue.play(world.ada, world.id, nobody),
    ):
        assert await refusal(call) == (404, "not-found")
    for n in range(MAX_QUEUE_ITEMS - 1):
        await world.add(content_id=str(n))
    world.journal.clear()
    assert await refusal(world.add(content_id="one too many")) == (409, "queue-full")
    assert world.journal == []  # nothing stored, logged or told
    assert len((await world.queue.get(world.ada, world.id)).items) == MAX_QUEUE_ITEMS


async def test_bad_titles_durations_and_modes_are_refused(world: World) -> None:
    assert await refusal(world.add(title="a\x07b")) == (422, "validation-failed")
    assert await refusal(world.add(title="x" * 201)) == (422, "validation-failed")
    for duration in (0.0, -1.0, float("nan"), 7 * 24 * 3600.0 + 1):
        assert await refusal(world.add(duration=duration)) == (422, "validation-failed")
    bad = world.queue.set_mode(world.ada, world.id, repeat="twice")  # type: ignore[arg-type]
    assert await refusal(bad) == (422, "validation-failed")
    queue = await world.add(title="   ")
    assert queue.items[-1].title is None  # blank is no title


# -- who may --------------------------------------------------------------------------------
async def test_everyone_room_any_member_changes_the_queue(world: World) -> None:
    for who in (world.cleo, world.bob, world.ada, ADMIN):
        await world.add(who, content_id=who.name)
    assert await refusal(world.add(world.sam)) == (403, "not-a-member")  # join first
    await world.service.leave(world.ada, world.id)
    await world.add(world.ada, content_id="the owner, having left")


async def test_moderators_room_only_the_owner_moderators_and_admins(world: World) -> None:
    await world.controls(PlaybackControl.MODERATORS)
    with pytest.raises(ServiceError) as refused:
        await world.add(world.cleo)
    assert (refused.value.status, refused.value.code) == (403, "forbidden")
    assert refused.value.detail == "only moderators control playback in this room"
    assert await refusal(world.add(world.sam)) == (403, "forbidden")  # joining would not help
    current_id = (await world.queue.get(world.cleo, world.id)).current_id  # viewing is open
    assert current_id is not None
    assert await refusal(world.queue.next(world.cleo, world.id, current_id)) == (403, "forbidden")
    for who in (world.bob, world.ada, ADMIN):
        await world.add(who, content_id=who.name)
    assert world.journal.count(("logged", "add")) == 3


async def test_an_ended_room_keeps_its_queue_but_refuses_changes(world: World) -> None:
    await world.service.end_room(world.ada, world.id)
    for who in (world.ada, ADMIN):
        assert await refusal(world.add(who)) == (410, "room-ended")
        assert await refusal(world.queue.clear(who, world.id)) == (410, "room-ended")
    assert await refusal(world.add(world.cleo)) == (410, "room-ended")
    assert len((await world.queue.get(world.cleo, world.id)).items) == 1
    assert await world.queue.advance(world.id, world.room.current_item_id or uuid4()) is None


# -- next, previous, modes --------------------------------------------------------------
async def test_next_and_previous_follow_the_play_order(world: World) -> None:
    for content in "23":
        queue = await world.add(content_id=content)
    one, two, three = (item.id for item in queue.items)
    queue = await world.queue.next(world.cleo, world.id, one)
    assert current(queue) == "2" and world.live.told[-1][2] is True
    queue = await world.queue.next(world.cleo, world.id, two)
    assert current(queue) == "3"
    world.journal.clear()
    # At the end without repeat all, and with a stale id: nothing changes, nothing is told.
    assert await world.queue.next(world.cleo, world.id, three) == queue
    assert await world.queue.previous(world.cleo, world.id, one) == queue
    assert world.journal == []
    queue = await world.queue.previous(world.cleo, world.id, three)
    assert current(queue) == "2"
    await world.queue.set_mode(world.ada, world.id, repeat="all")
    queue = await world.queue.next(world.cleo, world.id, two)
    queue = await world.queue.next(world.cleo, world.id, three)
    assert current(queue) == "1"  # repeat all wraps
    steps = [
        (p["op"], p["from"]) for _, p in await world.events() if p["op"] in ("next", "previous")
    ]
    assert steps == [
        ("next", str(one)), ("next", str(two)), ("previous", str(three)),
        ("next", str(two)), ("next", str(three)),
    ]  # fmt: skip


async def test_next_pressed_by_everyone_at_once_moves_once(world: World) -> None:
    for content in "234":
        queue = await world.add(content_id=content)
    first = queue.current_id
    assert first is not None
    world.journal.clear()
    world.live.told.clear()
    answers: list[Queue] = []

    async def press(who: Principal) -> None:
        answers.append(await world.queue.next(who, world.id, first))

    async with trio.open_nursery() as nursery:
        for who in (world.ada, world.bob, world.cleo, ADMIN) * 3:
            nursery.start_soon(press, who)
    assert {current(answer) for answer in answers} == {"2"}
    assert current(await world.queue.get(world.ada, world.id)) == "2"
    assert world.journal == [
        ("stored", world.id),
        ("logged", "next"),
        ("live", "queue_changed", True, False),
    ]


async def test_concurrent_changes_apply_one_after_the_other(world: World) -> None:
    async with trio.open_nursery() as nursery:
        for n in range(20):
            nursery.start_soon(world.add, world.cleo, f"c{n}")
    queue = await world.queue.get(world.ada, world.id)
    assert sorted(ids(queue)) == sorted(["1", *(f"c{n}" for n in range(20))])  # none lost
    # Every socket heard every queue, each a step further than the one before.
    assert [len(told.items) for _, told, _ in world.live.told] == list(range(2, 22))
    assert not world.queue._locks  # a lock lives only while someone holds or awaits it


async def test_modes(world: World) -> None:
    queue = await world.queue.set_mode(world.bob, world.id, repeat="one")
    assert (queue.repeat, queue.shuffle) == ("one", False)
    queue = await world.queue.set_mode(world.bob, world.id, shuffle=True)
    assert (queue.repeat, queue.shuffle) == ("one", True)
    assert world.live.told[-1][2] is False
    world.journal.clear()
    assert await world.queue.set_mode(world.bob, world.id, repeat="one", shuffle=True) == queue
    assert world.journal == []  # the mode it has: nothing
    modes = [p for _, p in await world.events() if p["op"] == "mode"]
    assert [(p.get("repeat"), p.get("shuffle")) for p in modes] == [("one", None), (None, True)]


# -- the end of an item -----------------------------------------------------------------
async def test_advance_plays_what_follows_once(world: World) -> None:
    queue = await world.add(content_id="2")
    one, two = (item.id for item in queue.items)
    world.journal.clear()
    advanced = await world.queue.advance(world.id, one)
    assert advanced is not None and current(advanced) == "2"
    assert await world.queue.advance(world.id, one) is None  # again: once only
    assert world.journal == [
        ("stored", world.id),
        ("logged", "advance"),
        ("live", "queue_changed", True, False),
    ]
    user, payload = (await world.events())[-1]
    assert user is None
    assert payload == {"by": None, "op": "advance", "from": str(one), "current_item_id": str(two)}
    # After the last item without repeat: the room stays ended on it.
    world.journal.clear()
    assert await world.queue.advance(world.id, two) is None
    assert world.journal == []


async def test_advance_with_repeat(world: World) -> None:
    queue = await world.add(content_id="2")
    one, two = (item.id for item in queue.items)
    await world.queue.set_mode(world.ada, world.id, repeat="one")
    world.live.told.clear()
    again = await world.queue.advance(world.id, one)
    assert again is not None and again.current_id == one
    # The same item again is a new start for the live room.
    assert [(told.current_id, changed) for _, told, changed in world.live.told] == [(one, True)]
    await world.queue.set_mode(world.ada, world.id, repeat="all")
    await world.queue.play(world.ada, world.id, two)
    wrapped = await world.queue.advance(world.id, two)
    assert wrapped is not None and wrapped.current_id == one


async def test_advance_racing_next_moves_once(world: World) -> None:
    for content in "23":
        queue = await world.add(content_id=content)
    first = queue.current_id
    assert first is not None
    async with trio.open_nursery() as nursery:
        nursery.start_soon(world.queue.advance, world.id, first)
        nursery.start_soon(world.queue.next, world.cleo, world.id, first)
    assert current(await world.queue.get(world.ada, world.id)) == "2"
    assert [p["op"] for _, p in await world.events()][-1:] in (["advance"], ["next"])
    assert len([p for _, p in await world.events() if p["op"] in ("advance", "next")]) == 1


# -- durations reported by players --------------------------------------------------------
async def test_the_first_duration_wins(world: World) -> None:
    queue = await world.add(content_id="2")
    item = queue.items[1].id
    world.journal.clear()
    await world.queue.record_duration(world.id, item, 1440.5)
    await world.queue.record_duration(world.id, item, 99.0)  # too late
    await world.queue.record_duration(world.id, item, float("nan"))
    await world.queue.record_duration(world.id, uuid4(), 10.0)  # no such item
    await world.queue.record_duration(world.id, queue.items[0].id, 10.0)  # given at creation
    stored = await world.queue.get(world.ada, world.id)
    assert [i.duration for i in stored.items] == [60.0, 1440.5]
    assert world.journal == [("live", "queue_changed", False, False)]  # told once, not logged
    assert world.live.told[-1][1] == stored


# -- the room's settings and content ------------------------------------------------------
async def test_new_content_by_a_room_update_is_the_current_items(world: World) -> None:
    queue = await world.add(content_id="2")
    changes = RoomChanges(content_id="1b", wait_for_slow_members="never", start_when_ready=True)
    room = await world.service.update_room(world.ada, world.id, changes)
    assert (room.wait_for_slow_members, room.start_when_ready) == ("never", True)
    after = await world.queue.get(world.ada, world.id)
    assert after.current_id == queue.current_id and ids(after) == ["1b", "2"]
    assert after.items[0].duration is None  # another film: its length is not known
    assert world.journal[-2:] == [("live", "room_updated"), ("live", "queue_changed", False, False)]
    assert world.live.told[-1][1] == after
    # Settings alone leave the queue alone.
    world.journal.clear()
    await world.service.update_room(world.ada, world.id, RoomChanges(start_when_ready=False))
    assert world.journal == [("live", "room_updated")]
