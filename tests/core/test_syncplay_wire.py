"""Syncplay's wire format (``syncplayd.core.syncplay.wire``): framing, lines, command bodies.

The shapes are those Syncplay 1.6.9's client sends (``protocols.py``,
``SyncClientProtocol``); every refusal must be a :class:`WireError`, which the
shell turns into Syncplay's ``Error`` + drop. Anything else escaping a parser is
a crash of the connection's reader, which runs in the live room's nursery.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syncplayd.core.syncplay import wire
from syncplayd.core.syncplay.wire import (
    MAX_FILENAME_LENGTH,
    MAX_LINE_BYTES,
    MAX_PLAYLIST_ITEMS,
    ClientState,
    FileInfo,
    Hello,
    LineReader,
    PlayState,
    SetOther,
    SetPlaylist,
    SetPlaylistIndex,
    SetReady,
    SetRoom,
    WireError,
    decode_line,
    encode_line,
    parse_chat,
    parse_hello,
    parse_set,
    parse_state,
)


# -- LineReader ------------------------------------------------------------------------
def test_crlf_and_bare_lf_both_end_a_line() -> None:
    reader = LineReader()
    assert reader.feed(b'{"a":1}\r\n{"b":2}\n{"c"') == [b'{"a":1}', b'{"b":2}']
    assert reader.pending == 4
    assert reader.feed(b":3}\r\n") == [b'{"c":3}']
    assert reader.pending == 0


def test_a_lone_cr_is_part_of_the_line() -> None:
    # Only the CR of a CRLF goes; one elsewhere is the line's (JSON whitespace anyway).
    assert LineReader().feed(b"a\rb\r\r\n") == [b"a\rb\r"]


def test_a_line_split_over_many_feeds() -> None:
    reader = LineReader()
    data = b'{"Chat": "hello there"}\r\n'
    for i, byte in enumerate(data[:-1]):
        assert reader.feed(bytes([byte])) == []
        assert reader.pending == i + 1
    assert reader.feed(data[-1:]) == [b'{"Chat": "hello there"}']
    assert reader.pending == 0


def test_the_cr_and_lf_may_arrive_apart() -> None:
    reader = LineReader()
    assert reader.feed(b"abc\r") == []
    assert reader.feed(b"\ndef\r") == [b"abc"]
    assert reader.feed(b"\n") == [b"def"]


def test_empty_lines_are_lines() -> None:
    assert LineReader().feed(b"\r\n\n") == [b"", b""]


def test_the_default_limit_is_twisteds() -> None:
    assert MAX_LINE_BYTES == 16384
    reader = LineReader()
    assert reader.feed(b"x" * MAX_LINE_BYTES + b"\r\n") == [b"x" * MAX_LINE_BYTES]
    with pytest.raises(WireError, match="16384"):
        LineReader().feed(b"x" * (MAX_LINE_BYTES + 1) + b"\r\n")


def test_an_over_long_complete_line_is_refused() -> None:
    reader = LineReader(max_line=8)
    assert reader.feed(b"12345678\r\n") == [b"12345678"]  # the limit itself is fine
    with pytest.raises(WireError, match="8 bytes"):
        reader.feed(b"ok\r\n123456789\r\n")


def test_an_over_long_partial_line_is_refused_before_its_end() -> None:
    # A client that never sends the LF must not make the buffer grow without limit.
    reader = LineReader(max_line=8)
    assert reader.feed(b"12345678") == []
    with pytest.raises(WireError):
        reader.feed(b"9")


def test_an_over_long_partial_after_complete_lines_is_refused() -> None:
    with pytest.raises(WireError):
        LineReader(max_line=8).feed(b"short\r\n123456789")


# Lines of at most max_line - 1 bytes: a line of exactly max_line bytes whose CR has
# arrived but not its LF is max_line + 1 bytes pending, refused as Twisted's
# LineReceiver refuses it. That one-byte edge depends on the chunking by design.
LIMIT = 32
line_bodies = st.binary(max_size=LIMIT - 1).map(lambda b: b.replace(b"\n", b"").rstrip(b"\r"))


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(line_bodies, st.sampled_from([b"\r\n", b"\n"])), max_size=12),
    line_bodies,
    st.data(),
)
def test_any_chunking_gives_the_lines_of_one_feed(
    lines: list[tuple[bytes, bytes]], tail: bytes, data: st.DataObject
) -> None:
    stream = b"".join(body + end for body, end in lines) + tail
    whole = LineReader(max_line=LIMIT)
    expected = whole.feed(stream)
    assert expected == [body for body, _ in lines]
    cuts = sorted(data.draw(st.sets(st.integers(0, len(stream)), max_size=20)))
    reader = LineReader(max_line=LIMIT)
    got: list[bytes] = []
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        got += reader.feed(stream[start:end])
    assert got == expected
    assert reader.pending == whole.pending == len(tail)


# -- decode_line / encode_line ---------------------------------------------------------
@pytest.mark.parametrize("line", [b"", b"   ", b" \t\r", b"\r"])
def test_an_empty_line_has_no_commands(line: bytes) -> None:
    assert decode_line(line) == []


def test_several_commands_in_order() -> None:
    line = b'{"Set": {"ready": {}}, "State": {"ping": {}}, "Chat": "hi", "List": null}'
    assert decode_line(line) == [
        ("Set", {"ready": {}}),
        ("State", {"ping": {}}),
        ("Chat", "hi"),
        ("List", None),
    ]


def test_every_syncplay_command_is_known() -> None:
    line = json.dumps(dict.fromkeys(("Hello", "Set", "List", "State", "Chat", "Error", "TLS")))
    assert [c for c, _ in decode_line(line.encode())] == [
        "Hello",
        "Set",
        "List",
        "State",
        "Chat",
        "Error",
        "TLS",
    ]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b'{"Chat": "caf\xe9"}', "not UTF-8"),
        (b"\xff\xfe", "not UTF-8"),
        (b"{not json", "not a JSON"),
        (b'{"Chat": "hi"', "not a JSON"),
        (b'{"Chat": "hi"} {"Chat": "again"}', "not a JSON"),
        (b"[1, 2]", "JSON object"),
        (b'"Hello"', "JSON object"),
        (b"42", "JSON object"),
        (b"null", "JSON object"),
        (b'{"Foo": {}}', "unknown command 'Foo'"),
        (b'{"Chat": "hi", "hello": {}}', "unknown command 'hello'"),
    ],
)
def test_a_bad_line_is_refused(line: bytes, message: str) -> None:
    with pytest.raises(WireError, match=message):
        decode_line(line)


def test_a_very_long_unknown_command_is_named_short() -> None:
    with pytest.raises(WireError) as caught:
        decode_line(json.dumps({"X" * 1000: 1}).encode())
    assert len(str(caught.value)) < 80


@pytest.mark.parametrize(
    "line",
    [
        b"[" * 5000 + b"]" * 5000,
        b'{"State": ' + b"[" * 5000 + b"]" * 5000 + b"}",
        b'{"Set": ' + b'{"a":' * 5000 + b"1" + b"}" * 5000 + b"}",
    ],
)
def test_deep_nesting_is_refused_not_a_recursion_error(line: bytes) -> None:
    # Within the line limit, and json's C scanner recurses once per level.
    assert len(line) <= MAX_LINE_BYTES * 3
    with pytest.raises(WireError):
        decode_line(line)


def test_encode_line_is_compact_crlf_and_keeps_unicode() -> None:
    line = encode_line({"Chat": {"username": "zoë", "message": "日本"}})
    assert line == '{"Chat":{"username":"zoë","message":"日本"}}\r\n'.encode()
    (decoded,) = LineReader().feed(line)
    assert decode_line(decoded) == [("Chat", {"username": "zoë", "message": "日本"})]


# -- parse_hello -----------------------------------------------------------------------
REAL_HELLO: dict[str, Any] = {
    "username": " alice ",
    "password": "5f4dcc3b5aa765d61d8327deb882cf99",
    "room": {"name": " movie-night "},
    "version": "1.2.255",
    "realversion": "1.6.9",
    "features": {"sharedPlaylists": True, "chat": True, "uiMode": "GUI", "featureList": True},
}


def test_hello_of_the_real_client() -> None:
    assert parse_hello(REAL_HELLO) == Hello(
        username="alice",
        room="movie-night",
        password="5f4dcc3b5aa765d61d8327deb882cf99",
        version="1.6.9",  # realversion, not the 1.2.255 kept for old servers
    )


def test_hello_without_realversion_takes_version() -> None:
    body = {k: v for k, v in REAL_HELLO.items() if k != "realversion"}
    assert parse_hello(body).version == "1.2.255"


@pytest.mark.parametrize("password", [None, ""])
def test_hello_password_is_optional(password: str | None) -> None:
    body = {k: v for k, v in REAL_HELLO.items() if k != "password"}
    assert parse_hello(body).password is None
    assert parse_hello({**body, "password": password}).password is None


def test_hello_version_is_cut() -> None:
    assert parse_hello({**REAL_HELLO, "realversion": "9" * 100}).version == "9" * 32


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"username": None}, "username"),
        ({"username": ""}, "username"),
        ({"username": "   "}, "username"),
        ({"username": 7}, "username"),
        ({"room": None}, "room"),
        ({"room": "movie-night"}, "room"),
        ({"room": {}}, "room"),
        ({"room": {"name": ""}}, "room"),
        ({"room": {"name": 3}}, "room"),
        ({"version": None, "realversion": None}, "version"),
        ({"version": "", "realversion": ""}, "version"),
        ({"realversion": 169}, "version"),
        ({"password": 123}, "password"),
    ],
)
def test_hello_missing_or_wrong_fields_are_refused(change: dict[str, Any], message: str) -> None:
    body = {k: v for k, v in {**REAL_HELLO, **change}.items() if v is not None}
    with pytest.raises(WireError, match=message):
        parse_hello(body)


def test_hello_with_a_blank_room_name_is_refused() -> None:
    # Syncplay's server strips the room name, then refuses an empty one
    # (SyncServerProtocol._extractHelloArguments, "hello-server-error").
    with pytest.raises(WireError, match="room"):
        parse_hello({**REAL_HELLO, "room": {"name": "   "}})


@pytest.mark.parametrize("body", [None, [], "Hello", 1])
def test_hello_must_be_an_object(body: Any) -> None:
    with pytest.raises(WireError):
        parse_hello(body)


# -- parse_state -----------------------------------------------------------------------
def test_state_of_the_real_client() -> None:
    body = {
        "playstate": {"position": 42.5, "paused": False, "doSeek": True},
        "ping": {
            "latencyCalculation": 1000.25,
            "clientLatencyCalculation": 2000.5,
            "clientRtt": 0.08,
        },
        "ignoringOnTheFly": {"server": 3, "client": 2},
    }
    assert parse_state(body) == ClientState(
        playstate=PlayState(position=42.5, paused=False, do_seek=True),
        latency_echo=1000.25,
        client_stamp=2000.5,
        client_rtt=0.08,
        ignoring_server=3,
        ignoring_client=2,
    )


def test_state_without_playstate_is_a_ping() -> None:
    # The real client leaves playstate out while it waits for its own change's echo.
    state = parse_state({"ping": {"clientLatencyCalculation": 5.0, "clientRtt": 0}})
    assert state.playstate is None
    assert state.client_stamp == 5.0
    assert state.latency_echo is None
    assert state.ignoring_server is None and state.ignoring_client is None


def test_state_defaults() -> None:
    state = parse_state({"playstate": {"paused": True}})
    assert state.playstate == PlayState(position=0.0, paused=True, do_seek=False)
    assert state.client_rtt == 0.0
    assert parse_state({}).playstate is None


def test_state_zero_latency_stamp_is_none() -> None:
    # Syncplay's PingService ignores a falsy timestamp ("if not timestamp: return").
    state = parse_state({"ping": {"latencyCalculation": 0, "clientLatencyCalculation": 0}})
    assert state.latency_echo is None and state.client_stamp is None


@pytest.mark.parametrize("paused", [None, "true", 1, 0, []])
def test_state_paused_must_be_a_bool(paused: Any) -> None:
    play: dict[str, Any] = {"position": 1.0}
    if paused is not None:
        play["paused"] = paused
    with pytest.raises(WireError, match="paused"):
        parse_state({"playstate": play})


@pytest.mark.parametrize(
    "position", [float("nan"), float("inf"), float("-inf"), True, "12", [1], {"s": 1}]
)
def test_state_position_must_be_a_finite_number(position: Any) -> None:
    with pytest.raises(WireError, match="position"):
        parse_state({"playstate": {"position": position, "paused": True}})


def test_state_nan_from_the_wire_is_refused() -> None:
    # Python's json reads NaN and Infinity; they must not reach the room's arithmetic.
    ((_, body),) = decode_line(b'{"State": {"playstate": {"position": NaN, "paused": true}}}')
    with pytest.raises(WireError):
        parse_state(body)


def test_state_huge_integer_position_is_refused() -> None:
    # JSON has no integer limit: ``1`` followed by 400 zeros is an int that float()
    # cannot hold (OverflowError), not only 1e400 (which json reads as inf).
    line = b'{"State": {"playstate": {"position": 1' + b"0" * 400 + b', "paused": true}}}'
    ((_, body),) = decode_line(line)
    with pytest.raises(WireError):
        parse_state(body)


def test_state_huge_integer_rtt_is_refused() -> None:
    with pytest.raises(WireError):
        parse_state({"ping": {"clientRtt": 10**400}})


def test_state_negative_values_are_clamped() -> None:
    state = parse_state(
        {"playstate": {"position": -3.5, "paused": False}, "ping": {"clientRtt": -1}}
    )
    assert state.playstate == PlayState(position=0.0, paused=False, do_seek=False)
    assert state.client_rtt == 0.0


def test_state_integer_position_is_a_float() -> None:
    state = parse_state({"playstate": {"position": 12, "paused": True}})
    assert state.playstate is not None
    assert isinstance(state.playstate.position, float)


@pytest.mark.parametrize("do_seek", [False, None, "true", 1])
def test_state_do_seek_only_when_true(do_seek: Any) -> None:
    state = parse_state({"playstate": {"paused": True, "doSeek": do_seek}})
    assert state.playstate is not None and state.playstate.do_seek is False


@pytest.mark.parametrize("counter", [True, -1, 1.5, "1", 2**53, [1]])
@pytest.mark.parametrize("side", ["server", "client"])
def test_state_counters_must_be_counters(side: str, counter: Any) -> None:
    with pytest.raises(WireError, match=f"ignoringOnTheFly.{side}"):
        parse_state({"ignoringOnTheFly": {side: counter}})


def test_state_counters() -> None:
    state = parse_state({"ignoringOnTheFly": {"server": 0, "client": 2**53 - 1}})
    assert state.ignoring_server == 0
    assert state.ignoring_client == 2**53 - 1


@pytest.mark.parametrize(
    "body",
    [
        None,
        [],
        {"playstate": []},
        {"playstate": "paused"},
        {"ping": [1]},
        {"ping": {"latencyCalculation": "now"}},
        {"ping": {"clientLatencyCalculation": float("nan")}},
        {"ignoringOnTheFly": [1]},
    ],
)
def test_state_malformed_parts_are_refused(body: Any) -> None:
    with pytest.raises(WireError):
        parse_state(body)


# -- parse_set -------------------------------------------------------------------------
def test_set_file() -> None:
    assert parse_set({"file": {"name": " film.mkv ", "duration": 1440.5, "size": 123}}) == [
        FileInfo(name="film.mkv", duration=1440.5, size=123)
    ]


@pytest.mark.parametrize("size", ["a1b2c3d4e5f6", True, 1.5, None])
def test_set_file_hashed_or_odd_size_is_none(size: Any) -> None:
    # SendHashed sends sha256(...)[:12] as a string: no size.
    (file,) = parse_set({"file": {"name": "x", "duration": 10, "size": size}})
    assert isinstance(file, FileInfo) and file.size is None


@pytest.mark.parametrize("duration", [0, -1, -0.5, None])
def test_set_file_non_positive_duration_is_none(duration: Any) -> None:
    (file,) = parse_set({"file": {"name": "x", "duration": duration}})
    assert isinstance(file, FileInfo) and file.duration is None


def test_set_file_name_is_cut_and_a_missing_one_empty() -> None:
    (file,) = parse_set({"file": {"name": "n" * 400}})
    assert isinstance(file, FileInfo) and file.name == "n" * MAX_FILENAME_LENGTH
    assert parse_set({"file": {}}) == [FileInfo(name="", duration=None, size=None)]


@pytest.mark.parametrize(
    "file",
    [None, "x.mkv", {"name": 5}, {"name": "x", "duration": "long"}, {"duration": float("inf")}],
)
def test_set_file_malformed_is_refused(file: Any) -> None:
    with pytest.raises(WireError):
        parse_set({"file": file})


@pytest.mark.parametrize(
    ("ready", "expected"),
    [
        ({"isReady": True, "manuallyInitiated": True}, SetReady(True, True)),
        ({"isReady": False, "manuallyInitiated": False}, SetReady(False, False)),
        ({"isReady": None}, SetReady(None, False)),
        ({"isReady": True, "manuallyInitiated": "yes"}, SetReady(True, False)),
    ],
)
def test_set_ready(ready: dict[str, Any], expected: SetReady) -> None:
    assert parse_set({"ready": ready}) == [expected]


@pytest.mark.parametrize("ready", [None, [], {"isReady": "yes"}, {"isReady": 1}])
def test_set_ready_malformed_is_refused(ready: Any) -> None:
    with pytest.raises(WireError):
        parse_set({"ready": ready})


def test_set_room() -> None:
    assert parse_set({"room": {"name": " other "}}) == [SetRoom(name="other")]
    assert parse_set({"room": {"name": "r" * 100}}) == [SetRoom(name="r" * 64)]
    with pytest.raises(WireError):
        parse_set({"room": {"name": None}})


def test_set_playlist() -> None:
    files = [f"episode {i}.mkv " for i in range(MAX_PLAYLIST_ITEMS)]
    assert parse_set({"playlistChange": {"files": files}}) == [
        SetPlaylist(files=tuple(f.strip() for f in files))
    ]
    assert parse_set({"playlistChange": {"files": ["f" * 300]}}) == [
        SetPlaylist(files=("f" * MAX_FILENAME_LENGTH,))
    ]


@pytest.mark.parametrize(
    "change",
    [
        {"files": ["x"] * (MAX_PLAYLIST_ITEMS + 1)},
        {"files": "x.mkv"},
        {"files": None},
        {},
        {"files": ["ok", 3]},
        [],
    ],
)
def test_set_playlist_malformed_or_too_long_is_refused(change: Any) -> None:
    with pytest.raises(WireError):
        parse_set({"playlistChange": change})


def test_set_playlist_index() -> None:
    assert parse_set({"playlistIndex": {"index": 3}}) == [SetPlaylistIndex(index=3)]
    assert parse_set({"playlistIndex": {"index": None}}) == [SetPlaylistIndex(index=None)]
    assert parse_set({"playlistIndex": {}}) == [SetPlaylistIndex(index=None)]


@pytest.mark.parametrize("index", [-1, True, 1.0, "2"])
def test_set_playlist_index_malformed_is_refused(index: Any) -> None:
    with pytest.raises(WireError):
        parse_set({"playlistIndex": {"index": index}})


def test_set_other_commands_are_kept_in_order() -> None:
    body = {
        "controllerAuth": {"room": "demo", "password": "AB-123-456"},
        "room": {"name": "demo"},
        "features": {"chat": True},
        "Z" * 100: 1,
    }
    assert parse_set(body) == [
        SetOther(name="controllerAuth", body={"room": "demo", "password": "AB-123-456"}),
        SetRoom(name="demo"),
        SetOther(name="features", body={"chat": True}),
        SetOther(name="Z" * 40, body=1),
    ]


@pytest.mark.parametrize("body", [None, [], "file"])
def test_set_must_be_an_object(body: Any) -> None:
    with pytest.raises(WireError):
        parse_set(body)


# -- parse_chat ------------------------------------------------------------------------
def test_chat_is_cut_to_the_limit() -> None:
    assert parse_chat("hello", 150) == "hello"
    assert parse_chat("x" * 200, 150) == "x" * 150
    assert parse_chat("日本語", 2) == "日本"


@pytest.mark.parametrize("body", [None, 5, {"message": "hi"}, ["hi"]])
def test_chat_must_be_a_string(body: Any) -> None:
    with pytest.raises(WireError):
        parse_chat(body, 150)


# -- no parser raises anything but WireError -------------------------------------------
KEYS = [
    "username", "room", "name", "version", "realversion", "password", "playstate", "position",
    "paused", "doSeek", "ping", "latencyCalculation", "clientLatencyCalculation", "clientRtt",
    "ignoringOnTheFly", "server", "client", "file", "duration", "size", "ready", "isReady",
    "manuallyInitiated", "playlistChange", "files", "playlistIndex", "index", "controllerAuth",
]  # fmt: skip
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    # Integers float() cannot hold: JSON allows them.
    | st.integers(min_value=2 * 10**308, max_value=10**400).flatmap(
        lambda n: st.sampled_from([n, -n])
    )
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=4), inner, max_size=6)
    ),
    max_leaves=25,
)


def shaped(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """An object with any of ``fields`` (each the right shape or not), or any value."""
    return st.fixed_dictionaries({}, optional=fields) | json_values


hello_bodies = shaped(
    username=scalars,
    room=shaped(name=scalars),
    version=scalars,
    realversion=scalars,
    password=scalars,
)
state_bodies = shaped(
    playstate=shaped(position=scalars, paused=scalars, doSeek=scalars),
    ping=shaped(latencyCalculation=scalars, clientLatencyCalculation=scalars, clientRtt=scalars),
    ignoringOnTheFly=shaped(server=scalars, client=scalars),
)
set_bodies = shaped(
    file=shaped(name=scalars, duration=scalars, size=scalars),
    ready=shaped(isReady=scalars, manuallyInitiated=scalars),
    room=shaped(name=scalars),
    playlistChange=shaped(files=st.lists(scalars, max_size=4) | scalars),
    playlistIndex=shaped(index=scalars),
    controllerAuth=json_values,
)


@settings(max_examples=500, deadline=None)
@given(hello_bodies, state_bodies, set_bodies, json_values)
def test_parsers_raise_only_wire_errors(hello: Any, state: Any, set_: Any, chat: Any) -> None:
    for parse, body in (
        (parse_hello, hello),
        (parse_state, state),
        (parse_set, set_),
        (lambda b: parse_chat(b, 150), chat),
    ):
        with contextlib.suppress(WireError):
            parse(body)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200) | json_values.map(lambda v: json.dumps(v).encode()))
def test_decode_line_raises_only_wire_errors(line: bytes) -> None:
    try:
        commands = decode_line(line)
    except WireError:
        return
    assert all(command in wire.COMMANDS for command, _ in commands)
