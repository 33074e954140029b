"""Prometheus metrics: one registry per daemon.

:class:`Metrics` owns its own :class:`~prometheus_client.CollectorRegistry` instead of the
process-wide default one, so several apps in one process (the test suite starts many) never
collide over metric names, and a test reads exactly the numbers its own app produced.

Labels take only the values :mod:`syncplayd.server.metric_labels` declares (anything else is
counted as ``other``). :class:`Metrics` is also the
:class:`~syncplayd.storage.timed.RepositoryObserver` of the daemon's timed repository.

The recording methods are cheap and never block (counters are a lock and an add), so the
room can call them in its hot path; call :meth:`Metrics.render` from the trio thread, since
the live-room gauges may read the supervisor's state while rendering.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

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
from syncplayd.server.metric_labels import (
    CLIENT_MESSAGE_TYPES,
    ERROR_CODES,
    HTTP_METHODS,
    OTHER,
    REPOSITORY_OPERATIONS,
    SERVER_MESSAGE_TYPES,
    bounded,
)

if TYPE_CHECKING:
    from syncplayd.storage.timed import RepositoryObserver

__all__ = [
    "DATABASE_BUCKETS",
    "FANOUT_BUCKETS",
    "METRIC_NAMES",
    "SYNC_OFFSET_BUCKETS",
    "Metrics",
]

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
        # ...and then kept, keyed by the bounded label: labels() takes a lock every time.
        self._database_children: dict[str, Histogram] = {}
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
        label = bounded(operation, REPOSITORY_OPERATIONS)
        child = self._database_children.get(label)
        if child is None:
            child = self._database_children[label] = self._database.labels(operation=label)
        child.observe(seconds)

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
        self._http.labels(method=bounded(method.upper(), HTTP_METHODS), status=code).inc()

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


if TYPE_CHECKING:
    # The daemon hands Metrics to TimedRepository: mypy proves here that it fits.
    _observes: type[RepositoryObserver] = Metrics
