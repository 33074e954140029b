"""Metrics: exposition, bounded labels, histograms, and timing the repository."""

from __future__ import annotations

import re
import typing
import uuid
from datetime import UTC, datetime

import pytest

from syncplayd import __version__
from syncplayd.core import protocol
from syncplayd.core.error_codes import ERROR_FRAME_CODES, PROBLEM_CODES, UPGRADE_REFUSAL_CODES
from syncplayd.server.metric_labels import (
    CLIENT_MESSAGE_TYPES,
    ERROR_CODES,
    OTHER,
    REPOSITORY_OPERATIONS,
    SERVER_MESSAGE_TYPES,
    frame_type,
    message_type,
)
from syncplayd.server.metrics import FANOUT_BUCKETS, METRIC_NAMES, Metrics
from syncplayd.storage import MemoryRepository, NewRoom, Repository, TimedRepository
from syncplayd.storage.records import Role
from syncplayd.storage.timed import OPERATIONS


def value(metrics: Metrics, name: str, **labels: str) -> float:
    """A sample's value; 0 for a series that does not exist (yet)."""
    found = metrics.registry.get_sample_value(name, labels)
    return 0.0 if found is None else found


# -- exposition ------------------------------------------------------------------------------


def test_render_exposes_every_metric() -> None:
    metrics = Metrics(version="1.2.3", start_time=1_700_000_000.0)
    body, content_type = metrics.render()
    text = body.decode()
    assert content_type.startswith("text/plain")
    for name in METRIC_NAMES:
        assert re.search(rf"^# TYPE {name} (counter|gauge|histogram)$", text, re.MULTILINE), name
    assert 'syncplayd_build_info{version="1.2.3"} 1.0' in text
    assert "syncplayd_start_time_seconds 1.7e+09" in text
    assert "process_resident_memory_bytes" in text  # runtime collectors


def test_render_speaks_openmetrics_when_asked() -> None:
    body, content_type = Metrics().render("application/openmetrics-text; version=1.0.0")
    assert content_type.startswith("application/openmetrics-text")
    assert body.rstrip().endswith(b"# EOF")


def test_defaults_and_separate_registries() -> None:
    first, second = Metrics(runtime_collectors=False), Metrics(runtime_collectors=False)
    first.message_in("play")
    assert value(first, "syncplayd_messages_in_total", type="play") == 1
    assert value(second, "syncplayd_messages_in_total", type="play") == 0
    assert value(first, "syncplayd_build_info", version=__version__) == 1
    assert "process_" not in first.render()[0].decode()


# -- live gauges -------------------------------------------------------------------------------


def test_live_gauges_from_values_or_callbacks() -> None:
    metrics = Metrics()
    assert value(metrics, "syncplayd_live_rooms") == 0
    metrics.set_live(rooms=3, connections=7)
    assert value(metrics, "syncplayd_live_rooms") == 3
    assert value(metrics, "syncplayd_connections") == 7

    counts = {"rooms": 1, "connections": 2}
    metrics.track_live(lambda: counts["rooms"], lambda: counts["connections"])
    counts.update(rooms=5, connections=9)
    assert value(metrics, "syncplayd_live_rooms") == 5  # read at scrape time
    assert value(metrics, "syncplayd_connections") == 9

    metrics.set_live(rooms=0, connections=0)  # the last one given wins
    assert value(metrics, "syncplayd_live_rooms") == 0


# -- messages and label bounds -------------------------------------------------------------------


def test_message_type_sets_follow_the_protocol() -> None:
    assert CLIENT_MESSAGE_TYPES == protocol.CLIENT_TYPES
    tags = {str(cls.__struct_config__.tag) for cls in typing.get_args(protocol.ServerMessage)}
    assert tags == SERVER_MESSAGE_TYPES
    assert {"joined", "playback", "sync", "chat", "error", "closing"} <= SERVER_MESSAGE_TYPES


def test_messages_counted_by_type_with_unknown_as_other() -> None:
    metrics = Metrics()
    metrics.message_in("heartbeat")
    metrics.message_in("heartbeat")
    metrics.message_in("no-such-type")
    metrics.message_in("x" * 500)
    metrics.message_out("playback", count=4)
    metrics.message_out("pong")
    metrics.message_out("hello")  # a client type is not a server type
    metrics.message_out("playback", count=0)

    assert value(metrics, "syncplayd_messages_in_total", type="heartbeat") == 2
    assert value(metrics, "syncplayd_messages_in_total", type=OTHER) == 2
    assert value(metrics, "syncplayd_messages_out_total", type="playback") == 4
    assert value(metrics, "syncplayd_messages_out_total", type="pong") == 1
    assert value(metrics, "syncplayd_messages_out_total", type=OTHER) == 1
    text = metrics.render()[0].decode()
    assert "no-such-type" not in text and "xxxx" not in text


def test_every_known_series_exists_from_the_start() -> None:
    text = Metrics().render()[0].decode()
    for kind in CLIENT_MESSAGE_TYPES:
        assert f'syncplayd_messages_in_total{{type="{kind}"}} 0.0' in text
    for kind in SERVER_MESSAGE_TYPES:
        assert f'syncplayd_messages_out_total{{type="{kind}"}} 0.0' in text
    assert 'syncplayd_errors_total{code="room-full"} 0.0' in text


def test_label_cardinality_is_bounded() -> None:
    metrics = Metrics()
    for i in range(200):
        metrics.message_in(f"type-{i}")
        metrics.message_out(f"type-{i}")
        metrics.error(f"code-{i}")
        metrics.http_request(f"M{i}", 200)
        metrics.observe_db(f"op_{i}", 0.001)
    families = {family.name: family for family in metrics.registry.collect()}
    series = {
        name: {tuple(sorted(s.labels.items())) for s in families[name].samples}
        for name in ("syncplayd_messages_in", "syncplayd_messages_out", "syncplayd_errors")
    }
    assert len(series["syncplayd_messages_in"]) <= 2 * (len(CLIENT_MESSAGE_TYPES) + 1)
    assert len(series["syncplayd_messages_out"]) <= 2 * (len(SERVER_MESSAGE_TYPES) + 1)
    assert len(series["syncplayd_errors"]) <= 2 * (len(ERROR_CODES) + 1)
    assert value(metrics, "syncplayd_errors_total", code=OTHER) == 200
    assert value(metrics, "syncplayd_http_requests_total", method=OTHER, status="200") == 200
    assert value(metrics, "syncplayd_database_seconds_count", operation=OTHER) == 200


def test_message_type_helpers() -> None:
    assert message_type(protocol.Play(position=1.0)) == "play"
    assert (
        message_type(
            protocol.decode_client(
                '{"type":"heartbeat","position":1,"server_time":2,"version":0,"playing":true}'
            )
        )
        == "heartbeat"
    )
    assert (
        frame_type(protocol.encode(protocol.ChatAck(client_id=None, message_id="m"))) == "chat_ack"
    )
    assert frame_type(protocol.encode(protocol.ErrorOut(code="x", message="y"))) == "error"
    assert frame_type('{"t":1}') == OTHER
    assert frame_type('{"type":"unterminated') == OTHER


# -- errors and HTTP -----------------------------------------------------------------------------


def test_errors_by_code() -> None:
    metrics = Metrics()
    metrics.error("room-full")
    metrics.error("rate-limited")
    metrics.error("rate-limited")
    metrics.error("too-slow")  # a closing reason
    metrics.error("Room-Full")  # codes are exact
    assert value(metrics, "syncplayd_errors_total", code="room-full") == 1
    assert value(metrics, "syncplayd_errors_total", code="rate-limited") == 2
    assert value(metrics, "syncplayd_errors_total", code="too-slow") == 1
    assert value(metrics, "syncplayd_errors_total", code=OTHER) == 1


def test_error_codes_are_the_declared_ones() -> None:
    # The declared sets are checked against the OpenAPI contract and docs/protocol.md in
    # tests/core/test_error_codes.py; here: every one of them is a label, and nothing else.
    closing_reasons = frozenset(typing.get_args(protocol.CloseReason))
    declared = PROBLEM_CODES | ERROR_FRAME_CODES | UPGRADE_REFUSAL_CODES | closing_reasons
    assert declared == ERROR_CODES
    assert OTHER not in ERROR_CODES


def test_http_requests_by_method_and_status() -> None:
    metrics = Metrics()
    metrics.http_request("get", 200)
    metrics.http_request("GET", 200)
    metrics.http_request("POST", 422)
    metrics.http_request("PROPFIND", 405)
    metrics.http_request("GET", 1234)
    assert value(metrics, "syncplayd_http_requests_total", method="GET", status="200") == 2
    assert value(metrics, "syncplayd_http_requests_total", method="POST", status="422") == 1
    assert value(metrics, "syncplayd_http_requests_total", method=OTHER, status="405") == 1
    assert value(metrics, "syncplayd_http_requests_total", method="GET", status=OTHER) == 1


# -- histograms ------------------------------------------------------------------------------------


def test_fanout_histogram() -> None:
    metrics = Metrics()
    assert FANOUT_BUCKETS[0] == 0.0001 and FANOUT_BUCKETS[-1] == 1.0
    for seconds in (0.00005, 0.0003, 0.002, 2.0):
        metrics.observe_fanout(seconds)
    name = "syncplayd_fanout_seconds"
    assert value(metrics, f"{name}_count") == 4
    assert value(metrics, f"{name}_sum") == pytest.approx(2.00235)
    assert value(metrics, f"{name}_bucket", le="0.0001") == 1
    assert value(metrics, f"{name}_bucket", le="0.0005") == 2
    assert value(metrics, f"{name}_bucket", le="1.0") == 3
    assert value(metrics, f"{name}_bucket", le="+Inf") == 4


def test_sync_offset_histogram_uses_absolute_values() -> None:
    metrics = Metrics()
    metrics.sync_offset(-0.02)
    metrics.sync_offset(0.3)
    metrics.sync_offset(-3.0)
    metrics.sync_offset(float("nan"))  # ignored: it would poison the sum
    name = "syncplayd_sync_offset_seconds"
    assert value(metrics, f"{name}_count") == 3
    assert value(metrics, f"{name}_sum") == pytest.approx(3.32)
    assert value(metrics, f"{name}_bucket", le="0.025") == 1
    assert value(metrics, f"{name}_bucket", le="0.5") == 2
    assert value(metrics, f"{name}_bucket", le="2.0") == 2


def test_database_histogram_by_operation() -> None:
    metrics = Metrics()
    metrics.observe_db("get_room", 0.002)
    metrics.observe_db("get_room", 0.004)
    metrics.observe_db("log_events", 0.5)
    name = "syncplayd_database_seconds"
    assert value(metrics, f"{name}_count", operation="get_room") == 2
    assert value(metrics, f"{name}_sum", operation="get_room") == pytest.approx(0.006)
    assert value(metrics, f"{name}_bucket", operation="log_events", le="0.25") == 0
    assert value(metrics, f"{name}_bucket", operation="log_events", le="0.5") == 1


# -- the timed repository --------------------------------------------------------------------------


def test_operations_are_what_the_timed_repository_reports() -> None:
    assert REPOSITORY_OPERATIONS == OPERATIONS


def new_room(owner: uuid.UUID) -> NewRoom:
    return NewRoom(
        id=uuid.uuid4(),
        name="Film night",
        owner_id=owner,
        owner_name="Ann",
        content_type="movie",
        content_id="m-1",
        is_public=True,
        password_hash=None,
        max_participants=5,
        created_at=datetime.now(UTC),
    )


async def test_metrics_time_the_repository() -> None:
    # The wrapper itself is tested in tests/storage/test_timed.py; here, Metrics as its observer.
    metrics = Metrics()
    repo: Repository = TimedRepository(MemoryRepository(), metrics)
    room = await repo.create_room(new_room(uuid.uuid4()))
    await repo.get_room(room.id)
    await repo.get_room(uuid.uuid4())
    await repo.add_participant(room.id, uuid.uuid4(), "Bo", Role.MEMBER, datetime.now(UTC))
    await repo.ping()

    count = "syncplayd_database_seconds_count"
    assert value(metrics, count, operation="create_room") == 1
    assert value(metrics, count, operation="get_room") == 2
    assert value(metrics, count, operation="add_participant") == 1
    assert value(metrics, count, operation="ping") == 1
    assert value(metrics, "syncplayd_database_seconds_sum", operation="get_room") > 0
