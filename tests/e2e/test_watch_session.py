"""Watch sessions against daemon processes, on both backends: the end of an item, the queue,
next, slow viewers, readiness.

The Python client plays the players (it stops at an item's end and reports it); raw
clients send what a test needs at the moment it needs it. Short timeouts come from
``tests/e2e/conftest.py``: a ready timeout of 1.5 s, heartbeats every 0.5 s.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import httpx
import trio

from syncplayd.client import ClientOptions, SyncClient, open_sync_client
from syncplayd.core.protocol import PlaybackChanged, Presence, QueueChanged, ServerMessage
from syncplayd.identity import Principal
from tests.daemon_process import DaemonProcess, new_user
from tests.e2e.raw import Raw, new_room, raw_clients_in_room, token, ws_url

API = "/api/v1/syncplay"
FAST = ClientOptions(fast_ping_interval=0.05, fast_ping_count=5, slow_ping_interval=1.0)
LIMIT = 10.0


@asynccontextmanager
async def _rest(daemon: DaemonProcess, principal: Principal) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {token(principal)}"}
    async with httpx.AsyncClient(
        base_url=daemon.base_url + API, headers=headers, timeout=LIMIT
    ) as http:
        yield http


async def _queue_item(
    daemon: DaemonProcess, owner: Principal, room_id: str, content_id: str, **fields: Any
) -> str:
    """Queue an item over REST; its id."""
    async with _rest(daemon, owner) as http:
        body = {"content_type": "movie", "content_id": content_id} | fields
        response = await http.post(f"/rooms/{room_id}/queue/items", json=body)
        assert response.status_code == 201, response.text
        item_id: str = response.json()["items"][-1]["id"]
        return item_id


@asynccontextmanager
async def _players(
    daemon: DaemonProcess, room_id: str, *people: Principal
) -> AsyncIterator[list[SyncClient]]:
    async with AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(
                open_sync_client(ws_url(daemon), token(person), room_id=room_id, options=FAST)
            )
            for person in people
        ]
        yield clients


async def _collect(client: Raw, seconds: float) -> list[dict[str, Any]]:
    """Every message ``client`` gets for ``seconds``."""
    seen: list[dict[str, Any]] = []
    with trio.move_on_after(seconds):
        while True:
            seen.append(await client.recv(LIMIT))
    return seen


async def test_two_nexts_within_100_ms_move_the_room_once(live_daemon: DaemonProcess) -> None:
    owner, guest = new_user("Ada"), new_user("Ben")
    room_id = await new_room(live_daemon, owner)
    second = await _queue_item(live_daemon, owner, room_id, "2")
    await _queue_item(live_daemon, owner, room_id, "3")
    async with raw_clients_in_room(live_daemon, room_id, owner, guest) as (ada, ben):
        first = ada.joined["queue"]["current_item_id"]  # type: ignore[index]
        # Both press Next at once: the frames cross on the wire.
        async with trio.open_nursery() as nursery:
            for client in (ada, ben):
                nursery.start_soon(client.send, {"type": "next", "current_item_id": first})
        seen = {name: await _collect(c, 1.5) for name, c in (("ada", ada), ("ben", ben))}
    for messages in seen.values():
        queues = [m for m in messages if m["type"] == "queue"]
        items = [m for m in messages if m["type"] == "playback" and m["reason"] == "item"]
        assert [q["queue"]["current_item_id"] for q in queues] == [second]
        assert [i["playback"]["item_id"] for i in items] == [second]
        assert not [m for m in messages if m["type"] == "error"]
    async with _rest(live_daemon, owner) as http:
        queue = (await http.get(f"/rooms/{room_id}/queue")).json()
    assert queue["current_item_id"] == second


async def test_a_queue_plays_to_its_end_and_repeat_all_loops(live_daemon: DaemonProcess) -> None:
    """Two short items: at the end of the first both players move on to the second (within
    1 s of each other), nobody is ever sent backwards within an item, and at the end of the
    last the room stands ended at its duration, for the server and for both players."""
    owner, guest = new_user("Ada"), new_user("Ben")
    room_id = await new_room(live_daemon, owner, content_duration=2.0)
    second = await _queue_item(live_daemon, owner, room_id, "2", duration=2.0)
    async with _players(live_daemon, room_id, owner, guest) as (ada, ben):
        first = ada.playback.item_id
        marks = [c.received_count for c in (ada, ben)]
        await ada.play()

        def item_started(m: ServerMessage) -> bool:
            return isinstance(m, PlaybackChanged) and m.reason == "item"

        def the_end(m: ServerMessage) -> bool:
            return isinstance(m, PlaybackChanged) and m.playback.ended

        starts = [
            await c.wait_for(item_started, LIMIT, since=mark)
            for c, mark in zip((ada, ben), marks, strict=True)
        ]
        assert {s.playback.item_id for s in starts} == {second}  # type: ignore[union-attr]
        moved = [c.server_to_local(s.execute_at) for c, s in zip((ada, ben), starts, strict=True)]  # type: ignore[union-attr]
        assert abs(moved[0] - moved[1]) < 1.0
        # The second item ends, and nothing follows it.
        for c, mark in zip((ada, ben), marks, strict=True):
            await c.wait_for(
                lambda m: the_end(m) and m.playback.item_id == second,  # type: ignore[union-attr]
                LIMIT,
                since=mark,
            )
        for c in (ada, ben):
            assert c.ended and c.playback.position == 2.0 and c.room_position() == 2.0
            assert c.player.at_end() and c.player.position() == 2.0
        # Nobody was ever sent backwards within an item.
        for c in (ada, ben):
            changes = [m for _, m in c._hub._history if isinstance(m, PlaybackChanged)]
            for before, after in itertools.pairwise(changes):
                if after.playback.item_id == before.playback.item_id and after.reason != "play":
                    assert after.playback.position >= before.playback.position
        await trio.sleep(2.0)  # the end wait passes: still ended, on the same item
        assert ada.ended and ada.playback.item_id == second
        async with _rest(live_daemon, owner) as http:
            room = (await http.get(f"/rooms/{room_id}")).json()
            assert room["current_item_id"] == second
            assert (room["playback"]["state"], room["playback"]["position"]) == ("paused", 2.0)
            # Repeat all: next from the last item wraps to the first, and plays.
            assert (
                await http.put(f"/rooms/{room_id}/queue/mode", json={"repeat": "all"})
            ).status_code == 200
            mark = ben.received_count
            await ben.next()
            start = await ben.wait_for(item_started, LIMIT, since=mark)
        assert start.playback.item_id == first  # type: ignore[union-attr]
        assert start.playback.state == "playing"  # type: ignore[union-attr]
        # ...and at the end of the last item the queue goes round again by itself.
        loop = await ben.wait_for(
            lambda m: item_started(m) and m.playback.item_id == first,  # type: ignore[union-attr]
            3 * LIMIT,
            since=ben.received_count,
        )
        assert loop.playback.state in ("playing", "waiting")  # type: ignore[union-attr]


async def test_a_players_duration_is_stored_and_told(live_daemon: DaemonProcess) -> None:
    owner = new_user("Ada")
    room_id = await new_room(live_daemon, owner)
    async with raw_clients_in_room(live_daemon, room_id, owner) as (ada,):
        item = ada.joined["queue"]["current_item_id"]  # type: ignore[index]
        await ada.send({"type": "media", "item_id": item, "duration": 61.5})
        changed = await ada.expect("queue")
        assert changed["queue"]["items"][0]["duration"] == 61.5
        await ada.send({"type": "media", "item_id": item, "duration": 10.0})  # the first won
        await ada.send({"type": "seek", "position": 70.0})  # past the end: ended there
        end = await ada.expect("playback")
        assert end["reason"] == "ended" and end["playback"]["position"] == 61.5
    async with _rest(live_daemon, owner) as http:
        queue = (await http.get(f"/rooms/{room_id}/queue")).json()
    assert queue["items"][0]["duration"] == 61.5


async def test_a_slow_member_stops_the_room_three_times_then_catches_up_alone(
    live_daemon: DaemonProcess,
) -> None:
    owner, guest = new_user("Ada"), new_user("Ben")
    room_id = await new_room(live_daemon, owner)
    async with raw_clients_in_room(live_daemon, room_id, owner, guest) as (ada, ben):
        await ada.send({"type": "play"})
        await ada.expect("playback", reason="play")
        for _ in range(3):
            await ben.send({"type": "buffering"})
            await ada.expect("playback", reason="waiting")
            await ben.send({"type": "ready"})
            await ada.expect("playback", reason="resume")
        await ben.send({"type": "buffering"})
        slow = await ada.expect("presence", event="slow")
        assert slow["detail"] == "Ben" and slow["member"]["behind"] is True
        told = await ben.expect("presence", event="slow")  # the slow member hears it too
        assert told["detail"] == "Ben"
        seen = await _collect(ada, 1.0)
        assert not [m for m in seen if m["type"] == "playback"]  # no fourth stop
        await ben.send({"type": "ready"})
        sync = await ben.expect("sync")  # straight to the live position
        assert sync["playback"]["state"] == "playing"


async def test_start_when_ready(live_daemon: DaemonProcess) -> None:
    owner, guest = new_user("Ada"), new_user("Ben")
    room_id = await new_room(live_daemon, owner)
    async with raw_clients_in_room(live_daemon, room_id, owner, guest) as (ada, ben):
        async with _rest(live_daemon, owner) as http:
            body = {"start_when_ready": True, "wait_for_slow_members": "always"}
            assert (await http.put(f"/rooms/{room_id}", json=body)).status_code == 200
        changed = await ben.expect("room")
        assert changed["settings"]["start_when_ready"] is True
        assert changed["settings"]["wait_for_slow_members"] == "always"
        await ben.send({"type": "play"})
        refused = await ben.expect("error")
        assert refused["code"] == "not-ready" and "Ada" in refused["message"]
        await ada.send({"type": "readiness", "ready": True})
        await ben.expect("presence", event="readiness")
        await ben.send({"type": "readiness", "ready": True})
        started = await ada.expect("playback")
        assert (started["reason"], started["playback"]["state"]) == ("all_ready", "playing")
        await ada.send({"type": "pause"})
        # Every pause makes everyone not ready.
        readiness = [m for m in await _collect(ben, 1.0) if m.get("event") == "readiness"]
        unready = [m["member"]["user_name"] for m in readiness if not m["member"]["ready"]]
        assert sorted(unready) == ["Ada", "Ben"]


async def test_the_python_client_follows_the_queue(live_daemon: DaemonProcess) -> None:
    owner = new_user("Ada")
    room_id = await new_room(live_daemon, owner)
    async with _players(live_daemon, room_id, owner) as (ada,):
        assert ada.queue is not None and ada.current_item is not None
        mark = ada.received_count
        second = await _queue_item(live_daemon, owner, room_id, "2", title="Second")
        message = await ada.wait_for(lambda m: isinstance(m, QueueChanged), LIMIT, since=mark)
        assert isinstance(message, QueueChanged)
        assert [i.title for i in ada.queue.items] == [None, "Second"]
        mark = ada.received_count
        await ada.next()
        await ada.wait_for(lambda m: isinstance(m, PlaybackChanged), LIMIT, since=mark)
        assert ada.current_item is not None and ada.current_item.id == second
        await ada.set_ready()
        ready = await ada.wait_for(
            lambda m: isinstance(m, Presence) and m.event == "readiness", LIMIT, since=mark
        )
        assert isinstance(ready, Presence) and ready.member.ready
