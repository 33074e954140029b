"""Schemathesis against api/openapi/syncplay.yaml, on a live daemon per storage backend.

Every operation of the contract gets generated requests, valid and invalid ones
(schemathesis' positive and negative modes, with its examples and coverage phases),
with a valid bearer token. Path ids are sometimes swapped for real resources of
the caller (a room it owns, a password room, an invitation code), so that
requests get past "not found" into the code that reads and writes the database.
Each response must pass every default check: no 5xx, a documented status code and
content type, a body that matches the schema, documented headers, invalid input
refused and valid input accepted.

The schema is loaded from the file at import (schemathesis' fixture-backed lazy
loader needs a pytest private attribute that pytest 9 removed), and each call is
sent to the module's daemon. Runs are derandomized, so a failure reproduces.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import strategies as st
from schemathesis.core.parameters import ParameterLocation

from tests.daemon_process import DaemonProcess, new_user, run_daemon
from tests.e2e.raw import token
from tests.server.conftest import BACKENDS, backend_database_url

SPEC = Path(__file__).resolve().parents[2] / "api" / "openapi" / "syncplay.yaml"
PREFIX = "/api/v1/syncplay"
ROOT_PATHS = frozenset({"/healthz", "/readyz"})  # served at the root, not under PREFIX
MAX_EXAMPLES = 50

OWNER = new_user("fuzz-owner")
AUTH = {"Authorization": f"Bearer {token(OWNER)}"}

# Limits raised to the contract's hard bounds, so that a value the schema allows is
# not refused by a smaller configured limit (the chat length is configurable up to
# the 10,000 of the schema), and so that the fuzzer does not run out of rooms (nor of its
# hourly room, password and invitation budgets).
FUZZ_ENV = {
    "SYNCPLAY_CHAT_MAX_MESSAGE_LENGTH": "10000",
    # The schema's bound (10000) is the setting's; by default the server allows 1000.
    "SYNCPLAY_MAX_PARTICIPANTS_LIMIT": "10000",
    "SYNCPLAY_CHAT_RATE_LIMIT_MESSAGES_PER_MINUTE": "10000",
    "SYNCPLAY_ROOMS_MAX_ROOMS_PER_USER": "1000",
    "SYNCPLAY_ROOMS_CREATES_PER_HOUR": "100000",
    "SYNCPLAY_ROOMS_PASSWORD_CHANGES_PER_HOUR": "100000",
    "SYNCPLAY_INVITATIONS_CREATES_PER_HOUR": "100000",
    "SYNCPLAY_INVITATIONS_MAX_LIVE_PER_ROOM": "100000",
}

# Schemathesis' defaults for invalid input, plus 413 (see below).
REFUSALS = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429"]
config = schemathesis.Config.from_dict(
    {
        "generation": {
            "max-examples": MAX_EXAMPLES,
            "deterministic": True,
            "database": "none",  # no replay of other runs' failures: the same cases each run
            # Unknown query parameters are ignored by design (the contract says so):
            # caches and proxies add their own.
            "allow-extra-parameters": False,
        },
        "auth": {"openapi": {"bearerAuth": {"bearer": AUTH["Authorization"].split()[1]}}},
        "checks": {
            # 413 is a documented refusal: the body is limited to server.max_request_bytes
            # before anything else (authentication included) is looked at, and a chat
            # message of 10,000 characters written as \u escapes can exceed it (the
            # contract says so at ChatPost.message). Schemathesis' defaults lack it.
            "negative_data_rejection": {"expected-statuses": REFUSALS},
            "positive_data_acceptance": {
                "expected-statuses": ["2xx", "3xx", "401", "403", "404", "409", "413", "429"]
            },
        },
    }
)
schema = schemathesis.openapi.from_path(SPEC, config=config)

# Answers by status, over the module (printed at the end, for docs/_reliability_fuzzing.md).
STATUSES: Counter[int] = Counter()

# The real resources of the running daemon, filled in by the ``resources`` fixture.
_real: dict[str, list[str]] = {"room_id": [], "code": [], "item_id": []}


@pytest.fixture(scope="module", params=BACKENDS)
def api_daemon(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DaemonProcess]:
    folder = tmp_path_factory.mktemp(f"schemathesis-{request.param}")
    url = backend_database_url(request.param, request, folder)
    with run_daemon(url, folder / "state", FUZZ_ENV) as process:
        yield process
        print(f"schemathesis {request.param}: {sum(STATUSES.values())} requests", dict(STATUSES))
        STATUSES.clear()
        assert process.process.poll() is None, "the daemon died during the run"
        assert not any("Traceback" in line for line in process.log_lines), "\n".join(
            process.log_lines
        )


@pytest.fixture(scope="module")
def resources(api_daemon: DaemonProcess) -> Iterator[None]:
    """Rooms, an invitation and queue items of the caller, for path parameters to hit
    now and then."""
    with httpx.Client(base_url=api_daemon.base_url + PREFIX, headers=AUTH) as http:
        rooms, items = [], []
        for extra in ({"is_public": True}, {"password": "popcorn"}):
            body = {"name": "fuzz", "content_type": "movie", "content_id": "tt1"} | extra
            response = http.post("/rooms", json=body)
            assert response.status_code == 201, response.text
            rooms.append(response.json()["id"])
            items.append(response.json()["current_item_id"])
        response = http.post(f"/rooms/{rooms[0]}/invitations", json={"max_uses": 1000})
        assert response.status_code == 201, response.text
        code = response.json()["code"]
    _real["room_id"], _real["code"], _real["item_id"] = rooms, [code], items
    yield
    _real["room_id"], _real["code"], _real["item_id"] = [], [], []


def _new_room(daemon: DaemonProcess) -> str:
    with httpx.Client(base_url=daemon.base_url + PREFIX, headers=AUTH) as http:
        body = {"name": "to end", "content_type": "movie", "content_id": "tt2"}
        response = http.post("/rooms", json=body)
        assert response.status_code == 201, response.text
        room_id: str = response.json()["id"]
        return room_id


@schema.given(pick=st.integers(min_value=0, max_value=3))
@schema.parametrize()
def test_every_operation_conforms(
    case: Any, pick: int, api_daemon: DaemonProcess, resources: None
) -> None:
    # Half of the valid cases address a real room or code instead of a random one;
    # invalid path parameters stay as generated (their refusal is under test).
    if not case.meta.is_negative_at(ParameterLocation.PATH) and pick < 2:
        for name, values in _real.items():
            if name in case.path_parameters and values:
                case.path_parameters[name] = values[pick % len(values)]
        if case.method.upper() == "DELETE":
            # Ending a shared room would turn every later valid request on it into
            # 410 room-ended: a room of its own to end.
            case.path_parameters["room_id"] = _new_room(api_daemon)
    base = api_daemon.base_url + ("" if case.path in ROOT_PATHS else PREFIX)
    response = case.call_and_validate(base_url=base)
    STATUSES[response.status_code] += 1
