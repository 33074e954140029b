"""The JSON shapes of the HTTP API: request structs and response encoders.

Request bodies are decoded with msgspec into strict structs (unknown fields are
refused, types are exact); the bounds here are the hard limits of the contract
in ``api/openapi/syncplay.yaml``. Limits that depend on configuration (chat
message length) are checked by the service.

Absent and ``null`` are told apart: an absent field is "not given"; ``null`` is
accepted only where the contract lists it among the field's types, and then means
what the contract says (``CreateRoom.password``: no password). Elsewhere the field
is ``X | UnsetType``, so that ``null`` is a 422 like any other wrong type. Where the
handlers want "given or ``None``", the struct field is private (``_x``, named ``x``
on the wire) and a property of that name reads it.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, TypeVar
from uuid import UUID

import msgspec

from syncplayd.core import text
from syncplayd.core.queue import MAX_DURATION, MAX_QUEUE_ITEMS, Queue, Repeat, SlowPolicy
from syncplayd.core.roles import Role
from syncplayd.server.live.messages import chat_entry, queue_info, room_info
from syncplayd.server.live.messages import timestamp as timestamp
from syncplayd.service.errors import FieldError, ServiceError
from syncplayd.service.moderation import MAX_REASON_LENGTH
from syncplayd.service.queue import MAX_TITLE_LENGTH
from syncplayd.service.rooms import RoomChanges
from syncplayd.storage.records import (
    ChatMessage,
    Invitation,
    Participant,
    PlaybackControl,
    Restriction,
    Room,
)

# Names, ids and codes refuse control characters (C0, DEL, C1): they reach
# terminals, and PostgreSQL cannot store NUL. Chat keeps newline and tab.
# Passwords are only hashed, never stored or shown: any character goes.
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=text.NO_CONTROL)]
CONTENT_TYPE_PATTERN = r"^[A-Za-z0-9_.:-]+(?![\s\S])"
ContentType = Annotated[
    str, msgspec.Meta(min_length=1, max_length=64, pattern=CONTENT_TYPE_PATTERN)
]
ContentId = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=text.NO_CONTROL)]
Password = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
#: Bounded again by ``rooms.max_participants_limit`` (the service says which).
MaxParticipants = Annotated[int, msgspec.Meta(ge=2, le=10000)]
InvitationCode = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=text.NO_CONTROL)]
#: An invitation lives at least a minute (it must not be expired when it is handed
#: out) and at most 30 days, the bound of ``invitations.default_expiry_hours``.
MIN_EXPIRY_HOURS = 1 / 60
ExpiresInHours = Annotated[float, msgspec.Meta(ge=MIN_EXPIRY_HOURS, le=720)]
MaxUses = Annotated[int, msgspec.Meta(ge=1, le=1000)]
ChatText = Annotated[str, msgspec.Meta(min_length=1, max_length=10_000, pattern=text.CHAT_TEXT)]
#: Why someone was kicked, banned or muted: shown to them and kept, so chat's rule of
#: characters (newline and tab allowed) and the service's bound on length.
Reason = Annotated[str, msgspec.Meta(max_length=MAX_REASON_LENGTH, pattern=text.CHAT_TEXT)]
#: A ban or mute lasts a minute at least and ten years (of 365 days) at most.
MAX_SANCTION_MINUTES = 10 * 365 * 24 * 60
ExpiresInMinutes = Annotated[float, msgspec.Meta(ge=1, le=MAX_SANCTION_MINUTES)]
#: A queue item's title: shown in lists and on terminals, so no control characters.
Title = Annotated[
    str, msgspec.Meta(min_length=1, max_length=MAX_TITLE_LENGTH, pattern=text.NO_CONTROL)
]
#: Seconds of media: the room ends the item there, so at most the protocol's last position.
Duration = Annotated[float, msgspec.Meta(gt=0, le=MAX_DURATION)]
#: A place in the queue; past the end means at the end.
QueueIndex = Annotated[int, msgspec.Meta(ge=0, le=MAX_QUEUE_ITEMS)]


class CreateRoomBody(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    name: Name
    content_type: ContentType
    content_id: ContentId
    is_public: bool = False
    password: Password | None = None
    max_participants: MaxParticipants | None = None
    playback_control: PlaybackControl = PlaybackControl.EVERYONE
    # The first item of the room's queue (its content) may come with what the media
    # server knows of it.
    content_title: Title | None = None
    content_duration: Duration | None = None
    wait_for_slow_members: SlowPolicy = "policy"
    start_when_ready: bool = False


class UpdateRoomBody(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    # UNSET tells "not given" apart from an explicit null (which clears a password).
    name: Name | msgspec.UnsetType = msgspec.UNSET
    content_type: ContentType | msgspec.UnsetType = msgspec.UNSET
    content_id: ContentId | msgspec.UnsetType = msgspec.UNSET
    is_public: bool | msgspec.UnsetType = msgspec.UNSET
    password: Password | msgspec.UnsetType | None = msgspec.UNSET
    max_participants: MaxParticipants | msgspec.UnsetType = msgspec.UNSET
    playback_control: PlaybackControl | msgspec.UnsetType = msgspec.UNSET
    moderators_manage_moderators: bool | msgspec.UnsetType = msgspec.UNSET
    wait_for_slow_members: SlowPolicy | msgspec.UnsetType = msgspec.UNSET
    start_when_ready: bool | msgspec.UnsetType = msgspec.UNSET


class JoinBody(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    _password: Password | msgspec.UnsetType = msgspec.field(default=msgspec.UNSET, name="password")
    _invitation_code: InvitationCode | msgspec.UnsetType = msgspec.field(
        default=msgspec.UNSET, name="invitation_code"
    )

    @property
    def password(self) -> str | None:
        return _given(self._password)

    @property
    def invitation_code(self) -> str | None:
        return _given(self._invitation_code)


class ChatBody(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    message: ChatText


class InvitationBody(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    invited_user_id: UUID | None = None
    _expires_in_hours: ExpiresInHours | msgspec.UnsetType = msgspec.field(
        default=msgspec.UNSET, name="expires_in_hours"
    )
    # null: unlimited, as the contract says; for a personal invitation the service
    # still reads null as "not given" (1 use): docs/api.md documents that.
    max_uses: MaxUses | None = None

    @property
    def expires_in_hours(self) -> float | None:
        return _given(self._expires_in_hours)


class RoleBody(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    # "owner" decodes, so that the service can say what to do instead (a transfer).
    role: Role


class TransferBody(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    user_id: UUID


class KickBody(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    _reason: Reason | msgspec.UnsetType = msgspec.field(default=msgspec.UNSET, name="reason")

    @property
    def reason(self) -> str | None:
        return _given(self._reason)


class SanctionBody(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """A ban or a mute: why, and for how long (absent: until it is lifted)."""

    _reason: Reason | msgspec.UnsetType = msgspec.field(default=msgspec.UNSET, name="reason")
    _expires_in_minutes: ExpiresInMinutes | msgspec.UnsetType = msgspec.field(
        default=msgspec.UNSET, name="expires_in_minutes"
    )

    @property
    def reason(self) -> str | None:
        return _given(self._reason)

    @property
    def expires_in(self) -> timedelta | None:
        minutes = _given(self._expires_in_minutes)
        return None if minutes is None else timedelta(minutes=minutes)


class QueueItemBody(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """An item to queue; ``null`` or absent title and duration: not known."""

    content_type: ContentType
    content_id: ContentId
    title: Title | None = None
    duration: Duration | None = None
    play_next: bool = False


class MoveBody(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    index: QueueIndex


class PlayItemBody(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    item_id: UUID


class StepBody(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """``next``/``previous``: from which item, so that a repeated press moves once."""

    current_item_id: UUID


class QueueModeBody(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    _repeat: Repeat | msgspec.UnsetType = msgspec.field(default=msgspec.UNSET, name="repeat")
    _shuffle: bool | msgspec.UnsetType = msgspec.field(default=msgspec.UNSET, name="shuffle")

    @property
    def repeat(self) -> Repeat | None:
        return _given(self._repeat)

    @property
    def shuffle(self) -> bool | None:
        return _given(self._shuffle)

    def check(self) -> QueueModeBody:
        """This body, or a refusal when it changes nothing (as an empty room update)."""
        if self.repeat is None and self.shuffle is None:
            raise _nothing_to_change()
        return self


T = TypeVar("T")


def _given(value: T | msgspec.UnsetType) -> T | None:
    return None if isinstance(value, msgspec.UnsetType) else value


def room_changes(body: UpdateRoomBody) -> tuple[RoomChanges, list[str]]:
    """The settings an update asks for, and the names of the fields it gave.

    Raises:
        ServiceError: the body changes nothing.
    """
    given = {f: getattr(body, f) for f in body.__struct_fields__}
    given = {f: v for f, v in given.items() if v is not msgspec.UNSET}
    if not given:
        raise _nothing_to_change()
    changes = RoomChanges(
        name=given.get("name"),
        content_type=given.get("content_type"),
        content_id=given.get("content_id"),
        is_public=given.get("is_public"),
        password=given.get("password"),
        clear_password="password" in given and given["password"] is None,
        max_participants=given.get("max_participants"),
        playback_control=given.get("playback_control"),
        moderators_manage_moderators=given.get("moderators_manage_moderators"),
        wait_for_slow_members=given.get("wait_for_slow_members"),
        start_when_ready=given.get("start_when_ready"),
    )
    return changes, sorted(given)


def _nothing_to_change() -> ServiceError:
    return ServiceError(
        422,
        "validation-failed",
        "body: give at least one field to change",
        [FieldError("body", "give at least one field to change")],
    )


_PATH_RE = re.compile(r" - at `\$(?P<path>[^`]*)`$")
# msgspec names a refused pattern by its regex: say what it means instead.
_PATTERN_TEXT = {
    text.NO_CONTROL: "must not contain control characters",
    text.CHAT_TEXT: "must not contain control characters (newlines and tabs are allowed)",
    CONTENT_TYPE_PATTERN: "must be letters, digits and _ . : - only",
}


def decode_body(data: bytes, kind: type[T]) -> T:
    """Decode a JSON request body into ``kind`` or raise a 400/422 ServiceError."""
    if not data.strip():
        data = b"{}"
    try:
        return msgspec.json.decode(data, type=kind, strict=True)
    except msgspec.ValidationError as exc:
        if not (str(exc).startswith("Expected `int") and "got `float`" in str(exc)):
            raise _validation_error(str(exc)) from None
        first_error = exc
    except msgspec.DecodeError:
        raise ServiceError(400, "bad-request", "the request body is not valid JSON") from None
    except UnicodeDecodeError:
        # What msgspec raises for bytes that are not UTF-8 inside a string.
        raise ServiceError(400, "bad-request", "the request body is not valid UTF-8") from None
    # JSON has one number type: to JSON Schema (and so to the contract) 52.0 is the
    # integer 52, and some serialisers (Python's, for a float) write it that way.
    # msgspec's strict mode refuses it for an int field, so integral numbers of the
    # body's own fields are given again as ints; 52.5 is still refused.
    try:
        value = msgspec.json.decode(data)
    except RecursionError:
        # Untyped decoding recurses into nested values; the typed pass did not get that far.
        raise ServiceError(400, "bad-request", "the request body is nested too deeply") from None
    if not isinstance(value, dict):
        raise _validation_error(str(first_error))
    value = {key: _integral(item) for key, item in value.items()}
    try:
        return msgspec.convert(value, type=kind, strict=True)
    except msgspec.ValidationError as exc:
        raise _validation_error(str(exc)) from None


def _integral(value: Any) -> Any:
    # Beyond 2**53 a float no longer holds every integer: leave it to the range check.
    if isinstance(value, float) and value.is_integer() and abs(value) <= 2**53:
        return int(value)
    return value


def _validation_error(message: str) -> ServiceError:
    """Turn msgspec's "Expected ... - at `$.name`" into a field-named problem."""
    match = _PATH_RE.search(message)
    reason = message[: match.start()] if match else message
    prefix = match.group("path").lstrip(".") + "." if match and match.group("path") else ""
    if reason.startswith("Object contains unknown field"):
        field_name, reason = prefix + reason.split("`")[1], "unknown field"
    elif reason.startswith("Object missing required field"):
        field_name, reason = prefix + reason.split("`")[1], "this field is required"
    elif match is not None and match.group("path"):
        field_name = match.group("path").lstrip(".")
    else:
        # The whole body was the wrong type (an array, a string, ...).
        return ServiceError(400, "bad-request", "the request body must be a JSON object")
    pattern = reason.removeprefix("Expected `str` matching regex ")
    if pattern != reason:
        reason = _PATTERN_TEXT.get(pattern.strip("'").replace("\\\\", "\\"), reason)
    # The name may come from the caller (an unknown key): keep the echo short and non-empty.
    field_name = field_name[:100] or "body"
    return ServiceError(
        422, "validation-failed", f"{field_name}: {reason}", [FieldError(field_name, reason)]
    )


# ``timestamp`` (re-exported above) and the room, queue and chat objects are shared with the
# WebSocket protocol: one definition in ``syncplayd.server.live.messages``.
def room_json(room: Room) -> dict[str, Any]:
    """The contract's ``Room``: ``joined.room`` as a dict (callers add admin fields)."""
    room_dict: dict[str, Any] = msgspec.to_builtins(room_info(room))
    # Set here too, so that REST shows the setting whether or not the WebSocket's
    # RoomInfo carries it.
    room_dict["moderators_manage_moderators"] = room.moderators_manage_moderators
    return room_dict


def queue_json(room_id: UUID, queue: Queue) -> dict[str, Any]:
    """The contract's ``Queue``, the WebSocket's ``joined.queue``: items in the people's
    order (the shuffled order stays inside)."""
    queue_dict: dict[str, Any] = msgspec.to_builtins(queue_info(room_id, queue))
    return queue_dict


def room_summary_json(room: Room) -> dict[str, Any]:
    return {
        "id": str(room.id),
        "name": room.name,
        "content_type": room.content_type,
        "content_id": room.content_id,
        "is_public": room.is_public,
        "has_password": room.has_password,
        "max_participants": room.max_participants,
        "participant_count": room.participant_count,
        "ended_at": timestamp(room.ended_at),
    }


def participant_json(participant: Participant) -> dict[str, Any]:
    return {
        "user_id": str(participant.user_id),
        "user_name": participant.user_name,
        "role": participant.role.value,
        "is_connected": participant.is_connected,
        "joined_at": timestamp(participant.joined_at),
        "last_seen_at": timestamp(participant.last_seen_at),
        "muted": participant.muted,
    }


def restriction_json(restriction: Restriction) -> dict[str, Any]:
    """The contract's ``Restriction``: a ban or a mute (the URL says which)."""
    return {
        "room_id": str(restriction.room_id),
        "user_id": str(restriction.user_id),
        "user_name": restriction.user_name,
        "reason": restriction.reason,
        "created_by": str(restriction.created_by),
        "created_at": timestamp(restriction.created_at),
        "expires_at": timestamp(restriction.expires_at),
    }


def chat_json(message: ChatMessage) -> dict[str, Any]:
    """The contract's ``ChatMessage``, the same object as the WebSocket's ``ChatEntry``."""
    chat_dict: dict[str, Any] = msgspec.to_builtins(chat_entry(message))
    return chat_dict


def invitation_json(invitation: Invitation) -> dict[str, Any]:
    return {
        "code": invitation.code,
        "room_id": str(invitation.room_id),
        "expires_at": timestamp(invitation.expires_at),
        "invited_user_id": (
            str(invitation.invited_user_id) if invitation.invited_user_id else None
        ),
        "max_uses": invitation.max_uses,
        "use_count": invitation.use_count,
        "created_at": timestamp(invitation.created_at),
        "created_by": str(invitation.created_by),
    }


def page_json(items: list[dict[str, Any]], total: int, limit: int, offset: int) -> dict[str, Any]:
    return {"items": items, "total": total, "limit": limit, "offset": offset}
