"""Syncplay's wire format, sans-I/O: JSON objects on CRLF-terminated lines.

A line is one JSON object whose keys are commands (``{"Hello": {...}}``); more
than one command per line is legal, and Syncplay's own server walks them in
order. :class:`LineReader` splits received bytes into lines (refusing a line
longer than Syncplay's own limit, 16 KiB), :func:`decode_line` turns a line
into its commands, and the ``parse_*`` functions turn a command's body into a
typed value or raise :class:`WireError` with a message the client can show.
Nothing here touches a socket or a clock.

The shapes are those of Syncplay 1.6.9's ``protocols.py`` (client and server);
docs/syncplay-bridge.md lists them.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Final

#: Twisted's ``LineReceiver.MAX_LENGTH``, which Syncplay's server keeps: a longer line
#: closes the connection.
MAX_LINE_BYTES: Final = 16 * 1024

#: Syncplay's own limits (constants.py); the bridge advertises its own in Hello.
MAX_FILENAME_LENGTH: Final = 250
MAX_PLAYLIST_ITEMS: Final = 250

COMMANDS: Final = frozenset({"Hello", "Set", "List", "State", "Chat", "Error", "TLS"})


class WireError(Exception):
    """A line or command the bridge refuses; ``str(exc)`` is shown to the client."""


class LineReader:
    """Split a byte stream into lines, without their CRLF (a bare LF is accepted too)."""

    def __init__(self, max_line: int = MAX_LINE_BYTES) -> None:
        self._max = max_line
        self._buffer = bytearray()

    def feed(self, data: bytes | bytearray) -> list[bytes]:
        """The complete lines ``data`` finishes; the rest waits for more.

        Raises:
            WireError: a line (complete or not) is longer than the limit.
        """
        self._buffer += data
        lines: list[bytes] = []
        start = 0
        while (end := self._buffer.find(b"\n", start)) >= 0:
            line = bytes(self._buffer[start:end]).removesuffix(b"\r")
            if len(line) > self._max:
                raise WireError(f"lines are limited to {self._max} bytes")
            lines.append(line)
            start = end + 1
        del self._buffer[:start]
        if len(self._buffer) > self._max:
            raise WireError(f"lines are limited to {self._max} bytes")
        return lines

    @property
    def pending(self) -> int:
        """Bytes received after the last complete line."""
        return len(self._buffer)

    def take_pending(self) -> bytes:
        """The bytes received after the last complete line, taken out of the reader."""
        rest = bytes(self._buffer)
        self._buffer.clear()
        return rest


def decode_line(line: bytes) -> list[tuple[str, Any]]:
    """The commands of one line, in order; an empty line has none.

    Raises:
        WireError: not UTF-8, not JSON, not an object, or an unknown command (Syncplay's
            server drops the connection for each of these).
    """
    try:
        text = line.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise WireError("the line is not UTF-8") from None
    if not text:
        return []
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        raise WireError("not a JSON-encoded line") from None
    if not isinstance(value, dict):
        raise WireError("a line must be a JSON object of commands")
    for command in value:
        if command not in COMMANDS:
            raise WireError(f"unknown command {command[:40]!r}")
    return list(value.items())


def encode_line(message: dict[str, Any]) -> bytes:
    """One message as a line, CRLF-terminated, as Syncplay's ``sendLine`` writes it."""
    return json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode() + b"\r\n"


# -- command bodies ------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Hello:
    username: str
    room: str
    #: The unsalted MD5 hex of the password the user typed, if any.
    password: str | None
    version: str


@dataclass(frozen=True, slots=True)
class PlayState:
    position: float
    paused: bool
    do_seek: bool


@dataclass(frozen=True, slots=True)
class ClientState:
    """A client's ``State``: its player, the ping fields, the echo counters."""

    playstate: PlayState | None
    #: Our ``latencyCalculation`` echoed back (a server-clock time), if present.
    latency_echo: float | None
    #: The client's own timestamp, to be echoed (``clientLatencyCalculation``).
    client_stamp: float | None
    client_rtt: float
    ignoring_server: int | None
    ignoring_client: int | None


@dataclass(frozen=True, slots=True)
class FileInfo:
    name: str
    duration: float | None
    size: int | None


@dataclass(frozen=True, slots=True)
class SetReady:
    is_ready: bool | None
    manually_initiated: bool


@dataclass(frozen=True, slots=True)
class SetRoom:
    name: str


@dataclass(frozen=True, slots=True)
class SetPlaylist:
    files: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SetPlaylistIndex:
    index: int | None


@dataclass(frozen=True, slots=True)
class SetOther:
    """A ``Set`` the bridge acknowledges but does not act on (``features``, managed rooms)."""

    name: str
    body: Any


SetCommand = FileInfo | SetReady | SetRoom | SetPlaylist | SetPlaylistIndex | SetOther


def _object(body: Any, what: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise WireError(f"{what} must be an object")
    return body


def _text(value: Any, what: str, limit: int) -> str:
    if not isinstance(value, str):
        raise WireError(f"{what} must be a string")
    return value.strip()[:limit]


def _number(value: Any, what: str) -> float:
    # bool is an int in Python, and JSON's true is no position.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise WireError(f"{what} must be a number")
    try:
        number = float(value)
    except OverflowError:  # JSON integers have no bound; a float does
        raise WireError(f"{what} must be a finite number") from None
    if not math.isfinite(number):
        raise WireError(f"{what} must be a finite number")
    return number


def _optional_number(value: Any, what: str) -> float | None:
    return None if value is None else _number(value, what)


def _counter(value: Any, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**53:
        raise WireError(f"{what} must be a counter")
    return value


def parse_hello(body: Any) -> Hello:
    """A client's ``Hello``; Syncplay's server refuses one without username, room or version."""
    hello = _object(body, "Hello")
    username = hello.get("username")
    room = hello.get("room")
    version = hello.get("realversion", hello.get("version"))
    if not isinstance(username, str) or not username.strip():
        raise WireError("Hello needs a username")
    name = room.get("name") if isinstance(room, dict) else None
    if not isinstance(name, str) or not name.strip():
        raise WireError("Hello needs a room name")
    if not isinstance(version, str) or not version:
        raise WireError("Hello needs a version")
    password = hello.get("password")
    if password is not None and not isinstance(password, str):
        raise WireError("the password must be a string")
    return Hello(
        username=username.strip(),
        room=name.strip(),
        password=password or None,
        version=version[:32],
    )


def parse_state(body: Any) -> ClientState:
    """A client's ``State``."""
    state = _object(body, "State")
    playstate = None
    if (play := state.get("playstate")) is not None:
        play = _object(play, "playstate")
        position = _number(play.get("position", 0) or 0, "position")
        paused = play.get("paused")
        if not isinstance(paused, bool):
            raise WireError("paused must be true or false")
        playstate = PlayState(
            position=max(0.0, position), paused=paused, do_seek=play.get("doSeek") is True
        )
    ping = _object(state.get("ping") or {}, "ping")
    ignoring = _object(state.get("ignoringOnTheFly") or {}, "ignoringOnTheFly")
    return ClientState(
        playstate=playstate,
        latency_echo=_optional_number(ping.get("latencyCalculation") or None, "latencyCalculation"),
        client_stamp=_optional_number(
            ping.get("clientLatencyCalculation") or None, "clientLatencyCalculation"
        ),
        client_rtt=max(0.0, _number(ping.get("clientRtt", 0) or 0, "clientRtt")),
        ignoring_server=_counter(ignoring.get("server"), "ignoringOnTheFly.server"),
        ignoring_client=_counter(ignoring.get("client"), "ignoringOnTheFly.client"),
    )


def parse_set(body: Any) -> list[SetCommand]:
    """A client's ``Set``: each sub-command, in order."""
    commands: list[SetCommand] = []
    for name, value in _object(body, "Set").items():
        if name == "file":
            file = _object(value, "file")
            duration = _optional_number(file.get("duration"), "duration")
            size = file.get("size")
            commands.append(
                FileInfo(
                    name=_text(file.get("name", ""), "file name", MAX_FILENAME_LENGTH),
                    duration=duration if duration is not None and duration > 0 else None,
                    # Clients may hash the size for privacy: a string is not a size.
                    size=size if isinstance(size, int) and not isinstance(size, bool) else None,
                )
            )
        elif name == "ready":
            ready = _object(value, "ready")
            is_ready = ready.get("isReady")
            if is_ready is not None and not isinstance(is_ready, bool):
                raise WireError("isReady must be true, false or null")
            commands.append(
                SetReady(
                    is_ready=is_ready, manually_initiated=ready.get("manuallyInitiated") is True
                )
            )
        elif name == "room":
            room = _object(value, "room")
            commands.append(SetRoom(name=_text(room.get("name", ""), "room name", 64)))
        elif name == "playlistChange":
            files = _object(value, "playlistChange").get("files")
            if not isinstance(files, list) or len(files) > MAX_PLAYLIST_ITEMS:
                raise WireError(f"a playlist is a list of at most {MAX_PLAYLIST_ITEMS} file names")
            names = tuple(_text(f, "a playlist entry", MAX_FILENAME_LENGTH) for f in files)
            commands.append(SetPlaylist(files=names))
        elif name == "playlistIndex":
            index = _object(value, "playlistIndex").get("index")
            commands.append(SetPlaylistIndex(index=_counter(index, "playlist index")))
        else:
            commands.append(SetOther(name=name[:40], body=value))
    return commands


def parse_chat(body: Any, limit: int) -> str:
    """A client's ``Chat``: the text, cut to ``limit`` characters as Syncplay's server does."""
    if not isinstance(body, str):
        raise WireError("a chat message must be a string")
    return body[:limit]
