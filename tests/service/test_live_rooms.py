"""The service is the one door into live rooms: it decides, stores, then tells ``LiveRooms``.

A recording ``LiveRooms`` stands in for the supervisor (the real one is exercised
end to end in tests/e2e and tests/cli); what is checked here is the rule itself:
who may do it, what is stored, and the one call a live room gets for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest

from syncplayd.config import load_settings
from syncplayd.core.queue import Queue
from syncplayd.identity import Principal
from syncplayd.service import LiveRooms, Removal, RoomChanges, RoomService, ServiceError
from syncplayd.storage import MemoryRepository
from syncplayd.storage.records import ChatMessage, PlaybackControl, Role, Room

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
ADMIN = Principal(uuid4(), "root", is_admin=True)


@dataclass
class RecordedRooms:
    """Every call the service made, in order; ``sessions`` says how many a removal closes."""

    calls: list[tuple[str, Any]] = field(default_factory=list)
    sessions: int = 0

    def chat_posted(self, message: ChatMessage) -> None:
        self.calls.append(("chat_posted", message.message))

    def chat_deleted(self, room_id: UUID, message_id: UUID) -> None:
        self.calls.append(("chat_deleted", (room_id, message_id)))

    def room_ended(self, room_id: UUID) -> None:
        self.calls.append(("room_ended", room_id))

    def room_updated(self, room: Room) -> None:
        self.calls.append(("room_updated", (room.playback_control, room.owner_id)))

    def role_changed(self, room_id: UUID, user_id: UUID, role: Role) -> None:
        self.calls.append(("role_changed", (room_id, user_id, role)))

    def mute_changed(
        self, room_id: UUID, user_id: UUID, *, muted: bool, until: datetime | None = None
    ) -> None:
        self.calls.append(("mute_changed", (room_id, user_id, muted)))

    def remove_user(self, room_id: UUID, user_id: UUID, reason: Removal, message: str) -> int:
        self.calls.append(("remove_user", (room_id, user_id, reason, message)))
        return self.sessions

    def queue_changed(self, room: Room, queue: Queue, current_changed: bool) -> None:
        self.calls.append(("queue_changed", (queue.current_id, current_changed)))


@dataclass
class WallClock:
    """The service's wall clock, moved by hand."""

    at: datetime = NOW

    def __call__(self) -> datetime:
        return self.at


@dataclass
class World:
    clock: WallClock
    service: RoomService
    repo: MemoryRepository
    live: RecordedRooms
    owner: Principal
    guest: Principal
    room: Room


@pytest.fixture
async def world(tmp_path: Path) -> World:
    repo = MemoryRepository()
    settings = load_settings(None, {"SYNCPLAY_STATE_DIR": str(tmp_path)}).syncplay
    clock = WallClock()
    service = RoomService(repo, settings, wall_clock=clock)
    live = RecordedRooms()
    checked: LiveRooms = live  # the fake keeps to the protocol (mypy checks it)
    service.live = checked
    owner, guest = Principal(uuid4(), "owner"), Principal(uuid4(), "guest")
    room = await service.create_room(
        owner, name="r", content_type="movie", content_id="1", is_public=True,
        password=None, max_participants=None,
    )  # fmt: skip
    await service.join(guest, room.id)
    return World(clock, service, repo, live, owner, guest, room)


async def test_leaving_removes_the_membership_then_the_live_sessions(world: World) -> None:
    await world.service.leave(world.guest, world.room.id)
    assert await world.repo.get_participant(world.room.id, world.guest.user_id) is None
    assert world.live.calls == [
        ("remove_user", (world.room.id, world.guest.user_id, "left", "you left the room"))
    ]
    with pytest.raises(ServiceError) as refused:
        await world.service.leave(world.guest, world.room.id)
    assert refused.value.code == "not-a-member"
    assert len(world.live.calls) == 1  # a refusal reaches no live room


async def test_a_kick_is_not_for_members(world: World) -> None:
    other = Principal(uuid4(), "other")
    await world.service.join(other, world.room.id)
    for target in (other.user_id, world.owner.user_id):
        with pytest.raises(ServiceError) as refused:
            await world.service.moderation.kick(world.guest, world.room.id, target)
        assert (refused.value.status, refused.value.code) == (403, "forbidden")
    assert await world.repo.get_participant(world.room.id, other.user_id) is not None
    assert world.live.calls == []


async def test_a_kick_removes_closes_and_logs(world: World) -> None:
    world.live.sessions = 2
    done = await world.service.moderation.kick(
        world.owner, world.room.id, world.guest.user_id, reason="spoilers"
    )
    assert (done.removed, done.sessions_closed) == (True, 2)
    assert await world.repo.get_participant(world.room.id, world.guest.user_id) is None
    # The closing message names who and why.
    message = "owner removed you from the room: spoilers"
    assert world.live.calls == [
        ("remove_user", (world.room.id, world.guest.user_id, "kicked", message))
    ]
    (event,), _ = await world.repo.list_events(world.room.id, 10, 0)
    assert (event.type, event.user_id, event.created_at) == ("kicked", world.guest.user_id, NOW)
    assert event.payload == {"by": str(world.owner.user_id), "sessions": 2, "reason": "spoilers"}


async def test_a_kick_of_someone_only_connected_closes_their_sessions(world: World) -> None:
    stranger = uuid4()
    world.live.sessions = 1
    done = await world.service.moderation.kick(ADMIN, world.room.id, stranger)
    assert (done.removed, done.sessions_closed) == (False, 1)
    assert world.live.calls[-1][1][3] == "an administrator removed you from the room"
    world.live.sessions = 0
    with pytest.raises(ServiceError) as refused:
        await world.service.moderation.kick(ADMIN, world.room.id, stranger)
    assert (refused.value.status, refused.value.code) == (404, "not-a-member")


async def test_a_ban_closes_the_sessions_with_banned(world: World) -> None:
    world.live.sessions = 1
    await world.service.moderation.ban(world.owner, world.room.id, world.guest.user_id)
    message = "owner banned you from the room for good"
    assert world.live.calls == [
        ("remove_user", (world.room.id, world.guest.user_id, "banned", message))
    ]
    # Lifting it reaches no live room: the user is not in it.
    await world.service.moderation.unban(world.owner, world.room.id, world.guest.user_id)
    assert len(world.live.calls) == 1


async def test_roles_mutes_and_transfers_reach_the_live_room(world: World) -> None:
    room_id, guest = world.room.id, world.guest.user_id
    moderation = world.service.moderation
    await moderation.set_role(world.owner, room_id, guest, Role.MODERATOR)
    await moderation.set_role(world.owner, room_id, guest, Role.MODERATOR)  # no change: no call
    await moderation.mute(world.owner, room_id, guest)
    await moderation.unmute(world.owner, room_id, guest)
    await moderation.transfer(world.owner, room_id, guest)
    assert world.live.calls == [
        ("role_changed", (room_id, guest, Role.MODERATOR)),
        ("mute_changed", (room_id, guest, True)),
        ("mute_changed", (room_id, guest, False)),
        ("role_changed", (room_id, world.owner.user_id, Role.MODERATOR)),
        ("role_changed", (room_id, guest, Role.OWNER)),
        ("room_updated", (PlaybackControl.EVERYONE, guest)),
    ]


async def test_settings_chat_and_the_end_reach_the_live_room(world: World) -> None:
    changes = RoomChanges(playback_control=PlaybackControl.MODERATORS)
    await world.service.update_room(world.owner, world.room.id, changes)
    await world.service.post_chat(world.guest, world.room.id, "  hello  ")
    await world.service.end_room(world.owner, world.room.id)
    assert world.live.calls == [
        ("room_updated", (PlaybackControl.MODERATORS, world.owner.user_id)),
        ("chat_posted", "hello"),
        ("room_ended", world.room.id),
    ]


async def test_deleting_chat_reaches_the_live_room(world: World) -> None:
    other = Principal(uuid4(), "other")
    await world.service.join(other, world.room.id)
    message = await world.service.post_chat(world.guest, world.room.id, "oops")
    with pytest.raises(ServiceError) as refused:  # a member, on someone else's message
        await world.service.moderation.delete_chat(other, message.id)
    assert refused.value.code == "forbidden"
    await world.service.moderation.delete_chat(world.owner, message.id, room_id=world.room.id)
    assert await world.service.recent_chat(world.room.id) == []
    assert world.live.calls[-1] == ("chat_deleted", (world.room.id, message.id))
    with pytest.raises(ServiceError) as missing:
        await world.service.moderation.delete_chat(ADMIN, message.id)
    assert missing.value.code == "not-found"


async def test_recent_chat_is_oldest_first(world: World) -> None:
    for seconds, text in enumerate(("one", "two", "three")):
        world.clock.at = NOW + timedelta(seconds=seconds)
        await world.service.post_chat(world.guest, world.room.id, text)
    assert [m.message for m in await world.service.recent_chat(world.room.id)] == [
        "one",
        "two",
        "three",
    ]


async def test_admin_queries_refuse_everyone_else(world: World) -> None:
    admin = world.service.admin
    refusals = [
        admin.chat_log(world.owner, world.room.id, 10, 0),
        admin.events(world.owner, world.room.id, 10, 0),
        admin.events_after(world.owner, world.room.id, 0, 10),
        admin.find_invitation(world.owner, "ABCD-EFGH"),
        admin.revoke_invitation(world.owner, "ABCD-EFGH"),
        admin.purge_invitations(world.owner, NOW),
    ]
    for refused_call in refusals:
        with pytest.raises(ServiceError) as refused:
            await refused_call
        assert refused.value.code == "forbidden"


async def test_events_after_an_id_for_admins(world: World) -> None:
    await world.service.moderation.kick(ADMIN, world.room.id, world.guest.user_id)
    await world.service.join(world.guest, world.room.id)
    await world.service.moderation.kick(ADMIN, world.room.id, world.guest.user_id)
    first, second = (await world.service.admin.events_after(ADMIN, world.room.id, 0, 10))[0]
    newer, total = await world.service.admin.events_after(ADMIN, world.room.id, first.id, 10)
    assert (newer, total) == ([second], 2)
    with pytest.raises(ServiceError) as missing:
        await world.service.admin.events_after(ADMIN, uuid4(), 0, 10)
    assert missing.value.code == "not-found"


async def test_an_expired_invitation_is_still_found_by_admins(world: World) -> None:
    invitation = await world.service.create_invitation(world.owner, world.room.id)
    found, room = await world.service.admin.find_invitation(ADMIN, invitation.code.lower())
    assert (found.id, room) == (invitation.id, await world.repo.get_room(world.room.id))
    purged = await world.service.admin.purge_invitations(ADMIN, NOW + timedelta(days=30))
    assert purged == 1


async def test_queue_changes_reach_the_live_room_once_each(world: World) -> None:
    """Every durable change is told once; what changes nothing (a stale next, an advance
    already made, a second duration) is told never."""
    queue_service, room_id = world.service.queue, world.room.id
    first = world.room.current_item_id
    assert first is not None
    added = await queue_service.add(world.guest, room_id, content_type="movie", content_id="2")
    second = added.items[-1].id
    await queue_service.next(world.guest, room_id, first)
    await queue_service.next(world.owner, room_id, first)  # stale: the guest's got there first
    assert await queue_service.advance(room_id, first) is None  # not current any more
    await queue_service.record_duration(room_id, second, 42.0)
    await queue_service.record_duration(room_id, second, 41.0)  # the first value won
    await queue_service.set_mode(world.owner, room_id, repeat="one")
    advanced = await queue_service.advance(room_id, second)  # repeat one: the same again
    assert advanced is not None and advanced.current_id == second
    assert world.live.calls == [
        ("queue_changed", (first, False)),
        ("queue_changed", (second, True)),
        ("queue_changed", (second, False)),
        ("queue_changed", (second, False)),
        ("queue_changed", (second, True)),
    ]
    stored = await world.repo.get_queue(room_id)
    assert stored is not None and stored.items[-1].duration == 42.0


async def test_new_content_in_place_tells_the_room_and_the_queue(world: World) -> None:
    changes = RoomChanges(content_type="episode", content_id="s01e01")
    await world.service.update_room(world.owner, world.room.id, changes)
    assert world.live.calls == [
        ("room_updated", (PlaybackControl.EVERYONE, world.owner.user_id)),
        ("queue_changed", (world.room.current_item_id, False)),
    ]
