"""The Python client follows the room's moderation: new settings, deleted chat, mutes, bans.

No sockets, as in ``test_player``: messages are dispatched by hand into the client.
"""

from __future__ import annotations

import msgspec

from syncplayd.client import FINAL_CLOSE_REASONS
from syncplayd.client._room import RoomView
from syncplayd.core.protocol import (
    ChatDeleted,
    ChatOut,
    Closing,
    Presence,
    RoomChanged,
    decode_server,
)
from tests.client.test_player import (
    ROOM,
    SETTINGS,
    Clock,
    client_at,
    entry,
    joined_snapshot,
    member,
)


def test_a_room_message_replaces_the_room_and_the_settings() -> None:
    client = client_at(Clock())
    renamed = msgspec.structs.replace(
        ROOM, name="Late show", playback_control="moderators", owner_id="u2"
    )
    control = msgspec.structs.replace(SETTINGS, control="moderators")
    client._dispatch(RoomChanged(room=renamed, settings=control))
    assert client.room == renamed
    assert client.settings == control
    # ``joined`` stays as it was received; the view is what moved on.
    assert client.joined is not None and client.joined.room == ROOM
    # A rejoin's snapshot is the truth again.
    client._install(joined_snapshot())
    assert (client.room, client.settings) == (ROOM, SETTINGS)


def test_a_deleted_message_leaves_the_chat_history_in_place() -> None:
    view = RoomView(chat_history=10)
    view.install(joined_snapshot(chat=3))
    history = view.chat  # what ``SyncClient.chat_history`` hands out
    view.apply(ChatOut(entry("3")))
    view.apply(ChatDeleted(room_id="r1", message_id="1"))
    view.apply(ChatDeleted(room_id="r1", message_id="unknown"))  # older than the history
    assert [m.id for m in history] == ["0", "2", "3"]
    assert history is view.chat


def test_muted_members_are_seen_by_everyone_and_by_themselves() -> None:
    client = client_at(Clock())  # joined as "ada", with "bob"
    bob_muted = msgspec.structs.replace(member("bob"), muted=True)
    client._dispatch(Presence("muted", bob_muted))
    assert client.participants["bob"].muted
    assert client.you is not None and not client.you.muted
    client._dispatch(Presence("muted", msgspec.structs.replace(member("ada"), muted=True)))
    assert client.you is not None and client.you.muted
    client._dispatch(Presence("unmuted", member("ada")))
    assert client.you is not None and not client.you.muted


def test_a_ban_is_final() -> None:
    assert "banned" in FINAL_CLOSE_REASONS
    client = client_at(Clock())
    client._dispatch(Closing("banned", "Olga banned you from the room for good"))
    assert client.close_reason == "banned"


def test_a_member_from_an_older_server_decodes_as_not_muted() -> None:
    """``muted`` is new: a frame without it (an older daemon) still decodes."""
    frame = (
        '{"type":"presence","event":"joined","member":{"user_id":"u","user_name":"U",'
        '"role":"member","is_connected":true,"sessions":1,"buffering":false,"latency_ms":null},'
        '"detail":null}'
    )
    message = decode_server(frame)
    assert isinstance(message, Presence) and message.member.muted is False
