"""The WebSocket protocol, version 1: message types and the JSON codec.

Sans-I/O in the h11/wsproto sense: :func:`decode_client` turns one text frame
into a typed message (or raises :class:`ProtocolError` with a stable code) and
:func:`encode` turns a server message into the text to send. Neither touches a
socket or a clock. Every message is a JSON object with a ``type`` field;
``docs/protocol.md`` documents each one with its JSON Schema.

Times on the wire are seconds on the *server clock* (a float; see ``welcome``
and ``pong``), positions are seconds into the media, rates are multipliers.
"""

from __future__ import annotations

import json
import math
from typing import Annotated, Literal

import msgspec

from syncplayd.core.text import NO_CONTROL

PROTOCOL_VERSION = 1

#: The largest text frame a client may send; bigger ones are refused unread.
MAX_FRAME_BYTES = 16 * 1024

# Positions beyond a week are nonsense for any film or episode and keep
# arithmetic far from float overflow.
MAX_POSITION = 7 * 24 * 3600.0
MIN_RATE, MAX_RATE = 0.25, 4.0

Position = Annotated[float, msgspec.Meta(ge=0.0, le=MAX_POSITION)]
Rate = Annotated[float, msgspec.Meta(ge=MIN_RATE, le=MAX_RATE)]
ClientTime = Annotated[float, msgspec.Meta(ge=-1e12, le=1e12)]
Version = Annotated[int, msgspec.Meta(ge=0, le=2**53)]
ShortText = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
Ident = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
ChatText = Annotated[str, msgspec.Meta(min_length=1, max_length=10_000, pattern=r"^[^\x00]*$")]


class ProtocolError(Exception):
    """A client message the server refuses; ``code`` is stable and documented."""

    def __init__(self, code: str, message: str, *, ref: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.ref = ref


# -- client -> server ------------------------------------------------------------------
class _Client(msgspec.Struct, tag_field="type", forbid_unknown_fields=True, frozen=True):
    pass


class Hello(_Client, tag="hello", frozen=True):
    protocol: int
    token: Annotated[str, msgspec.Meta(max_length=8192)] | None = None
    client: ShortText | None = None


class Join(_Client, tag="join", frozen=True):
    room_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    #: Only hashed, never stored or shown: any character goes, as for REST.
    password: ShortText | None = None
    #: As REST's ``JoinRoom.invitation_code``: a code is looked up in the database,
    #: which cannot hold NUL, and shown by syncplayctl: no control characters.
    invitation_code: (
        Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=NO_CONTROL)] | None
    ) = None
    #: The session id from an earlier ``joined``: come back as the same participant.
    resume: Ident | None = None


class Ping(_Client, tag="ping", frozen=True):
    id: Annotated[int, msgspec.Meta(ge=0, le=2**53)]
    t0: ClientTime


class Play(_Client, tag="play", frozen=True):
    position: Position | None = None


class Pause(_Client, tag="pause", frozen=True):
    position: Position | None = None


class Seek(_Client, tag="seek", frozen=True):
    position: Position


class SetRate(_Client, tag="rate", frozen=True):
    rate: Rate


class Buffering(_Client, tag="buffering", frozen=True):
    position: Position | None = None


class Ready(_Client, tag="ready", frozen=True):
    position: Position | None = None


class Heartbeat(_Client, tag="heartbeat", frozen=True):
    #: The client's media position, sampled at ``server_time`` (its estimate of the server clock).
    position: Position
    server_time: ClientTime
    version: Version
    playing: bool = False
    rtt: Annotated[float, msgspec.Meta(ge=0.0, le=60.0)] | None = None


class Chat(_Client, tag="chat", frozen=True):
    message: ChatText
    client_id: Ident | None = None


class Leave(_Client, tag="leave", frozen=True):
    pass


#: A queue item's id (a UUID, as REST shows it).
ItemId = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class Media(_Client, tag="media", frozen=True):
    """The player loaded queue item ``item_id``; ``duration`` is its length as the player
    found it (``null``: not known, a live stream)."""

    item_id: ItemId
    duration: Annotated[float, msgspec.Meta(gt=0.0, le=MAX_POSITION)] | None = None


class Ended(_Client, tag="ended", frozen=True):
    """The player reached the end of queue item ``item_id``."""

    item_id: ItemId


class Next(_Client, tag="next", frozen=True):
    """Go to the next queue item, if ``current_item_id`` is still the current one."""

    current_item_id: ItemId


class Previous(_Client, tag="previous", frozen=True):
    """Go to the previous queue item, if ``current_item_id`` is still the current one."""

    current_item_id: ItemId


class Readiness(_Client, tag="readiness", frozen=True):
    """The member's manual "I'm ready" (or not)."""

    ready: bool


ClientMessage = (
    Hello
    | Join
    | Ping
    | Play
    | Pause
    | Seek
    | SetRate
    | Buffering
    | Ready
    | Heartbeat
    | Chat
    | Leave
    | Media
    | Ended
    | Next
    | Previous
    | Readiness
)

CLIENT_TYPES: frozenset[str] = frozenset(
    str(cls.__struct_config__.tag)
    for cls in (
        Hello,
        Join,
        Ping,
        Play,
        Pause,
        Seek,
        SetRate,
        Buffering,
        Ready,
        Heartbeat,
        Chat,
        Leave,
        Media,
        Ended,
        Next,
        Previous,
        Readiness,
    )
)

_decoder = msgspec.json.Decoder(ClientMessage)


def decode_client(frame: str | bytes) -> ClientMessage:
    """Decode one client frame.

    Raises:
        ProtocolError: ``too-large``, ``bad-json``, ``unknown-type`` or
            ``bad-message`` (a field is missing, of the wrong type or out of range).
    """
    data = frame.encode() if isinstance(frame, str) else frame
    if len(data) > MAX_FRAME_BYTES:
        raise ProtocolError("too-large", f"frames are limited to {MAX_FRAME_BYTES} bytes")
    try:
        message: ClientMessage = _decoder.decode(data)
    except (msgspec.ValidationError, RecursionError) as exc:  # ValidationError is a DecodeError
        # msgspec stops at the first problem in reading order, so a refused field can
        # hide a syntax error further on ({"type": "ping", "x": NaN}); the syntax is
        # judged first, so that a frame that is not JSON is always ``bad-json``.
        if not _is_json(data):
            raise ProtocolError("bad-json", "the frame is not valid JSON") from None
        if isinstance(exc, RecursionError):
            # When ``type`` is not the first key, msgspec decodes the fields before it
            # generically, recursing into their values: deep nesting there (16 KiB of
            # "[" is 16,384 levels) exhausts the stack.
            raise ProtocolError("bad-message", "the message is nested too deeply") from None
        text = str(exc)
        if (
            "Invalid value" in text and "`$.type`" in text
        ) or "missing required field `type`" in text:
            raise ProtocolError(
                "unknown-type", f"unknown or missing message type: {text}"
            ) from None
        if text.startswith("Expected `object`"):
            raise ProtocolError("bad-message", "a message must be a JSON object") from None
        raise ProtocolError("bad-message", text) from None
    except msgspec.DecodeError:
        raise ProtocolError("bad-json", "the frame is not valid JSON") from None
    return message


def _is_json(data: bytes) -> bool:
    """Whether ``data`` is JSON text, whatever it holds (only called on refused frames)."""
    try:
        msgspec.json.decode(data)
    except RecursionError:
        return True  # too deep to tell: not a syntax error
    except msgspec.ValidationError:
        # A number beyond float range stops msgspec where it stands; whether the text
        # after it is JSON is then for a parser that reads on (found by the fuzzer:
        # ``{..., "": 1e400, <a syntax error>`` was called bad-message).
        return _json_reads_on(data)
    except msgspec.DecodeError:
        return False
    return True


def _json_reads_on(data: bytes) -> bool:
    """The standard library's verdict (big numbers are JSON to it; NaN and Infinity not)."""

    def refuse(constant: str) -> object:
        raise ValueError(constant)

    try:
        json.loads(data, parse_constant=refuse)
    except RecursionError:
        return True
    except ValueError:  # UnicodeDecodeError too
        return False
    return True


# -- server -> client -----------------------------------------------------------------
class _Server(msgspec.Struct, tag_field="type", frozen=True, omit_defaults=False):
    pass


class Welcome(_Server, tag="welcome", frozen=True):
    protocol: int
    server_time: float
    user_id: str
    user_name: str
    is_admin: bool


class PlaybackWire(msgspec.Struct, frozen=True):
    """The room's playback: ``position`` holds at server time ``anchor``.

    While ``state`` is ``playing``, the position at server time ``t >= anchor`` is
    ``position + (t - anchor) * rate``; before ``anchor`` it is ``position``
    (a scheduled start), and it never passes ``duration`` when that is known.
    ``version`` increases with every change.

    The last three fields came with the play queue (defaults, so that older frames
    still decode): ``item_id`` is the queue item played, ``duration`` its length when
    known, and ``ended`` marks the end of the media: then ``state`` is ``paused`` and
    ``position`` the duration.
    """

    state: Literal["playing", "paused", "waiting"]
    position: float
    rate: float
    anchor: float
    version: int
    set_by: str | None
    item_id: str | None = None
    duration: float | None = None
    ended: bool = False


class SyncSettings(msgspec.Struct, frozen=True):
    heartbeat_interval: float
    threshold_seconds: float
    max_latency_ms: float
    ready_timeout_seconds: float
    disconnect_timeout_seconds: float
    max_rate_correction: float
    control: Literal["everyone", "moderators"]
    #: The room's ``wait_for_slow_members`` and ``start_when_ready`` (defaults: older frames).
    wait_for_slow_members: Literal["always", "policy", "never"] = "policy"
    start_when_ready: bool = False


class Member(msgspec.Struct, frozen=True):
    user_id: str
    user_name: str
    role: str
    is_connected: bool
    sessions: int
    buffering: bool
    latency_ms: float | None
    #: Muted in the room: may watch but not chat (a default, so older frames still decode).
    muted: bool = False
    #: Said "I'm ready" (manual readiness; every pause clears it).
    ready: bool = False
    #: A player of the user's reported the end of the current item.
    ended: bool = False
    #: Catching up alone: a late joiner, or buffering while the room does not wait for it.
    behind: bool = False
    #: Watching in a desktop player (Syncplay's client, through the Syncplay bridge).
    desktop: bool = False


# The room and chat objects are the REST API's (``api/openapi/syncplay.yaml``: ``Room``
# and ``ChatMessage``), sent unchanged so that a client parses one shape wherever it
# meets them. The shell fills them from storage records
# (``syncplayd.server.live.messages``); here they are plain values: ids are strings,
# timestamps RFC 3339 strings in UTC with ``Z`` (wall-clock time, not server-clock
# seconds). Field order is the JSON order.
StoredState = Literal["playing", "paused", "waiting"]
ControlMode = Literal["everyone", "moderators"]
SlowPolicy = Literal["always", "policy", "never"]
RepeatMode = Literal["none", "one", "all"]


class RoomPlayback(msgspec.Struct, frozen=True):
    """The playback as last *stored* (written behind): ``joined.playback`` is the live one."""

    state: StoredState
    position: float
    rate: float
    version: int
    #: When ``position`` held; ``None`` until the first change.
    updated_at: str | None


class RoomInfo(msgspec.Struct, frozen=True):
    """``joined.room``: the room as ``GET /rooms/{id}`` shows it (no password hash)."""

    id: str
    name: str
    owner_id: str
    content_type: str
    content_id: str
    is_public: bool
    has_password: bool
    max_participants: int
    participant_count: int
    playback: RoomPlayback
    playback_control: ControlMode
    created_at: str
    updated_at: str
    #: Set once the room has ended.
    ended_at: str | None
    #: Whether moderators may kick, ban and mute other moderators (last: REST's order).
    moderators_manage_moderators: bool = False
    #: The queue's current item (``content_type``/``content_id`` are its content).
    current_item_id: str | None = None
    wait_for_slow_members: SlowPolicy = "policy"
    start_when_ready: bool = False


class ChatEntry(msgspec.Struct, frozen=True):
    """A stored chat message (``joined.chat``, ``chat.message``), as on REST."""

    id: str
    room_id: str
    user_id: str
    user_name: str
    message: str
    created_at: str


class QueueItemInfo(msgspec.Struct, frozen=True):
    """One item of a room's play queue, as REST shows it."""

    id: str
    content_type: str
    content_id: str
    title: str | None
    duration: float | None


class QueueInfo(msgspec.Struct, frozen=True):
    """A room's play queue (``joined.queue``, ``queue.queue``), as ``GET …/queue`` shows it:
    the items in the order people arranged them."""

    room_id: str
    current_item_id: str | None
    #: What plays when the current item ends (repeat and shuffle applied); ``None``: nothing.
    next_item_id: str | None
    repeat: RepeatMode
    shuffle: bool
    items: list[QueueItemInfo]


class Joined(_Server, tag="joined", frozen=True):
    session_id: str
    server_time: float
    room: RoomInfo
    playback: PlaybackWire
    participants: list[Member]
    #: The most recent messages, oldest first.
    chat: list[ChatEntry]
    settings: SyncSettings
    you: Member
    #: The room's play queue (``None`` only in frames of servers before the queue).
    queue: QueueInfo | None = None


class Pong(_Server, tag="pong", frozen=True):
    id: int
    t0: float
    t1: float
    t2: float


class PlaybackChanged(_Server, tag="playback", frozen=True):
    playback: PlaybackWire
    #: When every client should apply this change (server time); a little in the
    #: future so that everyone starts together.
    execute_at: float
    reason: str


class SyncCommand(_Server, tag="sync", frozen=True):
    """Seek to the live position: the member drifted beyond the threshold."""

    playback: PlaybackWire
    offset: float


class Presence(_Server, tag="presence", frozen=True):
    event: Literal[
        "joined",
        "left",
        "disconnected",
        "reconnected",
        "buffering",
        "ready",
        "not_ready_timeout",
        "latency",
        "role",
        "muted",
        "unmuted",
        "ended",
        "slow",
        "readiness",
    ]
    member: Member
    detail: str | None = None


#: The most presence events one ``presence_batch`` holds: a longer run is sent as several.
MAX_PRESENCE_BATCH = 500


class PresenceBatch(_Server, tag="presence_batch", frozen=True):
    """Several comings and goings of one window, in order, in one frame.

    Each event is exactly the ``presence`` message that would have been sent alone;
    a client applies them in order as if they had come one by one. It exists so that
    N members joining within one window cost every member one frame, not N (a window
    with a single event still sends the plain ``presence``).
    """

    #: At least one (the server sends two or more), at most ``MAX_PRESENCE_BATCH``.
    events: Annotated[list[Presence], msgspec.Meta(min_length=1, max_length=MAX_PRESENCE_BATCH)]


class QueueChanged(_Server, tag="queue", frozen=True):
    """The room's play queue changed (any change: items, current item, modes, a duration)."""

    queue: QueueInfo


class ChatOut(_Server, tag="chat", frozen=True):
    message: ChatEntry


class ChatDeleted(_Server, tag="chat_deleted", frozen=True):
    """A chat message was deleted: clients drop it from what they show."""

    room_id: str
    message_id: str


class RoomChanged(_Server, tag="room", frozen=True):
    """The room's settings or owner changed; ``settings.control`` is ``room.playback_control``."""

    room: RoomInfo
    settings: SyncSettings


class ChatAck(_Server, tag="chat_ack", frozen=True):
    client_id: str | None
    message_id: str


class ErrorOut(_Server, tag="error", frozen=True):
    code: str
    message: str
    ref: str | None = None


CloseReason = Literal[
    "room-ended",
    "kicked",
    "banned",
    "replaced",
    "server-restarting",
    "too-slow",
    "unauthorized",
    "protocol-error",
    "idle-timeout",
    "too-many-connections",
    "left",
    "moved",
]
"""Why the server closes a connection (``docs/protocol.md`` maps each to a close code)."""

#: The reasons whose ``closing`` may say when to come back (``Closing.retry_after``).
RETRY_REASONS: frozenset[CloseReason] = frozenset({"moved", "server-restarting"})


class Closing(_Server, tag="closing", frozen=True, omit_defaults=True):
    """The server closes the socket next, for ``reason``.

    ``retry_after`` came with several nodes (a default, so that older frames still
    decode): with ``moved`` or ``server-restarting``, the seconds to wait before
    reconnecting (``None``: the client's usual backoff); never given with other reasons.
    Unlike other fields, it is left out of the frame when it is ``None``: every closing
    a single node sends stays the frame it was, byte for byte.
    """

    reason: CloseReason
    message: str
    retry_after: float | None = None


ServerMessage = (
    Welcome
    | Joined
    | Pong
    | PlaybackChanged
    | SyncCommand
    | Presence
    | PresenceBatch
    | ChatOut
    | ChatDeleted
    | ChatAck
    | RoomChanged
    | QueueChanged
    | ErrorOut
    | Closing
)

_encoder = msgspec.json.Encoder()
_server_decoder = msgspec.json.Decoder(ServerMessage)


def encode(message: ServerMessage) -> str:
    """Encode a server message as the text of one frame."""
    return _encoder.encode(message).decode()


def encode_bytes(message: ServerMessage) -> bytes:
    """Encode a server message as the UTF-8 bytes of one frame's text."""
    return _encoder.encode(message)


def encode_member(member: Member) -> bytes:
    """One member entry as JSON (UTF-8), as it stands in ``joined.participants`` (the live
    room keeps these, so that a join does not encode every member again)."""
    return _encoder.encode(member)


def decode_server(frame: str | bytes) -> ServerMessage:
    """Decode a server frame (for clients, like :mod:`syncplayd.client`)."""
    message: ServerMessage = _server_decoder.decode(frame)
    return message


def finite(value: float) -> bool:
    """msgspec refuses NaN/Infinity in JSON already; this guards internal math."""
    return math.isfinite(value)
