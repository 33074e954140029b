"""WebSocket frames on the server side of an open connection (RFC 6455 section 5), sans I/O.

:class:`FrameReader` turns the bytes a client sends into whole messages and
control frames; :func:`server_frame` and :func:`control_frame` build what the
server sends. The opening handshake is not here (the front door does it with
wsproto's ``H11Handshake``), nor any extension: the daemon negotiates none, so a
reserved bit set is an error.

Why not wsproto's ``Connection`` for this part: it is the first thing every
message meets on the broadcast path, and it costs each one a generator per
frame, an incremental decoder object per text message, a chunk-by-chunk unmask
and three event objects; on the daemon's cache-cold path that was ~45 µs of the
~150 µs from a client's frame to the first write of its broadcast, and ~1.7 KiB
per idle member (docs/architecture.md, "The broadcast path"). The rules it
applies are kept, and ``tests/server/test_ws_frames.py`` holds this reader to
wsproto's verdicts on generated frame streams.
"""

from __future__ import annotations

import codecs
import struct
from typing import NamedTuple

#: Opcodes (RFC 6455 section 5.2).
CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
_DATA = (CONTINUATION, TEXT, BINARY)
_CONTROL = (CLOSE, PING, PONG)

#: Close codes this module produces (RFC 6455 section 7.4.1).
PROTOCOL_ERROR = 1002
INVALID_PAYLOAD = 1007
MESSAGE_TOO_BIG = 1009
NO_STATUS = 1005
#: Codes a peer may not send: they only describe a close locally (section 7.4.1).
_LOCAL_ONLY = frozenset({1005, 1006, 1015})
#: Codes below 3000 the RFC defines (1014 came later, and wsproto refuses it too); the
#: rest of 1000-2999 is reserved.
_DEFINED = frozenset(range(1000, 1014)) - {1004}
_MAX_CONTROL_PAYLOAD = 125


class Text(NamedTuple):
    """A whole text message (fragments joined, UTF-8 checked)."""

    data: str


class Binary(NamedTuple):
    """A whole binary message. Its bytes are not kept: nothing here reads binary messages."""

    size: int


class Ping(NamedTuple):
    payload: bytes


class Pong(NamedTuple):
    payload: bytes


class Close(NamedTuple):
    """The peer's close frame (``code`` 1005 when it carried none)."""

    code: int
    reason: str


class Failure(NamedTuple):
    """The peer broke the protocol: close with ``code``, read nothing more from it.

    ``code`` is 1002 (a malformed frame), 1007 (text that is not UTF-8) or 1009 (a
    message over the size limit); after a 1009 the reader still looks for the
    peer's close and drops everything else (see :meth:`FrameReader.next`).
    """

    code: int
    reason: str


Received = Text | Binary | Ping | Pong | Close | Failure


def _header(first: int, size: int) -> bytes:
    if size < 126:
        return bytes((first, size))
    if size < 1 << 16:
        return struct.pack("!BBH", first, 126, size)
    return struct.pack("!BBQ", first, 127, size)


def _frame(first: int, payload: bytes) -> bytes:
    return _header(first, len(payload)) + payload


def text_frame_header(size: int) -> bytes:
    """The header of an unfragmented server text frame whose payload is ``size`` bytes:
    for a frame written as one join of its parts (a large one copied once, not twice)."""
    return _header(0x80 | TEXT, size)


def frame_text(wire: bytes) -> str:
    """The text a server text frame built here carries (the inverse of :func:`server_frame`)."""
    size = wire[1] & 0x7F
    start = 2 if size < 126 else 4 if size == 126 else 10
    return wire[start:].decode()


def server_frame(text: str) -> bytes:
    """The bytes of one unfragmented text frame from the server carrying ``text``.

    Server frames carry no mask, so one frame's bytes serve every recipient of a
    broadcast.
    """
    return _frame(0x80 | TEXT, text.encode())


def control_frame(opcode: int, payload: bytes = b"") -> bytes:
    """A ping, pong or close frame from the server (``payload`` at most 125 bytes)."""
    return _frame(0x80 | opcode, payload[:_MAX_CONTROL_PAYLOAD])


def close_frame(code: int, reason: str = "") -> bytes:
    """A close frame with ``code`` and as much of ``reason`` as fits whole in 123 bytes.

    ``NO_STATUS`` (1005) only describes a close that carried no code and may not be sent:
    its frame is an empty close, the echo of one.
    """
    if code == NO_STATUS:
        return control_frame(CLOSE)
    encoded = reason.encode()[: _MAX_CONTROL_PAYLOAD - 2]
    # A cut may split a character: drop its remains, as wsproto does.
    encoded = encoded.decode(errors="ignore").encode()
    return control_frame(CLOSE, struct.pack("!H", code) + encoded)


_utf8_decoder = codecs.getincrementaldecoder("utf-8")


def unmask(payload: bytes | bytearray, key: bytes | bytearray) -> bytes:
    """``payload`` XOR the repeated 4-byte ``key`` (section 5.3), as one big-integer XOR."""
    size = len(payload)
    if not size:
        return b""
    mask = (key * ((size + 3) // 4))[:size]
    value = int.from_bytes(payload, "little") ^ int.from_bytes(mask, "little")
    return value.to_bytes(size, "little")


class FrameReader:
    """The frames a client sends, parsed as they arrive.

    :meth:`feed` the bytes read from the socket, then call :meth:`next` until it
    returns ``None`` (it needs more bytes). A data message comes out whole;
    ``max_message_bytes`` bounds it across its fragments (the header of a frame
    that would exceed it is enough to refuse it, so a refused message is never
    buffered). Control frames come out as they arrive, also between the fragments
    of a message.
    """

    __slots__ = (
        "_buffer",
        "_closed",
        "_decoder",
        "_failed",
        "_limit",
        "_message_bytes",
        "_opcode",
        "_parts",
        "_refusing",
        "_skip",
    )

    def __init__(self, max_message_bytes: int, leftover: bytes = b"") -> None:
        self._limit = max_message_bytes
        self._buffer = bytearray(leftover)
        self._opcode: int | None = None  # of the fragmented message in progress
        self._parts: list[str] = []  # the text of a fragmented message so far
        self._decoder: codecs.IncrementalDecoder | None = None
        self._message_bytes = 0
        self._skip = 0  # payload bytes of a refused frame still to come and be dropped
        self._refusing = False  # after a 1009: only the peer's close still counts
        self._failed = False
        self._closed = False  # the peer's close came: nothing after it is read

    def feed(self, data: bytes) -> None:
        if self._failed or self._closed:
            return
        if self._skip:
            dropped = min(self._skip, len(data))
            self._skip -= dropped
            data = data[dropped:]
        self._buffer += data

    def next(self) -> Received | None:
        """The next message or control frame, or ``None`` until more bytes are fed."""
        while not (self._failed or self._closed):
            try:
                received = self._next_frame()
            except _ProtocolError as exc:
                self._failed = True
                self._buffer = bytearray()
                self._parts = []
                self._decoder = None
                return Failure(exc.code, exc.reason)
            if received is None or not self._refusing or isinstance(received, Close | Failure):
                return received
        return None

    def _next_frame(self) -> Received | None:
        # One loop turn per frame: fragments and dropped frames go round again.
        while True:
            buffer = self._buffer
            if len(buffer) < 2:
                return None
            first, second = buffer[0], buffer[1]
            if first & 0x70:
                raise _ProtocolError(PROTOCOL_ERROR, "reserved bit set without an extension")
            opcode = first & 0x0F
            fin = first & 0x80
            if not second & 0x80:
                raise _ProtocolError(PROTOCOL_ERROR, "client frames must be masked")
            size = second & 0x7F
            offset = 2
            if opcode in _CONTROL:
                if not fin:
                    raise _ProtocolError(PROTOCOL_ERROR, "fragmented control frame")
                if size > _MAX_CONTROL_PAYLOAD:
                    raise _ProtocolError(PROTOCOL_ERROR, "control frame over 125 bytes")
            elif opcode not in _DATA:
                raise _ProtocolError(PROTOCOL_ERROR, f"unknown opcode {opcode:#x}")
            if size == 126:
                if len(buffer) < 4:
                    return None
                (size,) = struct.unpack_from("!H", buffer, 2)
                if size < 126:
                    raise _ProtocolError(PROTOCOL_ERROR, "payload length not in its shortest form")
                offset = 4
            elif size == 127:
                if len(buffer) < 10:
                    return None
                (size,) = struct.unpack_from("!Q", buffer, 2)
                if size < 1 << 16:
                    raise _ProtocolError(PROTOCOL_ERROR, "payload length not in its shortest form")
                if size >> 63:
                    raise _ProtocolError(PROTOCOL_ERROR, "payload length with its top bit set")
                offset = 10
            if opcode in _DATA:
                self._check_sequence(opcode)
                if self._refusing or self._message_bytes + size > self._limit:
                    # Refused on its header: the payload is dropped as it arrives.
                    available = len(buffer) - offset - 4
                    if available < 0:
                        return None
                    dropped = min(size, available)
                    self._skip = size - dropped
                    del buffer[: offset + 4 + dropped]
                    self._opcode = None if fin else (self._opcode or opcode)
                    if self._refusing:
                        continue
                    self._refusing = True
                    self._parts = []
                    self._decoder = None
                    return Failure(MESSAGE_TOO_BIG, "message too big")
            end = offset + 4 + size
            if len(buffer) < end:
                return None
            payload = unmask(buffer[offset + 4 : end], buffer[offset : offset + 4])
            del buffer[:end]
            if opcode in _CONTROL:
                return self._control(opcode, payload)
            message = self._data(opcode, bool(fin), payload)
            if message is not None:
                return message

    def _check_sequence(self, opcode: int) -> None:
        if opcode == CONTINUATION and self._opcode is None:
            raise _ProtocolError(PROTOCOL_ERROR, "continuation frame without a message")
        if opcode != CONTINUATION and self._opcode is not None:
            raise _ProtocolError(PROTOCOL_ERROR, "new message inside a fragmented one")

    def _data(self, opcode: int, fin: bool, payload: bytes) -> Text | Binary | None:
        kind = self._opcode if opcode == CONTINUATION else opcode
        self._message_bytes += len(payload)
        decoder = self._decoder
        if fin and decoder is None:  # the usual case: a whole message in one frame
            size, self._message_bytes, self._opcode = self._message_bytes, 0, None
            if kind == BINARY:
                return Binary(size)
            try:
                return Text(payload.decode())
            except UnicodeDecodeError as exc:
                raise _ProtocolError(INVALID_PAYLOAD, f"text is not UTF-8: {exc}") from None
        if kind == TEXT:
            # Fragments are checked as they come, so that a message turns out not to be
            # UTF-8 at the fragment that makes it so (as wsproto reports it).
            if decoder is None:
                decoder = self._decoder = _utf8_decoder()
            try:
                self._parts.append(decoder.decode(payload, fin))
            except UnicodeDecodeError as exc:
                raise _ProtocolError(INVALID_PAYLOAD, f"text is not UTF-8: {exc}") from None
        if not fin:
            self._opcode = kind
            return None
        parts, self._parts, self._decoder, self._opcode = self._parts, [], None, None
        size, self._message_bytes = self._message_bytes, 0
        return Binary(size) if kind == BINARY else Text("".join(parts))

    def _control(self, opcode: int, payload: bytes) -> Received:
        if opcode == PING:
            return Ping(payload)
        if opcode == PONG:
            return Pong(payload)
        self._closed = True
        if not payload:
            return Close(NO_STATUS, "")
        if len(payload) == 1:
            raise _ProtocolError(PROTOCOL_ERROR, "close frame with a 1-byte payload")
        (code,) = struct.unpack_from("!H", payload)
        if (
            not 1000 <= code <= 4999
            or code in _LOCAL_ONLY
            or (code < 3000 and code not in _DEFINED)
        ):
            raise _ProtocolError(PROTOCOL_ERROR, f"close code {code} may not be sent")
        try:
            reason = payload[2:].decode()
        except UnicodeDecodeError:
            raise _ProtocolError(INVALID_PAYLOAD, "close reason is not UTF-8") from None
        return Close(code, reason)


class _ProtocolError(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
