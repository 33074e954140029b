"""Moderation over REST reaches the sockets of the room at once (daemon processes, both backends).

A REST call's answer means the change is stored; the sockets must hear of it right then,
not at their next join. Each test measures, on trio's clock, from the moment the REST
answer is in to the moment the frame is in, and wants it under 100 ms: the service calls
the live room synchronously after storing, so the frame is queued before the answer is
even written, and only the loopback network lies between.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import trio
import trio.testing
from trio_websocket import ConnectionClosed

from syncplayd.identity import Principal
from tests.daemon_process import DaemonProcess, new_user
from tests.e2e.raw import Raw, new_room, raw_client, raw_clients_in_room, token

API = "/api/v1/syncplay"
#: What "at once" means here (docs/protocol.md §4.13).
AT_ONCE = 0.1
LIMIT = 10.0

Match = Callable[[dict[str, Any]], bool]


@asynccontextmanager
async def _rest(daemon: DaemonProcess, principal: Principal) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {token(principal)}"}
    async with httpx.AsyncClient(
        base_url=daemon.base_url + API, headers=headers, timeout=LIMIT
    ) as http:
        yield http


async def _first(client: Raw, match: Match) -> tuple[dict[str, Any], float]:
    """The first message ``match`` takes (or the socket's close), and when it came."""
    with trio.fail_after(LIMIT):
        while True:
            try:
                message = await client.recv(LIMIT)
            except ConnectionClosed as closed:
                return {"type": "<closed>", "code": closed.reason.code}, trio.current_time()
            if match(message):
                return message, trio.current_time()


async def _call_and_watch(
    call: Callable[[], Awaitable[httpx.Response]], watched: list[tuple[Raw, Match]]
) -> tuple[httpx.Response, list[dict[str, Any]]]:
    """Make the REST call while each socket waits for its message; check they came at once.

    The watchers are reading before the call starts, so a frame that beats the REST answer
    counts as early (a negative delay), never as missed.
    """
    seen: list[tuple[dict[str, Any], float] | None] = [None] * len(watched)

    async def watch(i: int, client: Raw, match: Match) -> None:
        seen[i] = await _first(client, match)

    async with trio.open_nursery() as nursery:
        for i, (client, match) in enumerate(watched):
            nursery.start_soon(watch, i, client, match)
        await trio.testing.wait_all_tasks_blocked()
        response = await call()
        answered = trio.current_time()
    messages = []
    for got in seen:
        assert got is not None
        message, at = got
        assert at - answered < AT_ONCE, f"{message['type']} came {at - answered:.3f} s late"
        messages.append(message)
    return response, messages


def _presence(event: str, user: Principal) -> Match:
    return lambda m: (
        m["type"] == "presence"
        and m["event"] == event
        and m["member"]["user_id"] == str(user.user_id)
    )


async def test_a_promotion_reaches_every_socket_the_member_included(
    live_daemon: DaemonProcess,
) -> None:
    owner, ben = new_user("Olga"), new_user("Ben")
    room_id = await new_room(live_daemon, owner)
    async with (
        raw_clients_in_room(live_daemon, room_id, owner, ben) as (olga_ws, ben_ws),
        _rest(live_daemon, owner) as http,
    ):
        response, told = await _call_and_watch(
            lambda: http.put(
                f"/rooms/{room_id}/participants/{ben.user_id}/role", json={"role": "moderator"}
            ),
            [(olga_ws, _presence("role", ben)), (ben_ws, _presence("role", ben))],
        )
    assert response.status_code == 200, response.text
    assert response.json()["role"] == "moderator"
    for message in told:
        assert message["detail"] == "moderator"
        assert message["member"]["role"] == "moderator"


async def test_a_ban_closes_the_members_sockets_at_once_and_keeps_them_out(
    live_daemon: DaemonProcess,
) -> None:
    owner, ben = new_user("Olga"), new_user("Ben")
    room_id = await new_room(live_daemon, owner)
    async with (
        raw_clients_in_room(live_daemon, room_id, owner, ben) as (olga_ws, ben_ws),
        _rest(live_daemon, owner) as http,
    ):
        response, (closing,) = await _call_and_watch(
            lambda: http.put(f"/rooms/{room_id}/bans/{ben.user_id}", json={"reason": "spoilers"}),
            [(ben_ws, lambda m: m["type"] == "closing")],
        )
        assert response.status_code == 200, response.text
        assert closing == {
            "type": "closing",
            "reason": "banned",
            "message": "Olga banned you from the room for good: spoilers",
        }
        closed, _ = await _first(ben_ws, lambda m: False)
        assert closed == {"type": "<closed>", "code": 4007}
        # The others see Ben go (comings and goings are batched per 50 ms: not timed here).
        left, _ = await _first(olga_ws, _presence("left", ben))
        assert left["member"]["sessions"] == 0
    # Every way back in is shut: a new socket's join is refused with ``banned``.
    async with raw_client(live_daemon, ben) as again:
        await again.send({"type": "join", "room_id": room_id})
        refused = await again.expect("error")
        assert refused["code"] == "banned"
        assert "spoilers" in refused["message"]


async def test_new_settings_reach_every_socket_at_once(live_daemon: DaemonProcess) -> None:
    owner, ben = new_user("Olga"), new_user("Ben")
    room_id = await new_room(live_daemon, owner)
    async with (
        raw_clients_in_room(live_daemon, room_id, owner, ben) as (olga_ws, ben_ws),
        _rest(live_daemon, owner) as http,
    ):
        is_room: Match = lambda m: m["type"] == "room"  # noqa: E731
        body = {"playback_control": "moderators", "name": "Late show"}
        response, told = await _call_and_watch(
            lambda: http.put(f"/rooms/{room_id}", json=body),
            [(olga_ws, is_room), (ben_ws, is_room)],
        )
        assert response.status_code == 200, response.text
        for message in told:
            assert message["settings"]["control"] == "moderators"
            assert message["room"]["playback_control"] == "moderators"
            assert message["room"]["name"] == "Late show"
            assert message["room"]["moderators_manage_moderators"] is False
        # And the new mode governs commands at once: Ben is a plain member.
        await ben_ws.send({"type": "play"})
        refused = await ben_ws.expect("error")
        assert refused["code"] == "not-allowed"
