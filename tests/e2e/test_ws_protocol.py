"""The WebSocket protocol against a daemon process: handshake, refusals, bad input.

Raw frames on purpose: these tests misbehave the way broken or hostile clients do.
"""

from __future__ import annotations

import json
from contextlib import AsyncExitStack
from uuid import uuid4

import pytest
import trio
from trio_websocket import ConnectionRejected, open_websocket_url

from tests.daemon_process import DaemonProcess, new_user
from tests.e2e.raw import Raw, new_room, raw_client, read_until_closed, token, ws_url


async def _closed_with(client: Raw, code: int, reason: str) -> None:
    seen, closed_code = await read_until_closed(client)
    closing = [m for m in seen if m["type"] == "closing"]
    assert closing, seen
    assert closing[-1]["reason"] == reason
    assert closed_code == code


async def test_hello_join_and_snapshot(live_daemon: DaemonProcess) -> None:
    owner = new_user("Owner")
    room_id = await new_room(live_daemon, owner)
    async with raw_client(live_daemon) as client:
        welcome = await client.hello(owner)
        assert welcome["type"] == "welcome"
        assert welcome["user_name"] == "Owner" and welcome["protocol"] == 1
        joined = await client.join(room_id)
    assert joined["room"]["id"] == room_id
    assert joined["playback"]["state"] == "paused" and joined["playback"]["version"] >= 0
    assert [m["user_name"] for m in joined["participants"]] == ["Owner"]
    assert joined["you"]["role"] == "owner"
    assert joined["settings"]["threshold_seconds"] == 2.0
    assert joined["settings"]["heartbeat_interval"] == 0.5
    assert abs(joined["server_time"] - welcome["server_time"]) < 5
    # The room plays its queue's one item, whose length nobody knows yet.
    queue = joined["queue"]
    assert [(i["content_id"], i["duration"]) for i in queue["items"]] == [("1", None)]
    assert joined["playback"]["item_id"] == queue["current_item_id"]
    assert joined["room"]["current_item_id"] == queue["current_item_id"]
    assert (joined["playback"]["duration"], joined["playback"]["ended"]) == (None, False)
    assert joined["settings"]["wait_for_slow_members"] == "policy"
    assert joined["you"]["ready"] is False and joined["you"]["behind"] is False


async def test_header_authentication(live_daemon: DaemonProcess) -> None:
    user = new_user("h")
    headers = [(b"Authorization", f"Bearer {token(user)}".encode())]
    async with open_websocket_url(ws_url(live_daemon), extra_headers=headers) as ws:
        client = Raw(ws)
        welcome = await client.hello(None)
        assert welcome["type"] == "welcome" and welcome["user_id"] == str(user.user_id)


@pytest.mark.parametrize(
    ("hello", "reason", "code"),
    [
        ({"type": "hello", "protocol": 1}, "unauthorized", 4401),
        ({"type": "hello", "protocol": 1, "token": "not-a-token"}, "unauthorized", 4401),
        ({"type": "hello", "protocol": 2, "token": None}, "protocol-error", 1008),
        ({"type": "play"}, "protocol-error", 1008),
    ],
)
async def test_bad_handshakes_are_closed_with_a_reason(
    live_daemon: DaemonProcess, hello: dict[str, object], reason: str, code: int
) -> None:
    async with raw_client(live_daemon) as client:
        if hello.get("token") is None and hello.get("protocol") == 2:
            hello["token"] = token(new_user())
        await client.send(hello)
        await _closed_with(client, code, reason)


async def test_foreign_origin_is_refused_before_upgrade(live_daemon: DaemonProcess) -> None:
    with pytest.raises(ConnectionRejected) as info:
        async with open_websocket_url(
            ws_url(live_daemon), extra_headers=[(b"Origin", b"https://evil.example")]
        ):
            pass  # pragma: no cover - the upgrade is refused
    assert info.value.status_code == 403
    for origin in (b"https://media.example", live_daemon.base_url.encode()):
        async with open_websocket_url(
            ws_url(live_daemon), extra_headers=[(b"Origin", origin)]
        ) as ws:
            assert (await Raw(ws).hello(new_user()))["type"] == "welcome"


async def test_commands_before_join_are_refused(live_daemon: DaemonProcess) -> None:
    async with raw_client(live_daemon, new_user()) as client:
        await client.send({"type": "play"})
        assert (await client.expect("error"))["code"] == "not-joined"
        # Clock sync may start before joining.
        await client.send({"type": "ping", "id": 7, "t0": 123.0})
        pong = await client.expect("pong")
        assert pong["id"] == 7 and pong["t0"] == 123.0 and pong["t2"] >= pong["t1"]
        await client.send({"type": "join", "room_id": "nope"})
        assert (await client.expect("error"))["code"] == "bad-message"
        await client.send({"type": "join", "room_id": str(uuid4())})
        assert (await client.expect("error"))["code"] == "not-found"


async def test_join_rules_match_rest(live_daemon: DaemonProcess) -> None:
    owner, guest = new_user("owner"), new_user("guest")
    room_id = await new_room(live_daemon, owner, password="pw")
    async with raw_client(live_daemon, guest) as client:
        await client.send({"type": "join", "room_id": room_id})
        assert (await client.expect("error"))["code"] == "wrong-password"
        joined = await client.join(room_id, password="pw")
        assert joined["you"]["role"] == "member"


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("{not json", "bad-json"),
        ('{"type": "dance"}', "unknown-type"),
        ("{}", "unknown-type"),
        ("[1, 2]", "bad-message"),
        ('{"type": "seek", "position": "ten"}', "bad-message"),
        ('{"type": "seek", "position": -5}', "bad-message"),
        ('{"type": "seek", "position": NaN}', "bad-json"),
        ('{"type": "seek", "position": 1e400}', "bad-message"),
        ('{"type": "rate", "rate": 40}', "bad-message"),
        ('{"type": "play", "extra": 1}', "bad-message"),
        ('{"type": "chat", "message": "' + "x" * 20_000 + '"}', "too-large"),
        (b"\x00\x01binary", "bad-message"),
        ('{"type": "hello", "protocol": 1}', "already-joined"),
        ('{"type": "next"}', "bad-message"),
        ('{"type": "next", "current_item_id": "first"}', "bad-message"),
        ('{"type": "previous", "current_item_id": ""}', "bad-message"),
        ('{"type": "ended", "item_id": "not-a-uuid"}', "bad-message"),
        ('{"type": "media", "item_id": "x", "duration": 0}', "bad-message"),
        ('{"type": "media", "item_id": "x", "duration": 1e9}', "bad-message"),
        ('{"type": "readiness", "ready": "yes"}', "bad-message"),
    ],
)
async def test_bad_frames_get_error_frames_and_the_connection_lives(
    live_daemon: DaemonProcess, frame: str | bytes, code: str
) -> None:
    owner = new_user()
    room_id = await new_room(live_daemon, owner)
    async with raw_client(live_daemon, owner, room_id) as client:
        await client.send(frame)
        error = await client.expect("error")
        assert error["code"] == code, error
        await client.send({"type": "ping", "id": 1, "t0": 0.0})
        assert (await client.expect("pong"))["id"] == 1


async def test_moderators_only_control(live_daemon: DaemonProcess) -> None:
    owner, member = new_user("owner"), new_user("member")
    room_id = await new_room(live_daemon, owner, playback_control="moderators")
    async with (
        raw_client(live_daemon, owner, room_id) as boss,
        raw_client(live_daemon, member, room_id) as guest,
    ):
        await guest.send({"type": "play"})
        assert (await guest.expect("error"))["code"] == "not-allowed"
        await boss.send({"type": "play"})
        change = await guest.expect("playback")
        assert change["playback"]["state"] == "playing"


async def test_chat_over_the_socket_and_from_rest(live_daemon: DaemonProcess) -> None:
    owner, member = new_user("owner"), new_user("member")
    room_id = await new_room(live_daemon, owner)
    async with (
        raw_client(live_daemon, owner, room_id) as a,
        raw_client(live_daemon, member, room_id) as b,
    ):
        await b.send({"type": "chat", "message": "hello there", "client_id": "m1"})
        ack = await b.expect("chat_ack")
        assert ack["client_id"] == "m1"
        seen = await a.expect("chat")
        assert seen["message"]["message"] == "hello there"
        assert seen["message"]["id"] == ack["message_id"]

        def post() -> None:
            with live_daemon.client(owner) as http:
                response = http.post(
                    f"/api/v1/syncplay/rooms/{room_id}/chat", json={"message": "via REST"}
                )
                assert response.status_code == 201

        await trio.to_thread.run_sync(post)
        assert (await b.expect("chat"))["message"]["message"] == "via REST"


async def test_ending_a_room_closes_its_sockets_with_the_reason(live_daemon: DaemonProcess) -> None:
    owner = new_user("owner")
    room_id = await new_room(live_daemon, owner)
    async with raw_client(live_daemon, owner, room_id) as client:

        def end() -> None:
            with live_daemon.client(owner) as http:
                assert http.delete(f"/api/v1/syncplay/rooms/{room_id}").status_code == 204

        await trio.to_thread.run_sync(end)
        await _closed_with(client, 4001, "room-ended")


async def test_connections_per_user_are_limited(live_daemon: DaemonProcess) -> None:
    user = new_user("many")
    room_id = await new_room(live_daemon, user)
    async with (
        raw_client(live_daemon, user, room_id),
        raw_client(live_daemon, user, room_id),
        raw_client(live_daemon, user, room_id),
        raw_client(live_daemon, user) as fourth,
    ):
        await fourth.send({"type": "join", "room_id": room_id})
        assert (await fourth.expect("error"))["code"] == "too-many-connections"
        await _closed_with(fourth, 4006, "too-many-connections")


async def test_a_closed_connection_gives_its_count_back(live_daemon: DaemonProcess) -> None:
    """A joined socket counts until the room lets go of it (long after its handshake ended)."""
    user = new_user("again")
    room_id = await new_room(live_daemon, user)
    for _ in range(7):  # more than twice the limit of 3, one after the other
        async with raw_client(live_daemon, user, room_id):
            pass
    async with (
        raw_client(live_daemon, user, room_id),
        raw_client(live_daemon, user, room_id),
        raw_client(live_daemon, user, room_id) as third,
    ):
        assert third.joined is not None


async def test_concurrent_joins_with_one_token_stay_within_the_limit(
    live_daemon: DaemonProcess,
) -> None:
    """The limit is counted before the join's first await: a burst cannot slip through it."""
    user = new_user("burst")
    room_id = await new_room(live_daemon, user)
    outcomes: list[str] = []
    async with AsyncExitStack() as stack:
        sockets = [
            await stack.enter_async_context(raw_client(live_daemon, user)) for _ in range(12)
        ]

        async def join(socket: Raw) -> None:
            await socket.send({"type": "join", "room_id": room_id})
            outcomes.append((await socket.recv())["type"])

        async with trio.open_nursery() as nursery:
            for socket in sockets:
                nursery.start_soon(join, socket)
    assert sorted(outcomes) == ["error"] * 9 + ["joined"] * 3


async def test_a_join_loop_is_refused_before_any_work(live_daemon: DaemonProcess) -> None:
    """One user's joins are paced: a burst of 20, then ``websocket.joins_per_minute``."""
    owner, looper = new_user("owner"), new_user("looper")
    room_id = await new_room(live_daemon, owner, is_public=False)
    codes: list[str] = []
    async with raw_client(live_daemon, looper) as socket:
        for _ in range(25):
            await socket.send({"type": "join", "room_id": room_id})
            codes.append((await socket.expect("error"))["code"])
    assert codes == ["not-a-member"] * 20 + ["rate-limited"] * 5


async def test_flood_is_rate_limited_without_disturbing_others(live_daemon: DaemonProcess) -> None:
    flooder, other = new_user("flooder"), new_user("other")
    room_id = await new_room(live_daemon, flooder)
    async with (
        raw_client(live_daemon, flooder, room_id) as noisy,
        raw_client(live_daemon, other, room_id) as quiet,
    ):
        ping = json.dumps({"type": "ping", "id": 0, "t0": 0.0})
        for _ in range(3000):
            await noisy.send(ping)
        error = await noisy.expect("error", code="rate-limited")
        assert error["code"] == "rate-limited"
        with trio.fail_after(1):
            await quiet.send({"type": "ping", "id": 5, "t0": 1.0})
            assert (await quiet.expect("pong"))["id"] == 5


async def test_resume_after_a_killed_connection(live_daemon: DaemonProcess) -> None:
    owner, viewer = new_user("owner"), new_user("viewer")
    room_id = await new_room(live_daemon, owner)
    async with raw_client(live_daemon, owner, room_id) as watcher:
        async with raw_client(live_daemon, viewer, room_id) as first:
            session = first.session_id
            await watcher.expect("presence", event="joined")
            # Kill the TCP connection without a close handshake.
            await first.ws._stream.aclose()  # simulating a dead network
        await watcher.expect("presence", event="disconnected")
        async with raw_client(live_daemon, viewer, room_id, resume=session) as again:
            assert again.session_id == session
            presence = await watcher.expect("presence", event="reconnected")
            assert presence["member"]["user_name"] == "viewer"


async def test_a_huge_frame_is_cut_and_others_carry_on(live_daemon: DaemonProcess) -> None:
    owner, other = new_user("owner"), new_user("other")
    room_id = await new_room(live_daemon, owner)
    async with (
        raw_client(live_daemon, owner, room_id) as big,
        raw_client(live_daemon, other, room_id) as bystander,
    ):
        await big.send("x" * 200_000)  # above server.max_request_bytes (64 KiB)
        _, code = await read_until_closed(big)
        assert code == 1009  # message too big
        await bystander.send({"type": "ping", "id": 9, "t0": 0.0})
        assert (await bystander.expect("pong"))["id"] == 9


async def test_rest_changes_reach_the_live_room(live_daemon: DaemonProcess) -> None:
    owner, member = new_user("owner"), new_user("member")
    room_id = await new_room(live_daemon, owner)
    async with (
        raw_client(live_daemon, owner, room_id) as boss,
        raw_client(live_daemon, member, room_id) as guest,
    ):

        def restrict_and_leave() -> None:
            with live_daemon.client(owner) as http:
                changed = http.put(
                    f"/api/v1/syncplay/rooms/{room_id}", json={"playback_control": "moderators"}
                )
                assert changed.status_code == 200

        await trio.to_thread.run_sync(restrict_and_leave)
        await guest.send({"type": "play"})
        assert (await guest.expect("error"))["code"] == "not-allowed"

        def leave() -> None:
            with live_daemon.client(member) as http:
                assert http.post(f"/api/v1/syncplay/rooms/{room_id}/leave").status_code == 204

        await trio.to_thread.run_sync(leave)
        left = await boss.expect("presence", event="left")
        assert left["member"]["user_name"] == "member"
        await _closed_with(guest, 1000, "left")


async def test_metrics_count_what_happens(live_daemon: DaemonProcess) -> None:
    owner = new_user("owner")
    room_id = await new_room(live_daemon, owner)
    async with raw_client(live_daemon, owner, room_id) as client:
        await client.send({"type": "chat", "message": "counted", "client_id": "m"})
        await client.expect("chat_ack")
        await client.send({"type": "dance"})
        await client.expect("error")

        def scrape() -> str:
            with live_daemon.client() as http:
                response = http.get("/metrics")
                assert response.status_code == 200
                return response.text

        text = await trio.to_thread.run_sync(scrape)
    samples = {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }
    assert samples['syncplayd_messages_in_total{type="chat"}'] >= 1
    assert samples['syncplayd_messages_out_total{type="chat_ack"}'] >= 1
    assert samples['syncplayd_errors_total{code="unknown-type"}'] >= 1
    assert samples["syncplayd_connections"] >= 1
    assert samples["syncplayd_live_rooms"] >= 1
    assert any(key.startswith("syncplayd_database_seconds_count") for key in samples)
