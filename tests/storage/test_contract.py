"""The repository contract: rooms and participants, on memory, SQLite and PostgreSQL.

Chat, events, invitations and the lifecycle are in ``test_contract_content.py``.
"""

from __future__ import annotations

import uuid
from datetime import timedelta, timezone

import pytest
import trio

from syncplayd.storage import (
    ChatMessage,
    NewEvent,
    Playback,
    PlaybackState,
    PresenceUpdate,
    Repository,
    Role,
    RoomEnded,
    RoomFilters,
    RoomFull,
    RoomNotFound,
    RoomUpdate,
    StorageError,
)
from tests.storage.factories import T0, at, invitation, new_room

# -- rooms -----------------------------------------------------------------------------------


async def test_create_and_get_room(repo: Repository) -> None:
    new = new_room(password_hash="$argon2$hash", public=False, max_participants=4)
    room = await repo.create_room(new)
    assert (room.id, room.name, room.owner_id) == (new.id, new.name, new.owner_id)
    assert (room.content_type, room.content_id) == (new.content_type, new.content_id)
    assert room.is_public is False
    assert room.password_hash == "$argon2$hash"
    assert room.max_participants == 4
    assert room.playback == Playback()
    assert room.created_at == room.updated_at == new.created_at
    assert room.ended_at is None
    assert room.participant_count == 1
    assert await repo.get_room(new.id) == room
    assert await repo.get_room(uuid.uuid4()) is None

    owner = await repo.get_participant(room.id, new.owner_id)
    assert owner is not None
    assert (owner.user_name, owner.role, owner.is_connected) == ("Olive", Role.OWNER, False)
    assert owner.joined_at == owner.last_seen_at == new.created_at


async def test_timestamps_come_back_in_utc_with_microseconds(repo: Repository) -> None:
    plus_two = timezone(timedelta(hours=2))
    created = T0.astimezone(plus_two).replace(microsecond=654321)
    room = await repo.create_room(new_room(created=0))
    await repo.update_room(room.id, RoomUpdate(updated_at=created))
    stored = await repo.get_room(room.id)
    assert stored is not None
    assert stored.updated_at == created
    assert stored.updated_at.utcoffset() == timedelta(0)
    # Naive datetimes are taken as UTC.
    naive = T0.replace(tzinfo=None) + timedelta(seconds=5)
    await repo.update_room(room.id, RoomUpdate(updated_at=naive))
    stored = await repo.get_room(room.id)
    assert stored is not None
    assert stored.updated_at == at(5)


@pytest.mark.parametrize(
    ("name", "max_participants"),
    [("", 5), ("x" * 201, 5), ("ok", 0)],
    ids=["empty-name", "long-name", "no-capacity"],
)
async def test_create_room_enforces_the_schema(
    repo: Repository, name: str, max_participants: int
) -> None:
    with pytest.raises(StorageError):
        await repo.create_room(new_room(name=name, max_participants=max_participants))
    rooms, total = await repo.list_rooms(RoomFilters(active=None), 10, 0)
    assert (rooms, total) == ([], 0)


async def test_room_names_may_be_200_characters_of_any_script(repo: Repository) -> None:
    room = await repo.create_room(new_room(name="ü" * 200))
    assert room.name == "ü" * 200


async def test_duplicate_room_id_is_refused(repo: Repository) -> None:
    first = await repo.create_room(new_room())
    with pytest.raises(StorageError):
        await repo.create_room(new_room(room_id=first.id))
    assert await repo.get_room(first.id) == first


async def test_list_rooms_newest_first_with_totals(repo: Repository) -> None:
    created = [await repo.create_room(new_room(created=i)) for i in range(5)]
    # Two rooms created at the same instant are ordered by id, descending.
    twins = [await repo.create_room(new_room(created=10)) for _ in range(2)]
    expected = sorted(twins, key=lambda r: r.id, reverse=True) + created[::-1]

    page, total = await repo.list_rooms(RoomFilters(), 3, 0)
    assert total == 7
    assert [r.id for r in page] == [r.id for r in expected[:3]]
    page, total = await repo.list_rooms(RoomFilters(), 3, 6)
    assert (total, [r.id for r in page]) == (7, [expected[6].id])
    page, total = await repo.list_rooms(RoomFilters(), 3, 9)
    assert (page, total) == ([], 7)
    page, total = await repo.list_rooms(RoomFilters(), 0, 0)
    assert (page, total) == ([], 7)
    with pytest.raises(ValueError, match="limit"):
        await repo.list_rooms(RoomFilters(), -1, 0)


async def test_list_rooms_filters(repo: Repository) -> None:
    alice, bob, carol = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    a_public = await repo.create_room(new_room(owner=alice, created=1))
    a_private = await repo.create_room(new_room(owner=alice, public=False, created=2))
    b_private = await repo.create_room(
        new_room(owner=bob, public=False, created=3, content_type="episode", content_id="e-7")
    )
    await repo.add_participant(b_private.id, carol, "Carol", Role.MEMBER, at(4))
    c_ended = await repo.create_room(new_room(owner=carol, created=5, content_id="m-2"))
    assert await repo.end_room(c_ended.id, at(6))

    F = RoomFilters  # short, for the table below

    async def ids(filters: RoomFilters) -> list[uuid.UUID]:
        rooms, total = await repo.list_rooms(filters, 50, 0)
        assert total == len(rooms)
        return [r.id for r in rooms]

    assert await ids(F()) == [b_private.id, a_private.id, a_public.id]
    assert await ids(F(active=None)) == [c_ended.id, b_private.id, a_private.id, a_public.id]
    assert await ids(F(active=False)) == [c_ended.id]
    assert await ids(F(visible_to=alice)) == [a_private.id, a_public.id]
    assert await ids(F(visible_to=carol)) == [b_private.id, a_public.id]
    assert await ids(F(visible_to=uuid.uuid4())) == [a_public.id]
    assert await ids(F(member=carol, active=None)) == [c_ended.id, b_private.id]
    assert await ids(F(member=bob)) == [b_private.id]
    assert await ids(F(public_only=True, active=None)) == [c_ended.id, a_public.id]
    assert await ids(F(public_only=True, visible_to=alice)) == [a_public.id]
    assert await ids(F(content_type="episode")) == [b_private.id]
    assert await ids(F(content_type="movie", content_id="m-2", active=None)) == [c_ended.id]
    assert await ids(F(content_id="m-1")) == [a_private.id, a_public.id]
    # An owner who left still counts as a member of their room.
    assert await repo.remove_participant(a_private.id, alice)
    assert await ids(F(member=alice)) == [a_private.id, a_public.id]


async def test_update_room(repo: Repository) -> None:
    room = await repo.create_room(new_room(password_hash="old"))
    updated = await repo.update_room(
        room.id,
        RoomUpdate(updated_at=at(60), name="Renamed", is_public=False, max_participants=3),
    )
    assert updated is not None
    assert (updated.name, updated.is_public, updated.max_participants) == ("Renamed", False, 3)
    assert (updated.content_type, updated.content_id) == (room.content_type, room.content_id)
    assert updated.password_hash == "old"
    assert (updated.created_at, updated.updated_at) == (room.created_at, at(60))
    assert await repo.get_room(room.id) == updated

    changed = await repo.update_room(
        room.id, RoomUpdate(updated_at=at(61), content_type="episode", content_id="e-1")
    )
    assert changed is not None
    assert (changed.content_type, changed.content_id, changed.name) == ("episode", "e-1", "Renamed")
    cleared = await repo.update_room(room.id, RoomUpdate(updated_at=at(62), clear_password=True))
    assert cleared is not None
    assert cleared.password_hash is None
    assert not cleared.has_password
    again = await repo.update_room(room.id, RoomUpdate(updated_at=at(63), password_hash="new"))
    assert again is not None
    assert again.password_hash == "new"

    assert await repo.update_room(uuid.uuid4(), RoomUpdate(updated_at=at(64))) is None
    with pytest.raises(StorageError):
        await repo.update_room(room.id, RoomUpdate(updated_at=at(65), name=""))
    assert await repo.get_room(room.id) == again


async def test_the_syncplay_verifier_goes_with_the_password(repo: Repository) -> None:
    """The verifier of Syncplay clients is stored with a new room's password, replaced by a
    new password's (or by none: never the old password's), and cleared with the password."""
    room = await repo.create_room(
        new_room(password_hash="$argon2$pw", syncplay_password_hash="$argon2$md5")
    )
    assert (room.password_hash, room.syncplay_password_hash) == ("$argon2$pw", "$argon2$md5")
    assert "$argon2$md5" not in repr(room)  # reprs reach logs and test reports
    assert await repo.get_room(room.id) == room
    assert (await repo.list_rooms(RoomFilters(), 10, 0))[0] == [room]
    plain = await repo.create_room(new_room(password_hash="$argon2$pw"))
    assert plain.syncplay_password_hash is None  # a room from before 0005, in effect

    async def verifier_after(update: RoomUpdate) -> tuple[str | None, str | None]:
        updated = await repo.update_room(room.id, update)
        assert updated is not None
        assert await repo.get_room(room.id) == updated
        return updated.password_hash, updated.syncplay_password_hash

    # Other changes leave it be.
    renamed = RoomUpdate(updated_at=at(1), name="Renamed", is_public=False)
    assert await verifier_after(renamed) == ("$argon2$pw", "$argon2$md5")
    new_password = RoomUpdate(
        updated_at=at(2), password_hash="$argon2$pw2", syncplay_password_hash="$argon2$md5-2"
    )
    assert await verifier_after(new_password) == ("$argon2$pw2", "$argon2$md5-2")
    # A new password that comes without one takes the old one away.
    bare = RoomUpdate(updated_at=at(3), password_hash="$argon2$pw3")
    assert await verifier_after(bare) == ("$argon2$pw3", None)
    assert await verifier_after(new_password) == ("$argon2$pw2", "$argon2$md5-2")
    cleared = RoomUpdate(updated_at=at(4), clear_password=True)
    assert await verifier_after(cleared) == (None, None)
    # A new password wins over clear_password, its verifier with it.
    both = RoomUpdate(
        updated_at=at(5), password_hash="$a$p", syncplay_password_hash="$a$m", clear_password=True
    )
    assert await verifier_after(both) == ("$a$p", "$a$m")


def test_a_syncplay_verifier_needs_its_password() -> None:
    with pytest.raises(ValueError, match="needs the password_hash"):
        new_room(syncplay_password_hash="$argon2$md5")
    with pytest.raises(ValueError, match="needs the password_hash"):
        RoomUpdate(updated_at=at(0), syncplay_password_hash="$argon2$md5", clear_password=True)


def test_the_syncplay_verifier_stays_out_of_reprs() -> None:
    new = new_room(password_hash="$argon2$pw", syncplay_password_hash="$argon2$md5-secret")
    update = RoomUpdate(at(0), password_hash="p", syncplay_password_hash="$argon2$md5-secret")
    for record in (new, update):
        assert "md5-secret" not in repr(record)


async def test_update_playback_ignores_older_versions(repo: Repository) -> None:
    room = await repo.create_room(new_room())
    user = uuid.uuid4()
    v2 = Playback(PlaybackState.PLAYING, 12.5, 1.25, 2, at(10), user)
    await repo.update_playback(room.id, v2)
    stored = await repo.get_room(room.id)
    assert stored is not None
    assert stored.playback == v2
    assert stored.updated_at == room.updated_at

    await repo.update_playback(room.id, Playback(PlaybackState.PAUSED, 1.0, 1.0, 1, at(11)))
    stored = await repo.get_room(room.id)
    assert stored is not None
    assert stored.playback == v2

    same_version = Playback(PlaybackState.WAITING, 13, 1, 2, at(12), None)
    await repo.update_playback(room.id, same_version)
    stored = await repo.get_room(room.id)
    assert stored is not None
    assert stored.playback == same_version
    assert isinstance(stored.playback.position, float)

    await repo.update_playback(uuid.uuid4(), v2)  # unknown room: nothing to store


async def test_end_room(repo: Repository) -> None:
    room = await repo.create_room(new_room())
    guest = uuid.uuid4()
    await repo.add_participant(room.id, guest, "Guest", Role.MEMBER, at(1))
    for user in (room.owner_id, guest):
        assert await repo.update_participant(room.id, user, is_connected=True)

    assert await repo.end_room(room.id, at(100))
    ended = await repo.get_room(room.id)
    assert ended is not None
    assert (ended.ended_at, ended.updated_at, ended.is_active) == (at(100), at(100), False)
    assert ended.participant_count == 2
    assert await repo.list_participants(room.id, connected_only=True) == []

    assert not await repo.end_room(room.id, at(200))
    assert not await repo.end_room(uuid.uuid4(), at(200))
    with pytest.raises(RoomEnded):
        await repo.add_participant(room.id, uuid.uuid4(), "Late", Role.MEMBER, at(201))
    with pytest.raises(RoomEnded):  # members too: an ended room is closed to everyone
        await repo.add_participant(room.id, guest, "Guest", Role.MEMBER, at(201))


async def test_delete_room_cascades(repo: Repository) -> None:
    room = await repo.create_room(new_room())
    other = await repo.create_room(new_room())
    guest = uuid.uuid4()
    await repo.add_participant(room.id, guest, "Guest", Role.MEMBER, at(1))
    for r in (room, other):
        await repo.create_chat_message(ChatMessage(uuid.uuid4(), r.id, guest, "G", "hi", at(2)))
        await repo.log_events([NewEvent(r.id, "joined", at(3), guest)])
    code = (await repo.create_invitation(invitation(room.id))).code
    other_code = (await repo.create_invitation(invitation(other.id))).code

    assert await repo.delete_room(room.id)
    assert await repo.get_room(room.id) is None
    assert await repo.get_participant(room.id, guest) is None
    assert await repo.list_participants(room.id) == []
    assert await repo.list_chat_messages(room.id, 10, 0) == ([], 0)
    assert await repo.list_events(room.id, 10, 0) == ([], 0)
    assert await repo.get_invitation(code) is None
    assert not await repo.delete_room(room.id)
    # The other room keeps everything.
    assert (await repo.list_chat_messages(other.id, 10, 0))[1] == 1
    assert (await repo.list_events(other.id, 10, 0))[1] == 1
    assert await repo.get_invitation(other_code) is not None


# -- participants ----------------------------------------------------------------------------


async def test_add_participant(repo: Repository) -> None:
    room = await repo.create_room(new_room())
    user = uuid.uuid4()
    member, added = await repo.add_participant(room.id, user, "Bob", Role.MEMBER, at(5))
    assert added
    assert (member.room_id, member.user_id, member.user_name) == (room.id, user, "Bob")
    assert (member.role, member.is_connected) == (Role.MEMBER, False)
    assert member.joined_at == member.last_seen_at == at(5)
    assert await repo.get_participant(room.id, user) == member

    await repo.update_participant(room.id, user, role=Role.MODERATOR, last_seen_at=at(6))
    again, added = await repo.add_participant(room.id, user, "Robert", Role.MEMBER, at(7))
    assert not added
    assert (again.user_name, again.role) == ("Robert", Role.MODERATOR)
    assert (again.joined_at, again.last_seen_at) == (at(5), at(6))
    stored = await repo.get_room(room.id)
    assert stored is not None
    assert stored.participant_count == 2


async def test_add_participant_errors(repo: Repository) -> None:
    with pytest.raises(RoomNotFound):
        await repo.add_participant(uuid.uuid4(), uuid.uuid4(), "X", Role.MEMBER, at(1))
    room = await repo.create_room(new_room(max_participants=2))
    guest = uuid.uuid4()
    await repo.add_participant(room.id, guest, "Guest", Role.MEMBER, at(1))
    with pytest.raises(RoomFull):
        await repo.add_participant(room.id, uuid.uuid4(), "Third", Role.MEMBER, at(2))
    # Members of a full room can still come back.
    _, added = await repo.add_participant(room.id, guest, "Guest", Role.MEMBER, at(3))
    assert not added
    assert await repo.get_participant(room.id, uuid.uuid4()) is None


async def test_capacity_holds_under_concurrency(repo: Repository) -> None:
    room = await repo.create_room(new_room(max_participants=10))
    # The owner's own join is one of the 50 and succeeds as an existing member.
    users = [room.owner_id] + [uuid.uuid4() for _ in range(49)]
    joined: list[uuid.UUID] = []
    refused: list[uuid.UUID] = []

    async def join(user: uuid.UUID) -> None:
        try:
            await repo.add_participant(room.id, user, "User", Role.MEMBER, at(1))
        except RoomFull:
            refused.append(user)
        else:
            joined.append(user)

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            for user in users:
                nursery.start_soon(join, user)
    assert (len(joined), len(refused)) == (10, 40)
    assert room.owner_id in joined
    members = await repo.list_participants(room.id)
    assert {m.user_id for m in members} == set(joined)
    stored = await repo.get_room(room.id)
    assert stored is not None
    assert stored.participant_count == 10


async def test_one_membership_per_user_under_concurrency(repo: Repository) -> None:
    room = await repo.create_room(new_room())
    user = uuid.uuid4()
    results: list[bool] = []

    async def join() -> None:
        _, added = await repo.add_participant(room.id, user, "Twin", Role.MEMBER, at(1))
        results.append(added)

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            for _ in range(10):
                nursery.start_soon(join)
    assert sorted(results) == [False] * 9 + [True]
    assert len(await repo.list_participants(room.id)) == 2


async def test_list_participants_in_join_order(repo: Repository) -> None:
    room = await repo.create_room(new_room(created=0))
    late, early = uuid.uuid4(), uuid.uuid4()
    await repo.add_participant(room.id, late, "Late", Role.MEMBER, at(20))
    await repo.add_participant(room.id, early, "Early", Role.MODERATOR, at(10))
    members = await repo.list_participants(room.id)
    assert [m.user_id for m in members] == [room.owner_id, early, late]
    assert await repo.list_participants(room.id, connected_only=True) == []
    assert await repo.update_participant(room.id, late, is_connected=True)
    connected = await repo.list_participants(room.id, connected_only=True)
    assert [m.user_id for m in connected] == [late]
    assert await repo.list_participants(uuid.uuid4()) == []


async def test_owner_names(repo: Repository) -> None:
    ada = await repo.create_room(new_room(owner_name="Ada"))
    bob = await repo.create_room(new_room(owner_name="Bob"))
    orphan = await repo.create_room(new_room(owner_name="Gone"))
    # A member who is not the owner never stands for the room's owner.
    await repo.add_participant(orphan.id, uuid.uuid4(), "Guest", Role.MEMBER, at(1))
    assert await repo.remove_participant(orphan.id, orphan.owner_id)
    # The name the owner has now, not the one the room was created with.
    await repo.add_participant(bob.id, bob.owner_id, "Robert", Role.OWNER, at(2))
    asked = [ada.id, bob.id, orphan.id, uuid.uuid4()]
    assert await repo.owner_names(asked) == {ada.id: "Ada", bob.id: "Robert"}
    assert await repo.owner_names([]) == {}


async def test_update_and_remove_participant(repo: Repository) -> None:
    room = await repo.create_room(new_room())
    user = uuid.uuid4()
    await repo.add_participant(room.id, user, "Bob", Role.MEMBER, at(1))
    assert await repo.update_participant(
        room.id, user, role=Role.MODERATOR, is_connected=True, last_seen_at=at(9)
    )
    member = await repo.get_participant(room.id, user)
    assert member is not None
    assert (member.role, member.is_connected, member.last_seen_at) == (
        Role.MODERATOR,
        True,
        at(9),
    )
    assert await repo.update_participant(room.id, user, is_connected=False)
    member = await repo.get_participant(room.id, user)
    assert member is not None
    assert (member.role, member.is_connected) == (Role.MODERATOR, False)
    assert await repo.update_participant(room.id, user)  # nothing to change, but a member
    assert not await repo.update_participant(room.id, uuid.uuid4(), is_connected=True)
    assert not await repo.update_participant(uuid.uuid4(), user, is_connected=True)

    assert await repo.remove_participant(room.id, user)
    assert not await repo.remove_participant(room.id, user)
    assert await repo.get_participant(room.id, user) is None
    stored = await repo.get_room(room.id)
    assert stored is not None
    assert stored.participant_count == 1


async def test_record_presence_sets_each_listed_member_and_skips_the_rest(
    repo: Repository,
) -> None:
    room, other = await repo.create_room(new_room()), await repo.create_room(new_room())
    ann, bob = uuid.uuid4(), uuid.uuid4()
    for user in (ann, bob):
        await repo.add_participant(room.id, user, "Member", Role.MEMBER, at(1))
    await repo.add_participant(other.id, ann, "Ann", Role.MEMBER, at(1))
    await repo.record_presence([
        PresenceUpdate(room.id, ann, True, at(5)),
        PresenceUpdate(room.id, bob, True, at(6)),
        PresenceUpdate(room.id, bob, False, at(7)),  # the later one of the two counts
        PresenceUpdate(room.id, uuid.uuid4(), True, at(8)),  # not a member: skipped
        PresenceUpdate(uuid.uuid4(), ann, True, at(8)),  # no such room: skipped
    ])  # fmt: skip
    seen = {}
    for room_id, user in ((room.id, ann), (room.id, bob), (other.id, ann)):
        member = await repo.get_participant(room_id, user)
        assert member is not None
        seen[room_id, user] = (member.is_connected, member.last_seen_at)
    assert seen == {
        (room.id, ann): (True, at(5)),
        (room.id, bob): (False, at(7)),
        (other.id, ann): (False, at(1)),  # the same user elsewhere: untouched
    }
    await repo.record_presence([])  # nothing to write
