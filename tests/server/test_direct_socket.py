"""``DirectSocket`` over a real loopback TCP connection, with wsproto as the client.

Nothing is faked: the server side is an accepted trio ``SocketStream``, the client a
plain socket whose bytes are parsed by wsproto's client connection, so a frame that
arrived garbled, cut or out of order fails the parse or the comparison. The flush
task waits on the real socket in real time, hence a short ``send_timeout``.

A peer that "stops reading" has a tiny receive buffer (set before connecting, so
that the window it advertises is small) and the server's send buffer is small too:
the kernel then takes a few kilobytes and the rest waits in the socket's backlog.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest
import trio
from wsproto.connection import Connection as WSConnection
from wsproto.connection import ConnectionType
from wsproto.events import (
    BytesMessage,
    CloseConnection,
    Event,
    Ping,
    Pong,
    TextMessage,
)
from wsproto.frame_protocol import FrameProtocol

from syncplayd.server.live.direct_socket import (
    BACKLOG_BYTES,
    BACKLOG_FRAMES,
    DirectSocket,
    SocketClosed,
)
from syncplayd.server.live.ws_frames import server_frame

SEND_TIMEOUT = 0.5
LIMIT = 10.0  # fail_after for a whole step; every step here takes milliseconds
TINY_BUFFER = 4096
#: Far more than a tiny receive buffer and a tiny send buffer hold together, and less
#: than the backlog's byte bound: most of it waits in the backlog, partly written.
BIG = 512 * 1024
EOF = "eof"


@dataclass
class Peer:
    """The client end: sends frames through wsproto, reads and parses what arrives.

    ``next`` returns whole messages (fragments joined) and control events, then
    ``EOF`` once the server's FIN arrives.
    """

    stream: trio.SocketStream
    ws: WSConnection = field(default_factory=lambda: WSConnection(ConnectionType.CLIENT))
    events: list[Event] = field(default_factory=list)
    eof: bool = False
    _text: list[str] = field(default_factory=list)

    async def send(self, event: Event) -> None:
        await self.stream.send_all(self.ws.send(event))

    async def read_raw(self, size: int) -> bytes:
        """Exactly ``size`` bytes, unparsed."""
        data = b""
        while len(data) < size:
            more = await self.stream.receive_some(size - len(data))
            assert more, f"EOF after {len(data)} of {size} bytes"
            data += more
        return data

    async def drain_to_end(self) -> None:
        """Read raw bytes until the connection ends (EOF or reset)."""
        try:
            while await self.stream.receive_some(65536):
                pass
        except trio.BrokenResourceError:
            pass

    async def next(self) -> str | Event:
        while True:
            while self.events:
                event = self.events.pop(0)
                if isinstance(event, TextMessage):
                    self._text.append(event.data)
                    if event.message_finished:
                        text, self._text = "".join(self._text), []
                        return text
                    continue
                return event
            if self.eof:
                return EOF
            try:
                data = await self.stream.receive_some(65536)
            except trio.BrokenResourceError:  # a reset: the end, as an EOF is
                data = b""
            if not data:
                self.eof = True
                continue
            self.ws.receive_data(data)  # raises on a garbled stream
            self.events.extend(self.ws.events())

    async def next_until_close(self) -> list[str | Event]:
        """Everything up to and with the close frame (failing at EOF before it)."""
        seen: list[str | Event] = []
        while not (seen and isinstance(seen[-1], CloseConnection)):
            item = await self.next()
            assert item != EOF, f"EOF before the close frame, after {seen!r:.300}"
            seen.append(item)
        return seen

    async def until_eof(self) -> list[str | Event]:
        seen: list[str | Event] = []
        while (item := await self.next()) != EOF:
            seen.append(item)
        return seen


@dataclass
class Reader:
    """``DirectSocket.receive`` in a loop (it answers pings and closes as it reads)."""

    socket: DirectSocket
    messages: list[str | bytes] = field(default_factory=list)
    closed: trio.Event = field(default_factory=trio.Event)
    received: trio.Event = field(default_factory=trio.Event)
    error: SocketClosed | None = None

    async def run(self) -> None:
        try:
            while True:
                self.messages.append(await self.socket.receive())
                self.received.set()
        except SocketClosed as exc:
            self.error = exc
            self.closed.set()

    async def message(self) -> str | bytes:
        while not self.messages:
            self.received = trio.Event()
            await self.received.wait()
        return self.messages.pop(0)


@dataclass
class Pair:
    peer: Peer
    server: trio.SocketStream
    socket: DirectSocket
    nursery: trio.Nursery

    def reader(self) -> Reader:
        reader = Reader(self.socket)
        self.nursery.start_soon(reader.run)
        return reader


@asynccontextmanager
async def direct_pair(
    *,
    slow_peer: bool = False,
    max_message_bytes: int = 65536,
    leftover: bytes = b"",
    send_timeout: float | None = SEND_TIMEOUT,
) -> AsyncIterator[Pair]:
    listener = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
    client = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if slow_peer:
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, TINY_BUFFER)
    await client.connect(listener.socket.getsockname())
    server = await listener.accept()
    await listener.aclose()
    if slow_peer:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, TINY_BUFFER)
    peer = Peer(trio.SocketStream(client))
    try:
        async with trio.open_nursery() as nursery:
            direct = DirectSocket(
                server,
                leftover,
                max_message_bytes=max_message_bytes,
                spawn=nursery.start_soon,
                send_timeout=send_timeout,
            )
            yield Pair(peer, server, direct, nursery)
            nursery.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            await peer.stream.aclose()
            await server.aclose()


def is_broken(direct: DirectSocket) -> bool:
    return direct.broken  # a call, so that type checkers do not narrow it across awaits


def numbered(i: int) -> bytes:
    return server_frame(f"n:{i}")


# -- frames ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text", ["", "x", "é" * 62, "a" * 125, "a" * 126, "ü" * 40000, "z" * 65535, "z" * 65536]
)
async def test_server_frame_is_one_unmasked_text_frame_a_client_decodes(text: str) -> None:
    # The payload length lands on each of the three length encodings (7 bits, 16, 64).
    frame = server_frame(text)
    assert server_frame(text) == frame  # the same bytes every time: one encoding per broadcast
    assert frame[0] == 0x81  # FIN, text
    assert frame[1] & 0x80 == 0  # no mask
    client = WSConnection(ConnectionType.CLIENT)
    client.receive_data(frame)
    events = list(client.events())
    assert [(type(e), e.data, e.message_finished) for e in events] == [  # type: ignore[attr-defined]
        (TextMessage, text, True)
    ]


async def test_a_written_frame_arrives_byte_for_byte() -> None:
    frames = [server_frame("first"), server_frame("é" * 300), server_frame("z" * 70000)]
    with trio.fail_after(LIMIT):
        async with direct_pair() as pair:
            for frame in frames:
                pair.socket.write(frame)
            assert await pair.peer.read_raw(sum(map(len, frames))) == b"".join(frames)
            await pair.socket.send("via send")
            assert await pair.peer.next() == "via send"


# -- reading --------------------------------------------------------------------------------------
async def test_fragmented_text_messages_are_joined() -> None:
    with trio.fail_after(LIMIT):
        async with direct_pair() as pair:
            reader = pair.reader()
            parts = ['{"type": ', '"chat", ', '"message": "héllo"}']
            for i, part in enumerate(parts):
                await pair.peer.send(TextMessage(data=part, message_finished=i == len(parts) - 1))
            await pair.peer.send(TextMessage(data="next"))
            assert await reader.message() == "".join(parts)
            assert await reader.message() == "next"


async def test_leftover_bytes_from_the_handshake_are_read_first() -> None:
    client = WSConnection(ConnectionType.CLIENT)
    leftover = client.send(TextMessage(data="sent with the upgrade"))
    with trio.fail_after(LIMIT):
        async with direct_pair(leftover=leftover) as pair:
            assert await pair.socket.receive() == "sent with the upgrade"


async def test_binary_frames_come_out_empty() -> None:
    # The reader refuses binary frames whatever they hold: their content is not kept.
    with trio.fail_after(LIMIT):
        async with direct_pair() as pair:
            reader = pair.reader()
            await pair.peer.send(BytesMessage(data=b"\x00\x01", message_finished=False))
            await pair.peer.send(BytesMessage(data=b"\x02"))
            await pair.peer.send(TextMessage(data="text"))
            assert await reader.message() == b""
            assert await reader.message() == "text"


@pytest.mark.parametrize("fragments", [1, 3])
async def test_a_message_of_exactly_the_limit_in_utf8_bytes_passes(fragments: int) -> None:
    text = "é" * 60  # 60 characters, 120 bytes
    with trio.fail_after(LIMIT):
        async with direct_pair(max_message_bytes=120) as pair:
            reader = pair.reader()
            for i in range(fragments):
                part = text[i * 60 // fragments : (i + 1) * 60 // fragments]
                await pair.peer.send(TextMessage(data=part, message_finished=i == fragments - 1))
            assert await reader.message() == text


@pytest.mark.parametrize("fragments", [1, 3])
async def test_a_message_over_the_limit_is_closed_1009_and_the_rest_ignored(
    fragments: int,
) -> None:
    # 60 characters but 121 bytes: the limit counts UTF-8 bytes, not characters.
    text = "é" * 60 + "a"
    with trio.fail_after(LIMIT):
        async with direct_pair(max_message_bytes=120) as pair:
            reader = pair.reader()
            await pair.peer.send(TextMessage(data="before"))
            for i in range(fragments):
                part = text[i * 61 // fragments : (i + 1) * 61 // fragments]
                await pair.peer.send(TextMessage(data=part, message_finished=i == fragments - 1))
            # Already on the wire when the close arrives: ignored, not delivered.
            await pair.peer.send(TextMessage(data="after"))
            await pair.peer.send(TextMessage(data="and more", message_finished=False))
            close = await pair.peer.next()
            assert isinstance(close, CloseConnection) and close.code == 1009
            await pair.peer.send(close.response())
            await reader.closed.wait()
            assert reader.messages == ["before"]
            assert pair.socket.broken is False  # a close handshake, not a cut


async def test_a_ping_gets_a_pong_with_its_payload() -> None:
    with trio.fail_after(LIMIT):
        async with direct_pair() as pair:
            pair.reader()
            await pair.peer.send(Ping(payload=b"are you there"))
            pong = await pair.peer.next()
            assert isinstance(pong, Pong) and pong.payload == b"are you there"


async def test_our_ping_reaches_the_peer() -> None:
    with trio.fail_after(LIMIT):
        async with direct_pair() as pair:
            pair.socket.ping()
            assert isinstance(await pair.peer.next(), Ping)


async def test_the_peers_close_is_answered_and_ends_receive() -> None:
    with trio.fail_after(LIMIT):
        async with direct_pair() as pair:
            reader = pair.reader()
            await pair.peer.send(CloseConnection(code=1000, reason="bye"))
            await reader.closed.wait()
            assert reader.messages == []
            answer = await pair.peer.next()
            assert isinstance(answer, CloseConnection) and answer.code == 1000
            with pytest.raises(SocketClosed):
                await pair.socket.receive()  # and stays ended


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (b"\x81\x01x", 1002),  # an unmasked client frame
        (b"\xc1\x81\x00\x00\x00\x00x", 1002),  # a reserved bit without an extension
        (b"\x81\x82\x00\x00\x00\x00\xc3\x28", 1007),  # text that is not UTF-8
    ],
    ids=["unmasked", "reserved-bit", "not-utf8"],
)
async def test_a_frame_that_breaks_the_protocol_is_answered_with_its_close_code(
    frame: bytes, code: int
) -> None:
    # RFC 6455 section 7.1.7: fail the connection, saying why (wsproto's Connection left
    # the close unsent, so clients saw 1006).
    with trio.fail_after(LIMIT):
        async with direct_pair() as pair:
            reader = pair.reader()
            await pair.peer.send(TextMessage(data="before"))
            await pair.peer.stream.send_all(frame)
            await pair.peer.send(TextMessage(data="after"))
            close = await pair.peer.next_until_close()
            assert isinstance(close[-1], CloseConnection) and close[-1].code == code
            await reader.closed.wait()
            assert reader.messages == ["before"]
            with pytest.raises(SocketClosed):
                await pair.socket.receive()  # and stays ended
            with pytest.raises(trio.BrokenResourceError):
                await pair.socket.send("too late")


async def test_a_close_without_a_code_is_answered_with_an_empty_close() -> None:
    with trio.fail_after(LIMIT):
        async with direct_pair() as pair:
            reader = pair.reader()
            await pair.peer.stream.send_all(b"\x88\x80\x00\x00\x00\x00")  # no payload
            await reader.closed.wait()
            answer = await pair.peer.next()
            assert isinstance(answer, CloseConnection) and answer.code == 1005


async def test_eof_ends_receive() -> None:
    with trio.fail_after(LIMIT):
        async with direct_pair() as pair:
            reader = pair.reader()
            await pair.peer.send(TextMessage(data="last words"))
            await pair.peer.stream.send_eof()
            await reader.closed.wait()
            assert reader.messages == ["last words"]


async def test_abort_cuts_the_connection_and_later_writes_are_dropped() -> None:
    with trio.fail_after(LIMIT):
        async with direct_pair() as pair:
            reader = pair.reader()
            pair.socket.abort("gone quiet")
            await reader.closed.wait()  # the reader is woken up
            assert pair.socket.broken
            pair.socket.write(server_frame("too late"))
            assert await pair.peer.until_eof() == []


async def test_drop_closes_the_socket_at_once() -> None:
    """What a room's let-go falls back to when no task is left to say goodbye (daemon exit)."""
    with trio.fail_after(LIMIT):
        async with direct_pair() as pair:
            pair.socket.drop("the server is stopping")
            assert pair.server.socket.fileno() == -1
            assert not pair.socket.write(server_frame("too late"))
            assert await pair.peer.until_eof() == []


# -- a peer that stops reading --------------------------------------------------------------------
@pytest.mark.parametrize("big_first", [False, True], ids=["small-frames", "partly-written-head"])
async def test_a_full_backlog_calls_on_too_slow_once_and_the_goodbye_still_arrives_whole(
    big_first: bool,
) -> None:
    """The backlog's bound is reached while the peer reads nothing; then it reads again.

    The callback (as ``DirectConnection`` does) writes the goodbye at once: a text
    frame and a close frame. The waiting frames are dropped, except one the kernel
    already took part of: without its remainder the peer would read the goodbye's
    bytes as the rest of that frame.
    """
    calls: list[str] = []
    with trio.fail_after(LIMIT):
        async with direct_pair(slow_peer=True) as pair:
            direct = pair.socket

            def too_slow(message: str) -> None:
                calls.append(message)
                direct.write(server_frame("goodbye"))
                direct.close_now(4004, "too-slow")

            direct.on_too_slow = too_slow
            reader = pair.reader()
            written = 0
            if big_first:
                direct.write(server_frame("B" * BIG))
            # No checkpoint in this loop: the peer reads nothing, the flush cannot run.
            while not calls:
                assert written < 100_000, "the backlog never filled"
                direct.write(numbered(written))
                written += 1
            assert calls == [f"more than {BACKLOG_FRAMES} messages waiting to be sent"]
            if big_first:
                # Everything after the partly written frame waited: the bound is in frames.
                assert written == BACKLOG_FRAMES
            seen = await pair.peer.next_until_close()
            assert len(calls) == 1
            close = seen.pop()
            assert isinstance(close, CloseConnection) and close.code == 4004
            assert seen.pop() == "goodbye"
            if big_first:
                assert seen == ["B" * BIG]  # whole, and nothing queued behind it
            else:
                # What the kernel had taken, in order and whole; the rest was dropped.
                assert seen == [f"n:{i}" for i in range(len(seen))]
                assert 0 < len(seen) < written
            await pair.peer.send(close.response())
            await reader.closed.wait()
            assert not direct.broken


async def test_the_backlog_is_bounded_in_bytes_too() -> None:
    calls: list[str] = []
    frame_text = "k" * (16 * 1024)
    with trio.fail_after(LIMIT):
        async with direct_pair(slow_peer=True) as pair:
            pair.socket.on_too_slow = calls.append
            written = 0
            while not calls:
                assert written < BACKLOG_FRAMES, "the byte bound was not applied"
                pair.socket.write(server_frame(frame_text))
                written += 1
            # 64 frames of 16 KiB fill the MiB; the kernel holds a few more at most.
            assert (
                BACKLOG_BYTES // len(frame_text) <= written < BACKLOG_BYTES // len(frame_text) + 16
            )
            assert len(calls) == 1


async def test_a_frame_bigger_than_the_byte_bound_to_a_slow_peer() -> None:
    """One frame larger than the backlog's byte bound, the kernel taking only part of it.

    Too slow, then; but ``write`` must not raise (it runs inside a broadcast, for
    every member), and what reaches the peer must still parse: the frame's start is
    already in the kernel, so either all of it and the goodbye follow, or the
    connection is cut.
    """
    calls: list[str] = []
    text = "H" * (BACKLOG_BYTES + BIG)
    with trio.fail_after(LIMIT):
        async with direct_pair(slow_peer=True) as pair:
            pair.socket.on_too_slow = calls.append
            pair.socket.write(server_frame(text))
            assert len(calls) <= 1
            pair.socket.write(server_frame("goodbye"))
            pair.socket.close_now(4004, "too-slow")
            seen = await pair.peer.until_eof()
            assert seen in ([], [text, "goodbye", CloseConnection(code=4004, reason="too-slow")])


async def test_a_peer_that_reads_again_after_a_stall_gets_the_goodbye_whole() -> None:
    fired = trio.Event()
    with trio.fail_after(LIMIT):
        async with direct_pair(slow_peer=True) as pair:
            direct = pair.socket

            def too_slow(message: str) -> None:
                assert not fired.is_set(), "called twice"
                direct.write(server_frame("goodbye"))
                direct.close_now(4004, "too-slow")
                fired.set()

            direct.on_too_slow = too_slow
            direct.write(server_frame("B" * BIG))
            direct.write(server_frame("dropped"))
            await fired.wait()
            # Back within the send timeout: the partly written frame, then the goodbye.
            seen = await pair.peer.next_until_close()
            assert seen == ["B" * BIG, "goodbye", CloseConnection(code=4004, reason="too-slow")]


async def test_a_stalled_flush_calls_on_too_slow_and_a_second_stall_cuts() -> None:
    calls: list[float] = []
    fired = trio.Event()
    with trio.fail_after(LIMIT):
        async with direct_pair(slow_peer=True) as pair:
            direct = pair.socket

            def too_slow(message: str) -> None:
                assert message == f"the peer has not taken a message for {SEND_TIMEOUT:g} s"
                calls.append(trio.current_time())
                direct.write(server_frame("goodbye"))
                direct.close_now(4004, "too-slow")
                fired.set()

            direct.on_too_slow = too_slow
            reader = pair.reader()
            start = trio.current_time()
            direct.write(server_frame("B" * BIG))  # the rest waits: the peer reads nothing
            await fired.wait()
            assert calls[0] - start >= SEND_TIMEOUT * 0.9
            assert not is_broken(direct)
            # The goodbye waits behind the same closed window: cut after another timeout.
            await reader.closed.wait()
            cut = trio.current_time()
            assert is_broken(direct)
            assert cut - calls[0] >= SEND_TIMEOUT * 0.9
            assert len(calls) == 1
            # The peer, reading at last, finds the connection ended.
            await pair.peer.drain_to_end()


async def test_a_peer_that_still_sends_keeps_its_socket_until_it_reads_the_goodbye() -> None:
    # Alive but not reading (it sends heartbeats): the goodbye waits past a second stall,
    # so that the peer, reading at last, learns why it was dropped.
    fired = trio.Event()
    with trio.fail_after(LIMIT):
        async with direct_pair(slow_peer=True) as pair:
            direct = pair.socket

            def too_slow(message: str) -> None:
                direct.write(server_frame("goodbye"))
                direct.close_now(4004, "too-slow")
                fired.set()

            direct.on_too_slow = too_slow
            reader = pair.reader()
            direct.write(server_frame("B" * BIG))  # the rest waits: the peer reads nothing
            told = None
            while trio.current_time() - (told or trio.current_time()) < SEND_TIMEOUT * 2.5:
                await pair.peer.send(TextMessage(data="heartbeat"))
                await reader.message()
                if told is None and fired.is_set():
                    told = trio.current_time()
            assert told is not None
            assert not is_broken(direct)  # two stalls later, still there
            messages = await pair.peer.next_until_close()
            assert messages[-2:] == ["goodbye", CloseConnection(code=4004, reason="too-slow")]


# -- finishing ------------------------------------------------------------------------------------
async def test_finish_sends_our_close_then_eof_and_closes_the_socket() -> None:
    with trio.fail_after(LIMIT):
        async with direct_pair() as pair:
            pair.socket.close_now(1000, "left")
            finished = trio.Event()

            async def finish() -> None:
                await pair.socket.finish(grace=LIMIT)
                finished.set()

            pair.nursery.start_soon(finish)
            close = await pair.peer.next()
            assert close == CloseConnection(code=1000, reason="left")
            assert await pair.peer.next() == EOF  # our FIN follows the close frame
            assert not finished.is_set()  # it drains the peer until the peer closes
            await pair.peer.send(close.response())
            await pair.peer.stream.send_eof()
            await finished.wait()
            assert pair.server.socket.fileno() == -1


async def test_finish_writes_the_backlog_first() -> None:
    with trio.fail_after(LIMIT):
        async with direct_pair(slow_peer=True) as pair:
            pair.socket.write(server_frame("B" * BIG))
            pair.socket.write(server_frame("goodbye"))
            pair.socket.close_now(1000, "left")
            finished = trio.Event()

            async def finish() -> None:
                await pair.socket.finish(grace=LIMIT)
                finished.set()

            pair.nursery.start_soon(finish)
            seen = await pair.peer.until_eof()
            assert seen == ["B" * BIG, "goodbye", CloseConnection(code=1000, reason="left")]
            await pair.peer.stream.aclose()
            await finished.wait()
            assert pair.server.socket.fileno() == -1


async def test_finish_gives_a_silent_peer_the_grace_then_closes() -> None:
    grace = 0.3
    with trio.fail_after(LIMIT):
        async with direct_pair() as pair:
            pair.socket.close_now(1000, "left")
            start = trio.current_time()
            await pair.socket.finish(grace=grace)  # the peer neither reads nor closes
            assert trio.current_time() - start >= grace * 0.9
            assert pair.server.socket.fileno() == -1
            seen = await pair.peer.until_eof()
            assert seen == [CloseConnection(code=1000, reason="left")]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "a",
        "a" * 125,
        "é" * 63,
        "a" * 126,
        "a" * 4096,
        "é" * 2100,
        "é" * 32767,
        "é" * 32768,
        "a" * 65535,
        "a" * 65536,
    ],
    ids=lambda t: f"{len(t.encode())}-bytes",
)
def test_a_frame_is_built_as_wsproto_builds_it(text: str) -> None:
    # The header is built here (wsproto's copies cost more than the header itself):
    # the bytes must be exactly wsproto's, on both sides of each length encoding.
    expected = bytes(FrameProtocol(client=False, extensions=[]).send_data(text, fin=True))
    assert server_frame(text) == expected
