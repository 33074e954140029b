"""Connections and rooms over a daemon's life: slow peers, shutdown, restart."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import pytest
import trio

from tests.daemon_process import DaemonProcess, new_user, run_daemon
from tests.e2e.conftest import E2E_ENV
from tests.e2e.raw import new_room, raw_client, read_until_closed
from tests.server.conftest import BACKENDS, backend_database_url


async def test_a_reader_that_stops_is_dropped_without_delaying_others(
    live_daemon: DaemonProcess,
) -> None:
    owner, stalled = new_user("owner"), new_user("stalled")
    room_id = await new_room(live_daemon, owner)
    count, size = 1000, 9000
    posted: dict[int, float] = {}
    delays: list[float] = []
    async with (
        raw_client(live_daemon, owner, room_id) as fast,
        raw_client(live_daemon, stalled, room_id, queue=1, tiny_buffer=True) as stuck,
        trio.open_nursery() as nursery,
    ):
        # Both keep sending heartbeats: the stuck one is alive, it just never reads.
        nursery.start_soon(fast.heartbeats)
        nursery.start_soon(stuck.heartbeats)
        await fast.expect("presence", event="joined")

        def post_all() -> None:
            with live_daemon.client(owner) as http:
                for i in range(count):
                    posted[i] = time.monotonic()
                    text = f"{i:04d} " + "x" * size
                    response = http.post(
                        f"/api/v1/syncplay/rooms/{room_id}/chat", json={"message": text}
                    )
                    assert response.status_code == 201, response.text

        dropped = False
        nursery.start_soon(trio.to_thread.run_sync, post_all)
        received = 0
        with trio.fail_after(60):
            while received < count or not dropped:
                message = await fast.recv()
                if message["type"] == "chat":
                    index = int(message["message"]["message"][:4])
                    delays.append(time.monotonic() - posted[index])
                    received += 1
                elif message["type"] == "presence" and message["event"] == "disconnected":
                    assert message["member"]["user_name"] == "stalled"
                    dropped = True
        # The stuck reader finally reads: what it was told, after its backlog, is why.
        _, code = await read_until_closed(stuck)
        assert code == 4004  # too-slow
        nursery.cancel_scope.cancel()
    delays.sort()
    # Every message reached the fast reader promptly while the other one was stuck.
    assert delays[-1] < 1.0, delays[-5:]
    assert delays[len(delays) // 2] < 0.1


@pytest.mark.parametrize("backend", BACKENDS)
async def test_sigterm_tells_clients_and_keeps_acknowledged_chat(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    url = await trio.to_thread.run_sync(backend_database_url, backend, request, tmp_path)
    owner, guest = new_user("owner"), new_user("guest")
    acked: list[str] = []
    with run_daemon(url, tmp_path / "state", E2E_ENV) as daemon:
        room_id = await new_room(daemon, owner)
        async with raw_client(daemon, owner, room_id) as a, raw_client(daemon, guest, room_id) as b:
            for i in range(20):
                sender = a if i % 2 else b
                await sender.send({"type": "chat", "message": f"line {i}", "client_id": f"c{i}"})
                acked.append((await sender.expect("chat_ack"))["message_id"])
            await a.send({"type": "play", "position": 120.0})
            before = (await b.expect("playback"))["playback"]
            daemon.process.send_signal(signal.SIGTERM)
            for client in (a, b):
                seen, code = await read_until_closed(client)
                closing = [m for m in seen if m["type"] == "closing"]
                assert closing and closing[-1]["reason"] == "server-restarting"
                assert code == 1012
        exit_code = await trio.to_thread.run_sync(daemon.process.wait)
        assert exit_code == 0
    with run_daemon(url, tmp_path / "state", E2E_ENV) as daemon:

        def history() -> dict[str, Any]:
            with daemon.client(owner) as http:
                page: dict[str, Any] = http.get(
                    f"/api/v1/syncplay/rooms/{room_id}/chat", params={"limit": 100}
                ).json()
                return page

        page = await trio.to_thread.run_sync(history)
        assert {m["id"] for m in page["items"]} == set(acked)
        # The room was playing when the daemon stopped: it resumes playing, further on.
        async with raw_client(daemon, owner, room_id) as again:
            assert again.joined is not None
            playback = again.joined["playback"]
            assert playback["state"] == "playing"
            assert playback["version"] > before["version"]
            # Where it stood, plus the time it was away: within the write-behind delay.
            now = again.joined["server_time"]
            expected = before["position"] + (now - before["anchor"]) * before["rate"]
            resumed = playback["position"] + max(0.0, now - playback["anchor"]) * playback["rate"]
            assert abs(resumed - expected) < 1.0, (resumed, expected)
