"""The sync acceptance points, with the Python client against a daemon process.

"Truth" is the room's position at the true server time. The daemon's server
clock is this machine's wall clock (see syncplayd/clocks.py), so the
tests read it with ``time.time()`` while each client only has its own,
deliberately skewed clock and what it learns over the socket.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from urllib.parse import urlsplit

import trio

from syncplayd.client import ClientOptions, SyncClient, open_sync_client
from syncplayd.core.clock import position_at
from syncplayd.core.protocol import Joined, PlaybackChanged, Presence, ServerMessage
from syncplayd.identity import Principal
from tests.daemon_process import DaemonProcess, new_user
from tests.e2e.proxy import cuttable_proxy
from tests.e2e.raw import new_room, raw_client, token, ws_url

FAST = ClientOptions(fast_ping_interval=0.05, fast_ping_count=10, slow_ping_interval=1.0)


@asynccontextmanager
async def client(
    daemon: DaemonProcess,
    user: Principal,
    room_id: str,
    *,
    skew: float = 0.0,
    url: str | None = None,
) -> AsyncIterator[SyncClient]:
    async with open_sync_client(
        url or ws_url(daemon), token(user), room_id=room_id, clock_skew=skew, options=FAST
    ) as c:
        with trio.fail_after(5):
            await c.wait_clock_samples(5)  # let the clock estimate settle (fast pings)
        yield c


def truth(c: SyncClient) -> float:
    return position_at(c.playback, time.time())


async def playing(c: SyncClient, mark: int) -> PlaybackChanged:
    def started(m: ServerMessage) -> bool:
        return isinstance(m, PlaybackChanged) and m.playback.state == "playing"

    message = await c.wait_for(started, 5.0, since=mark)
    assert isinstance(message, PlaybackChanged)
    return message


async def test_skewed_clients_agree_with_the_room_within_20ms(live_daemon: DaemonProcess) -> None:
    users = [new_user(f"viewer{i}") for i in range(3)]
    room_id = await new_room(live_daemon, users[0])
    async with AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(client(live_daemon, user, room_id, skew=skew))
            for user, skew in zip(users, (-5.0, 2.5, 5.0), strict=True)
        ]
        marks = [c.received_count for c in clients]
        await clients[0].play(position=30.0)
        changes = [await playing(c, mark) for c, mark in zip(clients, marks, strict=True)]
        execute_at = changes[0].execute_at
        worst = 0.0
        for _ in range(20):  # a second of samples, on every client
            for c in clients:
                worst = max(worst, abs(c.room_position() - truth(c)))
            await trio.sleep(0.05)
        assert worst < 0.020, f"worst error {worst * 1000:.1f} ms"
        # The room really moves: 30 s at the start, more now.
        assert truth(clients[0]) > 30.0 + (time.time() - execute_at) - 0.05


async def test_scheduled_play_reaches_everyone_before_it_executes(
    live_daemon: DaemonProcess,
) -> None:
    users = [new_user(f"u{i}") for i in range(3)]
    room_id = await new_room(live_daemon, users[0])
    arrivals: list[tuple[float, float]] = []
    async with AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(client(live_daemon, u, room_id)) for u in users]
        for round_ in range(3):
            marks = [c.received_count for c in clients]
            await clients[round_].play(position=float(round_ * 10))
            for c, mark in zip(clients, marks, strict=True):
                change = await playing(c, mark)
                arrivals.append((time.time(), change.execute_at))
            marks = [c.received_count for c in clients]
            await clients[round_].pause()
            for c, mark in zip(clients, marks, strict=True):
                await c.wait_for(
                    lambda m: isinstance(m, PlaybackChanged) and m.playback.state == "paused",
                    5.0,
                    since=mark,
                )
    assert len(arrivals) == 9
    assert all(seen < execute_at for seen, execute_at in arrivals), arrivals


async def test_late_joiner_lands_at_the_live_position(live_daemon: DaemonProcess) -> None:
    host, late = new_user("host"), new_user("late")
    room_id = await new_room(live_daemon, host)
    async with client(live_daemon, host, room_id) as first:
        mark = first.received_count
        await first.play(position=100.0)
        change = await playing(first, mark)
        # The scenario needs the room to have played for a while (time passing,
        # not a wait for some condition).
        await trio.sleep(max(0.0, change.execute_at + 0.5 - time.time()))
        async with client(live_daemon, late, room_id, skew=4.0) as second:
            assert second.playback.state == "playing"
            assert abs(second.room_position() - truth(second)) < 0.020
            second.player.update(second.local_time)
            assert abs(second.player.position() - truth(second)) < 0.100
            assert truth(second) > 100.4


async def test_a_buffering_member_makes_the_room_wait(live_daemon: DaemonProcess) -> None:
    host, slow = new_user("host"), new_user("slow")
    room_id = await new_room(live_daemon, host)
    async with client(live_daemon, host, room_id) as a, client(live_daemon, slow, room_id) as b:
        await b.ready()  # b has loaded its media: it is no longer a late joiner
        mark = a.received_count
        await a.play()
        await playing(a, mark)
        mark = a.received_count
        await b.buffering()
        waiting = await a.wait_for(
            lambda m: isinstance(m, PlaybackChanged) and m.playback.state == "waiting",
            5.0,
            since=mark,
        )
        assert isinstance(waiting, PlaybackChanged)
        mark = a.received_count
        await b.ready()
        resumed = await playing(a, mark)
        assert resumed.reason == "resume"
        assert resumed.playback.position >= waiting.playback.position


async def test_a_member_never_ready_is_named_and_skipped(live_daemon: DaemonProcess) -> None:
    host, stuck = new_user("host"), new_user("Stuck Sam")
    room_id = await new_room(live_daemon, host)
    async with client(live_daemon, host, room_id) as a, client(live_daemon, stuck, room_id) as b:
        await b.ready()
        mark = a.received_count
        await a.play()
        await playing(a, mark)
        mark = a.received_count
        started = time.time()
        await b.buffering()
        named = await a.wait_for(
            lambda m: isinstance(m, Presence) and m.event == "not_ready_timeout", 5.0, since=mark
        )
        assert isinstance(named, Presence)
        assert named.member.user_name == "Stuck Sam"
        assert time.time() - started >= 1.5  # sync.ready_timeout_seconds in the test daemon
        resumed = await playing(a, mark)
        assert resumed.reason == "resume"


async def test_a_member_3s_off_gets_a_sync_command(live_daemon: DaemonProcess) -> None:
    host, drifter = new_user("host"), new_user("drifter")
    room_id = await new_room(live_daemon, host)
    async with (
        client(live_daemon, host, room_id) as a,
        raw_client(live_daemon, drifter, room_id) as b,
    ):
        mark = a.received_count
        await a.play(position=50.0)
        change = await playing(a, mark)
        playback = change.playback
        # Close to the room: nothing happens.
        now = time.time()
        near = position_at(playback, now) + 0.5
        await b.send({"type": "heartbeat", "position": near, "server_time": now,
                      "version": playback.version, "playing": True})  # fmt: skip
        await b.send({"type": "ping", "id": 1, "t0": 0.0})
        assert (await b.expect("pong"))["id"] == 1  # no sync came before the pong
        # Three seconds ahead: told to seek back to the room.
        now = time.time()
        off = position_at(playback, now) + 3.0
        await b.send({"type": "heartbeat", "position": off, "server_time": now,
                      "version": playback.version, "playing": True})  # fmt: skip
        sync = await b.expect("sync")
        assert abs(sync["offset"] - 3.0) < 0.05
        assert sync["playback"]["version"] == playback.version


async def test_the_client_comes_back_as_the_same_participant(live_daemon: DaemonProcess) -> None:
    host, roamer = new_user("host"), new_user("roamer")
    room_id = await new_room(live_daemon, host)
    target = urlsplit(live_daemon.base_url)
    assert target.hostname is not None and target.port is not None
    async with (
        cuttable_proxy(target.hostname, target.port) as proxy,
        client(live_daemon, host, room_id) as a,
    ):
        url = f"ws://127.0.0.1:{proxy.port}/api/v1/syncplay/ws"
        async with client(live_daemon, roamer, room_id, url=url) as b:
            session = b.session_id
            mark, mark_b = a.received_count, b.received_count
            proxy.cut()  # the network drops
            await a.wait_for(
                lambda m: isinstance(m, Presence) and m.event == "disconnected", 10.0, since=mark
            )
            back = await a.wait_for(
                lambda m: isinstance(m, Presence) and m.event == "reconnected", 10.0, since=mark
            )
            assert isinstance(back, Presence) and back.member.user_name == "roamer"
            await b.wait_for(lambda m: isinstance(m, Joined), 10.0, since=mark_b)
            assert b.session_id == session
            assert b.reconnects == 1
            assert proxy.accepted == 2
