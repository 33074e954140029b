"""The REST API under ``/api/v1/syncplay``: parse, call the service, encode.

Handlers stay thin on purpose: every rule lives in the service, so the same
behaviour is reachable from the websocket and the admin API later.
"""

from __future__ import annotations

from typing import TypeVar
from uuid import UUID

from quart import Blueprint, Response, g, request

from syncplayd.core.queue import Queue
from syncplayd.identity import InvalidToken, Principal
from syncplayd.openapi import spec_json_bytes, spec_yaml_bytes
from syncplayd.server.http import payloads
from syncplayd.server.http.auth import (
    bearer_token,
    cross_site_request,
    proxy_principal,
    request_address,
    token_principal,
)
from syncplayd.server.http.problems import json_response, problem
from syncplayd.server.http.requests import (
    MAX_OFFSET,
    create_invitation_from_body,
    path_room_and_item,
    path_room_and_user,
    path_uuid,
    query_bool,
    query_int,
    query_text,
    read_body,
)
from syncplayd.server.http.state import app_state
from syncplayd.server.live.websocket import websocket_endpoint
from syncplayd.service import RoomQuery
from syncplayd.service.errors import not_found

T = TypeVar("T")

api = Blueprint("api", __name__, url_prefix="/api/v1/syncplay")


def _principal() -> Principal:
    principal: Principal = g.principal
    return principal


@api.before_request
async def _authenticate() -> Response | None:
    state = app_state()
    if request.endpoint in ("api.openapi_yaml", "api.openapi_json"):
        return None
    if not state.settings.syncplay.enabled:
        return problem(503, "disabled", "SyncPlay is disabled on this server")
    challenge = {"WWW-Authenticate": 'Bearer realm="syncplayd"'}
    try:
        vouched = proxy_principal(state, request)
        if vouched is not None:
            # The proxy knows its users by a cookie, which any site's page can make the
            # browser send (a form post to join or leave needs no JavaScript): a
            # request from another site's page is refused, never run as that user.
            if cross_site_request(request.headers):
                return problem(
                    403, "origin-not-allowed", "a page of another site may not act for you here"
                )
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


# -- rooms -----------------------------------------------------------------------
@api.get("/rooms")
async def list_rooms() -> Response:
    query = RoomQuery(
        public=query_bool("public"),
        mine=query_bool("mine") is True,
        content_type=query_text("content_type", 64),
        content_id=query_text("content_id"),
        active=query_bool("active") if request.args.get("active") else True,
        limit=query_int("limit", 20, 1, 100),
        offset=query_int("offset", 0, 0, MAX_OFFSET),
    )
    rooms, total = await app_state().service.list_rooms(_principal(), query)
    items = [payloads.room_json(room) for room in rooms]
    return json_response(payloads.page_json(items, total, query.limit, query.offset))


@api.post("/rooms")
async def create_room() -> Response:
    body = await read_body(payloads.CreateRoomBody)
    room = await app_state().service.create_room(
        _principal(),
        name=body.name,
        content_type=body.content_type,
        content_id=body.content_id,
        is_public=body.is_public,
        password=body.password,
        max_participants=body.max_participants,
        playback_control=body.playback_control,
        content_title=body.content_title,
        content_duration=body.content_duration,
        wait_for_slow_members=body.wait_for_slow_members,
        start_when_ready=body.start_when_ready,
    )
    location = f"{api.url_prefix}/rooms/{room.id}"
    return json_response(payloads.room_json(room), 201, {"Location": location})


@api.get("/rooms/<room_id>")
async def get_room(room_id: str) -> Response:
    room = await app_state().service.get_room(_principal(), path_uuid(room_id, "room"))
    return json_response(payloads.room_json(room))


@api.put("/rooms/<room_id>")
async def update_room(room_id: str) -> Response:
    changes, _ = payloads.room_changes(await read_body(payloads.UpdateRoomBody))
    room = await app_state().service.update_room(_principal(), path_uuid(room_id, "room"), changes)
    return json_response(payloads.room_json(room))


@api.delete("/rooms/<room_id>")
async def end_room(room_id: str) -> Response:
    purge = query_bool("purge") is True
    await app_state().service.end_room(_principal(), path_uuid(room_id, "room"), purge=purge)
    return Response(b"", status=204)


@api.post("/rooms/<room_id>/join")
async def join_room(room_id: str) -> Response:
    body = await read_body(payloads.JoinBody)
    room, participant = await app_state().service.join(
        _principal(),
        path_uuid(room_id, "room"),
        password=body.password,
        invitation_code=body.invitation_code,
        address=request_address(app_state(), request),
    )
    return json_response(
        {"room": payloads.room_json(room), "participant": payloads.participant_json(participant)}
    )


@api.post("/rooms/<room_id>/leave")
async def leave_room(room_id: str) -> Response:
    await app_state().service.leave(_principal(), path_uuid(room_id, "room"))
    return Response(b"", status=204)


@api.get("/rooms/<room_id>/participants")
async def list_participants(room_id: str) -> Response:
    connected = query_bool("connected") is True
    people = await app_state().service.participants(
        _principal(), path_uuid(room_id, "room"), connected_only=connected
    )
    items = [payloads.participant_json(p) for p in people]
    return json_response(payloads.page_json(items, len(items), len(items), 0))


# -- moderation: roles, ownership, kicks, bans, mutes --------------------------------
@api.put("/rooms/<room_id>/participants/<user_id>/role")
async def set_role(room_id: str, user_id: str) -> Response:
    body = await read_body(payloads.RoleBody)
    participant = await app_state().service.moderation.set_role(
        _principal(), *path_room_and_user(room_id, user_id), body.role
    )
    return json_response(payloads.participant_json(participant))


@api.post("/rooms/<room_id>/transfer")
async def transfer(room_id: str) -> Response:
    body = await read_body(payloads.TransferBody)
    room = await app_state().service.moderation.transfer(
        _principal(), path_uuid(room_id, "room"), body.user_id
    )
    return json_response(payloads.room_json(room))


@api.post("/rooms/<room_id>/participants/<user_id>/kick")
async def kick(room_id: str, user_id: str) -> Response:
    body = await read_body(payloads.KickBody)
    await app_state().service.moderation.kick(
        _principal(), *path_room_and_user(room_id, user_id), reason=body.reason
    )
    return Response(b"", status=204)


@api.get("/rooms/<room_id>/bans")
async def list_bans(room_id: str) -> Response:
    bans = await app_state().service.moderation.bans(_principal(), path_uuid(room_id, "room"))
    items = [payloads.restriction_json(ban) for ban in bans]
    return json_response(payloads.page_json(items, len(items), len(items), 0))


@api.put("/rooms/<room_id>/bans/<user_id>")
async def ban(room_id: str, user_id: str) -> Response:
    body = await read_body(payloads.SanctionBody)
    restriction = await app_state().service.moderation.ban(
        _principal(),
        *path_room_and_user(room_id, user_id),
        reason=body.reason,
        expires_in=body.expires_in,
    )
    return json_response(payloads.restriction_json(restriction))


@api.delete("/rooms/<room_id>/bans/<user_id>")
async def unban(room_id: str, user_id: str) -> Response:
    await app_state().service.moderation.unban(_principal(), *path_room_and_user(room_id, user_id))
    return Response(b"", status=204)


@api.put("/rooms/<room_id>/mutes/<user_id>")
async def mute(room_id: str, user_id: str) -> Response:
    body = await read_body(payloads.SanctionBody)
    restriction = await app_state().service.moderation.mute(
        _principal(),
        *path_room_and_user(room_id, user_id),
        reason=body.reason,
        expires_in=body.expires_in,
    )
    return json_response(payloads.restriction_json(restriction))


@api.delete("/rooms/<room_id>/mutes/<user_id>")
async def unmute(room_id: str, user_id: str) -> Response:
    await app_state().service.moderation.unmute(_principal(), *path_room_and_user(room_id, user_id))
    return Response(b"", status=204)


# -- the play queue ------------------------------------------------------------------
def _queue(room_id: UUID, queue: Queue, status: int = 200) -> Response:
    return json_response(payloads.queue_json(room_id, queue), status)


@api.get("/rooms/<room_id>/queue")
async def get_queue(room_id: str) -> Response:
    room = path_uuid(room_id, "room")
    return _queue(room, await app_state().service.queue.get(_principal(), room))


@api.post("/rooms/<room_id>/queue/items")
async def add_queue_item(room_id: str) -> Response:
    body = await read_body(payloads.QueueItemBody)
    room = path_uuid(room_id, "room")
    queue = await app_state().service.queue.add(
        _principal(),
        room,
        content_type=body.content_type,
        content_id=body.content_id,
        title=body.title,
        duration=body.duration,
        play_next=body.play_next,
    )
    return _queue(room, queue, 201)


@api.delete("/rooms/<room_id>/queue/items/<item_id>")
async def remove_queue_item(room_id: str, item_id: str) -> Response:
    room, item = path_room_and_item(room_id, item_id)
    return _queue(room, await app_state().service.queue.remove(_principal(), room, item))


@api.post("/rooms/<room_id>/queue/items/<item_id>/move")
async def move_queue_item(room_id: str, item_id: str) -> Response:
    body = await read_body(payloads.MoveBody)
    room, item = path_room_and_item(room_id, item_id)
    return _queue(room, await app_state().service.queue.move(_principal(), room, item, body.index))


@api.delete("/rooms/<room_id>/queue/items")
async def clear_queue(room_id: str) -> Response:
    room = path_uuid(room_id, "room")
    return _queue(room, await app_state().service.queue.clear(_principal(), room))


@api.post("/rooms/<room_id>/queue/play")
async def play_queue_item(room_id: str) -> Response:
    body = await read_body(payloads.PlayItemBody)
    room = path_uuid(room_id, "room")
    return _queue(room, await app_state().service.queue.play(_principal(), room, body.item_id))


@api.post("/rooms/<room_id>/queue/next")
async def queue_next(room_id: str) -> Response:
    body = await read_body(payloads.StepBody)
    room = path_uuid(room_id, "room")
    queue = await app_state().service.queue.next(_principal(), room, body.current_item_id)
    return _queue(room, queue)


@api.post("/rooms/<room_id>/queue/previous")
async def queue_previous(room_id: str) -> Response:
    body = await read_body(payloads.StepBody)
    room = path_uuid(room_id, "room")
    queue = await app_state().service.queue.previous(_principal(), room, body.current_item_id)
    return _queue(room, queue)


@api.put("/rooms/<room_id>/queue/mode")
async def set_queue_mode(room_id: str) -> Response:
    body = (await read_body(payloads.QueueModeBody)).check()
    room = path_uuid(room_id, "room")
    queue = await app_state().service.queue.set_mode(
        _principal(), room, repeat=body.repeat, shuffle=body.shuffle
    )
    return _queue(room, queue)


# -- chat ------------------------------------------------------------------------
@api.post("/rooms/<room_id>/chat")
async def post_chat(room_id: str) -> Response:
    body = await read_body(payloads.ChatBody)
    message = await app_state().service.post_chat(
        _principal(), path_uuid(room_id, "room"), body.message
    )
    return json_response(payloads.chat_json(message), 201)


@api.get("/rooms/<room_id>/chat")
async def chat_history(room_id: str) -> Response:
    limit = query_int("limit", 0, 1, None) if request.args.get("limit") else None
    offset = query_int("offset", 0, 0, MAX_OFFSET)
    items, total, effective = await app_state().service.chat_history(
        _principal(), path_uuid(room_id, "room"), limit=limit, offset=offset
    )
    return json_response(
        payloads.page_json([payloads.chat_json(m) for m in items], total, effective, offset)
    )


@api.delete("/rooms/<room_id>/chat/<message_id>")
async def delete_chat(room_id: str, message_id: str) -> Response:
    await app_state().service.moderation.delete_chat(
        _principal(), path_uuid(message_id, "chat message"), room_id=path_uuid(room_id, "room")
    )
    return Response(b"", status=204)


# -- invitations -----------------------------------------------------------------
@api.post("/rooms/<room_id>/invitations")
async def create_invitation(room_id: str) -> Response:
    invitation = await create_invitation_from_body(_principal(), room_id)
    return json_response(payloads.invitation_json(invitation), 201)


@api.get("/invitations/<code>")
async def get_invitation(code: str) -> Response:
    if len(code) > 64 or "\x00" in code:
        raise not_found("invitation")
    invitation, room = await app_state().service.get_invitation(
        _principal(),
        code,
        address=request_address(app_state(), request),
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
