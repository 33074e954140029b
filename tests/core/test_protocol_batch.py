"""``presence_batch``: several presences in one frame, each exactly as it is sent alone."""

from __future__ import annotations

import json
from typing import get_args

import msgspec
import pytest

from syncplayd.core import protocol
from syncplayd.core.protocol import (
    MAX_PRESENCE_BATCH,
    Member,
    Presence,
    PresenceBatch,
    decode_server,
    encode,
)


def member(user: str, *, sessions: int = 1) -> Member:
    return Member(user, user.title(), "member", sessions > 0, sessions, False, None)


EVENTS = [
    Presence("joined", member("cy")),
    Presence("reconnected", member("dan", sessions=2)),
    Presence("disconnected", member("eve", sessions=0)),
    Presence("left", member("cy", sessions=0)),
]


def test_the_batch_is_the_single_frames_inside_one_envelope() -> None:
    text = encode(PresenceBatch(EVENTS))
    # Byte for byte: every element is what ``presence`` alone would have been, in order.
    singles = ",".join(encode(event) for event in EVENTS)
    assert text == '{"type":"presence_batch","events":[' + singles + "]}"
    frame = json.loads(text)
    assert list(frame) == ["type", "events"]
    assert frame["events"][1] == {
        "type": "presence",
        "event": "reconnected",
        "member": {
            "user_id": "dan",
            "user_name": "Dan",
            "role": "member",
            "is_connected": True,
            "sessions": 2,
            "buffering": False,
            "latency_ms": None,
            "muted": False,
            "ready": False,
            "ended": False,
            "behind": False,
            "desktop": False,
        },
        "detail": None,
    }


def test_the_server_union_decodes_it() -> None:
    assert PresenceBatch in get_args(protocol.ServerMessage)
    batch = PresenceBatch(EVENTS)
    decoded = decode_server(encode(batch))
    assert isinstance(decoded, PresenceBatch)
    assert decoded == batch
    assert decoded.events == EVENTS  # the order is kept
    # A lone presence is still a ``presence``, not a batch of one.
    assert isinstance(decode_server(encode(EVENTS[0])), Presence)


def test_at_most_max_presence_batch_events() -> None:
    assert MAX_PRESENCE_BATCH == 500
    full = PresenceBatch([Presence("joined", member(f"u{i}")) for i in range(MAX_PRESENCE_BATCH)])
    assert decode_server(encode(full)) == full
    over = PresenceBatch([*full.events, Presence("joined", member("one-more"))])
    with pytest.raises(msgspec.ValidationError, match="length <= 500"):
        decode_server(encode(over))
    with pytest.raises(msgspec.ValidationError, match="length >= 1"):
        decode_server('{"type":"presence_batch","events":[]}')


def test_only_presences_go_in_a_batch() -> None:
    chat = '{"type":"chat_deleted","room_id":"r1","message_id":"m1"}'
    with pytest.raises(msgspec.ValidationError):
        decode_server('{"type":"presence_batch","events":[' + chat + "]}")
    other = json.loads(encode(EVENTS[0])) | {"type": "playback"}
    with pytest.raises(msgspec.ValidationError):
        decode_server(json.dumps({"type": "presence_batch", "events": [other]}))
