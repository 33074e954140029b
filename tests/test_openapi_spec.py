"""The OpenAPI contract itself: valid OpenAPI 3.1, complete, and enforced by the checker."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from openapi_spec_validator import OpenAPIV31SpecValidator, validate

from syncplayd import openapi
from syncplayd.openapi import load_spec, spec_json_bytes, spec_yaml_bytes
from tests.openapi_check import (
    assert_request_conforms,
    assert_response_conforms,
    exercised_responses,
    iter_operations,
    resolve_path_template,
    schema_validator,
)

REPO_SPEC = Path(__file__).resolve().parent.parent / "api" / "openapi" / "syncplay.yaml"
UNAUTHENTICATED = {
    ("GET", "/openapi.yaml"),
    ("GET", "/openapi.json"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
}
EXPECTED_OPERATIONS = {
    ("GET", "/rooms"),
    ("POST", "/rooms"),
    ("GET", "/rooms/{room_id}"),
    ("PUT", "/rooms/{room_id}"),
    ("DELETE", "/rooms/{room_id}"),
    ("POST", "/rooms/{room_id}/join"),
    ("POST", "/rooms/{room_id}/leave"),
    ("GET", "/rooms/{room_id}/participants"),
    ("POST", "/rooms/{room_id}/chat"),
    ("GET", "/rooms/{room_id}/chat"),
    ("POST", "/rooms/{room_id}/invitations"),
    ("GET", "/invitations/{code}"),
    ("PUT", "/rooms/{room_id}/participants/{user_id}/role"),
    ("POST", "/rooms/{room_id}/transfer"),
    ("POST", "/rooms/{room_id}/participants/{user_id}/kick"),
    ("GET", "/rooms/{room_id}/bans"),
    ("PUT", "/rooms/{room_id}/bans/{user_id}"),
    ("DELETE", "/rooms/{room_id}/bans/{user_id}"),
    ("PUT", "/rooms/{room_id}/mutes/{user_id}"),
    ("DELETE", "/rooms/{room_id}/mutes/{user_id}"),
    ("DELETE", "/rooms/{room_id}/chat/{message_id}"),
    ("GET", "/rooms/{room_id}/queue"),
    ("POST", "/rooms/{room_id}/queue/items"),
    ("DELETE", "/rooms/{room_id}/queue/items"),
    ("DELETE", "/rooms/{room_id}/queue/items/{item_id}"),
    ("POST", "/rooms/{room_id}/queue/items/{item_id}/move"),
    ("POST", "/rooms/{room_id}/queue/play"),
    ("POST", "/rooms/{room_id}/queue/next"),
    ("POST", "/rooms/{room_id}/queue/previous"),
    ("PUT", "/rooms/{room_id}/queue/mode"),
} | UNAUTHENTICATED
REQUIRED_SCHEMAS = {
    "Room",
    "Playback",
    "CreateRoom",
    "UpdateRoom",
    "JoinRoom",
    "JoinResult",
    "Participant",
    "ChatPost",
    "ChatMessage",
    "CreateInvitation",
    "Invitation",
    "InvitationDetails",
    "RoomSummary",
    "RoomList",
    "ParticipantList",
    "ChatList",
    "Problem",
    "ValidationError",
    "Health",
    "Ready",
    "RoleBody",
    "TransferBody",
    "KickBody",
    "SanctionBody",
    "Restriction",
    "RestrictionList",
    "Queue",
    "QueueItem",
    "QueueItemBody",
    "MoveQueueItem",
    "PlayQueueItem",
    "QueueStep",
    "QueueMode",
}

ROOM_ID = "0b9f3c1e-6a51-4d7e-9c39-2f0e8d6b1a24"
USER_ID = "5d1c7a8e-2b34-4f60-8a9d-c3e1f2a4b5d6"
ITEM_ID = "8c2d4e6f-1a3b-4c5d-9e7f-0a1b2c3d4e5f"
NOW = "2026-11-25T18:40:00.123456Z"


def doc() -> Any:
    """The parsed document, typed loosely for indexing in assertions."""
    return load_spec()


def valid_room(**changes: Any) -> dict[str, Any]:
    room: dict[str, Any] = {
        "id": ROOM_ID,
        "name": "Friday movie night",
        "owner_id": USER_ID,
        "content_type": "movie",
        "content_id": "tt0133093",
        "is_public": True,
        "has_password": False,
        "max_participants": 10,
        "participant_count": 1,
        "playback": {
            "state": "paused",
            "position": 0.0,
            "rate": 1.0,
            "version": 0,
            "updated_at": None,
        },
        "playback_control": "everyone",
        "moderators_manage_moderators": False,
        "current_item_id": ITEM_ID,
        "wait_for_slow_members": "policy",
        "start_when_ready": False,
        "created_at": NOW,
        "updated_at": "2026-11-25T18:40:00Z",
        "ended_at": None,
    }
    room.update(changes)
    return room


def problem(code: str, status: int, **extra: Any) -> dict[str, Any]:
    return {
        "type": f"urn:syncplayd:problem:{code}",
        "title": code.replace("-", " ").capitalize(),
        "status": status,
        "detail": "Something about this request.",
        "code": code,
        **extra,
    }


def operations_with_objects() -> list[tuple[str, str, dict[str, Any]]]:
    paths: dict[str, Any] = doc()["paths"]
    return [(method, path, paths[path][method.lower()]) for method, path in iter_operations()]


def resolve(node: dict[str, Any]) -> dict[str, Any]:
    spec = doc()
    while "$ref" in node:
        target: Any = spec
        for token in node["$ref"][2:].split("/"):
            target = target[token.replace("~1", "/").replace("~0", "~")]
        node = target
    return node


# --- the document -----------------------------------------------------------------


def test_spec_is_valid_openapi_3_1() -> None:
    spec = doc()
    assert spec["openapi"] == "3.1.0"
    validate(copy.deepcopy(spec), cls=OpenAPIV31SpecValidator)


def test_load_spec_equals_the_yaml_file() -> None:
    assert load_spec() == yaml.safe_load(REPO_SPEC.read_bytes())
    assert load_spec() is load_spec()


def test_served_bytes() -> None:
    assert spec_yaml_bytes() == REPO_SPEC.read_bytes()
    assert json.loads(spec_json_bytes()) == load_spec()  # plain JSON data: no dates, str keys
    assert_response_conforms("GET", "/openapi.json", 200, json.loads(spec_json_bytes()))
    assert_response_conforms(
        "GET", "/openapi.yaml", 200, spec_yaml_bytes(), "application/yaml; charset=utf-8"
    )


def test_packaged_copy_is_preferred(tmp_path: Path) -> None:
    packaged = tmp_path / "pkg" / "syncplay.yaml"
    repository = tmp_path / "repo" / "syncplay.yaml"
    repository.parent.mkdir()
    repository.write_bytes(b"openapi: repo\n")
    assert openapi._read_spec_bytes(packaged, repository) == b"openapi: repo\n"
    packaged.parent.mkdir()
    packaged.write_bytes(b"openapi: packaged\n")
    assert openapi._read_spec_bytes(packaged, repository) == b"openapi: packaged\n"
    repository.unlink()
    packaged.unlink()
    with pytest.raises(FileNotFoundError):
        openapi._read_spec_bytes(packaged, repository)


def test_servers() -> None:
    spec = doc()
    assert spec["servers"] == [
        {"url": "/api/v1/syncplay", "description": spec["servers"][0]["description"]}
    ]
    paths: dict[str, Any] = spec["paths"]
    for root in ("/healthz", "/readyz"):
        assert [server["url"] for server in paths[root]["servers"]] == ["/"]
    for path, item in paths.items():
        if path not in ("/healthz", "/readyz"):
            assert "servers" not in item, path


def test_all_schemas_present() -> None:
    schemas: dict[str, Any] = doc()["components"]["schemas"]
    assert set(schemas) >= REQUIRED_SCHEMAS


def test_every_endpoint_documented() -> None:
    assert set(iter_operations()) == EXPECTED_OPERATIONS
    operation_ids = [operation["operationId"] for _, _, operation in operations_with_objects()]
    assert len(operation_ids) == len(set(operation_ids))


def test_security() -> None:
    spec = doc()
    assert spec["security"] == [{"bearerAuth": []}]
    scheme = spec["components"]["securitySchemes"]["bearerAuth"]
    assert scheme["type"] == "http"
    assert scheme["scheme"] == "bearer"
    assert scheme["bearerFormat"] == "JWT"
    for method, path, operation in operations_with_objects():
        if (method, path) in UNAUTHENTICATED:
            assert operation.get("security") == [], (method, path)
        else:
            assert "security" not in operation, (method, path)


@pytest.mark.parametrize(("method", "path"), sorted(EXPECTED_OPERATIONS))
def test_operation_is_complete(method: str, path: str) -> None:
    paths: dict[str, Any] = doc()["paths"]
    operation = paths[path][method.lower()]
    assert operation.get("operationId")
    assert operation.get("summary")
    assert operation.get("description")
    responses = operation["responses"]
    assert any(status.startswith("2") for status in responses)
    assert "default" not in responses
    for status, response_or_ref in responses.items():
        response = resolve(response_or_ref)
        assert response.get("description"), status
        if status.startswith(("4", "5")) and (method, path) != ("GET", "/readyz"):
            assert list(response["content"]) == ["application/problem+json"], status
            schema = response["content"]["application/problem+json"]["schema"]
            assert {"$ref": "#/components/schemas/Problem"} in schema["allOf"], status
    if (method, path) in UNAUTHENTICATED:
        assert "401" not in responses
    else:
        assert responses["401"] == {"$ref": "#/components/responses/Unauthorized"}
        assert responses["503"] == {"$ref": "#/components/responses/Unavailable"}
        assert any(status.startswith("4") and status != "401" for status in responses), (
            "an operation needs an error response besides 401"
        )
    if "requestBody" in operation:
        assert list(operation["requestBody"]["content"]) == ["application/json"]
        for status in ("400", "413", "415", "422"):
            assert status in responses, status
    for parameter in [*paths[path].get("parameters", []), *operation.get("parameters", [])]:
        parameter = resolve(parameter)
        assert "schema" in parameter, parameter
        if parameter["in"] == "path":
            assert parameter["required"] is True


def test_required_headers() -> None:
    spec = doc()
    responses = spec["components"]["responses"]
    assert responses["RateLimited"]["headers"]["Retry-After"]
    assert responses["Unauthorized"]["headers"]["WWW-Authenticate"]
    created = spec["paths"]["/rooms"]["post"]["responses"]["201"]
    assert resolve(created["headers"]["Location"])["required"] is True
    assert spec["paths"]["/rooms/{room_id}/chat"]["post"]["responses"]["429"] == {
        "$ref": "#/components/responses/RateLimited"
    }


def test_query_parameter_defaults_and_bounds() -> None:
    spec = doc()
    params = {
        resolve(p)["name"]: resolve(p)["schema"]
        for p in spec["paths"]["/rooms"]["get"]["parameters"]
    }
    assert set(params) == {
        "public",
        "mine",
        "content_type",
        "content_id",
        "active",
        "limit",
        "offset",
    }
    assert params["active"] == {"type": "boolean", "default": True}
    assert params["limit"] == {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}
    assert params["offset"] == {"type": "integer", "minimum": 0, "maximum": 1_000_000, "default": 0}
    (purge,) = spec["paths"]["/rooms/{room_id}"]["delete"]["parameters"]
    assert purge["schema"] == {"type": "boolean", "default": False}


def test_schemas_are_closed() -> None:
    schemas = doc()["components"]["schemas"]
    for name in REQUIRED_SCHEMAS:
        assert schemas[name]["additionalProperties"] is False, name


def test_invitation_details_extends_invitation() -> None:
    schemas = doc()["components"]["schemas"]
    invitation, details = schemas["Invitation"], schemas["InvitationDetails"]
    assert set(details["properties"]) == {*invitation["properties"], "room"}
    assert set(details["required"]) == {*invitation["required"], "room"}


# --- the checker accepts valid bodies ---------------------------------------------


def test_valid_room() -> None:
    assert_response_conforms("GET", "/rooms/{room_id}", 200, valid_room(), "application/json")
    assert_response_conforms(
        "GET",
        "/api/v1/syncplay/rooms/{room_id}",
        200,
        valid_room(
            ended_at="2026-11-25T20:00:00Z",
            has_password=True,
            playback={
                "state": "playing",
                "position": 12.5,
                "rate": 1.25,
                "version": 3,
                "updated_at": NOW,
            },
        ),
    )
    assert_response_conforms(
        "POST",
        "/rooms",
        201,
        json.dumps(valid_room()).encode(),
        "application/json; charset=utf-8",
        headers={"location": f"/api/v1/syncplay/rooms/{ROOM_ID}"},
    )


def test_valid_problem_with_errors() -> None:
    body = problem(
        "validation-failed",
        422,
        errors=[{"field": "name", "message": "must be 1 to 200 characters"}],
    )
    assert_response_conforms("POST", "/rooms", 422, body, "application/problem+json")
    assert_response_conforms(
        "POST",
        "/rooms/{room_id}/chat",
        429,
        problem("rate-limited", 429),
        "application/problem+json",
        headers={"Retry-After": "3"},
    )
    assert_response_conforms(
        "GET",
        "/rooms",
        401,
        problem("unauthorized", 401),
        "application/problem+json",
        headers={"WWW-Authenticate": 'Bearer realm="syncplayd"'},
    )
    assert_response_conforms(
        "POST", "/rooms/{room_id}/leave", 404, problem("not-a-member", 404), None
    )


def test_valid_room_list() -> None:
    body = {"items": [valid_room(), valid_room(id=USER_ID)], "total": 7, "limit": 2, "offset": 4}
    assert_response_conforms("GET", "/rooms", 200, body, "application/json")
    assert_response_conforms(
        "GET", "/rooms", 200, {"items": [], "total": 0, "limit": 20, "offset": 0}
    )


def test_valid_other_bodies() -> None:
    participant = {
        "user_id": USER_ID,
        "user_name": "alice",
        "role": "owner",
        "is_connected": False,
        "joined_at": NOW,
        "last_seen_at": NOW,
        "muted": False,
    }
    assert_response_conforms(
        "POST", "/rooms/{room_id}/join", 200, {"room": valid_room(), "participant": participant}
    )
    assert_response_conforms(
        "PUT", "/rooms/{room_id}/participants/{user_id}/role", 200, participant
    )
    restriction = {
        "room_id": ROOM_ID,
        "user_id": USER_ID,
        "user_name": None,
        "reason": None,
        "created_by": ROOM_ID,
        "created_at": NOW,
        "expires_at": None,
    }
    assert_response_conforms("PUT", "/rooms/{room_id}/bans/{user_id}", 200, restriction)
    assert_response_conforms(
        "PUT",
        "/rooms/{room_id}/mutes/{user_id}",
        200,
        restriction | {"user_name": "bob", "reason": "spoilers", "expires_at": NOW},
    )
    assert_response_conforms(
        "GET",
        "/rooms/{room_id}/bans",
        200,
        {"items": [restriction], "total": 1, "limit": 1, "offset": 0},
    )
    for method, path in [
        ("POST", "/rooms/{room_id}/participants/{user_id}/kick"),
        ("DELETE", "/rooms/{room_id}/bans/{user_id}"),
        ("DELETE", "/rooms/{room_id}/mutes/{user_id}"),
        ("DELETE", "/rooms/{room_id}/chat/{message_id}"),
    ]:
        assert_response_conforms(method, path, 204, None)
    assert_response_conforms("POST", "/rooms/{room_id}/join", 403, problem("banned", 403))
    assert_response_conforms("POST", "/rooms/{room_id}/chat", 403, problem("muted", 403))
    message = {
        "id": ROOM_ID,
        "room_id": ROOM_ID,
        "user_id": USER_ID,
        "user_name": "alice",
        "message": "hi",
        "created_at": NOW,
    }
    assert_response_conforms(
        "GET",
        "/rooms/{room_id}/chat",
        200,
        {"items": [message], "total": 1, "limit": 50, "offset": 0},
    )
    invitation = {
        "code": "K7M2QX9P",
        "room_id": ROOM_ID,
        "expires_at": NOW,
        "invited_user_id": None,
        "max_uses": None,
        "use_count": 0,
        "created_at": NOW,
        "created_by": USER_ID,
    }
    assert_response_conforms("POST", "/rooms/{room_id}/invitations", 201, invitation)
    summary = {
        key: valid_room()[key]
        for key in (
            "id",
            "name",
            "content_type",
            "content_id",
            "is_public",
            "has_password",
            "max_participants",
            "participant_count",
            "ended_at",
        )
    }
    assert_response_conforms("GET", "/invitations/{code}", 200, {**invitation, "room": summary})
    assert_response_conforms("DELETE", "/rooms/{room_id}", 204, None)
    assert_response_conforms("GET", "/healthz", 200, {"status": "ok"})
    assert_response_conforms(
        "POST", "/rooms/{room_id}/queue/items", 409, problem("queue-full", 409)
    )
    assert_response_conforms("GET", "/readyz", 200, {"status": "ready"})
    assert_response_conforms(
        "GET", "/readyz", 503, {"status": "unavailable", "detail": "database unreachable"}
    )


def valid_queue(**changes: Any) -> dict[str, Any]:
    item = {
        "id": ITEM_ID,
        "content_type": "episode",
        "content_id": "s01e01",
        "title": "Pilot",
        "duration": 1440.5,
    }
    queue: dict[str, Any] = {
        "room_id": ROOM_ID,
        "current_item_id": ITEM_ID,
        "next_item_id": USER_ID,
        "repeat": "none",
        "shuffle": False,
        "items": [item, item | {"id": USER_ID, "title": None, "duration": None}],
    }
    return queue | changes


def test_valid_queue() -> None:
    for method, path, status in [
        ("GET", "/rooms/{room_id}/queue", 200),
        ("POST", "/rooms/{room_id}/queue/items", 201),
        ("DELETE", "/rooms/{room_id}/queue/items", 200),
        ("DELETE", "/rooms/{room_id}/queue/items/{item_id}", 200),
        ("POST", "/rooms/{room_id}/queue/items/{item_id}/move", 200),
        ("POST", "/rooms/{room_id}/queue/play", 200),
        ("POST", "/rooms/{room_id}/queue/next", 200),
        ("POST", "/rooms/{room_id}/queue/previous", 200),
        ("PUT", "/rooms/{room_id}/queue/mode", 200),
    ]:
        assert_response_conforms(method, path, status, valid_queue())
    empty = valid_queue(
        current_item_id=None, next_item_id=None, items=[], repeat="all", shuffle=True
    )
    assert_response_conforms("GET", "/rooms/{room_id}/queue", 200, empty)
    assert_response_conforms("GET", "/rooms/{room_id}", 200, valid_room(current_item_id=None))


@pytest.mark.parametrize(
    "queue",
    [
        pytest.param(valid_queue(repeat="twice"), id="bad-repeat"),
        pytest.param(valid_queue(items=[{"id": ITEM_ID}]), id="incomplete-item"),
        pytest.param(
            valid_queue(items=[valid_queue()["items"][0] | {"shuffle_rank": 0.5}]),
            id="internal-rank",
        ),
        pytest.param(
            valid_queue(items=[valid_queue()["items"][0] | {"duration": 0}]), id="zero-duration"
        ),
        pytest.param({k: v for k, v in valid_queue().items() if k != "room_id"}, id="no-room"),
    ],
)
def test_invalid_queue_rejected(queue: dict[str, Any]) -> None:
    with pytest.raises(AssertionError, match="does not conform"):
        assert_response_conforms("GET", "/rooms/{room_id}/queue", 200, queue)


def test_valid_requests() -> None:
    assert_request_conforms(
        "POST",
        "/rooms",
        {"name": "x", "content_type": "movie", "content_id": "1", "password": None},
    )
    assert_request_conforms("PUT", "/rooms/{room_id}", {"password": None})
    assert_request_conforms("POST", "/rooms/{room_id}/join", None)
    assert_request_conforms("POST", "/rooms/{room_id}/join", {})
    assert_request_conforms("POST", "/rooms/{room_id}/join", {"invitation_code": "K7M2QX9P"})
    assert_request_conforms("POST", "/rooms/{room_id}/chat", {"message": "m" * 10000})
    assert_request_conforms(
        "POST",
        "/rooms/{room_id}/invitations",
        {"invited_user_id": USER_ID, "expires_in_hours": 0.5, "max_uses": None},
    )
    assert_request_conforms("POST", "/rooms/{room_id}/leave", None)
    assert_request_conforms("PUT", "/rooms/{room_id}", {"moderators_manage_moderators": True})
    assert_request_conforms(
        "PUT", "/rooms/{room_id}/participants/{user_id}/role", {"role": "moderator"}
    )
    assert_request_conforms("POST", "/rooms/{room_id}/transfer", {"user_id": USER_ID})
    assert_request_conforms("POST", "/rooms/{room_id}/participants/{user_id}/kick", None)
    assert_request_conforms(
        "POST", "/rooms/{room_id}/participants/{user_id}/kick", {"reason": "r" * 500}
    )
    assert_request_conforms("PUT", "/rooms/{room_id}/bans/{user_id}", None)
    assert_request_conforms(
        "PUT",
        "/rooms/{room_id}/bans/{user_id}",
        {"reason": "spoilers\nagain", "expires_in_minutes": 5256000},
    )
    assert_request_conforms("PUT", "/rooms/{room_id}/mutes/{user_id}", {"expires_in_minutes": 1.5})
    assert_request_conforms(
        "POST",
        "/rooms",
        {"name": "x", "content_type": "movie", "content_id": "1", "content_title": "The One"}
        | {"content_duration": 5400, "wait_for_slow_members": "never", "start_when_ready": True},
    )
    assert_request_conforms(
        "PUT", "/rooms/{room_id}", {"wait_for_slow_members": "always", "start_when_ready": True}
    )
    assert_request_conforms(
        "POST", "/rooms/{room_id}/queue/items", {"content_type": "movie", "content_id": "2"}
    )
    assert_request_conforms(
        "POST",
        "/rooms/{room_id}/queue/items",
        {"content_type": "movie", "content_id": "2", "title": None, "duration": 0.5}
        | {"play_next": True},
    )
    assert_request_conforms("POST", "/rooms/{room_id}/queue/items/{item_id}/move", {"index": 0})
    assert_request_conforms("POST", "/rooms/{room_id}/queue/play", {"item_id": ITEM_ID})
    assert_request_conforms("POST", "/rooms/{room_id}/queue/next", {"current_item_id": ITEM_ID})
    assert_request_conforms("PUT", "/rooms/{room_id}/queue/mode", {"repeat": "one"})
    assert_request_conforms("PUT", "/rooms/{room_id}/queue/mode", {"shuffle": False})
    assert_request_conforms("DELETE", "/rooms/{room_id}/queue/items", None)


# --- the checker rejects invalid bodies -------------------------------------------


@pytest.mark.parametrize(
    "room",
    [
        pytest.param(valid_room(password="hunter2"), id="password-field"),
        pytest.param({k: v for k, v in valid_room().items() if k != "id"}, id="missing-id"),
        pytest.param(valid_room(id="not-a-uuid"), id="bad-uuid"),
        pytest.param(valid_room(owner_id="0b9f3c1e6a514d7e9c392f0e8d6b1a24"), id="uuid-no-dashes"),
        pytest.param(valid_room(ended_at=1764096000), id="ended_at-wrong-type"),
        pytest.param(valid_room(created_at="yesterday"), id="bad-date-time"),
        pytest.param(valid_room(created_at="2026-11-25T18:40:00+01:00"), id="not-utc-z"),
        pytest.param(valid_room(created_at="2026-13-45T18:40:00Z"), id="impossible-date"),
        pytest.param(valid_room(max_participants=1), id="max-participants-range"),
        pytest.param(valid_room(name=""), id="empty-name"),
        pytest.param(
            valid_room(playback={**valid_room()["playback"], "state": "stopped"}),
            id="bad-playback-state",
        ),
        pytest.param(
            valid_room(playback={**valid_room()["playback"], "position": -1}),
            id="negative-position",
        ),
    ],
)
def test_invalid_room_rejected(room: dict[str, Any]) -> None:
    with pytest.raises(AssertionError, match="does not conform"):
        assert_response_conforms("GET", "/rooms/{room_id}", 200, room, "application/json")


def test_invalid_responses_rejected() -> None:
    with pytest.raises(AssertionError, match="not documented"):
        assert_response_conforms("GET", "/rooms/{room_id}", 409, problem("room-full", 409))
    with pytest.raises(AssertionError, match="not documented"):
        assert_response_conforms("PATCH", "/rooms/{room_id}", 200, valid_room())
    with pytest.raises(AssertionError, match="not documented"):
        assert_response_conforms("GET", "/nope", 200, {})
    with pytest.raises(AssertionError, match="not documented"):
        assert_response_conforms("GET", "/api/v1/syncplay/healthz", 200, {"status": "ok"})
    with pytest.raises(AssertionError, match="content type"):
        assert_response_conforms(
            "GET", "/rooms/{room_id}", 404, problem("not-found", 404), "application/json"
        )
    with pytest.raises(AssertionError, match="content type"):
        assert_response_conforms("GET", "/rooms/{room_id}", 200, valid_room(), "text/html")
    with pytest.raises(AssertionError, match="without a body"):
        assert_response_conforms("DELETE", "/rooms/{room_id}", 204, {"ok": True})
    with pytest.raises(AssertionError, match="got none"):
        assert_response_conforms("GET", "/rooms/{room_id}", 200, None)
    with pytest.raises(AssertionError, match="does not conform"):
        # 422 needs errors[]
        assert_response_conforms(
            "POST", "/rooms", 422, problem("validation-failed", 422), "application/problem+json"
        )
    with pytest.raises(AssertionError, match="does not conform"):
        # a 403 code on a 404
        assert_response_conforms("GET", "/rooms/{room_id}", 404, problem("forbidden", 404))
    with pytest.raises(AssertionError, match="does not match code"):
        assert_response_conforms(
            "GET",
            "/rooms/{room_id}",
            404,
            {**problem("not-found", 404), "type": "urn:syncplayd:problem:not-a-member"},
        )
    with pytest.raises(AssertionError, match="does not conform"):
        assert_response_conforms(
            "GET", "/rooms/{room_id}", 404, {**problem("not-found", 404), "instance": "/x"}
        )
    with pytest.raises(AssertionError, match="does not conform"):
        assert_response_conforms("GET", "/readyz", 503, {"status": "unavailable"})
    with pytest.raises(AssertionError, match="does not conform"):
        assert_response_conforms(
            "GET", "/rooms", 200, {"items": [], "total": 0, "limit": 500, "offset": 0}
        )


def test_missing_or_bad_headers_rejected() -> None:
    with pytest.raises(AssertionError, match="Location"):
        assert_response_conforms("POST", "/rooms", 201, valid_room(), headers={})
    with pytest.raises(AssertionError, match="Retry-After"):
        assert_response_conforms(
            "POST", "/rooms/{room_id}/chat", 429, problem("rate-limited", 429), headers={}
        )
    with pytest.raises(AssertionError, match="not an integer"):
        assert_response_conforms(
            "POST",
            "/rooms/{room_id}/chat",
            429,
            problem("rate-limited", 429),
            headers={"Retry-After": "soon"},
        )
    with pytest.raises(AssertionError, match="WWW-Authenticate"):
        assert_response_conforms(
            "GET",
            "/rooms",
            401,
            problem("unauthorized", 401),
            headers={"WWW-Authenticate": "Basic"},
        )


@pytest.mark.parametrize(
    ("method", "path", "body", "match"),
    [
        ("POST", "/rooms", {"name": "x", "content_type": "movie"}, "'content_id' is a required"),
        (
            "POST",
            "/rooms",
            {"name": "x", "content_type": "m", "content_id": "1", "extra": 1},
            "'extra' was unexpected",
        ),
        (
            "POST",
            "/rooms",
            {"name": "x", "content_type": "m", "content_id": "1", "password": ""},
            r"\$\.password",
        ),
        (
            "POST",
            "/rooms",
            {"name": "x", "content_type": "m", "content_id": "1", "max_participants": 10001},
            r"\$\.max_participants",
        ),
        ("POST", "/rooms", None, "request body is required"),
        ("PUT", "/rooms/{room_id}", {}, "non-empty"),
        ("PUT", "/rooms/{room_id}", {"name": None}, r"\$\.name"),
        ("POST", "/rooms/{room_id}/chat", {"message": ""}, r"\$\.message"),
        ("POST", "/rooms/{room_id}/chat", {"message": "m" * 10001}, r"\$\.message"),
        ("POST", "/rooms/{room_id}/invitations", {"expires_in_hours": 0}, "expires_in_hours"),
        ("POST", "/rooms/{room_id}/invitations", {"expires_in_hours": 721}, "expires_in_hours"),
        ("POST", "/rooms/{room_id}/invitations", {"max_uses": 0}, r"\$\.max_uses"),
        ("POST", "/rooms/{room_id}/invitations", {"invited_user_id": "bob"}, "is not a 'uuid'"),
        ("POST", "/rooms/{room_id}/join", {"password": "", "invitation_code": "X"}, "password"),
        ("POST", "/rooms/{room_id}/join", b"[1]", "is not of type 'object'"),
        ("POST", "/rooms/{room_id}/leave", {}, "takes no request body"),
        ("PUT", "/rooms/{room_id}/participants/{user_id}/role", {"role": "owner"}, "role"),
        ("POST", "/rooms/{room_id}/transfer", {}, "'user_id' is a required"),
        (
            "POST",
            "/rooms/{room_id}/participants/{user_id}/kick",
            {"reason": "r" * 501},
            r"\$\.reason",
        ),
        ("PUT", "/rooms/{room_id}/bans/{user_id}", {"reason": "\x1b[2J"}, r"\$\.reason"),
        ("PUT", "/rooms/{room_id}/bans/{user_id}", {"reason": None}, r"\$\.reason"),
        ("PUT", "/rooms/{room_id}/bans/{user_id}", {"expires_in_minutes": 0.5}, "expires_in"),
        ("PUT", "/rooms/{room_id}/mutes/{user_id}", {"expires_in_minutes": 5256001}, "expires"),
        ("DELETE", "/rooms/{room_id}/bans/{user_id}", {}, "takes no request body"),
        ("POST", "/rooms/{room_id}/queue/items", {"content_type": "movie"}, "'content_id' is"),
        (
            "POST",
            "/rooms/{room_id}/queue/items",
            {"content_type": "m", "content_id": "1", "duration": 0},
            r"\$\.duration",
        ),
        (
            "POST",
            "/rooms/{room_id}/queue/items",
            {"content_type": "m", "content_id": "1", "title": "\x1b[2J"},
            r"\$\.title",
        ),
        ("POST", "/rooms/{room_id}/queue/items/{item_id}/move", {"index": -1}, r"\$\.index"),
        ("POST", "/rooms/{room_id}/queue/next", {}, "'current_item_id' is a required"),
        ("POST", "/rooms/{room_id}/queue/play", {"item_id": "first"}, "is not a 'uuid'"),
        ("PUT", "/rooms/{room_id}/queue/mode", {}, "non-empty"),
        ("PUT", "/rooms/{room_id}/queue/mode", {"repeat": "twice"}, r"\$\.repeat"),
        ("PUT", "/rooms/{room_id}", {"wait_for_slow_members": "sometimes"}, "wait_for_slow"),
        ("DELETE", "/rooms/{room_id}/queue/items", {}, "takes no request body"),
    ],
)
def test_invalid_requests_rejected(method: str, path: str, body: object, match: str) -> None:
    with pytest.raises(AssertionError, match=match):
        assert_request_conforms(method, path, body)


# --- helpers ----------------------------------------------------------------------


def test_resolve_path_template() -> None:
    assert resolve_path_template(f"/api/v1/syncplay/rooms/{ROOM_ID}/chat?limit=5") == (
        "/rooms/{room_id}/chat"
    )
    assert resolve_path_template("/api/v1/syncplay/rooms") == "/rooms"
    assert resolve_path_template("/api/v1/syncplay/invitations/K7M2QX9P") == "/invitations/{code}"
    assert resolve_path_template("/healthz") == "/healthz"
    with pytest.raises(AssertionError):
        resolve_path_template("/api/v1/syncplay/healthz")
    with pytest.raises(AssertionError):
        resolve_path_template("/rooms")


def test_exercised_responses_are_recorded() -> None:
    assert_response_conforms("GET", "/healthz", 200, {"status": "ok"})
    assert ("GET", "/healthz", 200) in exercised_responses()


def test_schema_validator_for_components() -> None:
    validator = schema_validator("/components/schemas/Problem")
    example = doc()["components"]["schemas"]["Problem"]["examples"][0]
    validator.validate(example)
    assert not validator.is_valid({**example, "type": "about:blank"})
