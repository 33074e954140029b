"""The Python client takes a ``presence_batch`` as its presences sent one by one.

No daemon, as in ``test_player``: messages are dispatched by hand, or read by the
connection's reader from a fake socket.
"""

from __future__ import annotations

import msgspec
import trio

from syncplayd.client import ClientCore
from syncplayd.client._connection import Connection
from syncplayd.client._room import RoomView
from syncplayd.core.protocol import (
    Closing,
    Presence,
    PresenceBatch,
    ServerMessage,
    encode,
)
from tests.client.test_player import Clock, client_at, joined_snapshot, member

# The snapshot holds ada (you) and bob. Comings and goings of one window, in order,
# with users who come back and go again: order decides the outcome.
EVENTS = [
    Presence("joined", member("cy")),
    Presence("disconnected", member("bob", sessions=0, connected=False)),
    Presence("joined", member("dan")),
    Presence("left", member("cy", sessions=0, connected=False)),
    Presence("reconnected", member("bob")),
    Presence("reconnected", member("ada", sessions=2)),  # you, on a second device
    Presence("left", member("eve", sessions=0, connected=False)),  # never seen: no entry
    Presence("left", member("dan", sessions=0, connected=False)),
    Presence("joined", member("dan")),  # and back within the same window
]


def drain(client: ClientCore) -> list[ServerMessage]:
    channel, out = client.events(), []
    while True:
        try:
            out.append(channel.receive_nowait())
        except trio.WouldBlock:
            return out


def test_a_batch_leaves_the_client_as_the_same_presences_one_by_one() -> None:
    singly, batched = client_at(Clock()), client_at(Clock())
    for event in EVENTS:
        singly._dispatch(event)
    batched._dispatch(PresenceBatch(EVENTS))

    expected = {"ada": member("ada", sessions=2), "bob": member("bob"), "dan": member("dan")}
    assert dict(batched.participants) == dict(singly.participants) == expected
    assert batched.you == singly.you == member("ada", sessions=2)
    # Code reading the client's events sees the presences themselves, never the batch.
    assert drain(batched) == drain(singly) == EVENTS
    assert batched.received_count == singly.received_count == len(EVENTS)


def test_the_room_view_applies_a_batch_in_order() -> None:
    singly, batched = RoomView(chat_history=5), RoomView(chat_history=5)
    singly.install(joined_snapshot())
    batched.install(joined_snapshot())
    for event in EVENTS:
        singly.apply(event)
    assert batched.apply(PresenceBatch(EVENTS)) is None  # no playback in it
    assert dict(batched.participants) == dict(singly.participants)
    assert sorted(batched.participants) == ["ada", "bob", "dan"]
    assert batched.you == member("ada", sessions=2)


class FramesSocket:
    """Hands the reader the given frames, in order; sends go nowhere."""

    def __init__(self, frames: list[str]) -> None:
        self._frames = list(frames)

    async def get_message(self) -> str:
        await trio.lowlevel.checkpoint()
        return self._frames.pop(0)

    async def send_message(self, data: str) -> None:
        await trio.lowlevel.checkpoint()


async def test_a_batch_frame_from_the_wire_reaches_waiters_as_presences() -> None:
    client = client_at(Clock())
    mark = client.received_count
    frames = [
        encode(PresenceBatch(EVENTS[:4])),
        encode(EVENTS[4]),  # a window with one event: a plain presence
        encode(PresenceBatch(EVENTS[5:])),
        encode(Closing("room-ended", "the room ended")),  # the reader returns after it
    ]
    with trio.fail_after(5):
        await Connection(client, FramesSocket(frames))._reader()  # type: ignore[arg-type]
        # The third presence of the first frame, found by a waiter as if it came alone.
        third = await client.wait_for(
            lambda m: isinstance(m, Presence) and m.member.user_id == "dan", 1.0, since=mark
        )
    assert third == EVENTS[2]
    assert drain(client) == [*EVENTS, Closing("room-ended", "the room ended")]
    assert sorted(client.participants) == ["ada", "bob", "dan"]


def test_a_batch_about_you_alone_changes_you() -> None:
    client = client_at(Clock())
    muted = msgspec.structs.replace(member("ada"), muted=True)
    client._dispatch(PresenceBatch([Presence("reconnected", member("ada", sessions=2))]))
    assert client.you == member("ada", sessions=2)
    client._dispatch(PresenceBatch([Presence("muted", muted), Presence("disconnected", muted)]))
    assert client.you == muted
    assert client.participants["ada"] == muted
