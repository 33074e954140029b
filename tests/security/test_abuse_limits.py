"""Abuse limits against a daemon process: guessing budgets, chat, sizes, connections, rooms, Origin.

Small budgets come from the environment. Every test uses fresh users and fresh
source addresses (``support.fresh_address``), so the per-address counters of one
test never see another's requests.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from functools import partial
from typing import Any

import httpx
import pytest
import trio
from trio_websocket import ConnectionRejected

from tests.daemon_process import DaemonProcess, new_user, run_daemon
from tests.security.support import (
    Http,
    fresh_address,
    hello,
    in_thread,
    token_for,
    until_closed,
    ws_from,
)
from tests.server.conftest import BACKENDS, backend_daemon

PER_USER = 3
PER_ADDRESS = 5
WINDOW = 300
CHAT_PER_MINUTE = 5
CHAT_LENGTH = 50
SOCKETS_PER_USER = 2
ROOMS_PER_USER = 3
#: The reverse proxy's address (outside support.fresh_address's 127.77.0.0/16).
PROXY = "127.78.0.1"

LIMITS_ENV = {
    "SYNCPLAY_ROOMS_FAILED_JOIN_ATTEMPTS": str(PER_USER),
    "SYNCPLAY_ROOMS_FAILED_JOIN_ATTEMPTS_PER_ADDRESS": str(PER_ADDRESS),
    "SYNCPLAY_ROOMS_FAILED_JOIN_WINDOW_SECONDS": str(WINDOW),
    "SYNCPLAY_CHAT_RATE_LIMIT_MESSAGES_PER_MINUTE": str(CHAT_PER_MINUTE),
    "SYNCPLAY_CHAT_MAX_MESSAGE_LENGTH": str(CHAT_LENGTH),
    "SYNCPLAY_WS_MAX_CONNECTIONS_PER_USER": str(SOCKETS_PER_USER),
    "SYNCPLAY_ROOMS_MAX_ROOMS_PER_USER": str(ROOMS_PER_USER),
    "SYNCPLAY_WS_ALLOWED_ORIGINS": "https://media.example",
    "SYNCPLAY_PROXY_REAL_IP_FROM": PROXY,
}

JOIN = "/rooms/{room_id}/join"
LOOKUP = "/invitations/{code}"
CHAT = "/rooms/{room_id}/chat"


@pytest.fixture(scope="module", params=BACKENDS)
def guarded(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DaemonProcess]:
    with backend_daemon(request, tmp_path_factory, "abuse", LIMITS_ENV) as process:
        yield process


def _retry_after(response: httpx.Response, window: float = WINDOW) -> int:
    retry = int(response.headers["Retry-After"])
    assert 1 <= retry <= math.ceil(window), retry  # whole seconds, rounded up
    return retry


def _password_room(daemon: DaemonProcess, *, public: bool = True) -> str:
    room = Http(daemon, new_user("owner")).room(is_public=public, password="right")
    room_id: str = room["id"]
    return room_id


# -- failed password and invitation-code attempts --------------------------------------------
def test_wrong_passwords_are_limited_per_user(guarded: DaemonProcess) -> None:
    room_id = _password_room(guarded)
    address = fresh_address()
    guesser = Http(guarded, new_user("guesser"), address=address)
    for _ in range(PER_USER):
        guesser.expect("POST", JOIN, 403, "wrong-password", json={"password": "x"}, room_id=room_id)
    # Over budget even the right password is refused, unchecked: no oracle while blocked.
    refused = guesser.expect(
        "POST", JOIN, 429, "too-many-attempts", json={"password": "right"}, room_id=room_id
    )
    _retry_after(refused)
    assert refused.headers["content-type"].startswith("application/problem+json")
    # A missing password is not a guess (clients join without one to learn that one is needed).
    guesser.expect("POST", JOIN, 403, "wrong-password", room_id=room_id)
    # The budget is the guesser's: someone else at the same address is not blocked.
    neighbour = Http(guarded, new_user("neighbour"), address=address)
    neighbour.expect("POST", JOIN, 200, json={"password": "right"}, room_id=room_id)


def test_the_user_budget_follows_the_user_across_addresses(guarded: DaemonProcess) -> None:
    room_id = _password_room(guarded)
    user = new_user("roamer")
    for _ in range(PER_USER):
        Http(guarded, user).expect(
            "POST", JOIN, 403, "wrong-password", json={"password": "x"}, room_id=room_id
        )
    refused = Http(guarded, user).expect(
        "POST", JOIN, 429, "too-many-attempts", json={"password": "x"}, room_id=room_id
    )
    _retry_after(refused)


def test_the_address_budget_stops_rotating_user_ids(guarded: DaemonProcess) -> None:
    room_id = _password_room(guarded)
    address = fresh_address()
    for n in range(PER_ADDRESS):
        Http(guarded, new_user(f"sock{n}"), address=address).expect(
            "POST", JOIN, 403, "wrong-password", json={"password": "x"}, room_id=room_id
        )
    fresh_id = new_user("sock-puppet")
    refused = Http(guarded, fresh_id, address=address).expect(
        "POST", JOIN, 429, "too-many-attempts", json={"password": "right"}, room_id=room_id
    )
    _retry_after(refused)
    # The same user from elsewhere is checked as usual.
    Http(guarded, fresh_id).expect("POST", JOIN, 200, json={"password": "right"}, room_id=room_id)


def test_wrong_invitation_codes_count(guarded: DaemonProcess) -> None:
    owner = Http(guarded, new_user("owner"))
    private = owner.room()["id"]
    other_room = owner.room()["id"]
    someone = new_user("someone")
    personal = owner.invite(private, invited_user_id=str(someone.user_id))
    elsewhere = owner.invite(other_room)
    guesser = Http(guarded, new_user("guesser"))
    for code in ("ZZZZZZZZZZ", elsewhere, personal):
        guesser.expect(
            "POST", JOIN, 403, "invitation-invalid", json={"invitation_code": code}, room_id=private
        )
    good = owner.invite(private)
    refused = guesser.expect(
        "POST", JOIN, 429, "too-many-attempts", json={"invitation_code": good}, room_id=private
    )
    _retry_after(refused)
    # The invitee is not affected by someone else guessing at their code.
    Http(guarded, someone).expect(
        "POST", JOIN, 200, json={"invitation_code": personal}, room_id=private
    )


def test_used_up_codes_count(guarded: DaemonProcess) -> None:
    owner = Http(guarded, new_user("owner"))
    room_id = owner.room()["id"]
    once = owner.invite(room_id, max_uses=1)
    Http(guarded, new_user("first")).expect(
        "POST", JOIN, 200, json={"invitation_code": once}, room_id=room_id
    )
    late = Http(guarded, new_user("late"))
    for _ in range(PER_USER):
        late.expect(
            "POST", JOIN, 410, "invitation-used-up", json={"invitation_code": once}, room_id=room_id
        )
    late.expect(
        "POST",
        JOIN,
        429,
        "too-many-attempts",
        json={"invitation_code": owner.invite(room_id)},
        room_id=room_id,
    )


def test_invitation_lookup_misses_share_the_budget(guarded: DaemonProcess) -> None:
    owner = Http(guarded, new_user("owner"))
    room_id = owner.room()["id"]
    code = owner.invite(room_id)
    # Lookups that find the code are free.
    reader = Http(guarded, new_user("reader"))
    for _ in range(PER_USER + 2):
        reader.expect("GET", LOOKUP, 200, code=code)
    prober = Http(guarded, new_user("prober"))
    for n in range(PER_USER):
        prober.expect("GET", LOOKUP, 404, "not-found", code=f"ZZZZZZZZ{n}")
    _retry_after(prober.expect("GET", LOOKUP, 429, "too-many-attempts", code=code))
    # The same budget guards joins: enumerating by lookup does not buy join guesses.
    prober.expect(
        "POST", JOIN, 429, "too-many-attempts", json={"invitation_code": code}, room_id=room_id
    )


async def test_a_burst_of_concurrent_guesses_gets_only_the_budget(guarded: DaemonProcess) -> None:
    room_id = await in_thread(_password_room, guarded)
    user = new_user("burst")
    transport = httpx.AsyncHTTPTransport(local_address=fresh_address())
    statuses: list[int] = []
    async with httpx.AsyncClient(
        base_url=guarded.base_url,
        headers={"Authorization": f"Bearer {token_for(user)}"},
        transport=transport,
        timeout=30,
    ) as client:

        async def guess() -> None:
            response = await client.post(
                f"/api/v1/syncplay/rooms/{room_id}/join", json={"password": "wrong"}
            )
            statuses.append(response.status_code)

        async with trio.open_nursery() as nursery:
            for _ in range(4 * PER_USER):
                nursery.start_soon(guess)
    # Attempts are charged before the (slow, threaded) password check, so concurrency buys nothing.
    assert sorted(statuses) == [403] * PER_USER + [429] * (3 * PER_USER)


def test_right_secrets_do_not_use_the_budget(guarded: DaemonProcess) -> None:
    joiner = Http(guarded, new_user("joiner"))
    for _ in range(PER_USER + 2):
        owner = Http(guarded, new_user("owner"))
        room_id = owner.room()["id"]
        code = owner.invite(room_id)
        joiner.expect("POST", JOIN, 200, json={"invitation_code": code}, room_id=room_id)
    room_id = _password_room(guarded)
    joiner.expect("POST", JOIN, 200, json={"password": "right"}, room_id=room_id)
    room_id = _password_room(guarded)
    for _ in range(PER_USER):
        joiner.expect("POST", JOIN, 403, "wrong-password", json={"password": "x"}, room_id=room_id)


async def test_websocket_join_is_refused_the_same_way(guarded: DaemonProcess) -> None:
    room_id = await in_thread(_password_room, guarded)
    open_room = await in_thread(lambda: Http(guarded, new_user("host")).room(is_public=True)["id"])
    user = new_user("ws-guesser")
    # One wrong guess over REST: the budget is shared by both ways in.
    await in_thread(
        lambda: Http(guarded, user).expect(
            "POST", JOIN, 403, "wrong-password", json={"password": "x"}, room_id=room_id
        )
    )
    async with ws_from(guarded) as client:
        assert (await hello(client, token_for(user)))["type"] == "welcome"
        for _ in range(PER_USER - 1):
            await client.send({"type": "join", "room_id": room_id, "password": "x"})
            assert (await client.expect("error"))["code"] == "wrong-password"
        await client.send({"type": "join", "room_id": room_id, "password": "right"})
        error = await client.expect("error")
        assert error["code"] == "too-many-attempts"
        assert "retry in" in error["message"]  # the wait is only in the human-readable text
        # Still authenticated: clock sync goes on, and a join that needs no secret works.
        await client.send({"type": "ping", "id": 1, "t0": 0.0})
        assert (await client.expect("pong"))["id"] == 1
        await client.join(open_room)


def _forwarded_join(
    daemon: DaemonProcess,
    room_id: str,
    *,
    peer: str,
    forwarded_for: str,
    password: str,
    status: int,
    problem: str | None = None,
) -> None:
    """A fresh user's password join from ``peer``, with this ``X-Forwarded-For``."""
    Http(daemon, new_user("forwarded"), address=peer).expect(
        "POST",
        JOIN,
        status,
        problem,
        json={"password": password},
        headers={"X-Forwarded-For": forwarded_for},
        room_id=room_id,
    )


async def test_behind_a_trusted_proxy_each_client_has_its_own_budget(
    guarded: DaemonProcess,
) -> None:
    """Through the proxy, the address is the one it forwarded for (``X-Forwarded-For``)."""
    room_id = await in_thread(_password_room, guarded)
    guesser, neighbour = "203.0.113.5", "203.0.113.6"
    join = partial(_forwarded_join, guarded, room_id, peer=PROXY)

    def over_rest() -> None:
        for n in range(PER_ADDRESS):
            # New user ids, and whatever the client writes into the header itself (on the left).
            join(
                forwarded_for=f"192.0.2.{n}, {guesser}",
                password="x",
                status=403,
                problem="wrong-password",
            )
        join(forwarded_for=guesser, password="right", status=429, problem="too-many-attempts")
        # The same proxy's other users are not locked out by the guesser...
        join(forwarded_for=neighbour, password="right", status=200)

    await in_thread(over_rest)
    # ... and the websocket reads the header the same way.
    async with ws_from(guarded, PROXY, headers=[(b"X-Forwarded-For", guesser.encode())]) as ws:
        assert (await hello(ws, token_for(new_user("p-ws"))))["type"] == "welcome"
        await ws.send({"type": "join", "room_id": room_id, "password": "right"})
        assert (await ws.expect("error"))["code"] == "too-many-attempts"


def test_a_client_cannot_choose_its_address_with_the_header(guarded: DaemonProcess) -> None:
    room_id = _password_room(guarded)
    join = partial(_forwarded_join, guarded, room_id, peer=fresh_address())
    # Not a trusted proxy: its X-Forwarded-For means nothing, however it varies.
    for n in range(PER_ADDRESS):
        join(forwarded_for=f"198.51.100.{n}", password="x", status=403, problem="wrong-password")
    join(forwarded_for="198.51.100.200", password="right", status=429, problem="too-many-attempts")


def test_the_window_ends(tmp_path_factory: pytest.TempPathFactory) -> None:
    folder = tmp_path_factory.mktemp("window")
    window = 1.5
    env = LIMITS_ENV | {"SYNCPLAY_ROOMS_FAILED_JOIN_WINDOW_SECONDS": str(window)}
    with run_daemon(f"sqlite:///{folder / 'db.sqlite3'}", folder / "state", env) as daemon:
        room_id = _password_room(daemon)
        guesser = Http(daemon, new_user("patient"))
        started = time.monotonic()
        for _ in range(PER_USER):
            guesser.expect(
                "POST", JOIN, 403, "wrong-password", json={"password": "x"}, room_id=room_id
            )
        retry = _retry_after(
            guesser.expect(
                "POST", JOIN, 429, "too-many-attempts", json={"password": "x"}, room_id=room_id
            ),
            window,
        )
        # Refused attempts are not charged, so polling is harmless; bounded by Retry-After.
        deadline = time.monotonic() + retry + 2
        while True:
            response = guesser.call("POST", JOIN, json={"password": "right"}, room_id=room_id)
            if response.status_code != 429:
                break
            assert time.monotonic() < deadline, "the window never ended"
            time.sleep(0.1)  # pacing a bounded poll, not waiting blind
        assert response.status_code == 200, response.text
        assert time.monotonic() - started >= window - 0.1


# -- chat --------------------------------------------------------------------------------------
async def test_chat_rate_limit_is_shared_by_rest_and_websocket(guarded: DaemonProcess) -> None:
    owner = new_user("chatty")
    room_id = await in_thread(lambda: Http(guarded, owner).room(is_public=True)["id"])
    http = Http(guarded, owner)

    def post_all() -> httpx.Response:
        for n in range(CHAT_PER_MINUTE):
            http.expect("POST", CHAT, 201, json={"message": f"m{n}"}, room_id=room_id)
        return http.expect(
            "POST", CHAT, 429, "rate-limited", json={"message": "x"}, room_id=room_id
        )

    _retry_after(await in_thread(post_all), 60)
    async with ws_from(guarded) as client:
        assert (await hello(client, token_for(owner)))["type"] == "welcome"
        await client.join(room_id)
        await client.send({"type": "chat", "message": "over the limit", "client_id": "c1"})
        error = await client.expect("error")
        assert (error["code"], error["ref"]) == ("rate-limited", "c1")


async def test_chat_length_is_limited(guarded: DaemonProcess) -> None:
    owner = new_user("verbose")
    room_id = await in_thread(lambda: Http(guarded, owner).room(is_public=True)["id"])
    long = "x" * (CHAT_LENGTH + 1)
    await in_thread(
        lambda: Http(guarded, owner).expect(
            "POST", CHAT, 422, "validation-failed", json={"message": long}, room_id=room_id
        )
    )
    async with ws_from(guarded) as client:
        assert (await hello(client, token_for(owner)))["type"] == "welcome"
        await client.join(room_id)
        await client.send({"type": "chat", "message": long, "client_id": "long"})
        error = await client.expect("error")
        assert (error["code"], error["ref"]) == ("validation-failed", "long")
        await client.send({"type": "chat", "message": "x" * CHAT_LENGTH, "client_id": "ok"})
        assert (await client.expect("chat_ack"))["client_id"] == "ok"


# -- sizes ---------------------------------------------------------------------------------------
async def test_frame_sizes(guarded: DaemonProcess) -> None:
    owner = new_user("big")
    room_id = await in_thread(lambda: Http(guarded, owner).room(is_public=True)["id"])
    async with ws_from(guarded) as client:
        assert (await hello(client, token_for(owner)))["type"] == "welcome"
        await client.join(room_id)
        frame = json.dumps({"type": "chat", "message": "y" * 16_400})
        assert len(frame.encode()) > 16_384
        await client.send(frame)
        assert (await client.expect("error"))["code"] == "too-large"
        await client.send({"type": "ping", "id": 2, "t0": 0.0})
        assert (await client.expect("pong"))["id"] == 2
        await client.send("z" * 70_000)  # above server.max_request_bytes (64 KiB)
        _, code = await until_closed(client)
        assert code == 1009


def test_request_body_size(guarded: DaemonProcess) -> None:
    http = Http(guarded, new_user("stuffer"))
    body = json.dumps({"name": "x" * 70_000, "content_type": "m", "content_id": "1"}).encode()
    response = http.expect(
        "POST",
        "/rooms",
        413,
        "payload-too-large",
        content=body,
        headers={"Content-Type": "application/json"},
    )
    assert response.headers["connection"] == "close"


# -- connections and rooms per user ----------------------------------------------------------
async def test_websocket_connections_per_user(guarded: DaemonProcess) -> None:
    user = new_user("hoarder")
    room_id = await in_thread(lambda: Http(guarded, user).room(is_public=True)["id"])
    token = token_for(user)
    async with ws_from(guarded) as first, ws_from(guarded) as second, ws_from(guarded) as third:
        # Sockets that have not joined do not count.
        for client in (first, second, third):
            assert (await hello(client, token))["type"] == "welcome"
        await first.join(room_id)
        await second.join(room_id)
        await third.send({"type": "join", "room_id": room_id})
        seen, code = await until_closed(third)
        assert [m["type"] for m in seen] == ["error", "closing"]
        assert seen[0]["code"] == "too-many-connections"
        assert seen[1]["reason"] == "too-many-connections" and code == 4006


def test_rooms_per_user(guarded: DaemonProcess) -> None:
    owner = Http(guarded, new_user("landlord"))
    rooms = [owner.room()["id"] for _ in range(ROOMS_PER_USER)]
    body = {"name": "one more", "content_type": "movie", "content_id": "1"}
    owner.expect("POST", "/rooms", 409, "too-many-rooms", json=body)
    owner.expect("DELETE", "/rooms/{room_id}", 204, room_id=rooms[0])
    owner.expect("POST", "/rooms", 201, json=body)


async def test_concurrent_creates_do_not_pass_the_room_limit(guarded: DaemonProcess) -> None:
    user = new_user("racer")
    body = {"name": "race", "content_type": "movie", "content_id": "1"}
    statuses: list[int] = []
    async with httpx.AsyncClient(
        base_url=guarded.base_url,
        headers={"Authorization": f"Bearer {token_for(user)}"},
        transport=httpx.AsyncHTTPTransport(local_address=fresh_address()),
        timeout=30,
    ) as client:

        async def create() -> None:
            statuses.append((await client.post("/api/v1/syncplay/rooms", json=body)).status_code)

        async with trio.open_nursery() as nursery:
            for _ in range(4 * ROOMS_PER_USER):
                nursery.start_soon(create)
    assert sorted(statuses) == [201] * ROOMS_PER_USER + [409] * (3 * ROOMS_PER_USER)


# -- Origin ----------------------------------------------------------------------------------------
async def test_foreign_origin_is_refused(guarded: DaemonProcess) -> None:
    with pytest.raises(ConnectionRejected) as info:
        async with ws_from(guarded, headers=[(b"Origin", b"https://evil.example")]):
            pass  # pragma: no cover - the upgrade is refused
    rejected = info.value
    assert rejected.status_code == 403
    assert rejected.body is not None
    problem: dict[str, Any] = json.loads(rejected.body)
    assert (problem["status"], problem["code"]) == (403, "origin-not-allowed")
    for origin in (b"https://media.example", b"HTTPS://MEDIA.EXAMPLE/"):
        async with ws_from(guarded, headers=[(b"Origin", origin)]) as client:
            assert (await hello(client, token_for(new_user())))["type"] == "welcome"
