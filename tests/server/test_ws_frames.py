"""``ws_frames``: the server's frame reader held to wsproto's verdicts, and the frames it builds.

The reader replaced wsproto's ``Connection`` on the broadcast path; wsproto stays
the reference. Hypothesis writes streams of client frames, well-formed and not
(reserved bits, unmasked frames, unknown opcodes, fragmented or oversized control
frames, lengths not in their shortest form, continuations out of place, text that
is not UTF-8, close frames with forbidden codes), cuts them anywhere, and both
readers must report the same messages, control frames and first failure code.
"""

from __future__ import annotations

import itertools
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from wsproto.connection import Connection, ConnectionState, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Ping, Pong, TextMessage
from wsproto.frame_protocol import FrameProtocol

from syncplayd.server.live import ws_frames
from syncplayd.server.live.ws_frames import (
    FrameReader,
    close_frame,
    control_frame,
    frame_text,
    server_frame,
    text_frame_header,
)

BIG = 1 << 30  # no message of these tests reaches it


# -- building client frames -----------------------------------------------------------------------
def client_frame(
    opcode: int,
    payload: bytes,
    *,
    fin: bool = True,
    rsv: int = 0,
    masked: bool = True,
    long_length: bool = False,
    key: bytes = b"\x37\xfa\x21\x3d",
) -> bytes:
    """One frame as a client sends it (``long_length``: a 16-bit length where 7 bits do)."""
    size = len(payload)
    first = (0x80 if fin else 0) | rsv << 4 | opcode
    mask_bit = 0x80 if masked else 0
    if size < 126 and not long_length:
        header = bytes((first, mask_bit | size))
    elif size < 1 << 16:
        header = struct.pack("!BBH", first, mask_bit | 126, size)
    else:
        header = struct.pack("!BBQ", first, mask_bit | 127, size)
    if not masked:
        return header + payload
    body = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return header + key + body


def close_payload(code: int, reason: bytes = b"") -> bytes:
    return struct.pack("!H", code) + reason


TEXTS = st.one_of(
    st.text(max_size=40).map(str.encode),
    st.sampled_from([b"\xff", b"\xc3", b"\x28", b"\xed\xa0\x80", b"\xe2\x82", b"\xac"]),
)
CODES = st.one_of(
    st.sampled_from([999, 1000, 1001, 1004, 1005, 1006, 1012, 1014, 1015, 1016, 2999, 3000]),
    st.integers(0, 65535),
)


@st.composite
def frames(draw: st.DrawFn) -> bytes:
    kind = draw(
        st.sampled_from(["text", "text", "text", "binary", "cont", "ping", "pong", "close", "odd"])
    )
    fin = draw(st.booleans()) if kind in ("text", "binary", "cont") else True
    if kind in ("text", "cont"):
        return client_frame(
            ws_frames.TEXT if kind == "text" else ws_frames.CONTINUATION,
            draw(TEXTS),
            fin=fin,
            long_length=draw(st.integers(0, 19)) == 0,
        )
    if kind == "binary":
        return client_frame(ws_frames.BINARY, draw(st.binary(max_size=30)), fin=fin)
    if kind in ("ping", "pong"):
        opcode = ws_frames.PING if kind == "ping" else ws_frames.PONG
        return client_frame(opcode, draw(st.binary(max_size=130)))
    if kind == "close":
        payload = draw(
            st.one_of(
                st.just(b""),
                st.binary(min_size=1, max_size=1),
                st.builds(close_payload, CODES, TEXTS),
            )
        )
        return client_frame(ws_frames.CLOSE, payload)
    # Something wrong in the header itself.
    flaw = draw(st.sampled_from(["rsv", "unmasked", "opcode", "control-fragment"]))
    if flaw == "rsv":
        return client_frame(ws_frames.TEXT, b"x", rsv=draw(st.integers(1, 7)))
    if flaw == "unmasked":
        return client_frame(ws_frames.TEXT, b"x", masked=False)
    if flaw == "opcode":
        return client_frame(draw(st.sampled_from([3, 4, 5, 6, 7, 0xB, 0xF])), b"x")
    return client_frame(ws_frames.PING, b"x", fin=False)


def cut(data: bytes, points: list[int]) -> list[bytes]:
    """``data`` in chunks cut at ``points`` (indexes, any order, repeats allowed)."""
    edges = sorted({0, len(data), *(p % (len(data) + 1) for p in points)})
    return [data[a:b] for a, b in itertools.pairwise(edges)]


# -- the two readers, reduced to comparable outcomes ------------------------------------------
Outcome = tuple[str, object]


def by_wsproto(chunks: list[bytes]) -> list[Outcome]:
    connection = Connection(ConnectionType.SERVER)
    seen: list[Outcome] = []
    text: list[str] = []
    size = 0
    for chunk in chunks:
        connection.receive_data(chunk)
        for event in connection.events():
            match event:
                case TextMessage(data=data, message_finished=finished):
                    text.append(data)
                    if finished:
                        seen.append(("text", "".join(text)))
                        text = []
                case BytesMessage(data=data, message_finished=finished):
                    size += len(data)
                    if finished:
                        seen.append(("binary", size))
                        size = 0
                case Ping(payload=payload):
                    seen.append(("ping", bytes(payload)))
                case Pong(payload=payload):
                    seen.append(("pong", bytes(payload)))
                case CloseConnection(code=code):
                    # wsproto reports a failure as a close in the OPEN state.
                    failed = connection.state is ConnectionState.OPEN
                    seen.append(("failure" if failed else "close", int(code)))
                    return seen
    return seen


def by_reader(chunks: list[bytes], limit: int = BIG) -> list[Outcome]:
    reader = FrameReader(limit)
    seen: list[Outcome] = []
    for chunk in chunks:
        reader.feed(chunk)
        while (received := reader.next()) is not None:
            match received:
                case ws_frames.Text(data=data):
                    seen.append(("text", data))
                case ws_frames.Binary(size=size):
                    seen.append(("binary", size))
                case ws_frames.Ping(payload=payload):
                    seen.append(("ping", payload))
                case ws_frames.Pong(payload=payload):
                    seen.append(("pong", payload))
                case ws_frames.Close(code=code):
                    seen.append(("close", code))
                    return seen
                case ws_frames.Failure(code=code):
                    seen.append(("failure", code))
                    return seen
    return seen


@settings(max_examples=600, deadline=None)
@given(st.lists(frames(), max_size=8), st.lists(st.integers(0, 10_000), max_size=6))
def test_the_reader_agrees_with_wsproto(stream: list[bytes], points: list[int]) -> None:
    chunks = cut(b"".join(stream), points)
    assert by_reader(chunks) == by_wsproto(chunks)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300), st.integers(1, 6), st.lists(st.integers(0, 2_000), max_size=5))
def test_fragmented_text_comes_out_whole(text: str, parts: int, points: list[int]) -> None:
    encoded = text.encode()
    step = max(1, len(encoded) // parts)
    pieces = [encoded[i : i + step] for i in range(0, len(encoded), step)] or [b""]
    stream = b"".join(
        client_frame(
            ws_frames.TEXT if i == 0 else ws_frames.CONTINUATION,
            piece,
            fin=i == len(pieces) - 1,
        )
        for i, piece in enumerate(pieces)
    )
    assert by_reader(cut(stream, points)) == [("text", text)]


@pytest.mark.parametrize(
    ("size", "encoding"),
    [(125, "7-bit"), (126, "16-bit"), (65535, "16-bit"), (65536, "64-bit")],
)
def test_each_length_encoding_is_read(size: int, encoding: str) -> None:
    frame = client_frame(ws_frames.TEXT, b"a" * size)
    assert frame[1] & 0x7F == {"7-bit": size, "16-bit": 126, "64-bit": 127}[encoding]
    assert by_reader([frame]) == [("text", "a" * size)]
    assert by_reader([frame[:1], frame[1:3], frame[3:11], frame[11:]]) == [("text", "a" * size)]


@pytest.mark.parametrize(
    ("header", "why"),
    [
        (struct.pack("!BBQ", 0x81, 0xFF, 100), "64-bit length where 7 bits do"),
        (struct.pack("!BBQ", 0x81, 0xFF, 1 << 63), "64-bit length with its top bit"),
        (struct.pack("!BBH", 0x81, 0xFE, 125), "16-bit length where 7 bits do"),
    ],
)
def test_lengths_out_of_their_form_fail_1002(header: bytes, why: str) -> None:
    assert by_reader([header + b"\x00" * 4]) == [("failure", 1002)], why


# -- the size limit -------------------------------------------------------------------------------
def test_the_limit_counts_the_bytes_of_the_whole_message() -> None:
    whole = "é" * 60  # 120 bytes
    fragments = [
        client_frame(ws_frames.TEXT, whole[:20].encode(), fin=False),
        client_frame(ws_frames.CONTINUATION, whole[20:].encode()),
    ]
    assert by_reader(fragments, limit=120) == [("text", whole)]
    assert by_reader([client_frame(ws_frames.TEXT, (whole + "a").encode())], limit=120) == [
        ("failure", 1009)
    ]


def test_a_message_over_the_limit_is_refused_on_its_header_and_never_buffered() -> None:
    reader = FrameReader(1000)
    header = client_frame(ws_frames.TEXT, b"x" * 5000)[:8]  # 16-bit length and the mask
    reader.feed(header)
    assert reader.next() == ws_frames.Failure(1009, "message too big")
    for _ in range(100):  # the refused payload, and more frames: dropped as they come
        reader.feed(b"y" * 50)
        assert reader.next() is None
    reader.feed(client_frame(ws_frames.TEXT, b"after"))
    reader.feed(client_frame(ws_frames.PING, b"still there?"))
    assert reader.next() is None
    assert len(reader._buffer) == 0  # nothing of it was kept
    reader.feed(client_frame(ws_frames.CLOSE, close_payload(1000, b"ok")))
    assert reader.next() == ws_frames.Close(1000, "ok")  # the peer's answer still counts


def test_nothing_is_read_after_a_failure_or_a_close() -> None:
    reader = FrameReader(BIG)
    reader.feed(client_frame(ws_frames.TEXT, b"x", masked=False) + client_frame(1, b"later"))
    assert isinstance(reader.next(), ws_frames.Failure)
    assert reader.next() is None
    reader.feed(client_frame(ws_frames.TEXT, b"more"))
    assert reader.next() is None
    closing = FrameReader(BIG)
    closing.feed(client_frame(ws_frames.CLOSE, b"") + client_frame(ws_frames.TEXT, b"later"))
    assert closing.next() == ws_frames.Close(1005, "")
    assert closing.next() is None


# -- frames the server sends ----------------------------------------------------------------------
def server_events(data: bytes) -> list[object]:
    client = Connection(ConnectionType.CLIENT)
    client.receive_data(data)
    return list(client.events())


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536])
def test_server_frames_are_wsprotos(size: int) -> None:
    text = "a" * size
    assert server_frame(text) == bytes(FrameProtocol(client=False, extensions=[]).send_data(text))


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536])
def test_a_frame_joined_from_its_parts_is_the_frame_and_gives_its_text_back(size: int) -> None:
    text = "é" * (size // 2) + "a" * (size % 2)  # two bytes a character: sizes as above
    payload = text.encode()
    assert text_frame_header(len(payload)) + payload == server_frame(text)
    assert frame_text(server_frame(text)) == text


def test_control_frames_reach_a_client() -> None:
    [ping] = server_events(control_frame(ws_frames.PING, b"hi"))
    assert isinstance(ping, Ping) and ping.payload == b"hi"
    [pong] = server_events(control_frame(ws_frames.PONG, b"p" * 200))  # cut to 125
    assert isinstance(pong, Pong) and pong.payload == b"p" * 125


@pytest.mark.parametrize("reason", ["", "bye", "é" * 70])
def test_a_close_frame_keeps_whole_characters_within_125_bytes(reason: str) -> None:
    frame = close_frame(4004, reason)
    assert len(frame) <= 127
    [close] = server_events(frame)
    assert isinstance(close, CloseConnection) and close.code == 4004
    assert reason.startswith(close.reason) and len(close.reason.encode()) <= 123


def test_a_close_without_a_code_is_echoed_empty() -> None:
    assert close_frame(ws_frames.NO_STATUS, "ignored") == b"\x88\x00"


@given(st.binary(max_size=300), st.binary(min_size=4, max_size=4))
def test_unmask_is_the_repeated_xor(payload: bytes, key: bytes) -> None:
    assert ws_frames.unmask(payload, key) == bytes(b ^ key[i % 4] for i, b in enumerate(payload))


@pytest.mark.parametrize(
    ("code", "allowed"),
    [
        (999, False),
        (1000, True),
        (1003, True),
        (1004, False),
        (1005, False),
        (1006, False),
        (1011, True),
        (1013, True),
        (1014, False),
        (1015, False),
        (1016, False),
        (2999, False),
        (3000, True),
        (4999, True),
        (5000, False),
    ],
)
def test_close_codes_a_peer_may_send(code: int, allowed: bool) -> None:
    frame = client_frame(ws_frames.CLOSE, close_payload(code, b"why"))
    expected = [("close", code)] if allowed else [("failure", 1002)]
    assert by_reader([frame]) == expected == by_wsproto([frame])


@pytest.mark.parametrize(
    "stream",
    [
        [client_frame(ws_frames.CONTINUATION, b"x")],
        [client_frame(ws_frames.TEXT, b"a", fin=False), client_frame(ws_frames.TEXT, b"b")],
        [client_frame(ws_frames.TEXT, b"a", fin=False), client_frame(ws_frames.BINARY, b"b")],
    ],
    ids=["continuation-first", "text-inside-text", "binary-inside-text"],
)
def test_data_frames_out_of_sequence_fail_1002(stream: list[bytes]) -> None:
    assert by_reader(stream) == [("failure", 1002)] == by_wsproto(stream)
