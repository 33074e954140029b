"""The typed room and chat structs of the WebSocket protocol encode as the dicts did.

``joined.room``, ``joined.chat`` and ``chat.message`` were dicts built by the HTTP
encoders; they are now ``protocol.RoomInfo`` and ``protocol.ChatEntry``, built by
``syncplayd.server.live.messages``. The ``OLD_*`` strings below are what the old
encoders (and ``protocol.encode`` around them) produced for the same records, with
the fields added since at the end of their objects (``Room.moderators_manage_moderators``,
``Member.muted``): the wire must not change otherwise, over REST or over the WebSocket.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, get_args, get_type_hints
from uuid import UUID

import msgspec
import pytest
import referencing
from jsonschema import Draft202012Validator

from syncplayd.core import protocol
from syncplayd.core.queue import Queue, QueueItem
from syncplayd.server.http import payloads
from syncplayd.server.live.messages import chat_entry, queue_info, room_info, timestamp
from syncplayd.storage.records import (
    ChatMessage,
    Playback,
    PlaybackControl,
    PlaybackState,
    Room,
)
from tests.openapi_check import schema_validator

PROTOCOL_DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"
OWNER = UUID("5d1c7a8e-2b34-4f60-8a9d-c3e1f2a4b5d6")

FRESH = Room(
    id=UUID("0b9f3c1e-6a51-4d7e-9c39-2f0e8d6b1a24"),
    name="Friday film",
    owner_id=OWNER,
    content_type="movie",
    content_id="tt0133093",
    is_public=True,
    password_hash=None,
    max_participants=50,
    playback=Playback(),
    created_at=datetime(2026, 11, 25, 18, 40, 0, 123456, UTC),
    updated_at=datetime(2026, 11, 25, 18, 40, 0, 123456, UTC),
    ended_at=None,
    participant_count=1,
)
# With a password (never on the wire: only has_password), ended, playing, for moderators;
# whole-second and one-microsecond timestamps, quotes and non-ASCII in the name.
ENDED = Room(
    id=UUID("7c2e4a10-9b3d-4e8f-a1c5-6d7e8f9a0b1c"),
    name='Caf\u00e9 "night" \u2603',
    owner_id=OWNER,
    content_type="episode",
    content_id="s01e02",
    is_public=False,
    password_hash="$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA",
    max_participants=2,
    playback=Playback(
        PlaybackState.PLAYING,
        1234.5678,
        1.25,
        17,
        datetime(2026, 11, 25, 19, 20, 7, 412345, UTC),
        OWNER,
    ),
    created_at=datetime(2026, 11, 25, 18, 40, tzinfo=UTC),
    updated_at=datetime(2026, 11, 25, 19, 20, 7, 412345, UTC),
    ended_at=datetime(2026, 11, 25, 21, 0, 0, 5, UTC),
    participant_count=0,
    playback_control=PlaybackControl.MODERATORS,
    moderators_manage_moderators=True,
    current_item_id=UUID("9e8d7c6b-5a49-4382-9170-6f5e4d3c2b1a"),
    wait_for_slow_members="never",
    start_when_ready=True,
)
QUEUE = Queue(
    items=(
        QueueItem(ENDED.current_item_id, "episode", "s01e02", "The second", 1325.5, 0.25),  # type: ignore[arg-type]
        QueueItem(
            UUID("1a2b3c4d-5e6f-4a0b-8c1d-2e3f4a5b6c7d"), "episode", "s01e03", None, None, 0.75
        ),
    ),
    current_id=ENDED.current_item_id,
    repeat="all",
    shuffle=True,
)
CHAT = ChatMessage(
    UUID("3d0f6c1e-8a57-4b0e-9a7c-2f4b5e6d7c8a"),
    ENDED.id,
    UUID("6f1c0a52-3c41-4f0e-9b1a-0d6f2a1b7c11"),
    "Ada",
    "Popcorn ready? \U0001f37f <b>&",
    datetime(2026, 11, 25, 19, 21, 0, tzinfo=UTC),
)
MEMBER = protocol.Member(str(CHAT.user_id), "Ada", "owner", True, 1, False, None, ready=True)

# -- what the old encoders produced ------------------------------------------------------
OLD_ROOM_FRESH = (
    '{"id":"0b9f3c1e-6a51-4d7e-9c39-2f0e8d6b1a24","name":"Friday film",'
    '"owner_id":"5d1c7a8e-2b34-4f60-8a9d-c3e1f2a4b5d6","content_type":"movie",'
    '"content_id":"tt0133093","is_public":true,"has_password":false,"max_participants":50,'
    '"participant_count":1,"playback":{"state":"paused","position":0.0,"rate":1.0,'
    '"version":0,"updated_at":null},"playback_control":"everyone",'
    '"created_at":"2026-11-25T18:40:00.123456Z","updated_at":"2026-11-25T18:40:00.123456Z",'
    '"ended_at":null,"moderators_manage_moderators":false,"current_item_id":null,'
    '"wait_for_slow_members":"policy","start_when_ready":false}'
)
OLD_ROOM_ENDED = (
    '{"id":"7c2e4a10-9b3d-4e8f-a1c5-6d7e8f9a0b1c","name":"Caf\xe9 \\"night\\" \u2603",'
    '"owner_id":"5d1c7a8e-2b34-4f60-8a9d-c3e1f2a4b5d6","content_type":"episode",'
    '"content_id":"s01e02","is_public":false,"has_password":true,"max_participants":2,'
    '"participant_count":0,"playback":{"state":"playing","position":1234.5678,"rate":1.25,'
    '"version":17,"updated_at":"2026-11-25T19:20:07.412345Z"},'
    '"playback_control":"moderators","created_at":"2026-11-25T18:40:00Z",'
    '"updated_at":"2026-11-25T19:20:07.412345Z","ended_at":"2026-11-25T21:00:00.000005Z",'
    '"moderators_manage_moderators":true,"current_item_id":"9e8d7c6b-5a49-4382-9170-6f5e4d3c2b1a",'
    '"wait_for_slow_members":"never","start_when_ready":true}'
)
OLD_CHAT = (
    '{"id":"3d0f6c1e-8a57-4b0e-9a7c-2f4b5e6d7c8a",'
    '"room_id":"7c2e4a10-9b3d-4e8f-a1c5-6d7e8f9a0b1c",'
    '"user_id":"6f1c0a52-3c41-4f0e-9b1a-0d6f2a1b7c11","user_name":"Ada",'
    '"message":"Popcorn ready? \U0001f37f <b>&","created_at":"2026-11-25T19:21:00Z"}'
)
OLD_JOINED_FRAME = (
    '{"type":"joined","session_id":"s1","server_time":12.5,'
    '"room":{"id":"7c2e4a10-9b3d-4e8f-a1c5-6d7e8f9a0b1c",'
    '"name":"Caf\xe9 \\"night\\" \u2603","owner_id":"5d1c7a8e-2b34-4f60-8a9d-c3e1f2a4b5d6",'
    '"content_type":"episode","content_id":"s01e02","is_public":false,"has_password":true,'
    '"max_participants":2,"participant_count":0,"playback":{"state":"playing",'
    '"position":1234.5678,"rate":1.25,"version":17,'
    '"updated_at":"2026-11-25T19:20:07.412345Z"},"playback_control":"moderators",'
    '"created_at":"2026-11-25T18:40:00Z","updated_at":"2026-11-25T19:20:07.412345Z",'
    '"ended_at":"2026-11-25T21:00:00.000005Z","moderators_manage_moderators":true,'
    '"current_item_id":"9e8d7c6b-5a49-4382-9170-6f5e4d3c2b1a","wait_for_slow_members":"never",'
    '"start_when_ready":true},'
    '"playback":{"state":"paused","position":3.0,'
    '"rate":1.0,"anchor":0.0,"version":4,"set_by":null,'
    '"item_id":"9e8d7c6b-5a49-4382-9170-6f5e4d3c2b1a","duration":1325.5,"ended":false},'
    '"participants":[{"user_id":"6f1c0a52-3c41-4f0e-9b1a-0d6f2a1b7c11","user_name":"Ada",'
    '"role":"owner","is_connected":true,"sessions":1,"buffering":false,"latency_ms":null,'
    '"muted":false,"ready":true,"ended":false,"behind":false,"desktop":false}],'
    '"chat":[{"id":"3d0f6c1e-8a57-4b0e-9a7c-2f4b5e6d7c8a",'
    '"room_id":"7c2e4a10-9b3d-4e8f-a1c5-6d7e8f9a0b1c",'
    '"user_id":"6f1c0a52-3c41-4f0e-9b1a-0d6f2a1b7c11","user_name":"Ada",'
    '"message":"Popcorn ready? \U0001f37f <b>&","created_at":"2026-11-25T19:21:00Z"}],'
    '"settings":{"heartbeat_interval":5.0,"threshold_seconds":2.0,"max_latency_ms":500.0,'
    '"ready_timeout_seconds":30.0,"disconnect_timeout_seconds":30.0,'
    '"max_rate_correction":0.05,"control":"everyone","wait_for_slow_members":"never",'
    '"start_when_ready":true},'
    '"you":{"user_id":"6f1c0a52-3c41-4f0e-9b1a-0d6f2a1b7c11","user_name":"Ada",'
    '"role":"owner","is_connected":true,"sessions":1,"buffering":false,"latency_ms":null,'
    '"muted":false,"ready":true,"ended":false,"behind":false,"desktop":false},'
    '"queue":{"room_id":"7c2e4a10-9b3d-4e8f-a1c5-6d7e8f9a0b1c",'
    '"current_item_id":"9e8d7c6b-5a49-4382-9170-6f5e4d3c2b1a",'
    '"next_item_id":"1a2b3c4d-5e6f-4a0b-8c1d-2e3f4a5b6c7d","repeat":"all","shuffle":true,'
    '"items":[{"id":"9e8d7c6b-5a49-4382-9170-6f5e4d3c2b1a","content_type":"episode",'
    '"content_id":"s01e02","title":"The second","duration":1325.5},'
    '{"id":"1a2b3c4d-5e6f-4a0b-8c1d-2e3f4a5b6c7d","content_type":"episode",'
    '"content_id":"s01e03","title":null,"duration":null}]}}'
)
OLD_CHAT_FRAME = (
    '{"type":"chat","message":{"id":"3d0f6c1e-8a57-4b0e-9a7c-2f4b5e6d7c8a",'
    '"room_id":"7c2e4a10-9b3d-4e8f-a1c5-6d7e8f9a0b1c",'
    '"user_id":"6f1c0a52-3c41-4f0e-9b1a-0d6f2a1b7c11","user_name":"Ada",'
    '"message":"Popcorn ready? \U0001f37f <b>&","created_at":"2026-11-25T19:21:00Z"}}'
)


def _joined(room: protocol.RoomInfo, chat: list[protocol.ChatEntry]) -> protocol.Joined:
    item = str(ENDED.current_item_id)
    return protocol.Joined(
        session_id="s1",
        server_time=12.5,
        room=room,
        playback=protocol.PlaybackWire("paused", 3.0, 1.0, 0.0, 4, None, item, 1325.5),
        participants=[MEMBER],
        chat=chat,
        settings=protocol.SyncSettings(
            5.0, 2.0, 500.0, 30.0, 30.0, 0.05, "everyone", "never", start_when_ready=True
        ),
        you=MEMBER,
        queue=queue_info(ENDED.id, QUEUE),
    )


@pytest.mark.parametrize(("room", "old"), [(FRESH, OLD_ROOM_FRESH), (ENDED, OLD_ROOM_ENDED)])
def test_room_info_encodes_as_the_old_room_json(room: Room, old: str) -> None:
    assert msgspec.json.encode(room_info(room)).decode() == old
    assert msgspec.json.encode(payloads.room_json(room)).decode() == old  # REST: unchanged


def test_queue_info_is_the_rest_queue() -> None:
    info = queue_info(ENDED.id, QUEUE)
    assert msgspec.to_builtins(info) == payloads.queue_json(ENDED.id, QUEUE)
    schema_validator("/components/schemas/Queue").validate(msgspec.to_builtins(info))
    doc_valid("Queue", msgspec.to_builtins(info))


def test_chat_entry_encodes_as_the_old_chat_json() -> None:
    assert msgspec.json.encode(chat_entry(CHAT)).decode() == OLD_CHAT
    assert msgspec.json.encode(payloads.chat_json(CHAT)).decode() == OLD_CHAT


def test_frames_are_unchanged_and_decode_to_the_structs() -> None:
    joined = _joined(room_info(ENDED), [chat_entry(CHAT)])
    chat = protocol.ChatOut(message=chat_entry(CHAT))
    assert protocol.encode(joined) == OLD_JOINED_FRAME
    assert protocol.encode(chat) == OLD_CHAT_FRAME
    # A client (syncplayd.client) gets the same typed values back.
    assert protocol.decode_server(OLD_JOINED_FRAME) == joined
    assert protocol.decode_server(OLD_CHAT_FRAME) == chat


def test_no_password_hash_on_the_wire() -> None:
    assert ENDED.password_hash is not None
    assert ENDED.password_hash not in protocol.encode(_joined(room_info(ENDED), []))


@pytest.mark.parametrize("state", list(PlaybackState))
@pytest.mark.parametrize("control", list(PlaybackControl))
def test_every_stored_state_and_control_mode_has_a_wire_name(
    state: PlaybackState, control: PlaybackControl
) -> None:
    info = room_info(replace(FRESH, playback=Playback(state), playback_control=control))
    assert (info.playback.state, info.playback_control) == (state.value, control.value)


def test_timestamp() -> None:
    assert timestamp(None) is None
    assert timestamp(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)) == "2026-01-02T03:04:05Z"
    assert payloads.timestamp is timestamp  # one definition for REST and the WebSocket


# -- the schemas the docs and the contract publish ------------------------------------------
def _doc_schemas() -> dict[str, dict[str, Any]]:
    """The JSON Schemas of docs/protocol.md, by ``$id``."""
    blocks = re.findall(r"```json\n(.*?)```", PROTOCOL_DOC.read_text(), flags=re.DOTALL)
    schemas = [json.loads(b) for b in blocks if '"$schema"' in b]
    return {s["$id"]: s for s in schemas}


def _doc_examples() -> list[dict[str, Any]]:
    """The example messages of docs/protocol.md (the JSON blocks that are not schemas)."""
    blocks = re.findall(r"```json\n(.*?)```", PROTOCOL_DOC.read_text(), flags=re.DOTALL)
    return [json.loads(b) for b in blocks if '"$schema"' not in b]


def doc_valid(name: str, instance: object) -> None:
    """Validate ``instance`` against the docs' schema ``urn:syncplayd:protocol:1:<name>``."""
    schemas = _doc_schemas()
    registry: referencing.Registry[Any] = referencing.Registry().with_resources(
        (uri, referencing.Resource.from_contents(s)) for uri, s in schemas.items()
    )
    schema = schemas[f"urn:syncplayd:protocol:1:{name}"]
    Draft202012Validator(
        schema, registry=registry, format_checker=Draft202012Validator.FORMAT_CHECKER
    ).validate(instance)


def _server_tags() -> set[str]:
    return {str(cls.__struct_config__.tag) for cls in get_args(protocol.ServerMessage)}


def test_every_server_message_has_a_schema_with_its_values() -> None:
    schemas = _doc_schemas()
    assert {u.rpartition(":")[2] for u in schemas if ":server:" in u} == _server_tags()
    # The closed sets of the code are the documented enums, no more and no less.
    presence = schemas["urn:syncplayd:protocol:1:server:presence"]["properties"]["event"]["enum"]
    closing = schemas["urn:syncplayd:protocol:1:server:closing"]["properties"]["reason"]["enum"]
    events = get_args(get_type_hints(protocol.Presence)["event"])
    assert sorted(presence) == sorted(events)
    assert sorted(closing) == sorted(get_args(protocol.CloseReason))
    for name, struct in (("Member", protocol.Member), ("Room", protocol.RoomInfo)):
        schema = schemas[f"urn:syncplayd:protocol:1:{name}"]
        assert schema["required"] == list(struct.__struct_fields__), name


def test_every_server_example_validates_and_decodes() -> None:
    """The docs' examples are real frames: the schema takes them, and so does the client."""
    tags = _server_tags()
    seen = set()
    for example in _doc_examples():
        kind = example["type"]
        if kind not in tags or (kind == "chat" and isinstance(example["message"], str)):
            continue  # a client message (``chat`` exists both ways)
        doc_valid(f"server:{kind}", example)
        decoded = protocol.decode_server(json.dumps(example))
        assert json.loads(protocol.encode(decoded)) == example
        seen.add(kind)
    assert {"room", "chat_deleted", "presence", "closing"} <= seen


def test_the_moderation_messages_match_the_published_schemas() -> None:
    settings = protocol.SyncSettings(5.0, 2.0, 500.0, 30.0, 30.0, 0.05, "moderators")
    changed = protocol.RoomChanged(room=room_info(ENDED), settings=settings)
    deleted = protocol.ChatDeleted(room_id=str(ENDED.id), message_id=str(CHAT.id))
    member = msgspec.structs.replace(MEMBER, muted=True)
    muted = protocol.Presence(event="muted", member=member, detail=None)
    banned = protocol.Closing(reason="banned", message="Ada banned you from the room for good")
    for message in (changed, deleted, muted, banned):
        frame = json.loads(protocol.encode(message))
        doc_valid(f"server:{frame['type']}", frame)
        assert protocol.decode_server(protocol.encode(message)) == message
    frame = json.loads(protocol.encode(changed))
    assert frame["room"]["moderators_manage_moderators"] is True
    assert json.loads(protocol.encode(muted))["member"]["muted"] is True


@pytest.mark.parametrize("room", [FRESH, ENDED])
def test_the_structs_match_the_published_schemas(room: Room) -> None:

    info = msgspec.to_builtins(room_info(room))
    entry = msgspec.to_builtins(chat_entry(CHAT))
    doc_valid("Room", info)
    doc_valid("ChatMessage", entry)
    doc_valid(
        "server:joined", json.loads(protocol.encode(_joined(room_info(room), [chat_entry(CHAT)])))
    )
    doc_valid("server:chat", json.loads(protocol.encode(protocol.ChatOut(chat_entry(CHAT)))))
    schema_validator("/components/schemas/Room").validate(info)
    schema_validator("/components/schemas/ChatMessage").validate(entry)


def test_every_client_message_has_a_schema_and_its_examples_are_accepted() -> None:
    """The client messages of §3.2, new ones included (``media``, ``ended``, ``next``,
    ``previous``, ``readiness``): a schema each, and examples the server decodes."""
    schemas = _doc_schemas()
    documented = {u.rpartition(":")[2] for u in schemas if ":client:" in u}
    assert documented == protocol.CLIENT_TYPES
    seen = set()
    for example in _doc_examples():
        kind = example["type"]
        if kind not in protocol.CLIENT_TYPES or (
            kind == "chat" and not isinstance(example["message"], str)
        ):
            continue  # a server message (``chat`` exists both ways)
        doc_valid(f"client:{kind}", example)
        protocol.decode_client(json.dumps(example))
        seen.add(kind)
    assert {"media", "ended", "next", "previous", "readiness"} <= seen


def test_the_watch_session_messages_match_the_published_schemas() -> None:
    item = str(ENDED.current_item_id)
    playback = protocol.PlaybackWire("paused", 1325.5, 1.0, 7.0, 9, None, item, 1325.5, True)
    member = msgspec.structs.replace(MEMBER, ended=True, behind=True)
    messages: list[protocol.ServerMessage] = [
        protocol.QueueChanged(queue=queue_info(ENDED.id, QUEUE)),
        protocol.PlaybackChanged(playback=playback, execute_at=7.0, reason="ended"),
        protocol.Presence(event="slow", member=member, detail="Ada"),
        protocol.Presence(event="ended", member=member),
        protocol.Presence(event="readiness", member=member),
    ]
    for message in messages:
        frame = json.loads(protocol.encode(message))
        doc_valid(f"server:{frame['type']}", frame)
        assert protocol.decode_server(protocol.encode(message)) == message
