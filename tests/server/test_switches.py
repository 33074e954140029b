"""Feature switches from the configuration, through the in-process app.

These use the verified in-memory repository (tests/storage proves it behaves
like SQLite and PostgreSQL) and Quart's test client: the switches are pure
policy, so a daemon process per setting would only add minutes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from quart.typing import TestClientProtocol as QuartClient

from syncplayd.config import load_settings
from syncplayd.identity import encode_token
from syncplayd.server.http.app import create_app
from syncplayd.server.http.state import AppState
from syncplayd.service import RoomService
from syncplayd.storage import MemoryRepository
from tests.daemon_process import SECRET, new_user
from tests.openapi_check import assert_response_conforms

AppFactory = Callable[[dict[str, str]], QuartClient]


@pytest.fixture
async def make_client(tmp_path: Path) -> AsyncIterator[AppFactory]:
    repos: list[MemoryRepository] = []

    def factory(env: dict[str, str]) -> QuartClient:
        settings = load_settings(
            None,
            {"SYNCPLAY_STATE_DIR": str(tmp_path), "SYNCPLAY_AUTH_JWT_SECRET": SECRET} | env,
        )
        repo = MemoryRepository()
        repos.append(repo)
        state = AppState(settings, repo, RoomService(repo, settings.syncplay), SECRET)
        return create_app(state).test_client()

    yield factory
    for repo in repos:
        await repo.aclose()


def _auth(admin: bool = False) -> dict[str, str]:
    token = encode_token(new_user("u", admin=admin), SECRET, ttl=timedelta(minutes=5))
    return {"Authorization": f"Bearer {token}"}


async def _call(
    client: QuartClient, method: str, template: str, path: str, **kwargs: Any
) -> tuple[int, Any]:
    response = await client.open(path, method=method, **kwargs)
    body = await response.get_data()
    assert_response_conforms(
        method, template, response.status_code, body or None, response.content_type
    )
    return response.status_code, await response.get_json()


ROOM_BODY = {"name": "n", "content_type": "movie", "content_id": "1"}


async def test_disabled_feature_answers_503_but_health_and_contract_work(
    make_client: AppFactory,
) -> None:
    client = make_client({"SYNCPLAY_ENABLED": "false"})
    status, body = await _call(client, "GET", "/rooms", "/api/v1/syncplay/rooms", headers=_auth())
    assert (status, body["code"]) == (503, "disabled")
    assert (await client.get("/healthz")).status_code == 200
    assert (await client.get("/api/v1/syncplay/openapi.json")).status_code == 200


async def test_public_and_password_rooms_can_be_switched_off(make_client: AppFactory) -> None:
    client = make_client(
        {"SYNCPLAY_ALLOW_PUBLIC_ROOMS": "false", "SYNCPLAY_ALLOW_PASSWORD_ROOMS": "no"}
    )
    headers = _auth()
    status, body = await _call(
        client,
        "POST",
        "/rooms",
        "/api/v1/syncplay/rooms",
        headers=headers,
        json=ROOM_BODY | {"is_public": True},
    )
    assert (status, body["code"]) == (403, "public-rooms-disabled")
    status, body = await _call(
        client,
        "POST",
        "/rooms",
        "/api/v1/syncplay/rooms",
        headers=headers,
        json=ROOM_BODY | {"password": "pw"},
    )
    assert (status, body["code"]) == (403, "password-rooms-disabled")
    status, room = await _call(
        client, "POST", "/rooms", "/api/v1/syncplay/rooms", headers=headers, json=ROOM_BODY
    )
    assert status == 201
    path = f"/api/v1/syncplay/rooms/{room['id']}"
    status, body = await _call(
        client, "PUT", "/rooms/{room_id}", path, headers=headers, json={"is_public": True}
    )
    assert (status, body["code"]) == (403, "public-rooms-disabled")
    status, body = await _call(
        client, "PUT", "/rooms/{room_id}", path, headers=headers, json={"password": "x"}
    )
    assert (status, body["code"]) == (403, "password-rooms-disabled")


async def test_chat_can_be_switched_off(make_client: AppFactory) -> None:
    client = make_client({"SYNCPLAY_CHAT_ENABLED": "false"})
    headers = _auth()
    _, room = await _call(
        client, "POST", "/rooms", "/api/v1/syncplay/rooms", headers=headers, json=ROOM_BODY
    )
    path = f"/api/v1/syncplay/rooms/{room['id']}/chat"
    status, body = await _call(
        client, "POST", "/rooms/{room_id}/chat", path, headers=headers, json={"message": "hi"}
    )
    assert (status, body["code"]) == (403, "chat-disabled")
    status, body = await _call(client, "GET", "/rooms/{room_id}/chat", path, headers=headers)
    assert (status, body["code"]) == (403, "chat-disabled")


async def test_rooms_per_user_limit(make_client: AppFactory) -> None:
    client = make_client({"SYNCPLAY_ROOMS_MAX_ROOMS_PER_USER": "2"})
    headers = _auth()
    rooms = []
    for _ in range(2):
        status, room = await _call(
            client, "POST", "/rooms", "/api/v1/syncplay/rooms", headers=headers, json=ROOM_BODY
        )
        assert status == 201
        rooms.append(room)
    status, body = await _call(
        client, "POST", "/rooms", "/api/v1/syncplay/rooms", headers=headers, json=ROOM_BODY
    )
    assert (status, body["code"]) == (409, "too-many-rooms")
    # Ending a room frees its place.
    response = await client.delete(f"/api/v1/syncplay/rooms/{rooms[0]['id']}", headers=headers)
    assert response.status_code == 204
    status, _ = await _call(
        client, "POST", "/rooms", "/api/v1/syncplay/rooms", headers=headers, json=ROOM_BODY
    )
    assert status == 201
