"""Hostile frames against the WebSocket endpoint of a daemon process.

Hypothesis starts from a valid message of every client type of docs/protocol.md and
mutates it: fields dropped or added, wrong types, 1e308, -0.0, integers beyond 2**63,
NaN/Infinity literals, 10,000 nested arrays, long strings, unknown types, non-objects,
truncated JSON, frames just above 16 KiB and above ``server.max_request_bytes``, binary
frames. Each example sends its frames on a fresh socket in one of the three states
(``CONNECTED``, ``AUTHENTICATED``, ``IN_ROOM``) and, after every frame, a sentinel
``ping``: frames are handled in order, so everything the daemon answers to a frame
arrives before the sentinel's ``pong``, and no test waits on a clock for silence.

The oracle, per frame (docs/protocol.md §1.2, §4.9, §4.10, §4.12):

* a binary frame, a frame over 16 KiB, and any frame the codec refuses get an
  ``error`` with the documented code; a frame that is not JSON (Python's own parser
  decides, NaN and Infinity included) is always ``bad-json``;
* a frame over ``max_request_bytes`` closes the socket with 1009;
* a well-formed message gets its documented answer (``pong``, ``welcome``, ``joined``,
  ``chat_ack``, an ``error`` or a reasoned close); playback commands and heartbeats may
  go unanswered but are never refused;
* every close is a documented one (``closing`` first, then its code; never 1011).

After every example a member of another room must get a pong within a second and see
the playback change its partner makes; at the end the daemon's RSS must not have grown
by more than 50 MiB, and its log must hold no traceback. Floods beyond the rate limit
and invalid UTF-8 (which the client library cannot send) have their own tests.
"""

from __future__ import annotations

import gc
import json
import os
import struct
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import trio
import trio.testing
from hypercorn.protocol.ws_stream import WSStream
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from trio_websocket import ConnectionClosed, open_websocket_url
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, CloseConnection, Request, TextMessage

from syncplayd.config import load_settings
from syncplayd.core import protocol
from syncplayd.identity import Principal
from syncplayd.server.process import daemon
from tests.daemon_process import SECRET, DaemonProcess, new_user, run_daemon
from tests.e2e.raw import Raw, create_room, raw_client, token

MAX_REQUEST_BYTES = 65_536  # the default of server.max_request_bytes
EXAMPLES = 1000
ANSWER_TIMEOUT = 10.0  # generous for a loaded 2-core machine; a hang fails, never passes
RSS_BUDGET_KIB = 50 * 1024

# Documented closes (§4.10), plus the WebSocket layer's own for an oversized frame (§4.12).
CLOSE_CODES = {
    "left": 1000,
    "protocol-error": 1008,
    "server-restarting": 1012,
    "room-ended": 4001,
    "kicked": 4002,
    "replaced": 4003,
    "too-slow": 4004,
    "idle-timeout": 4005,
    "too-many-connections": 4006,
    "moved": 4008,
    "unauthorized": 4401,
}
SILENT_TYPES = (
    protocol.Heartbeat,
    protocol.Play,
    protocol.Pause,
    protocol.Seek,
    protocol.SetRate,
    protocol.Buffering,
    protocol.Ready,
)


def _daemon(
    tmp_path_factory: pytest.TempPathFactory, env: dict[str, str]
) -> Iterator[DaemonProcess]:
    # SQLite only: the database sees little of this traffic (joins, chat), and the
    # schemathesis run covers both backends for everything that writes.
    folder = tmp_path_factory.mktemp("ws-fuzz")
    url = f"sqlite:///{folder / 'syncplayd.sqlite3'}"
    with run_daemon(url, folder / "state", env) as process:
        yield process
        log = "\n".join(process.log_lines)
        assert process.process.poll() is None, "the daemon died:\n" + log[-5000:]
        assert "Traceback" not in log, log


@pytest.fixture(scope="module")
def ws_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    # The bystanders are checked after every example, faster than the default 20
    # frames/s allow; each fuzzed socket is a new session with a fresh budget anyway.
    # The fuzz users join hundreds of times a minute, past the per-user join pacing.
    env = {"SYNCPLAY_WS_MAX_MESSAGES_PER_SECOND": "1000", "SYNCPLAY_WS_JOINS_PER_MINUTE": "10000"}
    yield from _daemon(tmp_path_factory, env)


@pytest.fixture(scope="module")
def default_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    """Default limits (20 frames/s, bursts of 40), for the flood."""
    yield from _daemon(tmp_path_factory, {})


def rss_kib(daemon: DaemonProcess) -> int:
    status = Path(f"/proc/{daemon.process.pid}/status").read_text()
    line = next(line for line in status.splitlines() if line.startswith("VmRSS:"))
    return int(line.split()[1])


# -- frames -------------------------------------------------------------------------------
ROOM = "<room>"  # replaced by the fuzzed room's id when a frame is built
TOKEN = "<token>"  # replaced by a valid token of the connection's user

BASES: list[dict[str, Any]] = [
    {"type": "hello", "protocol": 1, "token": TOKEN, "client": "web-player/2.3.0"},
    {"type": "hello", "protocol": 1},
    {"type": "join", "room_id": ROOM},
    {"type": "join", "room_id": ROOM, "password": "popcorn", "resume": "pX7aK1mD9sQ4uR6b"},
    {"type": "join", "room_id": ROOM, "invitation_code": "ABCD-2345"},
    {"type": "ping", "id": 1, "t0": 48213.079},
    {"type": "play"},
    {"type": "play", "position": 12.5},
    {"type": "pause", "position": 802.517},
    {"type": "seek", "position": 1200.0},
    {"type": "rate", "rate": 1.25},
    {"type": "buffering", "position": 21.43},
    {"type": "ready", "position": 21.538},
    {
        "type": "heartbeat",
        "position": 1.156,
        "server_time": 1795634411.206,
        "version": 1,
        "playing": True,
        "rtt": 0.118,
    },
    {"type": "chat", "message": "Popcorn ready?", "client_id": "c-7f3a9b21d4e8c605"},
    {"type": "leave"},
]
FIELDS = sorted({key for base in BASES for key in base} | {"zzz", "Type", ""})


@dataclass(frozen=True)
class RawJson:
    """JSON text put into a frame as it is: what json.dumps will not write."""

    text: str

    def __repr__(self) -> str:
        return f"RawJson({self.text[:24]!r}{'...' if len(self.text) > 24 else ''})"


# 10,000 levels are 20 KB (too large for a frame); 8,000 fit in 16 KiB with the rest.
DEEP = RawJson("[" * 10_000 + "]" * 10_000)
DEEP_FITS = RawJson("[" * 8_000 + "]" * 8_000)
HOSTILE: list[object] = [
    None, True, False, "", [], {}, -0.0, 0.0, 1e308, -1e308, 5e-324, 2**53, 2**53 + 1, 2**63,
    2**64 + 1, -(2**63) - 1, 10**30, -1, 1.0, "1", "ping", "\u0000", "\ud7ff", RawJson("NaN"),
    RawJson("Infinity"), RawJson("-Infinity"), RawJson("1e400"), RawJson("-1e400"),
    RawJson("1" * 400), DEEP, DEEP_FITS, RawJson('{"a":' * 200 + "1" + "}" * 200),
]  # fmt: skip
hostile_values = st.one_of(
    st.sampled_from(HOSTILE),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
    st.integers(min_value=100, max_value=12_000).map(lambda n: "é" * n),
    st.lists(st.integers(), max_size=3),
)

mutations = st.one_of(
    st.tuples(st.just("drop"), st.sampled_from(FIELDS)),
    st.tuples(st.just("set"), st.sampled_from(FIELDS), hostile_values),
    st.tuples(st.just("first"), st.sampled_from(["zzz", "type"]), hostile_values),
    st.tuples(
        st.just("type"),
        st.sampled_from(["Ping", "PING", "welcome", "pong", "error", "unknown", "", "hello "]),
    ),
    st.tuples(st.just("truncate"), st.integers(min_value=0, max_value=60)),
    st.tuples(st.just("wrap"), st.sampled_from(["array", "string", "number", "null"])),
    st.tuples(
        st.just("pad"),
        st.sampled_from([16_000, 16_384, 16_385, 16_500, MAX_REQUEST_BYTES + 1, 80_000]),
    ),
    st.tuples(st.just("binary")),
    st.tuples(st.just("text"), st.text(max_size=60)),
)


@dataclass(frozen=True)
class Frame:
    """A recipe: a base message and its mutations, built once the room and token are known."""

    base: int
    changes: tuple[tuple[Any, ...], ...]

    def build(self, room_id: str, user_token: str) -> str | bytes:
        message: Any = {
            k: room_id if v == ROOM else user_token if v == TOKEN else v
            for k, v in BASES[self.base].items()
        }
        raw: list[str] = []

        def hold(value: Any) -> Any:
            if isinstance(value, RawJson):
                raw.append(value.text)
                return f"@@raw{len(raw) - 1}@@"
            return value

        text: str | None = None
        binary = False
        pad_to: int | None = None
        truncate: int | None = None
        for change in self.changes:
            kind = change[0]
            if kind == "drop" and isinstance(message, dict):
                message.pop(change[1], None)
            elif kind == "set" and isinstance(message, dict):
                message[change[1]] = hold(change[2])
            elif kind == "first" and isinstance(message, dict):
                message = {change[1]: hold(change[2])} | {
                    k: v for k, v in message.items() if k != change[1]
                }
            elif kind == "type" and isinstance(message, dict):
                message["type"] = change[1]
            elif kind == "wrap":
                message = {
                    "array": [message],
                    "string": json.dumps(message),
                    "number": 1,
                    "null": None,
                }[change[1]]
            elif kind == "pad":
                pad_to = change[1]
            elif kind == "truncate":
                truncate = change[1]
            elif kind == "binary":
                binary = True
            elif kind == "text":
                text = change[1]
        if text is None:
            text = json.dumps(message, ensure_ascii=False)
            for index, fragment in enumerate(raw):
                text = text.replace(f'"@@raw{index}@@"', fragment)
        if pad_to is not None:
            text = _pad(text, pad_to)
        if truncate is not None:
            text = text[: max(0, len(text) - truncate)]
        return text.encode() if binary else text


def _pad(text: str, size: int) -> str:
    """``text`` grown to ``size`` UTF-8 bytes by a string field (a chat's own message if any)."""
    missing = size - len(text.encode())
    if missing <= 0:
        return text
    if text.startswith('{"type": "chat", "message": "'):
        head = '{"type": "chat", "message": "'
        return head + "a" * missing + text[len(head) :]
    if text.startswith("{") and len(text) > 2:
        filler = '"pad": "", '
        return "{" + '"pad": "' + "a" * max(0, missing - len(filler)) + '", ' + text[1:]
    return text + " " * missing  # whitespace after JSON is still that JSON


frames = st.builds(
    Frame,
    base=st.integers(min_value=0, max_value=len(BASES) - 1),
    changes=st.lists(mutations, max_size=3).map(tuple),
)


# -- the oracle ---------------------------------------------------------------------------------
def _not_json(text: str) -> bool | None:
    """Python's verdict: True if ``text`` is not JSON, None when it cannot tell (too deep)."""

    def refuse(constant: str) -> Any:
        raise ValueError(constant)

    try:
        json.loads(text, parse_constant=refuse)
    except RecursionError:
        return None
    except ValueError:
        return True
    return False


@dataclass
class Outcome:
    messages: list[dict[str, Any]] = field(default_factory=list)
    close_code: int | None = None
    close_reason: str | None = None

    def closed_by(self, closed: ConnectionClosed) -> None:
        # No reason at all would be a close without a close frame: 1006.
        self.close_code = closed.reason.code if closed.reason else 1006
        self.close_reason = closed.reason.reason if closed.reason else None

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["type"] == kind]

    def errors(self) -> list[str]:
        return [m["code"] for m in self.of_type("error")]

    def describe(self) -> str:
        return f"messages={self.messages!r:.2000} close={self.close_code} {self.close_reason!r}"


def assert_reasoned_close(outcome: Outcome, reason: str) -> None:
    closing = outcome.of_type("closing")
    assert closing and closing[-1]["reason"] == reason, outcome.describe()
    assert outcome.close_code == CLOSE_CODES[reason], outcome.describe()
    assert outcome.close_reason == reason, outcome.describe()


def check(state: str, frame: str | bytes, outcome: Outcome, sentinel: int) -> str:
    """Assert the daemon's answer to ``frame`` in ``state``; return the state after it."""
    assert outcome.close_code != 1011, outcome.describe()
    if outcome.close_code is not None and outcome.close_code not in (1009,):
        # Whatever the cause, a close the server decides is announced and documented.
        assert outcome.close_reason in CLOSE_CODES, outcome.describe()
        assert_reasoned_close(outcome, outcome.close_reason)
    size = len(frame if isinstance(frame, bytes) else frame.encode())
    if size > MAX_REQUEST_BYTES:
        assert outcome.close_code == 1009, outcome.describe()
        assert not outcome.of_type("closing"), outcome.describe()
        return "CLOSED"
    assert outcome.close_code != 1009, outcome.describe()
    if isinstance(frame, bytes):
        assert outcome.errors() == ["bad-message"], outcome.describe()
        return state
    if size > protocol.MAX_FRAME_BYTES:
        assert outcome.errors() == ["too-large"], outcome.describe()
        return state
    refused = _refusal(frame)
    if isinstance(refused, str):
        assert outcome.errors() == [refused], outcome.describe()
        verdict = _not_json(frame)
        if verdict is True:
            assert refused == "bad-json", frame[:300]
        elif verdict is False and "\\ud" not in frame.lower():
            # (lone surrogate escapes are JSON to Python, not to msgspec: either is fine)
            assert refused != "bad-json", frame[:300]
        assert outcome.close_code is None, outcome.describe()
        return state
    assert _not_json(frame) is not True, frame[:300]
    return _check_message(state, refused, outcome, sentinel)


def _refusal(frame: str | bytes) -> protocol.ClientMessage | str:
    """The decoded message, or the code the codec refuses it with."""
    try:
        return protocol.decode_client(frame)
    except protocol.ProtocolError as exc:
        return exc.code


def _check_message(
    state: str, message: protocol.ClientMessage, outcome: Outcome, sentinel: int
) -> str:
    if isinstance(message, protocol.Ping):
        assert any(p["id"] == message.id for p in outcome.of_type("pong")), outcome.describe()
        return state
    if state == "CONNECTED":
        if not isinstance(message, protocol.Hello):
            assert_reasoned_close(outcome, "protocol-error")
            return "CLOSED"
        if message.protocol != 1:
            assert outcome.errors() == ["unsupported-protocol"], outcome.describe()
            assert_reasoned_close(outcome, "protocol-error")
            return "CLOSED"
        if outcome.of_type("welcome"):
            return "AUTHENTICATED"
        assert_reasoned_close(outcome, "unauthorized")
        return "CLOSED"
    if state == "AUTHENTICATED":
        if isinstance(message, protocol.Join):
            if outcome.of_type("joined"):
                return "IN_ROOM"
            assert outcome.errors(), outcome.describe()
            return "CLOSED" if outcome.close_code is not None else state
        assert outcome.errors() == ["not-joined"], outcome.describe()
        return state
    # IN_ROOM
    if isinstance(message, protocol.Hello | protocol.Join):
        assert outcome.errors() == ["already-joined"], outcome.describe()
    elif isinstance(message, protocol.Chat):
        acks = [a for a in outcome.of_type("chat_ack") if a["client_id"] == message.client_id]
        refusals = [e for e in outcome.of_type("error") if e["ref"] == message.client_id]
        assert len(acks) + len(refusals) == 1, outcome.describe()
    elif isinstance(message, protocol.Leave):
        assert_reasoned_close(outcome, "left")
        return "CLOSED"
    else:
        assert isinstance(message, SILENT_TYPES)
        # May go unanswered (a no-op) but a well-formed command is never refused here.
        assert not outcome.errors(), outcome.describe()
    return state


# -- talking to the daemon --------------------------------------------------------------------
async def read_outcome(client: Raw, sentinel: int) -> Outcome:
    """Everything up to the sentinel's pong, or up to the close."""
    outcome = Outcome()
    with trio.fail_after(ANSWER_TIMEOUT):
        while True:
            try:
                message = await client.ws.get_message()
            except ConnectionClosed as closed:
                outcome.closed_by(closed)
                return outcome
            parsed = json.loads(message)
            if parsed["type"] == "pong" and parsed["id"] == sentinel:
                return outcome
            outcome.messages.append(parsed)


@dataclass
class FuzzContext:
    daemon: DaemonProcess
    room_id: str
    users: list[Principal]
    sentinel: int = 9_000_000_000_000_000  # above any id the fuzzer draws, below 2**53
    examples: int = 0
    frames: int = 0
    closes: dict[int, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)


async def run_example(ctx: FuzzContext, state: str, recipe: list[Frame]) -> None:
    user = ctx.users[ctx.examples % len(ctx.users)]
    ctx.examples += 1
    user_token = token(user)
    async with raw_client(ctx.daemon) as client:
        if state in ("AUTHENTICATED", "IN_ROOM"):
            assert (await client.hello(user))["type"] == "welcome"
        if state == "IN_ROOM":
            await client.join(ctx.room_id)
        for item in recipe:
            frame = item.build(ctx.room_id, user_token)
            ctx.frames += 1
            ctx.sentinel += 1
            try:
                await client.send(frame)
                await client.send({"type": "ping", "id": ctx.sentinel, "t0": 0.0})
            except ConnectionClosed:
                # Closed while we were still sending (the server answered the frame with
                # a close): what it said before closing is still queued, read it below.
                pass
            outcome = await read_outcome(client, ctx.sentinel)
            for code in outcome.errors():
                ctx.errors[code] = ctx.errors.get(code, 0) + 1
            if outcome.close_code is not None:
                ctx.closes[outcome.close_code] = ctx.closes.get(outcome.close_code, 0) + 1
            state = check(state, frame, outcome, ctx.sentinel)
            if state == "CLOSED":
                return


@dataclass
class Bystanders:
    """Two members of another room: one pings and toggles playback, the other watches."""

    actor: Raw
    watcher: Raw
    version: int = 0
    playing: bool = False
    next_id: int = 1
    worst_pong: float = 0.0

    async def check(self) -> None:
        self.next_id += 1
        started = trio.current_time()
        with trio.fail_after(1.0):  # "promptly": far below any timeout of the protocol
            await self.actor.send({"type": "ping", "id": self.next_id, "t0": 0.0})
            await self.actor.expect("pong", id=self.next_id)
        self.worst_pong = max(self.worst_pong, trio.current_time() - started)
        self.playing = not self.playing
        await self.actor.send({"type": "play" if self.playing else "pause"})
        with trio.fail_after(ANSWER_TIMEOUT):
            while True:
                change = await self.watcher.expect("playback")
                if change["playback"]["version"] > self.version:
                    break
        self.version = change["playback"]["version"]


@asynccontextmanager
async def bystanders(daemon: DaemonProcess) -> AsyncIterator[Bystanders]:
    owner, friend = new_user("bystander"), new_user("friend")
    room = await trio.to_thread.run_sync(lambda: create_room(daemon, owner))
    async with (
        raw_client(daemon, owner, room["id"]) as actor,
        raw_client(daemon, friend, room["id"]) as watcher,
        trio.open_nursery() as nursery,
    ):
        # Heartbeats keep both alive through the whole run (idle timeout: 30 s).
        nursery.start_soon(actor.heartbeats)
        nursery.start_soon(watcher.heartbeats)
        yield Bystanders(actor, watcher)
        nursery.cancel_scope.cancel()


# -- the tests ------------------------------------------------------------------------------------
async def test_fuzzed_frames_get_answers_and_nobody_else_notices(ws_daemon: DaemonProcess) -> None:
    owner = new_user("fuzz-owner")
    room = await trio.to_thread.run_sync(
        lambda: create_room(ws_daemon, owner, max_participants=1000)
    )
    ctx = FuzzContext(ws_daemon, room["id"], [owner] + [new_user(f"fuzz{i}") for i in range(3)])
    async with bystanders(ws_daemon) as others:
        await others.check()
        rss_before = rss_kib(ws_daemon)
        peak = rss_before
        trace: list[int] = []  # every 100 examples

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )
        @given(
            state=st.sampled_from(["CONNECTED", "AUTHENTICATED", "IN_ROOM"]),
            recipe=st.lists(frames, min_size=1, max_size=4),
        )
        def fuzz(state: str, recipe: list[Frame]) -> None:
            nonlocal peak
            trio.from_thread.run(run_example, ctx, state, recipe)
            # Others unaffected, after every example.
            trio.from_thread.run(others.check)
            rss = rss_kib(ws_daemon)
            peak = max(peak, rss)
            if ctx.examples % 100 == 0:
                trace.append(rss)

        await trio.to_thread.run_sync(fuzz)
        rss_after = rss_kib(ws_daemon)
    report = {
        "examples": ctx.examples,
        "frames": ctx.frames,
        "errors": dict(sorted(ctx.errors.items())),
        "closes": dict(sorted(ctx.closes.items())),
        "rss_kib": {"before": rss_before, "peak": peak, "after": rss_after, "trace": trace},
        "worst_bystander_pong_s": round(others.worst_pong, 4),
    }
    _write_report("websocket_fuzz", report)
    assert peak - rss_before < RSS_BUDGET_KIB, report


def _write_report(name: str, report: dict[str, Any]) -> None:
    """Numbers for docs/_reliability_fuzzing.md, when SYNCPLAY_TEST_REPORT_DIR names a folder."""
    folder = os.environ.get("SYNCPLAY_TEST_REPORT_DIR")
    print(name, json.dumps(report))  # shown with -s
    if folder:
        Path(folder, f"{name}.json").write_text(json.dumps(report, indent=2))


# -- explicit cases (regressions and what hypothesis cannot send) ------------------------------
@pytest.mark.parametrize(
    ("frame", "code"),
    [
        # msgspec recursed into a value before "type" until RecursionError: it escaped the
        # codec, ended the room's reader and with it the room (every member's socket).
        ('{"x": ' + "[" * 8_000 + "]" * 8_000 + ', "type": "ping", "id": 1}', "bad-message"),
        ('{"a": ' * 2_000 + "1" + "}" * 2_000, "bad-message"),
        # A refused field used to hide the syntax error after it (docs: not JSON is bad-json).
        ('{"type": "ping", "zzz": NaN}', "bad-json"),
        ('{"type": "ping", "id": "1", "t0": Infinity}', "bad-json"),
        ('{"type": "chat", "message": "hi", "client_id": 5, ', "bad-json"),
        # Quart delivers an empty binary frame as None: a TypeError in the codec that
        # ended the handshake with a traceback, or the whole live room.
        (b"", "bad-message"),
        ("", "bad-json"),
    ],
)  # fmt: skip
@pytest.mark.parametrize("joined", [False, True])
async def test_regressions_are_refused_and_the_room_lives(
    ws_daemon: DaemonProcess, frame: str | bytes, code: str, joined: bool
) -> None:
    owner, other = new_user("owner"), new_user("other")
    room = await trio.to_thread.run_sync(lambda: create_room(ws_daemon, owner))
    async with (
        raw_client(ws_daemon, other, room["id"]) as bystander,
        raw_client(ws_daemon, owner, room["id"] if joined else None) as client,
    ):
        await client.send(frame)
        assert (await client.expect("error"))["code"] == code
        await client.send({"type": "ping", "id": 7, "t0": 0.0})
        assert (await client.expect("pong"))["id"] == 7
        await bystander.send({"type": "ping", "id": 8, "t0": 0.0})
        assert (await bystander.expect("pong"))["id"] == 8


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ('{"type": "ping", "zzz": NaN}', "bad-json"),
        ('{"type": "ping", "zzz": 1', "bad-json"),
        ('{"zzz": ' + "[" * 8_000 + "]" * 8_000 + ', "type": "ping"}', "bad-message"),
        ('{"zzz": ' + "[" * 8_000 + "]" * 8_000 + ', "type": "ping"', "bad-message"),
        ('{"type": "ping", "id": 1, "t0": 1e400}', "bad-message"),
        # A number out of range stopped the syntax check before the error after it.
        ('{"type": "hello", "": 1e400, x}', "bad-json"),
        ('{"type": "hello", "": 1e400}', "bad-message"),
        ('{"type": "ping", "id": 1.0, "t0": 1}', "bad-message"),
        ('{"type": "Ping"}', "unknown-type"),
        ("[1]", "bad-message"),
    ],
)
def test_codec_error_codes(text: str, code: str) -> None:
    with pytest.raises(protocol.ProtocolError) as caught:
        protocol.decode_client(text)
    assert caught.value.code == code


@settings(max_examples=500, deadline=None, derandomize=True, database=None)
@given(frame=frames)
def test_codec_raises_only_protocol_errors(frame: Frame) -> None:
    """The sans-I/O codec alone, many more examples: nothing but ProtocolError escapes."""
    built = frame.build("0b7e9c4e-5d1a-4f3e-8a2b-1c9d8e7f6a50", "t")
    refused = _refusal(built)  # anything but a ProtocolError propagates and fails
    if isinstance(built, str) and _not_json(built) is True:
        assert refused in ("bad-json", "too-large")


async def test_flood_is_dropped_with_one_notice_a_second(default_daemon: DaemonProcess) -> None:
    """Beyond 20 frames/s (bursts of 40) frames are dropped; the socket and others live."""
    ws_daemon = default_daemon
    flooder = new_user("flooder")
    room = await trio.to_thread.run_sync(lambda: create_room(ws_daemon, flooder))
    pongs, notices = 0, 0
    limited = trio.Event()
    flood_seconds = 2.5
    async with (
        bystanders(ws_daemon) as others,
        raw_client(ws_daemon, flooder, room["id"], queue=4096) as noisy,
        trio.open_nursery() as nursery,
    ):

        async def flood() -> None:
            sent = 0
            with trio.move_on_after(flood_seconds):
                while True:
                    await noisy.send({"type": "ping", "id": sent, "t0": 0.0})
                    sent += 1
                    if sent % 100 == 0:
                        await trio.lowlevel.checkpoint()
            nursery.cancel_scope.cancel()

        async def count() -> None:
            nonlocal pongs, notices
            while True:
                message = await noisy.recv()
                if message["type"] == "pong":
                    pongs += 1
                elif message["type"] == "error":
                    assert message["code"] == "rate-limited" and message["ref"] is None
                    notices += 1
                    limited.set()

        async def bystander_checks() -> None:
            # While the flooder is being dropped; a few checks only, as the bystanders
            # have the same default limit.
            await limited.wait()
            for _ in range(5):
                await others.check()

        nursery.start_soon(flood)
        nursery.start_soon(count)
        nursery.start_soon(bystander_checks)
    print("flood", {"pongs": pongs, "notices": notices, "worst_pong_s": others.worst_pong})
    # Burst 40, refill 20/s: at most 40 + 20 * 2.5 = 90 answered (a little slack for timing).
    assert 40 <= pongs <= 100, pongs
    assert 1 <= notices <= 4, notices  # at most one a second
    assert others.version >= 5 and others.worst_pong < 1.0


async def test_oversized_frames(ws_daemon: DaemonProcess) -> None:
    owner = new_user("big")
    room = await trio.to_thread.run_sync(lambda: create_room(ws_daemon, owner))
    async with raw_client(ws_daemon, owner, room["id"]) as client:
        # 8,177 characters (within the protocol's 10,000) in exactly 16,384 bytes.
        exactly = '{"type": "chat", "message": "' + "é" * 8_176 + 'a"}'
        assert len(exactly.encode()) == protocol.MAX_FRAME_BYTES
        await client.send(exactly)
        # Parsed (16,384 bytes is allowed), then refused by the chat length rule.
        assert (await client.expect("error"))["code"] == "validation-failed"
        await client.send(exactly[:-2] + 'a"}')
        assert (await client.expect("error"))["code"] == "too-large"
        await client.send(b"\x00" * 20_000)
        assert (await client.expect("error"))["code"] == "bad-message"
        await client.send("x" * (MAX_REQUEST_BYTES + 1))
        with pytest.raises(ConnectionClosed) as closed:
            await client.recv()
        assert closed.value.reason is not None and closed.value.reason.code == 1009


async def test_the_request_limit_counts_bytes_not_characters(ws_daemon: DaemonProcess) -> None:
    """hypercorn counted a text message in characters: 40,000 "é" (80 KB) got through."""
    owner = new_user("wide")
    room = await trio.to_thread.run_sync(lambda: create_room(ws_daemon, owner))
    async with raw_client(ws_daemon, owner, room["id"]) as client:
        await client.send("é" * (MAX_REQUEST_BYTES // 2 + 1))
        with pytest.raises(ConnectionClosed) as closed:
            await client.recv()
        assert closed.value.reason is not None and closed.value.reason.code == 1009


# -- invalid UTF-8: frames written by hand ---------------------------------------------------------
def _masked_frame(opcode: int, payload: bytes) -> bytes:
    """One client frame (FIN set, masked as RFC 6455 requires of clients)."""
    mask = os.urandom(4)
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
    elif length < 2**16:
        header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, length)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return header + mask + masked


async def _raw_events(daemon: DaemonProcess, frames_after_hello: list[bytes]) -> list[Any]:
    """Upgrade with wsproto, say hello, write raw frames, return the events up to the close."""
    url = urlsplit(daemon.base_url)
    assert url.hostname is not None and url.port is not None
    stream = await trio.open_tcp_stream(url.hostname, url.port)
    connection = WSConnection(ConnectionType.CLIENT)
    events: list[Any] = []
    async with stream:
        await stream.send_all(
            connection.send(Request(host=url.netloc, target="/api/v1/syncplay/ws"))
        )
        hello = json.dumps({"type": "hello", "protocol": 1, "token": token(new_user("utf8"))})
        sent_frames = False
        with trio.fail_after(ANSWER_TIMEOUT):
            while True:
                data = await stream.receive_some(65536)
                if not data:
                    events.append("EOF")  # closed without a close frame
                    return events
                connection.receive_data(data)
                for event in connection.events():
                    events.append(event)
                    if isinstance(event, AcceptConnection):
                        await stream.send_all(connection.send(TextMessage(data=hello)))
                    elif isinstance(event, TextMessage) and not sent_frames:
                        sent_frames = True  # the welcome: now the hostile frames
                        for raw in frames_after_hello:
                            await stream.send_all(raw)
                    elif isinstance(event, CloseConnection):
                        # Answer the close, as a client does: more data for the server to
                        # read (hypercorn only parses what is buffered when data arrives).
                        await stream.send_all(connection.send(event.response()))
                        return events


@pytest.mark.parametrize(
    "payload",
    [b"\xff\xfe", b'{"type": "ping", "id": 1, "t0": 0, "x": "\xc3\x28"}', b"\xed\xa0\x80"],
)
async def test_invalid_utf8_in_a_text_frame_fails_the_connection(
    ws_daemon: DaemonProcess, payload: bytes
) -> None:
    """RFC 6455 §8.1: the WebSocket layer fails the connection with 1007 before the
    protocol sees the frame, and nobody else is affected.

    (Through hypercorn, before the front door read frames itself, the TCP connection was
    dropped without a close frame: wsproto reports the failure as a CloseConnection event
    that hypercorn answers only in the REMOTE_CLOSING state, so clients saw 1006.)
    """
    owner = new_user("utf8-owner")
    room = await trio.to_thread.run_sync(lambda: create_room(ws_daemon, owner))
    async with raw_client(ws_daemon, owner, room["id"]) as bystander:
        events = await _raw_events(ws_daemon, [_masked_frame(0x1, payload)])
        texts = [e.data for e in events if isinstance(e, TextMessage)]
        assert len(texts) == 1 and '"welcome"' in texts[0], events  # nothing after it
        assert isinstance(events[-1], CloseConnection) and events[-1].code == 1007, events
        await bystander.send({"type": "ping", "id": 3, "t0": 0.0})
        assert (await bystander.expect("pong"))["id"] == 3


PING = b'{"type": "ping", "id": 1, "t0": 0}'


@pytest.mark.parametrize(
    "frames_sent",
    [
        # hypercorn kept the oversized message's buffer and wrote the next frame into
        # it: str into BytesIO (or the reverse) raised TypeError through its server
        # nursery and the daemon exited (fixed in syncplayd/server/process/hypercorn_fixes.py).
        [_masked_frame(0x2, b"x" * (MAX_REQUEST_BYTES + 1))] + [_masked_frame(0x1, PING)] * 3,
        [_masked_frame(0x1, b"x" * (MAX_REQUEST_BYTES + 1))] + [_masked_frame(0x2, PING)] * 3,
        # Same kind: the buffer used to grow with every frame that followed.
        [_masked_frame(0x1, b"x" * (MAX_REQUEST_BYTES + 1))] + [_masked_frame(0x1, PING)] * 3,
    ],
)
async def test_frames_after_an_oversized_one_do_not_kill_the_daemon(
    ws_daemon: DaemonProcess, frames_sent: list[bytes]
) -> None:
    owner = new_user("after-big")
    room = await trio.to_thread.run_sync(lambda: create_room(ws_daemon, owner))
    async with raw_client(ws_daemon, owner, room["id"]) as bystander:
        events = await _raw_events(ws_daemon, frames_sent)
        close = events[-1]
        assert isinstance(close, CloseConnection) and close.code == 1009, events
        await bystander.send({"type": "ping", "id": 4, "t0": 0.0})
        assert (await bystander.expect("pong"))["id"] == 4
    assert ws_daemon.process.poll() is None


async def test_closed_sockets_are_let_go_at_once(tmp_path: Path) -> None:
    """hypercorn kept each closed WebSocket (task, buffers, scope: ~25 KiB) until its ping
    task woke up, up to 30 s later: the fuzzer saw the RSS grow by 27 KiB per socket.

    In-process, so that the server's own objects can be counted: after the clients
    closed and every task is blocked, no WebSocket stream is left.
    """
    settings = load_settings(
        None,
        {
            "SYNCPLAY_LISTEN": "127.0.0.1:0",
            "SYNCPLAY_STATE_DIR": str(tmp_path),
            "SYNCPLAY_AUTH_JWT_SECRET": SECRET,
            "SYNCPLAY_ADMIN_SOCKET": "",
        },
    )
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(partial(daemon.run, settings))
        url = binds[0].replace("http://", "ws://") + "/api/v1/syncplay/ws"
        for i in range(20):
            async with open_websocket_url(url) as ws:
                await ws.send_message(json.dumps({"type": "ping", "id": i, "t0": 0.0}))
                await ws.get_message()
        await trio.testing.wait_all_tasks_blocked()
        gc.collect()
        assert sum(isinstance(o, WSStream) for o in gc.get_objects()) == 0
        nursery.cancel_scope.cancel()
