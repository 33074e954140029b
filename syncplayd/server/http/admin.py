"""The admin API under ``/api/v1/admin``: what ``syncplayctl`` talks to.

Two ways in, one blueprint:

* **The unix socket** (:func:`serve_admin_socket`, ``admin.socket``, mode 0660).
  Requests that arrive on it are trusted: the file permissions are the guard.
  They act as :data:`SOCKET_ADMIN`, an administrator with the nil UUID.
* **The HTTP port** (the blueprint is registered on the daemon's app): every
  request needs ``Authorization: Bearer <JWT>`` with ``"role": "admin"``
  (``401 unauthorized`` without a valid token, ``403 forbidden`` for a valid
  token without the admin role).

How a request is known to come from the socket: hypercorn 0.18 puts
``scope["server"] = None`` (and ``scope["client"] = None``) for ``AF_UNIX``
connections (``hypercorn.utils.parse_socket_addr`` only returns addresses for
``AF_INET``/``AF_INET6``). A missing address is not proof, though: other ASGI
servers and test clients leave ``server`` out too. So the socket server wraps
the app and marks each scope it hands over with ``scope["syncplayd.admin_socket"]
= True``; only that mark, which no HTTP client can set, grants trust.

Answers are JSON; errors are the same RFC 9457 problem documents as the public
API (the app's error handlers and :mod:`syncplayd.server.http.problems`). Unlike the
public API, every answer has a body (no ``204``), so that scripts always get
JSON.

Kicking a participant (``POST /rooms/{id}/participants/{user_id}/kick``):
the membership is removed, then each live session of that user is closed with
reason ``kicked`` (close code 4002) and removed from the room's engine with
``Leave``, so the others see presence ``left`` and the session cannot resume.
The close happens first, so the kicked client hears ``kicked`` rather than the
``left`` that ``Leave`` alone would say. A ``kicked`` event is logged. A kick
is not a ban: the user can join again if the room lets them.
"""

from __future__ import annotations

import logging
import os
import socket
import stat
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast
from uuid import UUID

import msgspec
import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve
from hypercorn.typing import ASGIFramework, ASGIReceiveCallable, ASGISendCallable, Scope
from quart import Blueprint, Response, current_app, g, request
from quart.blueprints import BlueprintSetupState

from syncplayd import __version__
from syncplayd.cli.admin_client import admin_socket_path as admin_socket_path
from syncplayd.config import dump_settings
from syncplayd.core import room as engine
from syncplayd.core.codes import normalize_code
from syncplayd.identity import InvalidToken, Principal
from syncplayd.server.http import payloads
from syncplayd.server.http.api import MAX_OFFSET, _body, _query_bool, _query_int, _query_text, _uuid
from syncplayd.server.http.auth import bearer_token, token_principal
from syncplayd.server.http.problems import json_response, problem
from syncplayd.server.http.state import AppState
from syncplayd.service import ServiceError
from syncplayd.service.errors import invalid, not_found
from syncplayd.storage.errors import StorageUnavailable
from syncplayd.storage.records import Event, Invitation, NewEvent, PlaybackControl, RoomFilters

if TYPE_CHECKING:
    from syncplayd.server.live.live_room import LiveRoom
    from syncplayd.server.live.supervisor import RoomSupervisor

log = logging.getLogger(__name__)

ADMIN_PREFIX = "/api/v1/admin"
#: Set on every ASGI scope that arrived through the admin socket.
SOCKET_SCOPE_KEY = "syncplayd.admin_socket"
#: Who acts for requests on the socket (chat deletions, invitations it creates).
SOCKET_ADMIN = Principal(user_id=UUID(int=0), name="syncplayctl", is_admin=True)
SOCKET_MODE = 0o660

# Admin pages may be larger than the public API's: operators page through everything.
MAX_LIMIT = 1000
# ``events?after=``: how many events one poll reads at most before giving up on the rest.
_AFTER_SCAN = 1000
_STARTED_KEY = "syncplayd.admin.started"

admin_blueprint = Blueprint("admin", __name__, url_prefix=ADMIN_PREFIX)


# -- request bodies ------------------------------------------------------------------
class CreateRoomBody(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """``POST /rooms``: the public API's fields plus the owner to create it for."""

    owner_id: UUID
    name: payloads.Name
    content_type: payloads.ContentType
    content_id: payloads.ContentId
    owner_name: payloads.Name | None = None
    is_public: bool = False
    password: payloads.Password | None = None
    max_participants: payloads.MaxParticipants | None = None
    playback_control: PlaybackControl = PlaybackControl.EVERYONE


class PurgeBody(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """``POST /invitations/purge-expired``: how long ago they must have expired."""

    older_than_hours: Annotated[float, msgspec.Meta(ge=0, le=24 * 365 * 10)] = 0.0


# -- authorization -----------------------------------------------------------------
def _state() -> AppState:
    state: AppState = current_app.extensions["syncplayd"]
    return state


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
    state = _state()
    token = bearer_token(request.headers.get("Authorization"))
    challenge = {"WWW-Authenticate": 'Bearer realm="syncplayd-admin"'}
    if token is None:
        return problem(401, "unauthorized", "an admin bearer token is required", headers=challenge)
    try:
        principal = token_principal(state, token)
    except InvalidToken as exc:
        challenge["WWW-Authenticate"] += ', error="invalid_token"'
        return problem(401, "unauthorized", str(exc), headers=challenge)
    if not principal.is_admin:
        return problem(403, "forbidden", "the admin API needs a token with the admin role")
    g.admin = principal
    return None


# -- live rooms ------------------------------------------------------------------------
def live_room(supervisor: RoomSupervisor | None, room_id: UUID) -> LiveRoom | None:
    """The room's live counterpart, if it has one; never starts a room."""
    if supervisor is None:
        return None
    # The supervisor has no public lookup that leaves a quiet room alone
    # (``live_room`` starts one); see the wiring notes for ``get_live``.
    getter: Callable[[UUID], LiveRoom | None] | None = getattr(supervisor, "get_live", None)
    if getter is not None:
        return getter(room_id)
    live: LiveRoom | None = supervisor._rooms.get(room_id)
    return live if live is not None and not live.ended else None


def _connection_count(room_id: UUID) -> int:
    live = live_room(_state().supervisor, room_id)
    return len(live.connections) if live is not None else 0


def _live_json(live: LiveRoom, now: float) -> dict[str, Any]:
    sessions = []
    for session in live.state.sessions.values():
        sessions.append(
            {
                "session_id": session.session_id,
                "user_id": session.user_id,
                "user_name": session.user_name,
                "role": session.role,
                "connected": session.connected and session.session_id in live.connections,
                "buffering": session.buffering,
                "rtt_ms": None if session.rtt is None else round(session.rtt * 1000, 1),
                "offset_seconds": session.last_offset,
                "last_seen": payloads.timestamp(_server_time(session.last_seen)),
            }
        )
    return {
        "connections": len(live.connections),
        "control": live.state.control,
        "playback": msgspec.to_builtins(engine.snapshot(live.state, now)),
        "members": msgspec.to_builtins(engine.members(live.state)),
        "sessions": sessions,
    }


def _server_time(value: float) -> datetime | None:
    return datetime.fromtimestamp(value, UTC) if value > 0 else None


# -- helpers -----------------------------------------------------------------------------
async def _room_or_404(room_id: UUID) -> None:
    if await _state().repo.get_room(room_id) is None:
        raise not_found("room")


def _paging(default: int) -> tuple[int, int]:
    return (
        _query_int("limit", default, 1, MAX_LIMIT),
        _query_int("offset", 0, 0, MAX_OFFSET),
    )


def _now() -> datetime:
    return datetime.now(UTC)


def _audit(action: str, *args: object) -> None:
    """Log a change made through the admin API, with who made it."""
    who = "the admin socket" if via_socket() else f"admin {_admin().user_id}"
    log.info("%s " + action, who, *args)


def event_json(event: Event) -> dict[str, Any]:
    return {
        "id": event.id,
        "room_id": str(event.room_id),
        "type": event.type,
        "user_id": str(event.user_id) if event.user_id else None,
        "created_at": payloads.timestamp(event.created_at),
        "payload": event.payload,
    }


def _invitation_json(invitation: Invitation, now: datetime) -> dict[str, Any]:
    return payloads.invitation_json(invitation) | {
        "expired": invitation.is_expired(now),
        "used_up": invitation.is_used_up,
    }


# -- status and config ------------------------------------------------------------------
@admin_blueprint.get("/status")
async def status() -> Response:
    """Version, uptime, live rooms and connections, database health."""
    state = _state()
    started_at, started = current_app.extensions.get(_STARTED_KEY, (time.time(), time.monotonic()))
    before = time.monotonic()
    database: dict[str, Any]
    try:
        await state.repo.ping()
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
        "connected_users": sum(1 for n in supervisor.user_connections.values() if n > 0)
        if supervisor
        else 0,
        "database": database,
        "via": "unix-socket" if via_socket() else "http",
    }
    return json_response(body)


def _ms(since: float) -> float:
    return (time.monotonic() - since) * 1000


@admin_blueprint.get("/config")
async def config() -> Response:
    """The daemon's running settings, secrets masked."""
    return json_response(dump_settings(_state().settings, mask_secrets=True))


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
        public_only=_query_bool("public") is True,
        content_type=_query_text("content_type", 64),
        content_id=_query_text("content_id"),
        active=_STATUSES[status_text],
    )
    limit, offset = _paging(50)
    rooms, total = await _state().repo.list_rooms(filters, limit, offset)
    items = [payloads.room_json(r) | {"connections": _connection_count(r.id)} for r in rooms]
    return json_response(payloads.page_json(items, total, limit, offset))


def _query_uuid(name: str, value: str) -> UUID:
    try:
        return UUID(value)
    except ValueError:
        raise invalid(name, "must be a UUID") from None


@admin_blueprint.post("/rooms")
async def create_room() -> Response:
    """Create a room on behalf of ``owner_id``, who becomes its owner and first member."""
    body = await _body(CreateRoomBody)
    owner = Principal(
        user_id=body.owner_id,
        name=body.owner_name or str(body.owner_id)[:8],
        is_admin=False,
    )
    room = await _state().service.create_room(
        owner,
        name=body.name,
        content_type=body.content_type,
        content_id=body.content_id,
        is_public=body.is_public,
        password=body.password,
        max_participants=body.max_participants,
        playback_control=body.playback_control,
    )
    _audit("created room %s for %s", room.id, room.owner_id)
    location = f"{ADMIN_PREFIX}/rooms/{room.id}"
    return json_response(payloads.room_json(room), 201, {"Location": location})


@admin_blueprint.get("/rooms/<room_id>")
async def show_room(room_id: str) -> Response:
    """A room with its live state (``live`` is null when nobody is connected)."""
    state = _state()
    room = await state.service.get_room(_admin(), _uuid(room_id, "room"))
    live = live_room(state.supervisor, room.id)
    body = payloads.room_json(room) | {
        "live": _live_json(live, state.clock.now()) if live is not None else None
    }
    return json_response(body)


@admin_blueprint.patch("/rooms/<room_id>")
async def update_room(room_id: str) -> Response:
    """Change a room's settings (the public API's ``PUT`` body)."""
    changes, given = payloads.room_changes(await _body(payloads.UpdateRoomBody))
    room = await _state().service.update_room(_admin(), _uuid(room_id, "room"), changes)
    _audit("updated room %s (%s)", room.id, ", ".join(given))
    return json_response(payloads.room_json(room))


@admin_blueprint.delete("/rooms/<room_id>")
async def end_room(room_id: str) -> Response:
    """End a room (its live sessions are closed with ``room-ended``); ``?purge=true`` deletes it."""
    purge = _query_bool("purge") is True
    uid = _uuid(room_id, "room")
    await _state().service.end_room(_admin(), uid, purge=purge)
    _audit("%s room %s", "purged" if purge else "ended", uid)
    return json_response({"room_id": str(uid), "ended": True, "purged": purge})


# -- participants --------------------------------------------------------------------------
@admin_blueprint.get("/rooms/<room_id>/participants")
async def list_participants(room_id: str) -> Response:
    """All participants, with the number of live sessions each has."""
    state = _state()
    uid = _uuid(room_id, "room")
    await _room_or_404(uid)
    people = await state.repo.list_participants(uid, _query_bool("connected") is True)
    live = live_room(state.supervisor, uid)
    sessions: dict[str, int] = {}
    if live is not None:
        for connection in live.connections.values():
            user = str(connection.principal.user_id)
            sessions[user] = sessions.get(user, 0) + 1
    items = [
        payloads.participant_json(p) | {"sessions": sessions.get(str(p.user_id), 0)} for p in people
    ]
    return json_response(payloads.page_json(items, len(items), len(items), 0))


@admin_blueprint.post("/rooms/<room_id>/participants/<user_id>/kick")
async def kick(room_id: str, user_id: str) -> Response:
    """Remove a participant and close their live sessions with ``kicked``."""
    state = _state()
    rid, uid = _uuid(room_id, "room"), _uuid(user_id, "user")
    await _room_or_404(rid)
    removed = await state.repo.remove_participant(rid, uid)
    closed = close_user_sessions(live_room(state.supervisor, rid), uid)
    if not removed and not closed:
        raise ServiceError(404, "not-a-member", "that user is not a participant of this room")
    await state.repo.log_events(
        [
            NewEvent(
                room_id=rid,
                type="kicked",
                created_at=_now(),
                user_id=uid,
                payload={"by": str(_admin().user_id), "sessions": closed},
            )
        ]
    )
    _audit("kicked %s from room %s", uid, rid)
    body = {"room_id": str(rid), "user_id": str(uid), "removed": removed, "sessions_closed": closed}
    return json_response(body)


def close_user_sessions(live: LiveRoom | None, user_id: UUID) -> int:
    """Close ``user_id``'s sessions in a live room with ``kicked``; return how many.

    ``Connection.close`` keeps the first reason it is given, so closing before
    ``Leave`` makes the client hear ``kicked`` while the engine still drops the
    session (presence ``left`` for the others, no resume).
    """
    if live is None:
        return 0
    closed = 0
    for session_id, session in list(live.state.sessions.items()):
        if session.user_id != str(user_id):
            continue
        connection = live.connections.get(session_id)
        if connection is not None:
            connection.close("kicked", "an administrator removed you from the room")
            closed += 1
        live.apply(engine.Leave(session_id=session_id))
    return closed


# -- chat ------------------------------------------------------------------------------------
@admin_blueprint.get("/rooms/<room_id>/chat")
async def chat_history(room_id: str) -> Response:
    """A page of chat, newest first (also when chat is switched off)."""
    uid = _uuid(room_id, "room")
    await _room_or_404(uid)
    limit, offset = _paging(50)
    items, total = await _state().repo.list_chat_messages(uid, limit, offset)
    return json_response(
        payloads.page_json([payloads.chat_json(m) for m in items], total, limit, offset)
    )


@admin_blueprint.delete("/chat/<message_id>")
async def delete_chat(message_id: str) -> Response:
    """Delete one chat message (clients that already show it keep it until they rejoin)."""
    uid = _uuid(message_id, "chat message")
    if not await _state().repo.delete_chat_message(uid):
        raise not_found("chat message")
    _audit("deleted chat message %s", uid)
    return json_response({"id": str(uid), "deleted": True})


# -- invitations -------------------------------------------------------------------------------
@admin_blueprint.post("/rooms/<room_id>/invitations")
async def create_invitation(room_id: str) -> Response:
    """Create an invitation (``created_by`` is the admin: the nil UUID on the socket)."""
    body = await _body(payloads.InvitationBody)
    invitation = await _state().service.create_invitation(
        _admin(),
        _uuid(room_id, "room"),
        invited_user_id=body.invited_user_id,
        expires_in_hours=body.expires_in_hours,
        max_uses=body.max_uses,
    )
    return json_response(_invitation_json(invitation, _now()), 201)


async def _invitation(code: str) -> Invitation:
    if len(code) > 64 or "\x00" in code:
        raise not_found("invitation")
    invitation = await _state().repo.get_invitation(normalize_code(code))
    if invitation is None:
        raise not_found("invitation")
    return invitation


@admin_blueprint.get("/invitations/<code>")
async def show_invitation(code: str) -> Response:
    """Any invitation, expired and used-up ones included, with its room's summary."""
    invitation = await _invitation(code)
    room = await _state().repo.get_room(invitation.room_id)
    body = _invitation_json(invitation, _now()) | {
        "room": payloads.room_summary_json(room) if room is not None else None
    }
    return json_response(body)


@admin_blueprint.delete("/invitations/<code>")
async def revoke_invitation(code: str) -> Response:
    """Delete an invitation: joining with it fails from now on."""
    invitation = await _invitation(code)
    await _state().repo.delete_invitation(invitation.id)
    _audit("revoked invitation %s of room %s", invitation.id, invitation.room_id)
    return json_response({"code": invitation.code, "revoked": True})


@admin_blueprint.post("/invitations/purge-expired")
async def purge_expired() -> Response:
    """Delete invitations that expired more than ``older_than_hours`` ago (default 0)."""
    body = await _body(PurgeBody)
    before = _now() - timedelta(hours=body.older_than_hours)
    purged = await _state().repo.purge_expired_invitations(before)
    _audit("purged %d expired invitations", purged)
    return json_response({"purged": purged, "expired_before": payloads.timestamp(before)})


# -- events ------------------------------------------------------------------------------------
@admin_blueprint.get("/rooms/<room_id>/events")
async def room_events(room_id: str) -> Response:
    """A page of the room's event log, newest first.

    With ``?after=ID`` the answer holds the events with a larger id instead,
    **oldest first**, at most ``limit`` of them (what ``events --follow`` polls).
    """
    uid = _uuid(room_id, "room")
    await _room_or_404(uid)
    repo = _state().repo
    limit, offset = _paging(50)
    after_text = request.args.get("after")
    if not after_text:
        events, total = await repo.list_events(uid, limit, offset)
        return json_response(
            payloads.page_json([event_json(e) for e in events], total, limit, offset)
        )
    after = _query_int("after", 0, 0, None)
    newer: list[Event] = []
    total = 0
    scanned = 0
    while scanned < _AFTER_SCAN:
        page, total = await repo.list_events(uid, 100, scanned)
        newer += [e for e in page if e.id > after]
        scanned += len(page)
        if len(page) < 100 or page[-1].id <= after:
            break
    newer.sort(key=lambda e: e.id)
    return json_response(
        payloads.page_json([event_json(e) for e in newer[:limit]], total, limit, 0)
    )


# -- the unix socket ---------------------------------------------------------------------------
class AdminSocketError(Exception):
    """The admin socket cannot be served (in use, not a socket, cannot bind)."""


def socket_app(app: ASGIFramework) -> ASGIFramework:
    """``app`` as served on the admin socket: scopes marked trusted, no second lifespan.

    The TCP server already runs the app's lifespan (QuartTrio keeps its
    nursery there); running it twice would start the app twice, so the
    socket server's lifespan is answered here.
    """

    async def asgi(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        marked = cast("Scope", {**scope, SOCKET_SCOPE_KEY: True})
        await app(marked, receive, send)

    return asgi


def _in_use(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


def bind_admin_socket(path: Path) -> socket.socket:
    """A bound (not yet listening) unix socket at ``path``, mode 0660.

    A stale socket file is removed; a socket someone still serves is not.
    The mode is set before ``listen``, so no one can connect in between.

    Raises:
        AdminSocketError: see :func:`serve_admin_socket`.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        mode = path.lstat().st_mode
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise AdminSocketError(f"cannot use the admin socket path {path}: {exc}") from exc
    else:
        if not stat.S_ISSOCK(mode):
            raise AdminSocketError(f"{path} exists and is not a socket; not replacing it")
        if _in_use(path):
            raise AdminSocketError(f"another process serves the admin socket {path}")
        path.unlink()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(path))
        os.chmod(path, SOCKET_MODE)
    except OSError as exc:
        sock.close()
        raise AdminSocketError(f"cannot bind the admin socket {path}: {exc}") from exc
    return sock


async def serve_admin_socket(
    app: ASGIFramework,
    path: Path,
    *,
    sock: socket.socket | None = None,
    shutdown_trigger: Callable[[], Awaitable[None]] | None = None,
    graceful_timeout: float = 5.0,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``app`` on the unix socket ``path`` until ``shutdown_trigger`` returns.

    Reports hypercorn's binds (``["http://unix:/path"]``) once it listens and
    removes the socket file at exit (unless another process replaced it).

    ``sock`` is the socket :func:`bind_admin_socket` bound at ``path``, for a
    caller that binds early (outside its nurseries, so that a failure is a
    plain exception rather than an exception group); by default it is bound here.

    Raises:
        AdminSocketError: the socket is in use, the path exists and is not a
            socket, or binding failed (for example a path longer than the
            108 bytes a unix socket address holds).
    """
    if sock is None:
        sock = await trio.to_thread.run_sync(bind_admin_socket, path)
    inode = os.lstat(path).st_ino  # to remove our socket file at exit, not a successor's
    config = HypercornConfig()
    # Hypercorn adopts the bound socket (and listens on it) through its fd.
    config.bind = [f"fd://{sock.detach()}"]
    config.graceful_timeout = graceful_timeout
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    try:
        await serve(
            socket_app(app),
            config,
            shutdown_trigger=shutdown_trigger,
            task_status=task_status,
            mode="asgi",
        )
    finally:
        _remove_socket(path, inode)


def _remove_socket(path: Path, inode: int) -> None:
    try:
        if os.lstat(path).st_ino == inode:
            os.unlink(path)
    except OSError:
        pass
