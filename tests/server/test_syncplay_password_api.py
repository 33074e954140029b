"""The Syncplay password verifier never leaves the daemon: not in REST, not in the admin API,
not in the log, on SQLite and on PostgreSQL.

A room with a password stores an argon2id hash of the password's MD5 (what Syncplay desktop
clients send). That MD5 opens the room to the Syncplay listener as the password would, so
the test reads the stored verifier from the database and looks for it, and for the MD5,
in everything the daemon answered or logged.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from uuid import UUID

import httpx
import pytest
import trio

from syncplayd.passwords import Passwords
from syncplayd.service.rooms import syncplay_password_md5
from syncplayd.storage import Room, open_repository
from tests.daemon_process import DaemonProcess, run_daemon
from tests.server.api_client import api
from tests.server.conftest import BACKENDS, TEST_ENV, backend_database_url

ROOM = "/rooms/{room_id}"
ADMIN = "/api/v1/admin"
HIDDEN_KEYS = ("syncplay_password_hash", "password_hash", "password")


@dataclass
class Served:
    daemon: DaemonProcess
    database_url: str

    def stored(self, room_id: str) -> Room:
        """The room as the database holds it (read beside the running daemon)."""

        async def read() -> Room | None:
            repo = await open_repository(self.database_url, auto_migrate=False)
            try:
                return await repo.get_room(UUID(room_id))
            finally:
                await repo.aclose()

        room = trio.run(read)
        assert room is not None
        return room


@pytest.fixture(scope="module", params=BACKENDS)
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    # As tests/server/conftest.py's daemon, but the test needs the database's URL too.
    folder = tmp_path_factory.mktemp(f"syncplay-password-{request.param}")
    url = backend_database_url(request.param, request, folder)
    with run_daemon(url, folder / "state", TEST_ENV) as process:
        yield Served(process, url)
        assert process.process.poll() is None, "the daemon died during the tests"


def _ok(response: httpx.Response) -> httpx.Response:
    assert response.status_code == 200, response.text
    return response


def test_the_verifier_is_never_returned_or_logged(served: Served) -> None:
    daemon = served.daemon
    owner, guest = api(daemon, "owner"), api(daemon, "guest")
    admin = api(daemon, "root", admin=True)
    answers: list[httpx.Response] = []

    created = owner.call(
        "POST", "/rooms", 201,
        json={"name": "Film club", "content_type": "movie", "content_id": "m-1",
              "is_public": True, "password": "correct horse"},
    )  # fmt: skip
    room_id = created.json()["id"]
    first = served.stored(room_id)
    # It is there to find: the verifier of the password's MD5, not the MD5 itself.
    assert first.syncplay_password_hash is not None
    assert Passwords().verify_sync(
        first.syncplay_password_hash, syncplay_password_md5("correct horse")
    )

    room = owner.call("GET", ROOM, 200, room_id=room_id)
    body = room.json()
    assert body["has_password"] is True
    assert "syncplay_password_hash" not in body
    answers += [created, room, guest.call("GET", ROOM, 200, room_id=room_id)]
    answers.append(guest.call("GET", "/rooms", 200, params={"public": "true"}))
    answers.append(guest.call("POST", ROOM + "/join", 200, json={"password": "correct horse"},
                              room_id=room_id))  # fmt: skip
    answers.append(guest.call("GET", ROOM + "/participants", 200, room_id=room_id))
    answers.append(owner.call("PUT", ROOM, 200, json={"password": "new horse"}, room_id=room_id))
    second = served.stored(room_id)
    assert second.syncplay_password_hash not in (None, first.syncplay_password_hash)
    answers.append(admin.call("GET", ROOM, 200, room_id=room_id))
    answers.append(_ok(admin.http.get(f"{ADMIN}/rooms/{room_id}")))
    answers.append(_ok(admin.http.get(f"{ADMIN}/rooms", params={"limit": 100})))

    for answer in answers:
        assert answer.headers["content-type"].startswith("application/json")
        for shown in _objects(answer.json()):
            assert not set(HIDDEN_KEYS) & set(shown), shown
    secrets = [
        first.password_hash, first.syncplay_password_hash,
        second.password_hash, second.syncplay_password_hash,
        syncplay_password_md5("correct horse"), syncplay_password_md5("new horse"),
    ]  # fmt: skip
    for secret in secrets:
        assert secret is not None
        for answer in answers:
            assert secret not in answer.text
        assert not any(secret in line for line in daemon.log_lines)
    assert not any("syncplay_password_hash" in line for line in daemon.log_lines)


def _objects(body: object) -> list[dict[str, object]]:
    """Every JSON object in ``body`` (rooms, participants, pages), however deep."""
    found: list[dict[str, object]] = []
    if isinstance(body, dict):
        found.append(body)
        for value in body.values():
            found += _objects(value)
    elif isinstance(body, list):
        for value in body:
            found += _objects(value)
    return found
