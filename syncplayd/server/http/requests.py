"""Reading a request: path ids, query parameters and JSON bodies, with clear refusals."""

from __future__ import annotations

from typing import TypeVar
from uuid import UUID

import msgspec
from quart import request

from syncplayd.identity import Principal
from syncplayd.server.http import payloads
from syncplayd.server.http.state import app_state
from syncplayd.server.http.web import media_url_refusal
from syncplayd.service import ServiceError
from syncplayd.service.errors import invalid
from syncplayd.storage.records import Invitation

T = TypeVar("T")

# Deep offsets are never a real client's need and overflow database integers.
MAX_OFFSET = 1_000_000

_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no"})


def path_uuid(value: str, what: str) -> UUID:
    try:
        return UUID(value)
    except ValueError:
        raise ServiceError(400, "bad-request", f"the {what} id must be a UUID") from None


def path_room_and_user(room_id: str, user_id: str) -> tuple[UUID, UUID]:
    """``/rooms/{room_id}/…/{user_id}``: a moderation route's two ids."""
    return path_uuid(room_id, "room"), path_uuid(user_id, "user")


def path_room_and_item(room_id: str, item_id: str) -> tuple[UUID, UUID]:
    """``/rooms/{room_id}/queue/items/{item_id}``: a queue route's two ids."""
    return path_uuid(room_id, "room"), path_uuid(item_id, "queue item")


def query_bool(name: str) -> bool | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return None
    if raw.lower() in _TRUE:
        return True
    if raw.lower() in _FALSE:
        return False
    raise invalid(name, "must be true or false")


def query_int(name: str, default: int, low: int, high: int | None) -> int:
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


def query_text(name: str, max_length: int = 200) -> str | None:
    raw = request.args.get(name)
    if raw is not None and len(raw) > max_length:
        raise invalid(name, f"must be at most {max_length} characters")
    if raw is not None and "\x00" in raw:
        raise invalid(name, "must not contain NUL characters")
    return raw or None


async def read_body(kind: type[T]) -> T:
    """The JSON body as ``kind``; a room's content is checked against the watch page's rule."""
    received = await request.get_data(as_text=False)
    data = received.encode() if isinstance(received, str) else received
    if data.strip() and request.mimetype != "application/json":
        raise ServiceError(415, "unsupported-media-type", "send the body as application/json")
    body = payloads.decode_body(data, kind)
    _check_media(body)
    return body


def _check_media(body: object) -> None:
    """Refuse content whose media URL the watch page would not load (``web.*`` settings).

    Every body that sets a room's content (create or update, public or admin API)
    comes through :func:`read_body`; the rule depends on the page's settings, which
    the service does not see.
    """
    content_type = getattr(body, "content_type", msgspec.UNSET)
    content_id = getattr(body, "content_id", msgspec.UNSET)
    if content_type is msgspec.UNSET and content_id is msgspec.UNSET:
        return
    refusal = media_url_refusal(
        app_state().settings.web,
        content_type if isinstance(content_type, str) else None,
        content_id if isinstance(content_id, str) else None,
    )
    if refusal is not None:
        raise invalid(*refusal)


async def create_invitation_from_body(principal: Principal, room_id: str) -> Invitation:
    """``POST …/rooms/{id}/invitations``: one body for the public and the admin API."""
    body = await read_body(payloads.InvitationBody)
    return await app_state().service.create_invitation(
        principal,
        path_uuid(room_id, "room"),
        invited_user_id=body.invited_user_id,
        expires_in_hours=body.expires_in_hours,
        max_uses=body.max_uses,
    )
