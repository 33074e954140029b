"""The admin API under ``/api/v1/admin``: what ``syncplayctl`` talks to.

Two ways in, one blueprint:

* **The unix socket** (``server/process/admin_socket.py``, ``admin.socket``, mode
  0660). Requests that arrive on it are trusted: the file permissions are the
  guard. They act as :data:`SOCKET_ADMIN`, an administrator with the nil UUID.
* **The HTTP port** (the blueprint is registered on the daemon's app): every
  request needs ``Authorization: Bearer <JWT>`` with ``"role": "admin"``
  (``401 unauthorized`` without a valid token, ``403 forbidden`` for a valid
  token without the admin role).

Handlers translate and nothing more: every change goes through the room service
(:mod:`syncplayd.service`), the same door as the public API and the WebSocket,
so a kick or an update here has the effect on a live room that it has from
anywhere else; server-wide reads go through ``service.admin``. What a room looks
like live comes from the supervisor, read-only.

Answers are JSON; errors are the same RFC 9457 problem documents as the public
API (the app's error handlers and :mod:`syncplayd.server.http.problems`). Unlike
the public API, every answer has a body (no ``204``), so that scripts always get
JSON.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from uuid import UUID

import msgspec
from quart import Blueprint, Response, current_app, g, request
from quart.blueprints import BlueprintSetupState

from syncplayd import __version__
from syncplayd.config import dump_settings
from syncplayd.core.queue import Queue
from syncplayd.identity import InvalidToken, Principal
from syncplayd.server.http import payloads
from syncplayd.server.http.auth import bearer_token, token_principal
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
from syncplayd.server.http.state import AppState, app_state
from syncplayd.server.live.cluster import is_alive
from syncplayd.server.live.live_room import LiveOverview
from syncplayd.server.process.admin_socket import SOCKET_SCOPE_KEY
from syncplayd.service.errors import invalid
from syncplayd.storage.errors import StorageUnavailable
from syncplayd.storage.records import (
    Event,
    Invitation,
    PlaybackControl,
    Restriction,
    RoomFilters,
)

log = logging.getLogger(__name__)

ADMIN_PREFIX = "/api/v1/admin"
#: Who acts for requests on the socket (chat deletions, invitations it creates).
SOCKET_ADMIN = Principal(user_id=UUID(int=0), name="syncplayctl", is_admin=True)
#: The name shown for :data:`SOCKET_ADMIN` where a user's name would be.
SOCKET_ADMIN_NAME = "syncplayctl (admin socket)"

# Admin pages may be larger than the public API's: operators page through everything.
MAX_LIMIT = 1000
_STARTED_KEY = "syncplayd.admin.started"

admin_blueprint = Blueprint("admin", __name__, url_prefix=ADMIN_PREFIX)


# -- request bodies ------------------------------------------------------------------
class CreateRoomBody(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """``POST /rooms``: the public API's fields plus the owner to create it for.

    ``owner_name`` is required: it is what the members see for the owner, and there is
    no user directory to take it from (a placeholder would stay until the owner is
    named again, which joining a room one is already in does not do).
    """

    owner_id: UUID
    owner_name: payloads.Name
    name: payloads.Name
    content_type: payloads.ContentType
    content_id: payloads.ContentId
    is_public: bool = False
    password: payloads.Password | None = None
    max_participants: payloads.MaxParticipants | None = None
    playback_control: PlaybackControl = PlaybackControl.EVERYONE
    content_title: payloads.Title | None = None
    content_duration: payloads.Duration | None = None


class PurgeBody(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """``POST /invitations/purge-expired``: how long ago they must have expired."""

    older_than_hours: Annotated[float, msgspec.Meta(ge=0, le=24 * 365 * 10)] = 0.0


# -- authorization -----------------------------------------------------------------
def _admin() -> Principal:
    principal: Principal = g.admin
    return principal


def via_socket() -> bool:
    """Whether the current request came through the admin socket."""
    return request.scope.get(SOCKET_SCOPE_KEY) is True


@admin_blueprint.record_once
def _remember_start(setup: BlueprintSetupState) -> None:
    setup.app.extensions[_STARTED_KEY] = (time.time(), time.monotonic())


@admin_blueprint.before_request
async def _authorize() -> Response | None:
    if via_socket():
        g.admin = SOCKET_ADMIN
        return None
    token = bearer_token(request.headers.get("Authorization"))
    challenge = {"WWW-Authenticate": 'Bearer realm="syncplayd-admin"'}
    if token is None:
        return problem(401, "unauthorized", "an admin bearer token is required", headers=challenge)
    try:
        principal = token_principal(app_state(), token)
    except InvalidToken as exc:
        challenge["WWW-Authenticate"] += ', error="invalid_token"'
        return problem(401, "unauthorized", str(exc), headers=challenge)
    if not principal.is_admin:
        # RFC 6750's answer to a token without the rights: the challenge is what tells
        # syncplayctl that its token was refused, not the request (a 403 of the service).
        challenge["WWW-Authenticate"] += ', error="insufficient_scope"'
        return problem(
            403, "forbidden", "the admin API needs a token with the admin role", headers=challenge
        )
    g.admin = principal
    return None


# -- encoders --------------------------------------------------------------------------
def _live_json(live: LiveOverview) -> dict[str, Any]:
    sessions = [
        {
            "session_id": s.session.session_id,
            "user_id": s.session.user_id,
            "user_name": s.session.user_name,
            "role": s.session.role,
            "connected": s.session.connected and s.has_socket,
            "buffering": s.session.buffering,
            "rtt_ms": None if s.session.rtt is None else round(s.session.rtt * 1000, 1),
            "offset_seconds": s.session.last_offset,
            "last_seen": payloads.timestamp(_server_time(s.session.last_seen)),
        }
        for s in live.sessions
    ]
    return {
        "connections": live.connections,
        "control": live.control,
        "playback": msgspec.to_builtins(live.playback),
        "members": msgspec.to_builtins(live.members),
        "sessions": sessions,
    }


def _server_time(value: float) -> datetime | None:
    return datetime.fromtimestamp(value, UTC) if value > 0 else None


def event_json(event: Event, names: dict[UUID, str]) -> dict[str, Any]:
    """An event; ``user_name`` from ``names`` (the room's participants), else null."""
    return {
        "id": event.id,
        "room_id": str(event.room_id),
        "type": event.type,
        "user_id": str(event.user_id) if event.user_id else None,
        "user_name": names.get(event.user_id) if event.user_id else None,
        "created_at": payloads.timestamp(event.created_at),
        "payload": event.payload,
    }


def _invitation_json(invitation: Invitation, names: dict[UUID, str]) -> dict[str, Any]:
    """An invitation with its state; ``created_by_name`` from ``names`` (the room's
    participants), the socket's own name, or null."""
    creator = invitation.created_by
    return payloads.invitation_json(invitation) | {
        "created_by_name": (
            SOCKET_ADMIN_NAME if creator == SOCKET_ADMIN.user_id else names.get(creator)
        ),
        "expired": invitation.is_expired(app_state().clock.wall()),
        "used_up": invitation.is_used_up,
    }


def _restriction_json(restriction: Restriction, names: dict[UUID, str]) -> dict[str, Any]:
    """A ban or a mute with ``created_by_name``, as invitations have it."""
    creator = restriction.created_by
    return payloads.restriction_json(restriction) | {
        "created_by_name": (
            SOCKET_ADMIN_NAME if creator == SOCKET_ADMIN.user_id else names.get(creator)
        ),
    }


# -- helpers -----------------------------------------------------------------------------
def _paging(default: int) -> tuple[int, int]:
    return (
        query_int("limit", default, 1, MAX_LIMIT),
        query_int("offset", 0, 0, MAX_OFFSET),
    )


def _connection_count(room_id: UUID) -> int:
    supervisor = app_state().supervisor
    return supervisor.connection_count(room_id) if supervisor is not None else 0


def _audit(action: str, *args: object) -> None:
    """Log a change made through the admin API, with who made it."""
    who = "the admin socket" if via_socket() else f"admin {_admin().user_id}"
    log.info("%s " + action, who, *args)


# -- status and config ------------------------------------------------------------------
@admin_blueprint.get("/status")
async def status() -> Response:
    """Version, uptime, live rooms and connections, database health."""
    state = app_state()
    started_at, started = current_app.extensions.get(_STARTED_KEY, (time.time(), time.monotonic()))
    before = time.monotonic()
    database: dict[str, Any]
    try:
        await state.service.admin.ping_database()
    except StorageUnavailable as exc:
        database = {"ok": False, "error": str(exc), "latency_ms": None}
    else:
        database = {"ok": True, "error": None, "latency_ms": round(_ms(before), 2)}
    supervisor = state.supervisor
    body = {
        "version": __version__,
        "started_at": payloads.timestamp(datetime.fromtimestamp(started_at, UTC)),
        "uptime_seconds": round(time.monotonic() - started, 3),
        "live_rooms": supervisor.live_rooms if supervisor else 0,
        "connections": supervisor.connections if supervisor else 0,
        "connected_users": supervisor.user_connections.users if supervisor else 0,
        "database": database,
        "via": "unix-socket" if via_socket() else "http",
        "cluster": None,
    }
    cluster = supervisor.cluster if supervisor else None
    if cluster is not None and supervisor is not None:
        body["cluster"] = await _cluster_status(state, cluster.node_id)
        body["cluster"]["live_here"] = sorted(str(room) for room in supervisor.live_room_ids())
    return json_response(body)


async def _cluster_status(state: AppState, node_id: str) -> dict[str, Any]:
    """Multi-node mode: every registered node, alive or not, and the rooms it runs."""
    try:
        nodes, owners = await state.service.admin.cluster_nodes()
    except StorageUnavailable as exc:
        return {"node_id": node_id, "nodes": None, "error": str(exc)}
    rooms: dict[str, list[str]] = {}
    for owner in owners:
        rooms.setdefault(owner.node_id, []).append(str(owner.room_id))
    now = time.time()
    return {
        "node_id": node_id,
        "nodes": [
            {
                "node_id": node.node_id,
                "url": node.url,
                "pid": node.pid,
                "started_at": payloads.timestamp(node.started_at),
                "heartbeat_at": payloads.timestamp(node.heartbeat_at),
                "alive": is_alive(node, now),
                "rooms": sorted(rooms.get(node.node_id, [])),
            }
            for node in sorted(nodes, key=lambda n: n.node_id)
        ],
        "error": None,
    }


def _ms(since: float) -> float:
    return (time.monotonic() - since) * 1000


@admin_blueprint.get("/config")
async def config() -> Response:
    """The daemon's running settings, secrets masked."""
    return json_response(dump_settings(app_state().settings, mask_secrets=True))


# -- rooms ---------------------------------------------------------------------------------
_STATUSES = {"active": True, "ended": False, "all": None}


@admin_blueprint.get("/rooms")
async def list_rooms() -> Response:
    """Every room, private ones included; filters combine with AND."""
    status_text = request.args.get("status") or "active"
    if status_text not in _STATUSES:
        raise invalid("status", "must be active, ended or all")
    user = request.args.get("user")
    filters = RoomFilters(
        visible_to=None,
        member=_query_uuid("user", user) if user else None,
        public_only=query_bool("public") is True,
        content_type=query_text("content_type", 64),
        content_id=query_text("content_id"),
        active=_STATUSES[status_text],
    )
    limit, offset = _paging(50)
    admin = app_state().service.admin
    rooms, total = await admin.list_rooms(_admin(), filters, limit, offset)
    owners = await admin.owner_names(_admin(), rooms)
    items = [
        payloads.room_json(r)
        | {"owner_name": owners.get(r.id), "connections": _connection_count(r.id)}
        for r in rooms
    ]
    return json_response(payloads.page_json(items, total, limit, offset))


def _query_uuid(name: str, value: str) -> UUID:
    try:
        return UUID(value)
    except ValueError:
        raise invalid(name, "must be a UUID") from None


@admin_blueprint.post("/rooms")
async def create_room() -> Response:
    """Create a room on behalf of ``owner_id``, who becomes its owner and first member."""
    body = await read_body(CreateRoomBody)
    owner = Principal(user_id=body.owner_id, name=body.owner_name, is_admin=False)
    room = await app_state().service.create_room(
        owner,
        name=body.name,
        content_type=body.content_type,
        content_id=body.content_id,
        is_public=body.is_public,
        password=body.password,
        max_participants=body.max_participants,
        playback_control=body.playback_control,
        content_title=body.content_title,
        content_duration=body.content_duration,
    )
    _audit("created room %s for %s", room.id, room.owner_id)
    location = f"{ADMIN_PREFIX}/rooms/{room.id}"
    body_json = payloads.room_json(room) | {"owner_name": body.owner_name}
    return json_response(body_json, 201, {"Location": location})


@admin_blueprint.get("/rooms/<room_id>")
async def show_room(room_id: str) -> Response:
    """A room with its queue and live state (``live`` is null when nobody is connected)."""
    state = app_state()
    room = await state.service.get_room(_admin(), path_uuid(room_id, "room"))
    owners = await state.service.admin.owner_names(_admin(), [room])
    queue = await state.service.queue.get(_admin(), room.id)
    live = state.supervisor.overview(room.id) if state.supervisor is not None else None
    body = payloads.room_json(room) | {
        "owner_name": owners.get(room.id),
        "queue": payloads.queue_json(room.id, queue),
        "live": _live_json(live) if live is not None else None,
    }
    return json_response(body)


@admin_blueprint.patch("/rooms/<room_id>")
async def update_room(room_id: str) -> Response:
    """Change a room's settings (the public API's ``PUT`` body).

    New content replaces the media of the queue's current item, as on the public API.
    """
    changes, given = payloads.room_changes(await read_body(payloads.UpdateRoomBody))
    service = app_state().service
    room = await service.update_room(_admin(), path_uuid(room_id, "room"), changes)
    _audit("updated room %s (%s)", room.id, ", ".join(given))
    owners = await service.admin.owner_names(_admin(), [room])
    return json_response(payloads.room_json(room) | {"owner_name": owners.get(room.id)})


@admin_blueprint.delete("/rooms/<room_id>")
async def end_room(room_id: str) -> Response:
    """End a room (its live sessions are closed with ``room-ended``); ``?purge=true`` deletes it.

    Ending an ended room is not an error (``already_ended`` says it was one), so that a
    script can repeat it.
    """
    purge = query_bool("purge") is True
    uid = path_uuid(room_id, "room")
    ended_now = await app_state().service.end_room(_admin(), uid, purge=purge)
    _audit("%s room %s", "purged" if purge else "ended" if ended_now else "re-ended", uid)
    body = {"room_id": str(uid), "ended": True, "already_ended": not ended_now, "purged": purge}
    return json_response(body)


# -- the play queue --------------------------------------------------------------------------
# The public API's routes and bodies, acting as the admin: the admin may change any room's
# queue, whatever its playback_control, and the room's sockets hear it as from anyone.
def _queue(room_id: UUID, queue: Queue, status: int = 200) -> Response:
    return json_response(payloads.queue_json(room_id, queue), status)


@admin_blueprint.get("/rooms/<room_id>/queue")
async def get_queue(room_id: str) -> Response:
    """The queue: items in the people's order, the current one, repeat and shuffle."""
    rid = path_uuid(room_id, "room")
    return _queue(rid, await app_state().service.queue.get(_admin(), rid))


@admin_blueprint.post("/rooms/<room_id>/queue/items")
async def add_queue_item(room_id: str) -> Response:
    """Queue an item at the end, or right after the current one (``play_next``)."""
    body = await read_body(payloads.QueueItemBody)
    rid = path_uuid(room_id, "room")
    queue = await app_state().service.queue.add(
        _admin(),
        rid,
        content_type=body.content_type,
        content_id=body.content_id,
        title=body.title,
        duration=body.duration,
        play_next=body.play_next,
    )
    _audit("queued %s %s in room %s", body.content_type, body.content_id, rid)
    return _queue(rid, queue, 201)


@admin_blueprint.delete("/rooms/<room_id>/queue/items/<item_id>")
async def remove_queue_item(room_id: str, item_id: str) -> Response:
    """Take an item out (the current one: the next in play order becomes current)."""
    rid, iid = path_room_and_item(room_id, item_id)
    queue = await app_state().service.queue.remove(_admin(), rid, iid)
    _audit("removed item %s from the queue of room %s", iid, rid)
    return _queue(rid, queue)


@admin_blueprint.post("/rooms/<room_id>/queue/items/<item_id>/move")
async def move_queue_item(room_id: str, item_id: str) -> Response:
    """Put an item at ``index`` (0 is the first; past the end is the end)."""
    body = await read_body(payloads.MoveBody)
    rid, iid = path_room_and_item(room_id, item_id)
    queue = await app_state().service.queue.move(_admin(), rid, iid, body.index)
    _audit("moved item %s of room %s to %d", iid, rid, body.index)
    return _queue(rid, queue)


@admin_blueprint.delete("/rooms/<room_id>/queue/items")
async def clear_queue(room_id: str) -> Response:
    """Remove every item but the current one."""
    rid = path_uuid(room_id, "room")
    queue = await app_state().service.queue.clear(_admin(), rid)
    _audit("cleared the queue of room %s", rid)
    return _queue(rid, queue)


@admin_blueprint.post("/rooms/<room_id>/queue/play")
async def play_queue_item(room_id: str) -> Response:
    """Make ``item_id`` the current item: the room loads it from its beginning."""
    body = await read_body(payloads.PlayItemBody)
    rid = path_uuid(room_id, "room")
    queue = await app_state().service.queue.play(_admin(), rid, body.item_id)
    _audit("played item %s in room %s", body.item_id, rid)
    return _queue(rid, queue)


@admin_blueprint.post("/rooms/<room_id>/queue/next")
async def queue_next(room_id: str) -> Response:
    """The next item, if ``current_item_id`` is still current (else nothing changes)."""
    body = await read_body(payloads.StepBody)
    rid = path_uuid(room_id, "room")
    queue = await app_state().service.queue.next(_admin(), rid, body.current_item_id)
    _audit("asked room %s for the item after %s", rid, body.current_item_id)
    return _queue(rid, queue)


@admin_blueprint.post("/rooms/<room_id>/queue/previous")
async def queue_previous(room_id: str) -> Response:
    """The previous item, if ``current_item_id`` is still current (else nothing changes)."""
    body = await read_body(payloads.StepBody)
    rid = path_uuid(room_id, "room")
    queue = await app_state().service.queue.previous(_admin(), rid, body.current_item_id)
    _audit("asked room %s for the item before %s", rid, body.current_item_id)
    return _queue(rid, queue)


@admin_blueprint.put("/rooms/<room_id>/queue/mode")
async def set_queue_mode(room_id: str) -> Response:
    """Set ``repeat`` (none, one, all) and/or ``shuffle``."""
    body = (await read_body(payloads.QueueModeBody)).check()
    rid = path_uuid(room_id, "room")
    queue = await app_state().service.queue.set_mode(
        _admin(), rid, repeat=body.repeat, shuffle=body.shuffle
    )
    _audit("set the queue mode of room %s: repeat %s, shuffle %s", rid, queue.repeat, queue.shuffle)
    return _queue(rid, queue)


# -- participants --------------------------------------------------------------------------
@admin_blueprint.get("/rooms/<room_id>/participants")
async def list_participants(room_id: str) -> Response:
    """All participants, with the number of live sessions each has."""
    state = app_state()
    uid = path_uuid(room_id, "room")
    connected = query_bool("connected") is True
    people = await state.service.participants(_admin(), uid, connected_only=connected)
    sessions = state.supervisor.sessions_by_user(uid) if state.supervisor is not None else {}
    items = [
        payloads.participant_json(p) | {"sessions": sessions.get(p.user_id, 0)} for p in people
    ]
    return json_response(payloads.page_json(items, len(items), len(items), 0))


@admin_blueprint.post("/rooms/<room_id>/participants/<user_id>/kick")
async def kick(room_id: str, user_id: str) -> Response:
    """Remove a participant and close their live sessions with ``kicked``.

    The optional ``reason`` is in the closing message they get and in the event.
    """
    reason = (await read_body(payloads.KickBody)).reason
    rid, uid = path_room_and_user(room_id, user_id)
    done = await app_state().service.moderation.kick(_admin(), rid, uid, reason=reason)
    _audit("kicked %s from room %s", uid, rid)
    body = {
        "room_id": str(rid),
        "user_id": str(uid),
        "removed": done.removed,
        "sessions_closed": done.sessions_closed,
    }
    return json_response(body)


@admin_blueprint.put("/rooms/<room_id>/participants/<user_id>/role")
async def set_role(room_id: str, user_id: str) -> Response:
    """Make a participant a ``moderator`` or a ``member``; the participant as it is now."""
    body = await read_body(payloads.RoleBody)
    rid, uid = path_room_and_user(room_id, user_id)
    participant = await app_state().service.moderation.set_role(_admin(), rid, uid, body.role)
    _audit("made %s a %s of room %s", uid, participant.role.value, rid)
    return json_response(payloads.participant_json(participant))


@admin_blueprint.post("/rooms/<room_id>/transfer")
async def transfer(room_id: str) -> Response:
    """Make a participant (``{"user_id"}``) the owner; the old owner stays as a moderator."""
    body = await read_body(payloads.TransferBody)
    service = app_state().service
    room = await service.moderation.transfer(_admin(), path_uuid(room_id, "room"), body.user_id)
    _audit("handed room %s to %s", room.id, room.owner_id)
    owners = await service.admin.owner_names(_admin(), [room])
    return json_response(payloads.room_json(room) | {"owner_name": owners.get(room.id)})


# -- bans and mutes ----------------------------------------------------------------------------
@admin_blueprint.get("/rooms/<room_id>/bans")
async def list_bans(room_id: str) -> Response:
    """The bans in force, newest first (expired ones are left out)."""
    uid = path_uuid(room_id, "room")
    state = app_state()
    bans = await state.service.moderation.bans(_admin(), uid)
    names = await state.service.admin.member_names(_admin(), uid)
    items = [_restriction_json(b, names) for b in bans]
    return json_response(payloads.page_json(items, len(items), len(items), 0))


@admin_blueprint.put("/rooms/<room_id>/bans/<user_id>")
async def ban(room_id: str, user_id: str) -> Response:
    """Ban a user, a participant or not (``reason``, ``expires_in_minutes``: optional)."""
    body = await read_body(payloads.SanctionBody)
    rid, uid = path_room_and_user(room_id, user_id)
    state = app_state()
    restriction = await state.service.moderation.ban(
        _admin(), rid, uid, reason=body.reason, expires_in=body.expires_in
    )
    _audit("banned %s from room %s until %s", uid, rid, _until(restriction))
    names = await state.service.admin.member_names(_admin(), rid)
    return json_response(_restriction_json(restriction, names))


@admin_blueprint.delete("/rooms/<room_id>/bans/<user_id>")
async def unban(room_id: str, user_id: str) -> Response:
    """Lift a ban (``404 not-found`` when there is none)."""
    rid, uid = path_room_and_user(room_id, user_id)
    await app_state().service.moderation.unban(_admin(), rid, uid)
    _audit("unbanned %s from room %s", uid, rid)
    return json_response({"room_id": str(rid), "user_id": str(uid), "unbanned": True})


@admin_blueprint.put("/rooms/<room_id>/mutes/<user_id>")
async def mute(room_id: str, user_id: str) -> Response:
    """Keep a participant from posting chat (the body of a ban)."""
    body = await read_body(payloads.SanctionBody)
    rid, uid = path_room_and_user(room_id, user_id)
    state = app_state()
    restriction = await state.service.moderation.mute(
        _admin(), rid, uid, reason=body.reason, expires_in=body.expires_in
    )
    _audit("muted %s in room %s until %s", uid, rid, _until(restriction))
    names = await state.service.admin.member_names(_admin(), rid)
    return json_response(_restriction_json(restriction, names))


@admin_blueprint.delete("/rooms/<room_id>/mutes/<user_id>")
async def unmute(room_id: str, user_id: str) -> Response:
    """Let a muted user post chat again (``404 not-found`` when they are not muted)."""
    rid, uid = path_room_and_user(room_id, user_id)
    await app_state().service.moderation.unmute(_admin(), rid, uid)
    _audit("unmuted %s in room %s", uid, rid)
    return json_response({"room_id": str(rid), "user_id": str(uid), "unmuted": True})


def _until(restriction: Restriction) -> str:
    return payloads.timestamp(restriction.expires_at) or "lifted"


# -- chat ------------------------------------------------------------------------------------
@admin_blueprint.get("/rooms/<room_id>/chat")
async def chat_history(room_id: str) -> Response:
    """A page of chat, newest first (also when chat is switched off)."""
    uid = path_uuid(room_id, "room")
    limit, offset = _paging(50)
    items, total = await app_state().service.admin.chat_log(_admin(), uid, limit, offset)
    page = payloads.page_json([payloads.chat_json(m) for m in items], total, limit, offset)
    return json_response(page)


@admin_blueprint.delete("/chat/<message_id>")
async def delete_chat(message_id: str) -> Response:
    """Delete one chat message; the room's members see it removed."""
    uid = path_uuid(message_id, "chat message")
    await app_state().service.moderation.delete_chat(_admin(), uid)
    _audit("deleted chat message %s", uid)
    return json_response({"id": str(uid), "deleted": True})


# -- invitations -------------------------------------------------------------------------------
@admin_blueprint.post("/rooms/<room_id>/invitations")
async def create_invitation(room_id: str) -> Response:
    """Create an invitation (``created_by`` is the admin: the nil UUID on the socket)."""
    invitation = await create_invitation_from_body(_admin(), room_id)
    names = await app_state().service.admin.member_names(_admin(), invitation.room_id)
    return json_response(_invitation_json(invitation, names), 201)


@admin_blueprint.get("/rooms/<room_id>/invitations")
async def list_room_invitations(room_id: str) -> Response:
    """A page of the room's invitations, newest first, expired and used-up ones included."""
    uid = path_uuid(room_id, "room")
    admin = app_state().service.admin
    limit, offset = _paging(50)
    invitations, total = await admin.invitations(_admin(), uid, limit, offset)
    names = await admin.member_names(_admin(), uid)
    items = [_invitation_json(i, names) for i in invitations]
    return json_response(payloads.page_json(items, total, limit, offset))


@admin_blueprint.get("/invitations")
async def list_invitations() -> Response:
    """A page of every room's invitations, newest first (what code prefixes resolve against)."""
    admin = app_state().service.admin
    limit, offset = _paging(50)
    invitations, total = await admin.invitations(_admin(), None, limit, offset)
    # A user may have another name in each room: one lookup per room on the page.
    names = {
        room_id: await admin.member_names(_admin(), room_id)
        for room_id in {i.room_id for i in invitations}
    }
    items = [_invitation_json(i, names[i.room_id]) for i in invitations]
    return json_response(payloads.page_json(items, total, limit, offset))


@admin_blueprint.get("/invitations/<code>")
async def show_invitation(code: str) -> Response:
    """Any invitation, expired and used-up ones included, with its room's summary."""
    admin = app_state().service.admin
    invitation, room = await admin.find_invitation(_admin(), code)
    names = await admin.member_names(_admin(), invitation.room_id)
    body = _invitation_json(invitation, names) | {
        "room": payloads.room_summary_json(room) if room is not None else None
    }
    return json_response(body)


@admin_blueprint.delete("/invitations/<code>")
async def revoke_invitation(code: str) -> Response:
    """Delete an invitation: joining with it fails from now on."""
    invitation = await app_state().service.admin.revoke_invitation(_admin(), code)
    _audit("revoked invitation %s of room %s", invitation.id, invitation.room_id)
    return json_response({"code": invitation.code, "revoked": True})


@admin_blueprint.post("/invitations/purge-expired")
async def purge_expired() -> Response:
    """Delete invitations that expired more than ``older_than_hours`` ago (default 0)."""
    body = await read_body(PurgeBody)
    before = app_state().clock.wall() - timedelta(hours=body.older_than_hours)
    purged = await app_state().service.admin.purge_invitations(_admin(), before)
    _audit("purged %d expired invitations", purged)
    return json_response({"purged": purged, "expired_before": payloads.timestamp(before)})


# -- events ------------------------------------------------------------------------------------
@admin_blueprint.get("/rooms/<room_id>/events")
async def room_events(room_id: str) -> Response:
    """A page of the room's event log, newest first.

    With ``?after=ID`` the answer holds the events with a larger id instead,
    **oldest first**, at most ``limit`` of them (what ``events --follow`` polls).
    """
    uid = path_uuid(room_id, "room")
    admin = app_state().service.admin
    limit, offset = _paging(50)
    if request.args.get("after"):
        after = query_int("after", 0, 0, None)
        events, total = await admin.events_after(_admin(), uid, after, limit)
        offset = 0
    else:
        events, total = await admin.events(_admin(), uid, limit, offset)
    names = await admin.member_names(_admin(), uid)
    items = [event_json(e, names) for e in events]
    return json_response(payloads.page_json(items, total, limit, offset))
