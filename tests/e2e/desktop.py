"""The real Syncplay desktop client (Debian's ``syncplay``, console mode) and its mpv, for tests.

A test starts the client against a server, types console commands into its stdin, reads what
it prints, and asks its mpv (over mpv's JSON IPC socket, beside Syncplay's own connection to
it) where playback really is. Nothing is simulated: Syncplay decides what to send from what
mpv reports, so the tests see what a person at a desktop would see.

Why it looks the way it does:

* Each client gets its own HOME with a ``.syncplay`` ini, so no setting of the machine's user
  leaks in and the client never prompts or checks for updates (``DEFAULT_CONFIG``).
* Closing quits the way a person does (end of stdin, then mpv told to quit), which Syncplay
  1.6.9 survives cleanly; signals alone often leave it hung (its console thread blocks in
  ``input()``). The client runs in its own process group, because Syncplay starts mpv with a
  plain ``Popen``: SIGTERM then SIGKILL to the group, after bounded waits, make sure that
  nothing outlives the block.
* Output is read continuously by a task (a full pipe would stall the client) into a bounded
  buffer; waiting helpers scan it and wake on each new line, never sleeping blind.
* mpv's IPC socket lives in a short private folder: unix socket paths are limited to ~100
  bytes and pytest's ``tmp_path`` can be long.

The real ``syncplay-server`` is here too (``open_syncplay_server``), as a reference to prove the
harness against; syncplayd's Syncplay listener can take its place.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import tempfile
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from pathlib import Path
from subprocess import DEVNULL, PIPE, STDOUT
from typing import Any

import pytest
import trio

from tests.e2e.nginx import free_port

SYNCPLAY = (
    os.environ.get("SYNCPLAY_TEST_SYNCPLAY") or shutil.which("syncplay") or "/usr/bin/syncplay"
)
SYNCPLAY_SERVER = (
    os.environ.get("SYNCPLAY_TEST_SYNCPLAY_SERVER")
    or shutil.which("syncplay-server")
    or "/usr/bin/syncplay-server"
)
MPV = os.environ.get("SYNCPLAY_TEST_MPV") or shutil.which("mpv") or "/usr/bin/mpv"

# Syncplay 1.6.9's ini sections and the keys each may hold (ConfigurationGetter._iniStructure);
# a key in the wrong section is silently ignored by Syncplay, so the harness places them.
INI_SECTIONS: Mapping[str, tuple[str, ...]] = {
    "client_settings": (
        "name", "room", "roomList", "playerPath", "perPlayerArguments", "slowdownThreshold",
        "rewindThreshold", "fastforwardThreshold", "slowOnDesync", "rewindOnDesync",
        "fastforwardOnDesync", "dontSlowDownWithMe", "forceGuiPrompt", "filenamePrivacyMode",
        "filesizePrivacyMode", "unpauseAction", "pauseOnLeave", "readyAtStart",
        "autoplayMinUsers", "autoplayInitialState", "mediaSearchDirectories",
        "sharedPlaylistEnabled", "loopAtEndOfPlaylist", "loopSingleFiles",
        "autoplayRequireSameFilenames", "onlySwitchToTrustedDomains", "trustedDomains",
        "publicServers",
    ),
    "gui": (
        "autosaveJoinsToList", "showOSD", "showOSDWarnings", "showSlowdownOSD",
        "showDifferentRoomOSD", "showSameRoomOSD", "showNonControllerOSD",
        "showDurationNotification", "chatInputEnabled", "chatInputFontUnderline",
        "chatInputFontFamily", "chatInputRelativeFontSize", "chatInputFontWeight",
        "chatInputFontColor", "chatInputPosition", "chatDirectInput", "chatOutputFontFamily",
        "chatOutputRelativeFontSize", "chatOutputFontWeight", "chatOutputFontUnderline",
        "chatOutputMode", "chatMaxLines", "chatTopMargin", "chatLeftMargin", "chatBottomMargin",
        "chatMoveOSD", "chatOSDMargin", "notificationTimeout", "alertTimeout", "chatTimeout",
        "chatOutputEnabled",
    ),
    "general": ("language", "checkForUpdatesAutomatically", "lastCheckedForUpdates"),
}  # fmt: skip
_SECTION_OF = {key: section for section, keys in INI_SECTIONS.items() for key in keys}

# What every harness client gets unless ``extra_config`` says otherwise.
DEFAULT_CONFIG: Mapping[str, str] = {
    # English messages, so that tests can match them whatever the machine's locale.
    "language": "en",
    # Never call home (a GUI-only feature in 1.6.9, off for certain all the same).
    "checkForUpdatesAutomatically": "False",
    "forceGuiPrompt": "False",
    # "p" unpauses for real: with the default (IfOthersReady) an unpause while someone is not
    # ready only marks this client ready, and a test would depend on the others' readiness.
    "unpauseAction": "Always",
    "readyAtStart": "False",
}

OUTPUT_LINES = 5000  # lines kept per process; older ones are dropped (counted in ``lines_seen``)
QUIT_GRACE = 2.0  # seconds for the client to exit after mpv was told to quit
STOP_GRACE = 3.0  # seconds between SIGTERM and SIGKILL
POLL_INTERVAL = 0.05
IPC_TIMEOUT = 10.0  # for mpv to start and answer one request


def require_desktop_tools() -> None:
    """Skip without syncplay, syncplay-server or mpv, except in CI, where that is a failure.

    ``.ci/run`` installs Debian's ``syncplay`` and ``mpv``; the ``SYNCPLAY_TEST_SYNCPLAY``,
    ``SYNCPLAY_TEST_SYNCPLAY_SERVER`` and ``SYNCPLAY_TEST_MPV`` variables point elsewhere.
    """
    missing = [path for path in (SYNCPLAY, SYNCPLAY_SERVER, MPV) if not os.access(path, os.X_OK)]
    if missing:
        message = f"the Syncplay desktop tools are not installed: {', '.join(missing)}"
        if os.environ.get("CI") == "true":
            pytest.fail(message + " (.ci/run installs Debian's syncplay and mpv)", pytrace=False)
        pytest.skip(message)


async def wait_until(
    predicate: Callable[[], Awaitable[bool]],
    timeout: float,  # noqa: ASYNC109 - the helper's documented signature
    *,
    what: str = "condition",
) -> float:
    """Poll ``predicate`` until it holds; returns the seconds it took.

    For state that announces nothing (mpv's position): polling is bounded by ``timeout``,
    after which AssertionError says what was awaited.
    """
    start = trio.current_time()
    with trio.move_on_after(timeout):
        # Polling on purpose: mpv's position changes without an event to wait for.
        while not await predicate():  # noqa: ASYNC110
            await trio.sleep(POLL_INTERVAL)
        return trio.current_time() - start
    raise AssertionError(f"{what} did not happen within {timeout} s")


class ProcessOutput:
    """The lines a process prints, kept in a bounded buffer, with waiters woken on each line."""

    def __init__(self, label: str) -> None:
        self.label = label
        self._lines: deque[str] = deque(maxlen=OUTPUT_LINES)
        self.lines_seen = 0  # lines ever received, including those dropped from the buffer
        self.closed = False  # the process closed its output (it exited)
        self._changed = trio.Event()

    @property
    def lines(self) -> list[str]:
        return list(self._lines)

    def _append(self, line: str) -> None:
        self._lines.append(line)
        self.lines_seen += 1
        self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def pump(self, stream: trio.abc.ReceiveStream) -> None:
        """Read ``stream`` to its end, line by line (a last unterminated line counts too)."""
        pending = b""
        try:
            while chunk := await stream.receive_some(65536):
                pending += chunk
                *complete, pending = pending.split(b"\n")
                for raw in complete:
                    self._append(raw.decode("utf-8", "replace").rstrip("\r"))
                # A prompt without a newline would otherwise be invisible (and unbounded).
                if len(pending) > 65536:
                    self._append(pending.decode("utf-8", "replace"))
                    pending = b""
            if pending:
                self._append(pending.decode("utf-8", "replace"))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            self.closed = True
            self._wake()

    async def wait_closed(self) -> None:
        """Wait for the end of the output (the process and its children exited)."""
        while not self.closed:
            await self._changed.wait()

    def tail(self, count: int = 40) -> str:
        return "\n".join(list(self._lines)[-count:])

    async def wait_for_output(
        self,
        pattern: str | re.Pattern[str],
        *,
        timeout: float = 10.0,  # noqa: ASYNC109 - the helper's documented signature
        since: int = 0,
    ) -> re.Match[str]:
        """The first line numbered ``since`` or later that matches ``pattern`` (``re.search``).

        Lines already printed count. Raises AssertionError, with the output's tail, on timeout
        or if the process closes its output (exits) first.
        """
        regex = re.compile(pattern)
        checked = since
        with trio.move_on_after(timeout):
            while True:
                first_kept = self.lines_seen - len(self._lines)
                for number in range(max(checked, first_kept), self.lines_seen):
                    match = regex.search(self._lines[number - first_kept])
                    if match:
                        return match
                checked = self.lines_seen
                if self.closed:
                    break
                await self._changed.wait()
        ended = "exited" if self.closed else f"printed nothing matching within {timeout} s"
        raise AssertionError(
            f"{self.label} {ended} (waiting for {regex.pattern!r}); its last lines:\n{self.tail()}"
        )


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with suppress(ProcessLookupError):  # the whole group is gone already
        os.killpg(pgid, sig)


async def _read(
    scope: trio.CancelScope, output: ProcessOutput, stream: trio.abc.ReceiveStream
) -> None:
    with scope:
        await output.pump(stream)


async def _stop(process: trio.Process, output: ProcessOutput, reader: trio.CancelScope) -> None:
    """End the process's whole group and its output reader; shielded, bounded in time.

    SIGTERM to the group first, SIGKILL after ``STOP_GRACE``: the leader may be gone while a
    child (mpv) lingers, so the group gets the SIGKILL whatever happened. The reader then has
    a moment to take the last lines, and is stopped even if some escaped process keeps the
    pipe open.
    """
    with trio.CancelScope(shield=True):
        _signal_group(process.pid, signal.SIGTERM)
        with trio.move_on_after(STOP_GRACE):
            await process.wait()
        _signal_group(process.pid, signal.SIGKILL)
        await process.wait()
        with trio.move_on_after(2.0):
            await output.wait_closed()
        reader.cancel()
        if process.stdout is not None:
            await process.stdout.aclose()


async def _quit(process: trio.Process, ipc: MpvIpc) -> None:
    """Quit the way a person does, by closing mpv; bounded by ``QUIT_GRACE``, shielded.

    Syncplay then exits by itself (0) within ~0.1 s, once its console thread has seen the end
    of stdin. Signals alone are worse: SIGTERM to the group sometimes leaves Syncplay hung
    (its mpv thread died first) and SIGTERM to Syncplay alone never ends it.
    """
    with trio.CancelScope(shield=True), trio.move_on_after(QUIT_GRACE):
        assert process.stdin is not None
        with suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await process.stdin.aclose()
        await ipc.quit()
        await process.wait()


class MpvIpc:
    """A JSON IPC connection to an mpv, opened lazily (mpv creates the socket once started)."""

    def __init__(self, path: Path, alive: Callable[[], bool]) -> None:
        self.path = path
        self._alive = alive
        self._stream: trio.SocketStream | None = None
        self._buffer = b""
        self._next_id = 0
        self._lock = trio.Lock()

    async def _connect(self) -> trio.SocketStream | None:
        """The connection, or None if the client exits first."""
        # mpv creates the socket a moment after Syncplay starts it: retry, bounded by the
        # caller's deadline.
        while self._alive():
            try:
                return await trio.open_unix_socket(str(self.path))
            except (FileNotFoundError, ConnectionRefusedError):
                await trio.sleep(POLL_INTERVAL)
        return None

    async def request(self, *command: object) -> dict[str, Any]:
        """Send one command and return mpv's answer to it (events in between are skipped)."""
        async with self._lock:
            with trio.move_on_after(IPC_TIMEOUT):
                return await self._request(list(command))
            raise AssertionError(f"mpv ({self.path}) did not answer {command} in {IPC_TIMEOUT} s")

    async def _request(self, command: list[object]) -> dict[str, Any]:
        if self._stream is None:
            self._stream = await self._connect()
            if self._stream is None:
                raise AssertionError("the client exited before its mpv could be asked")
        self._next_id += 1
        request_id = self._next_id
        line = json.dumps({"command": command, "request_id": request_id})
        await self._stream.send_all(line.encode() + b"\n")
        while True:
            while b"\n" not in self._buffer:
                chunk = await self._stream.receive_some(65536)
                if not chunk:
                    raise AssertionError("mpv closed its IPC connection")
                self._buffer += chunk
            raw, self._buffer = self._buffer.split(b"\n", 1)
            answer: dict[str, Any] = json.loads(raw)
            if answer.get("request_id") == request_id:
                return answer

    async def get_property(self, name: str) -> object:
        """The property's value, or None where mpv has none (e.g. ``time-pos`` with no file)."""
        answer = await self.request("get_property", name)
        return answer.get("data") if answer.get("error") == "success" else None

    async def quit(self) -> None:
        """Ask mpv to quit (connecting first if need be) and disconnect; errors are ignored."""
        if self._stream is None:
            with suppress(OSError):
                self._stream = await self._connect()
        if self._stream is None:
            return  # the client is gone, or mpv never listened: the signals will do
        with suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await self._stream.send_all(b'{"command": ["quit"]}\n')
        await self._stream.aclose()
        self._stream = None


class DesktopClient:
    """A running Syncplay console client and its mpv.

    ``output`` holds what the client printed (its console UI: ``[HH:MM:SS] message`` lines,
    chat as ``<user> text``, user lists without timestamps); ``mark()`` numbers the next line, so
    that ``wait_for_output(..., since=mark)`` looks only at what came after a command.
    """

    def __init__(
        self, name: str, process: trio.Process, output: ProcessOutput, ipc: MpvIpc
    ) -> None:
        self.name = name
        self.process = process
        self._output = output
        self.mpv = ipc
        self._stdin_lock = trio.Lock()

    @property
    def output(self) -> list[str]:
        return self._output.lines

    def mark(self) -> int:
        """The number the next output line will have (for ``since``)."""
        return self._output.lines_seen

    async def wait_for_output(
        self,
        pattern: str | re.Pattern[str],
        *,
        timeout: float = 10.0,  # noqa: ASYNC109 - the helper's documented signature
        since: int = 0,
    ) -> re.Match[str]:
        """See :meth:`ProcessOutput.wait_for_output`."""
        return await self._output.wait_for_output(pattern, timeout=timeout, since=since)

    async def command(self, line: str) -> None:
        """Type ``line`` into the console (``p``, ``s 30``, ``ch hello``, ``l``, ``t``...)."""
        assert "\n" not in line, "one console command per call"
        assert self.process.stdin is not None
        async with self._stdin_lock:
            await self.process.stdin.send_all(line.encode() + b"\n")

    async def position(self) -> float | None:
        """mpv's playback position in seconds (None before a file is loaded)."""
        value = await self.mpv.get_property("time-pos")
        return float(value) if isinstance(value, int | float) else None

    async def paused(self) -> bool:
        """Whether mpv is paused."""
        return await self.mpv.get_property("pause") is True

    async def set_paused(
        self,
        paused: bool,
        *,
        timeout: float = 10.0,  # noqa: ASYNC109 - like wait_for_output
    ) -> float:
        """Pause or unpause with ``p`` until the server took it; returns the seconds it took.

        A bare ``p`` can be lost: in the second or so after Syncplay (re)loads the file it
        ignores what mpv reports ("recently reset"), and the server's next periodic State
        (paused) then pauses mpv again, silently. So ``p`` is typed whenever mpv is not in the
        wanted state, until the server's broadcast comes back as ``<name> paused`` (or
        ``unpaused``), which Syncplay prints only for a state the server accepted. It is for
        changing the state: with nothing to change, no such line comes and it fails.
        """
        word = "paused" if paused else "unpaused"
        echo = rf"\] {re.escape(self.name)} {word}$"
        since = self.mark()
        start = trio.current_time()
        with trio.move_on_after(timeout):
            while True:
                if await self.paused() != paused:
                    await self.command("p")
                # Longer than Syncplay's player poll (0.1 s) plus a round trip and its revert.
                with trio.move_on_after(1.5):
                    await self.wait_for_output(echo, timeout=math.inf, since=since)
                    return trio.current_time() - start
        raise AssertionError(
            f"{self._output.label}: no {word!r} from the server within {timeout} s; "
            f"its last lines:\n{self._output.tail()}"
        )

    async def mpv_pid(self) -> int:
        """mpv's process id (to check that it is gone after the client closed)."""
        value = await self.mpv.get_property("pid")
        assert isinstance(value, int), value
        return value


def write_config(home: Path, settings: Mapping[str, str]) -> Path:
    """Write Syncplay's ini (``~/.syncplay``) with each key in its section; unknown keys raise."""
    sections: dict[str, list[str]] = {}
    for key, value in settings.items():
        if key not in _SECTION_OF:
            raise KeyError(f"{key!r} is not a Syncplay 1.6.9 ini setting")
        assert "\n" not in value, key
        sections.setdefault(_SECTION_OF[key], []).append(f"{key} = {value}")
    text = "".join(
        f"[{section}]\n" + "\n".join(lines) + "\n\n" for section, lines in sections.items()
    )
    path = home / ".syncplay"
    path.write_text(text, encoding="utf-8")
    return path


@asynccontextmanager
async def desktop_client(
    nursery: trio.Nursery | None = None,
    *,
    port: int,
    host: str = "127.0.0.1",
    name: str,
    room: str,
    video: Path,
    tmp: Path,
    password: str | None = None,
    extra_config: Mapping[str, str] | None = None,
    mpv_args: Sequence[str] = (),
    debug: bool = False,
) -> AsyncIterator[DesktopClient]:
    """Run ``syncplay --no-gui`` as ``name`` in ``room`` of the server at ``host:port``.

    The client plays a copy of ``video`` (in ``tmp/<name>``, its HOME and media directory) in
    a headless mpv (``--vo=null --ao=null``). The block is entered once the process is started,
    not connected: wait for ``CONNECTED`` (or anything else) with ``wait_for_output``.
    Leaving the block kills the client and its mpv.

    Args:
        nursery: where the output reader runs; None opens a nursery of its own (errors of the
            block then arrive wrapped in an ExceptionGroup, as for any nursery).
        extra_config: ini settings over ``DEFAULT_CONFIG`` (keys as in Syncplay's ini, e.g.
            ``{"unpauseAction": "IfOthersReady"}``).
        mpv_args: more mpv options (``--name=value``), passed after ``--`` as Syncplay wants.
        debug: Syncplay's ``--debug``: its reasoning (and the mpv traffic) in ``output``; many
            lines a second, so for finding out why, not for the suite.
    """
    home = tmp / name
    media = home / "media"
    media.mkdir(parents=True, exist_ok=True)
    copy = media / video.name
    shutil.copyfile(video, copy)
    # repr() of a list is the literal Syncplay parses (ast.literal_eval).
    settings = {**DEFAULT_CONFIG, "mediaSearchDirectories": repr([str(media)])}
    write_config(home, settings | dict(extra_config or {}))
    ipc_dir = Path(tempfile.mkdtemp(prefix="spmpv-"))
    socket_path = ipc_dir / "mpv.sock"
    command = [SYNCPLAY, "--no-gui", "--no-store", "-a", f"{host}:{port}", "-n", name, "-r", room]
    command += ["--player-path", MPV]
    if password is not None:
        command += ["-p", password]
    if debug:
        command.append("--debug")
    command += [str(copy), "--", "--vo=null", "--ao=null", f"--input-ipc-server={socket_path}"]
    command += list(mpv_args)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "LANG": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",  # a pipe would otherwise hold the lines back
        "PYTHONIOENCODING": "utf-8",
    }
    async with AsyncExitStack() as stack:
        stack.callback(shutil.rmtree, ipc_dir, ignore_errors=True)
        if nursery is None:
            nursery = await stack.enter_async_context(trio.open_nursery())
        process = await trio.lowlevel.open_process(
            command,
            stdin=PIPE,
            stdout=PIPE,
            stderr=STDOUT,
            cwd=str(home),
            env=env,
            start_new_session=True,
        )
        output = ProcessOutput(f"syncplay client {name!r}")
        reader = trio.CancelScope()
        ipc = MpvIpc(socket_path, alive=lambda: process.poll() is None)
        try:
            assert process.stdout is not None
            nursery.start_soon(_read, reader, output, process.stdout)
            yield DesktopClient(name, process, output, ipc)
        except Exception as exc:
            # Whatever failed, the client's own account of it is the first thing to read.
            exc.add_note(f"--- {output.label}, last lines:\n{output.tail()}")
            raise
        finally:
            await _quit(process, ipc)
            await _stop(process, output, reader)


# What the client prints once the server accepted its Hello.
CONNECTED = r"Successfully connected to server"


class SyncplayServer:
    """A running ``syncplay-server``: its port and output."""

    def __init__(self, port: int, process: trio.Process, output: ProcessOutput) -> None:
        self.port = port
        self.process = process
        self.output = output


async def _listening(port: int, process: trio.Process) -> bool:
    """Wait until the server accepts on ``port`` (True) or exits (False)."""
    # It prints nothing when it listens: connect until it accepts (bounded by the caller).
    while process.poll() is None:
        try:
            stream = await trio.open_tcp_stream("127.0.0.1", port)
        except OSError:
            await trio.sleep(POLL_INTERVAL)
            continue
        await stream.aclose()
        return True
    return False


@asynccontextmanager
async def open_syncplay_server(
    *args: str, start_timeout: float = 10.0, attempts: int = 3
) -> AsyncIterator[SyncplayServer]:
    """Run Debian's ``syncplay-server`` with ``args`` on a free port until the block ends.

    Syncplay 1.6.9's server cannot choose its interface: it listens on every address (``::``
    and ``0.0.0.0``) of the port; the clients talk to it on 127.0.0.1 only. A port found free
    can be taken before the server binds it; then it exits and another port is tried.
    """
    async with trio.open_nursery() as nursery:
        for _ in range(attempts):
            port = free_port()
            process = await trio.lowlevel.open_process(
                [SYNCPLAY_SERVER, "--port", str(port), *args],
                stdin=DEVNULL,
                stdout=PIPE,
                stderr=STDOUT,
                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONUNBUFFERED": "1"},
                start_new_session=True,
            )
            output = ProcessOutput(f"syncplay-server on port {port}")
            reader = trio.CancelScope()
            try:
                assert process.stdout is not None
                nursery.start_soon(_read, reader, output, process.stdout)
                with trio.move_on_after(start_timeout) as waiting:
                    listening = await _listening(port, process)
                if waiting.cancelled_caught:
                    raise AssertionError(f"{output.label} did not listen in {start_timeout} s")
                if listening:
                    yield SyncplayServer(port, process, output)
                    return
            finally:
                await _stop(process, output, reader)
        raise AssertionError(
            f"syncplay-server did not start in {attempts} attempts:\n{output.tail()}"
        )
