"""Expired invitations over HTTP, on a fake wall clock (in-process app, no daemon).

An invitation lives at least a minute, so the daemon tests cannot wait one out;
here the service's wall clock is moved past ``expires_at`` instead. The memory
repository is the verified fake (tests/storage runs it against SQLite and
PostgreSQL), and every answer is checked against the contract.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from quart.typing import TestClientProtocol as QuartClient

from syncplayd.config import load_settings
from syncplayd.identity import Principal, encode_token
from syncplayd.server.http.app import create_app
from syncplayd.server.http.state import AppState
from syncplayd.service import RoomService
from syncplayd.storage import MemoryRepository
from tests.daemon_process import SECRET, new_user
from tests.openapi_check import assert_response_conforms

PREFIX = "/api/v1/syncplay"


class WallClock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 25, 18, 40, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> WallClock:
    return WallClock()


@pytest.fixture
async def client(tmp_path: Path, clock: WallClock) -> AsyncIterator[QuartClient]:
    settings = load_settings(
        None, {"SYNCPLAY_STATE_DIR": str(tmp_path), "SYNCPLAY_AUTH_JWT_SECRET": SECRET}
    )
    repo = MemoryRepository()
    service = RoomService(repo, settings.syncplay, wall_clock=clock)
    yield create_app(AppState(settings, repo, service, SECRET)).test_client()
    await repo.aclose()


async def _call(
    client: QuartClient,
    user: Principal,
    method: str,
    template: str,
    json: Any = None,
    **path: str,
) -> tuple[int, Any]:
    token = encode_token(user, SECRET, ttl=timedelta(minutes=5))
    response = await client.open(
        PREFIX + template.format(**path),
        method=method,
        json=json,
        headers={"Authorization": f"Bearer {token}"},
    )
    body = await response.get_data()
    assert_response_conforms(
        method, template, response.status_code, body or None, response.content_type
    )
    return response.status_code, await response.get_json()


async def test_an_invitation_expires_after_its_lifetime(
    client: QuartClient, clock: WallClock
) -> None:
    owner, guest = new_user("owner"), new_user("guest")
    room_body = {"name": "n", "content_type": "movie", "content_id": "1", "is_public": False}
    status, room = await _call(client, owner, "POST", "/rooms", room_body)
    assert status == 201
    status, invitation = await _call(
        client, owner, "POST", "/rooms/{room_id}/invitations",
        {"expires_in_hours": 1 / 60}, room_id=room["id"],
    )  # fmt: skip
    assert status == 201
    assert invitation["expires_at"] == "2026-11-25T18:41:00Z"
    code = invitation["code"]

    clock.now += timedelta(seconds=59)
    status, _ = await _call(client, guest, "GET", "/invitations/{code}", code=code)
    assert status == 200

    clock.now += timedelta(seconds=1)
    status, problem = await _call(client, guest, "GET", "/invitations/{code}", code=code)
    assert (status, problem["code"]) == (410, "invitation-expired")
    status, problem = await _call(
        client, guest, "POST", "/rooms/{room_id}/join", {"invitation_code": code},
        room_id=room["id"],
    )  # fmt: skip
    assert (status, problem["code"]) == (410, "invitation-expired")
