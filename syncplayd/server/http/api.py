"""The REST API under ``/api/v1/syncplay``: parse, call the service, encode.

Handlers stay thin on purpose: every rule lives in the service, so the same
behaviour is reachable from the websocket and the admin API later.
"""

from __future__ import annotations

from typing import TypeVar
from uuid import UUID

from quart import Blueprint, Response, current_app, g, request

from syncplayd.identity import InvalidToken, Principal
from syncplayd.openapi import spec_json_bytes, spec_yaml_bytes
from syncplayd.server.http import payloads
from syncplayd.server.http.auth import (
    bearer_token,
    proxy_principal,
    request_address,
    token_principal,
)
from syncplayd.server.http.problems import json_response, problem
from syncplayd.server.http.state import AppState
from syncplayd.server.live.websocket import websocket_endpoint
from syncplayd.service import RoomQuery, ServiceError
from syncplayd.service.errors import invalid, not_found

T = TypeVar("T")

api = Blueprint("api", __name__, url_prefix="/api/v1/syncplay")

# Deep offsets are never a real client's need and overflow database integers.
MAX_OFFSET = 1_000_000

_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no"})


def _state() -> AppState:
    state: AppState = current_app.extensions["syncplayd"]
    return state


def _principal() -> Principal:
    principal: Principal = g.principal
    return principal


@api.before_request
async def _authenticate() -> Response | None:
    state = _state()
    if request.endpoint in ("api.openapi_yaml", "api.openapi_json"):
        return None
    if not state.settings.syncplay.enabled:
        return problem(503, "disabled", "SyncPlay is disabled on this server")
    challenge = {"WWW-Authenticate": 'Bearer realm="syncplayd"'}
    try:
        vouched = proxy_principal(state, request.headers.get, request.remote_addr)
        if vouched is not None:
            g.principal = vouched
            return None
        token = bearer_token(request.headers.get("Authorization"))
        if token is None:
            return problem(401, "unauthorized", "a bearer token is required", headers=challenge)
        g.principal = token_principal(state, token)
    except InvalidToken as exc:
        challenge["WWW-Authenticate"] += ', error="invalid_token"'
        return problem(401, "unauthorized", str(exc), headers=challenge)
    return None


# -- request parsing -------------------------------------------------------------
def _uuid(value: str, what: str) -> UUID:
    try:
        return UUID(value)
    except ValueError:
        raise ServiceError(400, "bad-request", f"the {what} id must be a UUID") from None


def _query_bool(name: str) -> bool | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return None
    if raw.lower() in _TRUE:
        return True
    if raw.lower() in _FALSE:
        return False
    raise invalid(name, "must be true or false")


def _query_int(name: str, default: int, low: int, high: int | None) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise invalid(name, "must be an integer") from None
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise invalid(name, f"must be {bound}")
    return value


def _query_text(name: str, max_length: int = 200) -> str | None:
    raw = request.args.get(name)
    if raw is not None and len(raw) > max_length:
        raise invalid(name, f"must be at most {max_length} characters")
    if raw is not None and "\x00" in raw:
        raise invalid(name, "must not contain NUL characters")
    return raw or None


async def _body(kind: type[T]) -> T:
    received = await request.get_data(as_text=False)
    data = received.encode() if isinstance(received, str) else received
    if data.strip() and request.mimetype != "application/json":
        raise ServiceError(415, "unsupported-media-type", "send the body as application/json")
    return payloads.decode_body(data, kind)


# -- rooms -----------------------------------------------------------------------
@api.get("/rooms")
async def list_rooms() -> Response:
    query = RoomQuery(
        public=_query_bool("public"),
        mine=_query_bool("mine") is True,
        content_type=_query_text("content_type", 64),
        content_id=_query_text("content_id"),
        active=_query_bool("active") if request.args.get("active") else True,
        limit=_query_int("limit", 20, 1, 100),
        offset=_query_int("offset", 0, 0, MAX_OFFSET),
    )
    rooms, total = await _state().service.list_rooms(_principal(), query)
    items = [payloads.room_json(room) for room in rooms]
    return json_response(payloads.page_json(items, total, query.limit, query.offset))


@api.post("/rooms")
async def create_room() -> Response:
    body = await _body(payloads.CreateRoomBody)
    room = await _state().service.create_room(
        _principal(),
        name=body.name,
        content_type=body.content_type,
        content_id=body.content_id,
        is_public=body.is_public,
        password=body.password,
        max_participants=body.max_participants,
        playback_control=body.playback_control,
    )
    location = f"{api.url_prefix}/rooms/{room.id}"
    return json_response(payloads.room_json(room), 201, {"Location": location})


@api.get("/rooms/<room_id>")
async def get_room(room_id: str) -> Response:
    room = await _state().service.get_room(_principal(), _uuid(room_id, "room"))
    return json_response(payloads.room_json(room))


@api.put("/rooms/<room_id>")
async def update_room(room_id: str) -> Response:
    changes, _ = payloads.room_changes(await _body(payloads.UpdateRoomBody))
    room = await _state().service.update_room(_principal(), _uuid(room_id, "room"), changes)
    return json_response(payloads.room_json(room))


@api.delete("/rooms/<room_id>")
async def end_room(room_id: str) -> Response:
    purge = _query_bool("purge") is True
    await _state().service.end_room(_principal(), _uuid(room_id, "room"), purge=purge)
    return Response(b"", status=204)


@api.post("/rooms/<room_id>/join")
async def join_room(room_id: str) -> Response:
    body = await _body(payloads.JoinBody)
    room, participant = await _state().service.join(
        _principal(),
        _uuid(room_id, "room"),
        password=body.password,
        invitation_code=body.invitation_code,
        address=request_address(_state(), request.headers.get, request.remote_addr),
    )
    return json_response(
        {"room": payloads.room_json(room), "participant": payloads.participant_json(participant)}
    )


@api.post("/rooms/<room_id>/leave")
async def leave_room(room_id: str) -> Response:
    await _state().service.leave(_principal(), _uuid(room_id, "room"))
    return Response(b"", status=204)


@api.get("/rooms/<room_id>/participants")
async def list_participants(room_id: str) -> Response:
    connected = _query_bool("connected") is True
    people = await _state().service.participants(
        _principal(), _uuid(room_id, "room"), connected_only=connected
    )
    items = [payloads.participant_json(p) for p in people]
    return json_response(payloads.page_json(items, len(items), len(items), 0))


# -- chat ------------------------------------------------------------------------
@api.post("/rooms/<room_id>/chat")
async def post_chat(room_id: str) -> Response:
    body = await _body(payloads.ChatBody)
    message = await _state().service.post_chat(_principal(), _uuid(room_id, "room"), body.message)
    return json_response(payloads.chat_json(message), 201)


@api.get("/rooms/<room_id>/chat")
async def chat_history(room_id: str) -> Response:
    limit = _query_int("limit", 0, 1, None) if request.args.get("limit") else None
    offset = _query_int("offset", 0, 0, MAX_OFFSET)
    items, total, effective = await _state().service.chat_history(
        _principal(), _uuid(room_id, "room"), limit=limit, offset=offset
    )
    return json_response(
        payloads.page_json([payloads.chat_json(m) for m in items], total, effective, offset)
    )


# -- invitations -----------------------------------------------------------------
@api.post("/rooms/<room_id>/invitations")
async def create_invitation(room_id: str) -> Response:
    body = await _body(payloads.InvitationBody)
    invitation = await _state().service.create_invitation(
        _principal(),
        _uuid(room_id, "room"),
        invited_user_id=body.invited_user_id,
        expires_in_hours=body.expires_in_hours,
        max_uses=body.max_uses,
    )
    return json_response(payloads.invitation_json(invitation), 201)


@api.get("/invitations/<code>")
async def get_invitation(code: str) -> Response:
    if len(code) > 64 or "\x00" in code:
        raise not_found("invitation")
    invitation, room = await _state().service.get_invitation(
        _principal(),
        code,
        address=request_address(_state(), request.headers.get, request.remote_addr),
    )
    body = payloads.invitation_json(invitation) | {"room": payloads.room_summary_json(room)}
    return json_response(body)


api.add_websocket("/ws", "websocket", websocket_endpoint)


# -- the contract itself -----------------------------------------------------------
@api.get("/openapi.yaml")
async def openapi_yaml() -> Response:
    return Response(spec_yaml_bytes(), content_type="application/yaml")


@api.get("/openapi.json")
async def openapi_json() -> Response:
    return Response(spec_json_bytes(), content_type="application/json")
