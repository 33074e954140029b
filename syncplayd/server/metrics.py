"""Prometheus metrics: one registry per daemon, bounded labels, and a timed repository.

:class:`Metrics` owns its own :class:`~prometheus_client.CollectorRegistry` instead of the
process-wide default one, so several apps in one process (the test suite starts many) never
collide over metric names, and a test reads exactly the numbers its own app produced.

Every label value is drawn from a fixed set (the protocol's message types, the documented
error codes, HTTP methods, the repository's methods), with anything else counted as
``other``: a label fed from client input would otherwise let any client create series
without bound and exhaust the Prometheus server.

The recording methods are cheap and never block (counters are a lock and an add), so the
room can call them in its hot path; call :meth:`Metrics.render` from the trio thread, since
the live-room gauges may read the supervisor's state while rendering.
"""

from __future__ import annotations

import math
import time
import typing
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from time import perf_counter
from typing import TYPE_CHECKING, Final, TypeVar
from uuid import UUID

import msgspec
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.exposition import choose_encoder

from syncplayd import __version__
from syncplayd.core import protocol
from syncplayd.storage.base import Repository
from syncplayd.storage.records import (
    ChatMessage,
    Event,
    Invitation,
    NewEvent,
    NewRoom,
    Participant,
    Playback,
    Role,
    Room,
    RoomFilters,
    RoomUpdate,
)

__all__ = [
    "CLIENT_MESSAGE_TYPES",
    "DATABASE_BUCKETS",
    "ERROR_CODES",
    "FANOUT_BUCKETS",
    "HTTP_METHODS",
    "METRIC_NAMES",
    "OTHER",
    "REPOSITORY_OPERATIONS",
    "SERVER_MESSAGE_TYPES",
    "SYNC_OFFSET_BUCKETS",
    "Metrics",
    "TimedRepository",
    "frame_type",
    "message_type",
]

_T = TypeVar("_T")

#: The label value for anything outside a label's known set.
OTHER: Final = "other"

#: ``type`` values of ``syncplayd_messages_in_total``: the client messages of the protocol.
CLIENT_MESSAGE_TYPES: Final = frozenset(protocol.CLIENT_TYPES)

#: ``type`` values of ``syncplayd_messages_out_total``: the server messages of the protocol
#: (derived from the union, so a new message type is counted without touching this module).
SERVER_MESSAGE_TYPES: Final = frozenset(
    str(cls.__struct_config__.tag) for cls in typing.get_args(protocol.ServerMessage)
)

#: Problem codes of the HTTP API (``ProblemCode`` in ``api/openapi/syncplay.yaml``).
PROBLEM_CODES: Final = frozenset(
    {
        "bad-request",
        "unauthorized",
        "forbidden",
        "not-a-member",
        "wrong-password",
        "invitation-invalid",
        "public-rooms-disabled",
        "password-rooms-disabled",
        "chat-disabled",
        "not-found",
        "room-full",
        "room-ended",
        "invitation-expired",
        "invitation-used-up",
        "payload-too-large",
        "unsupported-media-type",
        "validation-failed",
        "rate-limited",
        "unavailable",
        "disabled",
        "too-many-rooms",
        "too-many-attempts",
        "method-not-allowed",
        "internal-error",
        "http-error",
    }
)

#: ``error`` frame codes of the WebSocket protocol (``docs/protocol.md`` §4.9) and the
#: refusals before the upgrade (§2.3).
PROTOCOL_ERROR_CODES: Final = frozenset(
    {
        "too-large",
        "bad-json",
        "unknown-type",
        "bad-message",
        "unsupported-protocol",
        "not-joined",
        "too-many-connections",
        "not-found",
        "room-ended",
        "not-a-member",
        "wrong-password",
        "invitation-invalid",
        "invitation-expired",
        "invitation-used-up",
        "room-full",
        "too-many-attempts",
        "already-joined",
        "not-allowed",
        "rate-limited",
        "chat-disabled",
        "validation-failed",
        "bad-resume",
        "origin-not-allowed",
        "disabled",
        "unavailable",
    }
)

#: ``code`` values of ``syncplayd_errors_total``: problem codes, protocol error codes, and the
#: closing reasons (so a connection dropped as ``too-slow`` or ``idle-timeout`` can be counted).
ERROR_CODES: Final = (
    PROBLEM_CODES | PROTOCOL_ERROR_CODES | frozenset(typing.get_args(protocol.CloseReason))
)

#: ``method`` values of ``syncplayd_http_requests_total``.
HTTP_METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

#: ``operation`` values of ``syncplayd_database_seconds``: the repository's methods.
REPOSITORY_OPERATIONS: Final = frozenset(
    name
    for name, member in vars(Repository).items()
    if not name.startswith("_") and callable(member)
)

#: Fan-out is in-memory work (encode once, queue per member): tenths of a millisecond when
#: healthy, so the buckets start at 100 µs; a second is already a stalled room.
FANOUT_BUCKETS: Final = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
)

#: SQLite answers in well under a millisecond, PostgreSQL over a network in a few; the top
#: buckets catch lock waits and an unreachable server's timeouts.
DATABASE_BUCKETS: Final = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)

#: Absolute heartbeat offsets: tens of milliseconds is in sync, the default correction
#: threshold is 2 s, and beyond a minute is a client that has lost track entirely.
SYNC_OFFSET_BUCKETS: Final = (
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.0,
    5.0,
    10.0,
    30.0,
    60.0,
)

#: Every metric family this module defines, as named in the exposition.
METRIC_NAMES: Final = (
    "syncplayd_live_rooms",
    "syncplayd_connections",
    "syncplayd_messages_in_total",
    "syncplayd_messages_out_total",
    "syncplayd_fanout_seconds",
    "syncplayd_database_seconds",
    "syncplayd_errors_total",
    "syncplayd_sync_offset_seconds",
    "syncplayd_http_requests_total",
    "syncplayd_build_info",
    "syncplayd_start_time_seconds",
)

_FRAME_PREFIX: Final = '{"type":"'


def message_type(message: msgspec.Struct) -> str:
    """The ``type`` tag of a decoded protocol message (``"play"``, ``"joined"``, ...)."""
    return str(type(message).__struct_config__.tag)


def frame_type(frame: str) -> str:
    """The ``type`` of an encoded server frame, without decoding it.

    msgspec writes the tag field first, so a server frame starts with ``{"type":"<tag>"``;
    anything else gives :data:`OTHER`. Meant for the connection writer, which only holds
    the encoded text.
    """
    if frame.startswith(_FRAME_PREFIX):
        end = frame.find('"', len(_FRAME_PREFIX))
        if end != -1:
            return frame[len(_FRAME_PREFIX) : end]
    return OTHER


def _bounded(value: str, known: frozenset[str]) -> str:
    return value if value in known else OTHER


class Metrics:
    """The daemon's metrics, in a registry of their own.

    Args:
        version: the ``version`` label of ``syncplayd_build_info``.
        start_time: ``syncplayd_start_time_seconds`` (Unix time); default: now.
        runtime_collectors: also export the process (CPU, memory, file descriptors), Python
            platform and garbage-collector metrics that ``prometheus_client`` gives the
            default registry.
    """

    def __init__(
        self,
        *,
        version: str = __version__,
        start_time: float | None = None,
        runtime_collectors: bool = True,
    ) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry

        # Live gauges read their value when scraped: from callbacks (track_live) or from
        # the last set_live, whichever was given last.
        self._live: tuple[float, float] = (0.0, 0.0)
        self._live_sources: tuple[Callable[[], float], Callable[[], float]] | None = None
        Gauge(
            "syncplayd_live_rooms",
            "Rooms with a live engine (someone connected recently).",
            registry=registry,
        ).set_function(lambda: self._live_value(0))
        Gauge(
            "syncplayd_connections", "WebSocket connections joined to a room.", registry=registry
        ).set_function(lambda: self._live_value(1))

        messages_in = Counter(
            "syncplayd_messages_in_total",
            "WebSocket messages received, by protocol type (other: undecodable or unknown).",
            ["type"],
            registry=registry,
        )
        messages_out = Counter(
            "syncplayd_messages_out_total",
            "WebSocket messages sent, by protocol type.",
            ["type"],
            registry=registry,
        )
        errors = Counter(
            "syncplayd_errors_total",
            "Errors reported to clients (problem and protocol error codes, closing reasons).",
            ["code"],
            registry=registry,
        )
        # Children for every known label value up front: the series exist (at 0) from the
        # start, so rate() sees the first increment, and the hot path is a dict lookup
        # instead of labels() with its lock.
        self._messages_in = {
            kind: messages_in.labels(type=kind) for kind in (*CLIENT_MESSAGE_TYPES, OTHER)
        }
        self._messages_out = {
            kind: messages_out.labels(type=kind) for kind in (*SERVER_MESSAGE_TYPES, OTHER)
        }
        self._errors = {code: errors.labels(code=code) for code in (*ERROR_CODES, OTHER)}

        self._fanout = Histogram(
            "syncplayd_fanout_seconds",
            "From receiving a command until its broadcast is queued to every member.",
            buckets=FANOUT_BUCKETS,
            registry=registry,
        )
        # Histogram children are created on first use: a zero series per operation and
        # bucket would bloat every scrape for methods a deployment rarely calls.
        self._database = Histogram(
            "syncplayd_database_seconds",
            "Duration of repository calls, by method (waiting for a connection included).",
            ["operation"],
            buckets=DATABASE_BUCKETS,
            registry=registry,
        )
        self._sync_offset = Histogram(
            "syncplayd_sync_offset_seconds",
            "Absolute offset between a member's reported position and the room's, per heartbeat.",
            buckets=SYNC_OFFSET_BUCKETS,
            registry=registry,
        )
        self._http = Counter(
            "syncplayd_http_requests_total",
            "HTTP requests answered, by method and status.",
            ["method", "status"],
            registry=registry,
        )
        Gauge(
            "syncplayd_build_info",
            "Always 1; the version is in the label.",
            ["version"],
            registry=registry,
        ).labels(version=version).set(1)
        Gauge(
            "syncplayd_start_time_seconds",
            "When the daemon started, in Unix time.",
            registry=registry,
        ).set(time.time() if start_time is None else start_time)

        if runtime_collectors:
            ProcessCollector(registry=registry)
            PlatformCollector(registry=registry)
            GCCollector(registry=registry)

    # -- live state ---------------------------------------------------------------------
    def set_live(self, rooms: int, connections: int) -> None:
        """Set the live-room and connection gauges (replaces callbacks from track_live)."""
        self._live = (float(rooms), float(connections))
        self._live_sources = None

    def track_live(self, rooms: Callable[[], float], connections: Callable[[], float]) -> None:
        """Read the gauges from callbacks at every scrape (e.g. the supervisor's counts)."""
        self._live_sources = (rooms, connections)

    def _live_value(self, index: int) -> float:
        sources = self._live_sources
        return float(sources[index]()) if sources is not None else self._live[index]

    # -- messages -----------------------------------------------------------------------
    def message_in(self, kind: str) -> None:
        """Count one received WebSocket message of protocol type ``kind``."""
        (self._messages_in.get(kind) or self._messages_in[OTHER]).inc()

    def message_out(self, kind: str, count: int = 1) -> None:
        """Count ``count`` sent WebSocket messages of type ``kind`` (a broadcast: members)."""
        if count > 0:
            (self._messages_out.get(kind) or self._messages_out[OTHER]).inc(count)

    def observe_fanout(self, seconds: float) -> None:
        """Record one broadcast's fan-out time."""
        self._fanout.observe(seconds)

    # -- database, errors, sync, HTTP -----------------------------------------------------
    def observe_db(self, operation: str, seconds: float) -> None:
        """Record one repository call (``operation`` is a Repository method name)."""
        self._database.labels(operation=_bounded(operation, REPOSITORY_OPERATIONS)).observe(seconds)

    def error(self, code: str) -> None:
        """Count one error sent to a client (a problem or ``error`` code, or a close reason)."""
        (self._errors.get(code) or self._errors[OTHER]).inc()

    def sync_offset(self, seconds: float) -> None:
        """Record a heartbeat's offset from the room's position (the sign is dropped)."""
        # A NaN or infinity would poison the histogram's sum for good.
        if math.isfinite(seconds):
            self._sync_offset.observe(abs(seconds))

    def http_request(self, method: str, status: int) -> None:
        """Count one answered HTTP request."""
        code = str(status) if 100 <= status <= 599 else OTHER
        self._http.labels(method=_bounded(method.upper(), HTTP_METHODS), status=code).inc()

    # -- exposition -------------------------------------------------------------------------
    def render(self, accept: str | None = None) -> tuple[bytes, str]:
        """The exposition body and its content type.

        Without ``accept``: the Prometheus text format (``generate_latest``). With the
        scraper's ``Accept`` header: OpenMetrics when it asks for it, else the text format.
        """
        if accept:
            encoder, content_type = choose_encoder(accept)
            return encoder(self.registry), content_type
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class TimedRepository:
    """A :class:`~syncplayd.storage.base.Repository` that times every call of another one.

    Each method delegates to the wrapped repository with the same arguments, returns its
    result or lets its exception through unchanged, and records the duration in
    ``syncplayd_database_seconds{operation=<method name>}`` either way (a failing or slow
    database is exactly when the numbers matter). The delegation is spelled out per method,
    not done with ``__getattr__``, so mypy checks each signature against the protocol and a
    method added to the protocol fails the type check until it is added here.
    """

    def __init__(self, repo: Repository, metrics: Metrics) -> None:
        self.inner = repo
        self._metrics = metrics

    async def _timed(self, operation: str, call: Awaitable[_T]) -> _T:
        # The coroutine does not start until awaited, so the clock starts here, not earlier.
        start = perf_counter()
        try:
            return await call
        finally:
            self._metrics.observe_db(operation, perf_counter() - start)

    # -- lifecycle ----------------------------------------------------------------------
    async def ping(self) -> None:
        await self._timed("ping", self.inner.ping())

    async def aclose(self) -> None:
        await self._timed("aclose", self.inner.aclose())

    # -- rooms --------------------------------------------------------------------------
    async def create_room(self, new: NewRoom) -> Room:
        return await self._timed("create_room", self.inner.create_room(new))

    async def get_room(self, room_id: UUID) -> Room | None:
        return await self._timed("get_room", self.inner.get_room(room_id))

    async def list_rooms(
        self, filters: RoomFilters, limit: int, offset: int
    ) -> tuple[list[Room], int]:
        return await self._timed("list_rooms", self.inner.list_rooms(filters, limit, offset))

    async def update_room(self, room_id: UUID, update: RoomUpdate) -> Room | None:
        return await self._timed("update_room", self.inner.update_room(room_id, update))

    async def update_playback(self, room_id: UUID, playback: Playback) -> None:
        await self._timed("update_playback", self.inner.update_playback(room_id, playback))

    async def end_room(self, room_id: UUID, ended_at: datetime) -> bool:
        return await self._timed("end_room", self.inner.end_room(room_id, ended_at))

    async def delete_room(self, room_id: UUID) -> bool:
        return await self._timed("delete_room", self.inner.delete_room(room_id))

    async def list_inactive_rooms(self, idle_since: datetime, limit: int) -> list[UUID]:
        return await self._timed(
            "list_inactive_rooms", self.inner.list_inactive_rooms(idle_since, limit)
        )

    # -- participants -------------------------------------------------------------------
    async def add_participant(
        self, room_id: UUID, user_id: UUID, user_name: str, role: Role, now: datetime
    ) -> tuple[Participant, bool]:
        return await self._timed(
            "add_participant", self.inner.add_participant(room_id, user_id, user_name, role, now)
        )

    async def get_participant(self, room_id: UUID, user_id: UUID) -> Participant | None:
        return await self._timed("get_participant", self.inner.get_participant(room_id, user_id))

    async def list_participants(
        self, room_id: UUID, connected_only: bool = False
    ) -> list[Participant]:
        return await self._timed(
            "list_participants", self.inner.list_participants(room_id, connected_only)
        )

    async def update_participant(
        self,
        room_id: UUID,
        user_id: UUID,
        *,
        role: Role | None = None,
        is_connected: bool | None = None,
        last_seen_at: datetime | None = None,
    ) -> bool:
        return await self._timed(
            "update_participant",
            self.inner.update_participant(
                room_id,
                user_id,
                role=role,
                is_connected=is_connected,
                last_seen_at=last_seen_at,
            ),
        )

    async def remove_participant(self, room_id: UUID, user_id: UUID) -> bool:
        return await self._timed(
            "remove_participant", self.inner.remove_participant(room_id, user_id)
        )

    # -- chat ---------------------------------------------------------------------------
    async def create_chat_message(self, message: ChatMessage) -> ChatMessage:
        return await self._timed("create_chat_message", self.inner.create_chat_message(message))

    async def list_chat_messages(
        self, room_id: UUID, limit: int, offset: int
    ) -> tuple[list[ChatMessage], int]:
        return await self._timed(
            "list_chat_messages", self.inner.list_chat_messages(room_id, limit, offset)
        )

    async def delete_chat_message(self, message_id: UUID) -> bool:
        return await self._timed("delete_chat_message", self.inner.delete_chat_message(message_id))

    # -- events -------------------------------------------------------------------------
    async def log_events(self, events: Sequence[NewEvent]) -> None:
        await self._timed("log_events", self.inner.log_events(events))

    async def list_events(self, room_id: UUID, limit: int, offset: int) -> tuple[list[Event], int]:
        return await self._timed("list_events", self.inner.list_events(room_id, limit, offset))

    # -- invitations --------------------------------------------------------------------
    async def create_invitation(self, invitation: Invitation) -> Invitation:
        return await self._timed("create_invitation", self.inner.create_invitation(invitation))

    async def get_invitation(self, code: str) -> Invitation | None:
        return await self._timed("get_invitation", self.inner.get_invitation(code))

    async def consume_invitation(self, code: str, now: datetime) -> Invitation | None:
        return await self._timed("consume_invitation", self.inner.consume_invitation(code, now))

    async def release_invitation(self, code: str) -> None:
        await self._timed("release_invitation", self.inner.release_invitation(code))

    async def delete_invitation(self, invitation_id: UUID) -> bool:
        return await self._timed("delete_invitation", self.inner.delete_invitation(invitation_id))

    async def purge_expired_invitations(self, expired_before: datetime) -> int:
        return await self._timed(
            "purge_expired_invitations", self.inner.purge_expired_invitations(expired_before)
        )


if TYPE_CHECKING:
    # mypy proves here that TimedRepository satisfies the protocol structurally; without
    # this line a mismatch would only show where a TimedRepository is passed as one.
    _conforms: type[Repository] = TimedRepository
