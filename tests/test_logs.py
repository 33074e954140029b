"""Logging: text and JSON output, context fields, redaction, and idempotent setup."""

from __future__ import annotations

import io
import json
import logging
import re
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import trio

from syncplayd import logs
from syncplayd.logs import (
    MASK,
    RedactingFilter,
    configure_logging,
    current_log_context,
    log_context,
    redact,
    register_secret,
)

_TOUCHED_LOGGERS = ("hypercorn.access", "hypercorn.error", "psycopg.pool", "syncplayd.test")

JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
    ".eyJzdWIiOiI0ZjFjMmI2NC0wMDAwLTQwMDAtODAwMC0wMDAwMDAwMDAwMDEiLCJleHAiOjE5MDAwMDAwMDB9"
    ".K1n9GqVb3yq0pL7mX8s2dQ4wE6rT1uY5iO0pA3sD9fG"
)


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """Put the root logger and the loggers configure_logging touches back as they were."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    levels = {name: logging.getLogger(name).level for name in _TOUCHED_LOGGERS}
    secrets = set(logs._secrets)
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    for handler in handlers:
        if handler not in root.handlers:
            root.addHandler(handler)
    root.setLevel(level)
    for name, old in levels.items():
        logging.getLogger(name).setLevel(old)
    logs._secrets.clear()
    logs._secrets.update(secrets)


class TtyStringIO(io.StringIO):
    """A StringIO that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def json_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def our_handlers() -> list[logging.Handler]:
    return [h for h in logging.getLogger().handlers if isinstance(h, logs._Handler)]


log = logging.getLogger("syncplayd.test")


# -- formats ---------------------------------------------------------------------------------


def test_json_lines_carry_the_documented_keys() -> None:
    out = io.StringIO()
    configure_logging("info", "json", stream=out)
    log.info("room %s started", "r1")
    log.debug("not shown at info")
    log.warning("multi\nline")

    first, second = json_lines(out)
    assert set(first) == {"ts", "level", "logger", "message"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first["ts"])
    assert first["level"] == "info"
    assert first["logger"] == "syncplayd.test"
    assert first["message"] == "room r1 started"
    assert second["level"] == "warning"
    assert second["message"] == "multi\nline"  # escaped inside one line


def test_json_exception_goes_into_exc() -> None:
    out = io.StringIO()
    configure_logging("info", "json", stream=out)
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        log.exception("it failed")
    (entry,) = json_lines(out)
    assert entry["message"] == "it failed"
    assert entry["level"] == "error"
    assert "Traceback" in entry["exc"]
    assert "RuntimeError: boom" in entry["exc"]


def test_text_format_and_context_suffix() -> None:
    out = io.StringIO()
    configure_logging("info", "text", stream=out)
    log.info("plain")
    with log_context(room_id="r-1", user_id="u-1"):
        log.warning("in a room")
    log.error("refused", extra={"code": "room-full"})

    plain, in_room, refused = out.getvalue().splitlines()
    timestamp = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}"
    assert re.fullmatch(rf"{timestamp} INFO syncplayd\.test: plain", plain)
    assert re.fullmatch(
        rf"{timestamp} WARNING syncplayd\.test: in a room room=r-1 user=u-1", in_room
    )
    assert refused.endswith("ERROR syncplayd.test: refused code=room-full")


def test_text_context_comes_before_the_traceback() -> None:
    out = io.StringIO()
    configure_logging("info", "text", stream=out)
    with log_context(room_id="r-9"):
        try:
            raise ValueError("bad")
        except ValueError:
            log.exception("crashed")
    first, *rest = out.getvalue().splitlines()
    assert first.endswith("crashed room=r-9")
    assert rest[0].startswith("Traceback")
    assert rest[-1] == "ValueError: bad"


@pytest.mark.parametrize(
    ("stream", "is_json"), [(io.StringIO(), True), (TtyStringIO(), False)], ids=["pipe", "tty"]
)
def test_auto_is_text_on_a_terminal_and_json_elsewhere(stream: io.StringIO, is_json: bool) -> None:
    configure_logging("info", "auto", stream=stream)
    log.info("hello")
    line = stream.getvalue().strip()
    assert line.startswith("{") is is_json
    if is_json:
        assert json.loads(line)["message"] == "hello"
    else:
        assert line.endswith("INFO syncplayd.test: hello")


def test_default_stream_is_stderr_at_call_time(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("info", "json")
    log.info("to stderr")
    assert json.loads(capsys.readouterr().err.strip().splitlines()[-1])["message"] == "to stderr"


def test_unknown_level_or_format_is_refused() -> None:
    with pytest.raises(ValueError, match="log level"):
        configure_logging("loud", "text", stream=io.StringIO())
    with pytest.raises(ValueError, match="log format"):
        configure_logging("info", "xml", stream=io.StringIO())  # type: ignore[arg-type]


# -- setup -----------------------------------------------------------------------------------


def test_configure_twice_keeps_one_handler() -> None:
    before = len(logging.getLogger().handlers)
    first, second = io.StringIO(), io.StringIO()
    configure_logging("info", "json", stream=first)
    configure_logging("debug", "text", stream=second)
    assert len(our_handlers()) == 1
    assert len(logging.getLogger().handlers) == before + 1
    log.debug("once")
    assert first.getvalue() == ""
    assert second.getvalue().count("once") == 1
    assert logging.getLogger().level == logging.DEBUG


def test_noisy_loggers_are_quieted_unless_debug() -> None:
    out = io.StringIO()
    configure_logging("info", "json", stream=out)
    logging.getLogger("hypercorn.access").critical("GET / 200")
    logging.getLogger("hypercorn.error").info("Running on http://...")
    logging.getLogger("hypercorn.error").warning("worker trouble")
    assert [e["message"] for e in json_lines(out)] == ["worker trouble"]

    out = io.StringIO()
    configure_logging("debug", "json", stream=out)
    logging.getLogger("hypercorn.access").critical("GET / 200")
    logging.getLogger("hypercorn.error").info("Running on http://...")
    assert [e["message"] for e in json_lines(out)] == ["Running on http://..."]


# -- context ---------------------------------------------------------------------------------


def test_context_fields_in_json_nest_and_reset() -> None:
    out = io.StringIO()
    configure_logging("info", "json", stream=out)
    room, user = uuid.uuid4(), uuid.uuid4()
    with log_context(room_id=room):
        log.info("room only")
        with log_context(user_id=user, session_id="s-1"):
            log.info("all three")
            assert current_log_context() == {
                "room_id": str(room),
                "user_id": str(user),
                "session_id": "s-1",
            }
        log.info("room again")
    log.info("none")
    log.info("explicit", extra={"room_id": "other-room", "code": "bad-message"})

    room_only, all_three, room_again, none, explicit = json_lines(out)
    assert room_only["room_id"] == str(room) and "user_id" not in room_only
    assert all_three["room_id"] == str(room)
    assert all_three["user_id"] == str(user)
    assert all_three["session_id"] == "s-1"
    assert "user_id" not in room_again and room_again["room_id"] == str(room)
    assert not {"room_id", "user_id", "session_id", "code"} & set(none)
    assert explicit["room_id"] == "other-room"
    assert explicit["code"] == "bad-message"
    assert current_log_context() == {}


async def test_trio_tasks_inherit_the_context_of_their_spawner() -> None:
    out = io.StringIO()
    configure_logging("info", "json", stream=out)

    async def child(done: trio.Event) -> None:
        log.info("child before")
        with log_context(session_id="s-child"):
            log.info("child inside")
        done.set()

    async def sibling() -> None:
        log.info("sibling")

    done = trio.Event()
    async with trio.open_nursery() as nursery:
        with log_context(room_id="r-live"):
            nursery.start_soon(child, done)
        # Started outside the block: no room.
        nursery.start_soon(sibling)
        await done.wait()
        log.info("parent")

    by_message = {e["message"]: e for e in json_lines(out)}
    assert by_message["child before"]["room_id"] == "r-live"
    assert by_message["child inside"]["room_id"] == "r-live"
    assert by_message["child inside"]["session_id"] == "s-child"
    assert "room_id" not in by_message["sibling"]
    assert "room_id" not in by_message["parent"]
    assert "session_id" not in by_message["parent"]


async def test_worker_threads_inherit_the_context() -> None:
    out = io.StringIO()
    configure_logging("info", "json", stream=out)
    with log_context(room_id="r-thread"):
        await trio.to_thread.run_sync(lambda: log.info("from %s", threading.current_thread().name))
    (entry,) = json_lines(out)
    assert entry["room_id"] == "r-thread"


# -- redaction -------------------------------------------------------------------------------

# (text holding a secret, the secret, what must still be there after masking)
SECRETS = [
    pytest.param(f"token {JWT} rejected", JWT, "token *** rejected", id="jwt"),
    pytest.param(f"Bearer {JWT}", JWT, "Bearer ***", id="bearer-jwt"),
    pytest.param(
        "auth Bearer opaque-admin-token_123", "opaque-admin-token_123", "Bearer ***", id="bearer"
    ),
    pytest.param(
        "Authorization: Basic dXNlcjpodW50ZXIy",
        "dXNlcjpodW50ZXIy",
        "Authorization: ***",
        id="header",
    ),
    pytest.param(
        "headers {'host': 'x', 'authorization': 'Bearer abc.def'}",
        "abc.def",
        "'authorization': '***'",
        id="header-dict",
    ),
    pytest.param(
        "scope headers [(b'authorization', b'Bearer s3cr3t-value')]",
        "s3cr3t-value",
        "(b'authorization', b'***')",
        id="header-asgi",
    ),
    pytest.param(
        "GET /ws?room=1&token=q-token-123&x=2",
        "q-token-123",
        "?room=1&token=***&x=2",
        id="query-token",
    ),
    pytest.param(
        "GET /cb?access_token=at-987654", "at-987654", "access_token=***", id="access-token"
    ),
    pytest.param(
        "login password=hunter2 user=bob", "hunter2", "password=*** user=bob", id="password-pair"
    ),
    pytest.param(
        "host=db password='sec ret' user=x", "sec ret", "password='***' user=x", id="conninfo"
    ),
    pytest.param(
        '{"type":"hello","token":"plain-token-value"}',
        "plain-token-value",
        '"token":"***"',
        id="json-token",
    ),
    pytest.param("{'password': 'hunter2'}", "hunter2", "{'password': '***'}", id="dict-password"),
    pytest.param(
        "jwt_secret: 0123456789abcdef", "0123456789abcdef", "jwt_secret: ***", id="yaml-secret"
    ),
    pytest.param(
        "cannot connect to postgresql://syncplayd:s3cr3t@db.local:5432/syncplayd",
        "s3cr3t",
        "postgresql://syncplayd:***@db.local:5432/syncplayd",
        id="postgres-url",
    ),
    pytest.param(
        "url postgres://u:p@ss@db/x", "p@ss", "postgres://u:***@db/x", id="postgres-url-at"
    ),
    pytest.param(
        "postgresql://u:pw1234@h/db?sslpassword=keypass1",
        "keypass1",
        "sslpassword=***",
        id="url-query",
    ),
]


@pytest.mark.parametrize(("text", "secret", "expected"), SECRETS)
def test_redact(text: str, secret: str, expected: str) -> None:
    masked = redact(text)
    assert secret not in masked
    assert expected in masked
    assert redact(masked) == masked  # idempotent


@pytest.mark.parametrize(
    "text",
    [
        "invalid token: Signature has expired",
        "a bearer token is required",
        "Bearer authentication failed.",
        "authorization failed for user 42",
        "wrong or missing room password",
        "room 3f6c ended; 3 members left",
        "syncplayd.server.live.live_room crashed",
        "listening on http://127.0.0.1:8750 and http://[::1]:8750/path",
        "sqlite:////var/lib/syncplayd/syncplayd.sqlite3",
        "user@example.com wrote 5 messages",
    ],
)
def test_redact_leaves_ordinary_text_alone(text: str) -> None:
    assert redact(text) == text


@pytest.mark.parametrize("fmt", ["json", "text"])
@pytest.mark.parametrize(("text", "secret", "expected"), SECRETS)
def test_no_secret_reaches_a_log_line(
    fmt: logs.LogFormat, text: str, secret: str, expected: str
) -> None:
    out = io.StringIO()
    configure_logging("info", fmt, stream=out)
    log.info(text)  # in the message
    log.info("got %s", text)  # in an argument
    log.info("got %(value)s", {"value": text})  # in a mapping argument
    log.info("extra", extra={"code": text})  # in an extra field
    try:
        raise ValueError(text)
    except ValueError:
        log.exception("failed")  # in the exception text
    output = out.getvalue()
    assert secret not in output
    assert output.count(MASK) >= 5


def test_secret_in_an_arguments_repr_is_masked() -> None:
    class Request:
        def __repr__(self) -> str:
            return f"<Request headers={{'Authorization': 'Bearer {JWT}'}}>"

    out = io.StringIO()
    configure_logging("info", "json", stream=out)
    log.info("handling %r", Request())
    (entry,) = json_lines(out)
    assert JWT not in entry["message"]
    assert entry["message"].startswith("handling <Request headers={'Authorization': '***'")


def test_registered_secrets_are_masked_anywhere() -> None:
    secret = "Zq8-raw-jwt-secret-without-any-marker"
    register_secret(secret)
    register_secret("abc")  # too short to mask safely: ignored
    register_secret(None)
    out = io.StringIO()
    configure_logging("info", "text", stream=out)
    log.info("the secret is %s", secret)
    log.info("abc stays")
    assert secret not in out.getvalue()
    assert "the secret is ***" in out.getvalue()
    assert "abc stays" in out.getvalue()


def test_filter_rewrites_the_record_for_every_handler() -> None:
    record = logging.LogRecord(
        "x", logging.INFO, __file__, 1, "login %s with %s", ("bob", "password=hunter2"), None
    )
    assert RedactingFilter().filter(record)
    assert record.getMessage() == "login bob with password=***"
    assert record.args == ()


def test_bad_format_arguments_are_redacted_too() -> None:
    # The message cannot be formatted, so logging prints msg and args itself: redact them.
    record = logging.LogRecord(
        "x", logging.INFO, __file__, 1, "token=abc123 %d", (f"Bearer {JWT}", 5), None
    )
    RedactingFilter().filter(record)
    assert record.msg == "token=*** %d"
    assert record.args == ("Bearer ***", 5)
