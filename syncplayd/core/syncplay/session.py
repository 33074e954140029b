"""One Syncplay client in a syncplayd room, as a pure translator (sans-I/O).

The bridge makes a Syncplay desktop client a member of a live room like any
other: the shell hands its commands to :class:`BridgeSession`, which turns them
into syncplayd client messages (``play``, ``pause``, ``seek``, ``heartbeat``,
``chat``, ``readiness``), and hands it the room's messages (``joined``,
``playback``, ``sync``, ``presence``, ``chat``…), which it turns into Syncplay
lines. The room's rules (who may control playback, rate limits, mutes) are
applied by the room, exactly as for a WebSocket member; nothing is decided here.

Three things of Syncplay's protocol live here (docs/syncplay-bridge.md):

* **State.** Syncplay has no scheduled changes: a client applies a ``State`` the
  moment it reads it. So a room change is sent when it takes effect
  (``execute_at``, less the client's forward delay), not when the room decides
  it, and a change the client made itself is first undone (its player is put
  back) and then redone at that instant with everyone else's: otherwise the
  desktop player would run a lead time (150 ms or more) ahead of the room.
* **ignoringOnTheFly.** After a *forced* state (a change) the server ignores
  the client's reports until the client echoes the counter; after a change of
  the client's own, its counter is echoed once. This is what keeps a stale
  report from undoing a fresh change, and Syncplay's clients depend on it.
* **Ping.** Each side stamps its clock and the other echoes it; the round trip
  gives the forward delay (the smallest of the last round trips, halved: see
  ``_ping``), which shifts positions and sends, and goes to the room as the
  member's ``rtt``.

Outputs are drained by the shell: :meth:`take_lines` (Syncplay messages to
write), :meth:`take_frames` (messages for the room), :meth:`take_queue_plays`
(a playlist selection, which is a service call) and ``drop`` (an error to send
before closing).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, Final

from syncplayd.core import protocol
from syncplayd.core.clock import position_at
from syncplayd.core.syncplay.wire import (
    ClientState,
    FileInfo,
    SetCommand,
    SetOther,
    SetPlaylist,
    SetPlaylistIndex,
    SetReady,
    SetRoom,
)

#: Syncplay's ``SERVER_STATE_INTERVAL``: a State to each client every second.
STATE_INTERVAL: Final = 1.0
#: Syncplay's ``PROTOCOL_TIMEOUT``: a client silent this long is dropped.
SILENCE_TIMEOUT: Final = 12.5
#: A desktop player further than this from the room when a change takes effect is
#: told to seek (``doSeek``) rather than only to play or pause.
SEEK_TOLERANCE: Final = 0.1
#: While playing, a desktop player that reports positions further than this from the
#: room's, twice in a row, is put back on the room's position. Syncplay's own clients
#: correct only beyond 1.5 s (slow down) or 4 s (rewind); the room's browsers hold ~40 ms.
DRIFT_TOLERANCE: Final = 0.15
#: Not more often than this (a seek that lands late must not start a loop of seeks).
DRIFT_COOLDOWN: Final = 3.0
#: Round trips kept for the one-way delay (the smallest of them counts, see ``_ping``).
RTT_SAMPLES: Final = 10
#: Heartbeats to the room, at most one per this many seconds (the client reports each second).
HEARTBEAT_INTERVAL: Final = 1.0
#: A client with nothing to report pings the room this often (the room's silence rule).
KEEPALIVE_INTERVAL: Final = 5.0
#: Syncplay's ``DIFFERENT_DURATION_THRESHOLD``: files whose durations differ more are different.
DIFFERENT_DURATION: Final = 2.5
#: Who server notices are from, in the client's chat.
NOTICE_NAME: Final = "syncplayd"
#: What the bridge tells clients in its Hello (Syncplay's own server says 1.6.9 / 1.7.x).
SERVER_VERSION: Final = "1.6.9"


@dataclass(frozen=True, slots=True)
class Limits:
    """What the bridge advertises in Hello (the client cuts its input to these)."""

    chat_length: int
    name_length: int = 64
    room_length: int = 64
    filename_length: int = 250


class BridgeSession:
    """One Syncplay client's view of one room (see the module docstring)."""

    def __init__(
        self,
        *,
        username: str,
        room_name: str,
        client_version: str,
        motd: str,
        limits: Limits,
        now: float,
    ) -> None:
        self.username = username
        self.room_name = room_name
        self._client_version = client_version
        self._motd = motd
        self._limits = limits
        self._lines: list[dict[str, Any]] = []
        self._frames: list[protocol.ClientMessage] = []
        self._queue_plays: list[str] = []
        self.drop: str | None = None
        # The room, as the room last told us.
        self.user_id: str | None = None
        self._display_name = username  # the room's name for this client (``set_by``)
        self.playback: protocol.PlaybackWire | None = None
        #: The playback the client was last told of: while a change waits for its instant,
        #: regular States and the client's reports keep to this one.
        self.shown: protocol.PlaybackWire | None = None
        self._members: dict[str, protocol.Member] = {}
        self._names: dict[str, str] = {}  # user id -> the name this client sees
        self._present: set[str] = set()  # others the client's user list shows
        self._queue: protocol.QueueInfo | None = None
        self._chat_notice_sent = False
        # The client.
        self.file: FileInfo | None = None
        self._reported: tuple[float, float, bool] | None = None  # (time, position, paused)
        self._last_heard = now
        self._last_heartbeat = float("-inf")
        self._off_reports = 0
        self._last_correction = float("-inf")
        # Syncplay's echo counters (protocols.py, SyncServerProtocol).
        self._server_ignoring = 0
        self._client_ignoring = 0
        # PingService: the last round trip, its moving average, the forward delay.
        self._rtt = 0.0
        self.forward_delay = 0.0
        self._rtts: deque[float] = deque(maxlen=RTT_SAMPLES)
        self._client_stamp: float | None = None
        self._client_stamp_arrival = 0.0
        # When the next regular State is due; a change waiting for its instant.
        self._next_state = float("inf")
        self._pending: tuple[float, bool] | None = None  # (when, do_seek)
        self._pending_own = False
        # What the client was last told: its reports are compared with that, not with a
        # room change it has not heard of yet.
        self._told_paused = True
        self._started_version: int | None = None  # the playback whose start was sent

    # -- outputs ----------------------------------------------------------------------
    def take_lines(self) -> list[dict[str, Any]]:
        lines, self._lines = self._lines, []
        return lines

    def take_frames(self) -> list[protocol.ClientMessage]:
        frames, self._frames = self._frames, []
        return frames

    def take_queue_plays(self) -> list[str]:
        plays, self._queue_plays = self._queue_plays, []
        return plays

    def next_wake(self) -> float:
        """When :meth:`tick` has something to do (server time)."""
        wake = min(self._next_state, self._last_heard + SILENCE_TIMEOUT)
        if self._pending is not None:
            wake = min(wake, self._pending[0])
        return wake

    @property
    def joined(self) -> bool:
        return self.playback is not None

    # -- the client -------------------------------------------------------------------
    def heard(self, now: float) -> None:
        """Any line arrived: the client is alive."""
        self._last_heard = now

    def client_state(self, state: ClientState, now: float) -> None:
        """A client's ``State`` (SyncServerProtocol.handleState, then Watcher.updateState)."""
        if state.ignoring_server is not None and state.ignoring_server == self._server_ignoring:
            self._server_ignoring = 0
        if state.ignoring_client is not None:
            self._client_ignoring = state.ignoring_client
        if state.client_stamp is not None:
            self._client_stamp = state.client_stamp
            self._client_stamp_arrival = now
        if state.latency_echo is not None:
            self._ping(now - state.latency_echo, state.client_rtt)
        if self.playback is None:
            return
        if state.playstate is None:
            # Nothing to report (no file loaded yet): the client is alive all the same,
            # which the room must hear before its silence rule (disconnect_timeout) drops
            # it. Only a heartbeat counts there; this one says "where the room is", so
            # that it asks for no correction of a player that has nothing loaded.
            shown = self.shown or self.playback
            if now - self._last_heartbeat >= KEEPALIVE_INTERVAL:
                self._report_position(position_at(shown, now), shown.state == "playing", now)
            return
        if self._server_ignoring:
            return
        play = state.playstate
        # Beyond the protocol's bound the room would refuse it as a bad message.
        reported = min(play.position, protocol.MAX_POSITION)
        position = min(
            reported + (0.0 if play.paused else self.forward_delay), protocol.MAX_POSITION
        )
        self._reported = (now, position, play.paused)
        if play.paused != self._told_paused:
            self._pending_own = True
            if play.paused:
                self._frames.append(protocol.Pause(position=position))
            else:
                # Its player already runs; the room starts a lead time later. Hold it
                # until then (see the module docstring).
                self._frames.append(protocol.Play(position=reported))
                self._send_state(
                    now,
                    paused=True,
                    position=reported,
                    do_seek=False,
                    forced=True,
                    set_by=self.username,
                )
        elif play.do_seek:
            self._pending_own = True
            self._frames.append(protocol.Seek(position=position))
        else:
            self._report_position(position, not play.paused, now)

    def _ping(self, rtt: float, sender_rtt: float) -> None:
        """A round trip measured with the client's echo of our stamp.

        Syncplay's client answers a State only after asking its player where it is, so
        a round trip often holds 50 to 200 ms of the client's own work. Syncplay's own
        forward delay (a moving average, plus the difference to the client's last round
        trip) carries that noise; timed by it, a change would reach a desktop player up to
        200 ms early. The bridge times its sends, shifts positions and reports the
        member's round trip to the room by the smallest of the last few round trips
        instead, which is the network's.
        """
        if rtt < 0 or sender_rtt < 0:
            return
        self._rtt = rtt  # sent back as ``serverRtt``, as Syncplay's server does
        self._rtts.append(rtt)
        self.forward_delay = min(self._rtts) / 2

    def _report_position(self, position: float, playing: bool, now: float) -> None:
        playback = self.shown or self.playback
        assert playback is not None  # noqa: S101 - checked by the caller
        if now - self._last_heartbeat >= HEARTBEAT_INTERVAL:
            self._last_heartbeat = now
            self._frames.append(
                protocol.Heartbeat(
                    position=min(position, protocol.MAX_POSITION),
                    server_time=now,
                    version=playback.version,
                    playing=playing,
                    rtt=min(min(self._rtts), 60.0) if self._rtts else None,
                )
            )
        if not playing or playback.state != "playing" or self._pending is not None:
            self._off_reports = 0
            return
        if abs(position - position_at(playback, now)) <= DRIFT_TOLERANCE:
            self._off_reports = 0
            return
        self._off_reports += 1
        if self._off_reports >= 2 and now - self._last_correction >= DRIFT_COOLDOWN:
            self._off_reports = 0
            self._last_correction = now
            self._send_room_state(now, do_seek=True, correcting=True)

    def client_set(self, command: SetCommand, now: float) -> None:
        if isinstance(command, FileInfo):
            self.file = command
            self._check_file()
            self._broadcast_own_file()
        elif isinstance(command, SetReady):
            # Syncplay toggles readiness with every pause; only the user's own choice
            # is syncplayd's manual readiness.
            if command.manually_initiated and command.is_ready is not None:
                self._frames.append(protocol.Readiness(ready=command.is_ready))
        elif isinstance(command, SetRoom):
            if command.name != self.room_name:
                self._notice("Changing rooms needs a new connection: reconnect with the new room.")
            self._lines.append({"Set": {"room": {"name": self.room_name}}})
        elif isinstance(command, SetPlaylist):
            # The room's queue is edited in the watch page or over REST: a desktop
            # playlist holds local file names, not the room's media.
            if command.files and self._queue is not None and command.files != self._playlist():
                self._notice("The room's play queue is edited in the watch page.")
                self._send_playlist()
        elif isinstance(command, SetPlaylistIndex):
            self._select(command.index)
        elif isinstance(command, SetOther) and command.name == "controllerAuth":
            self._notice(
                "Managed rooms are not needed here: the room's roles decide who controls it."
            )
            body = command.body if isinstance(command.body, dict) else {}
            room = body.get("room") if isinstance(body.get("room"), str) else self.room_name
            self._lines.append(
                {"Set": {"controllerAuth": {"user": self.username, "room": room, "success": False}}}
            )

    def client_chat(self, text: str) -> None:
        text = text.strip()
        if text:
            self._frames.append(protocol.Chat(message=text[: self._limits.chat_length]))

    def client_list(self) -> None:
        """``List``: everyone in this room (rooms are isolated)."""
        users: dict[str, Any] = {}
        for user_id, member in self._members.items():
            if not member.is_connected and user_id != self.user_id:
                continue
            users[self._name(user_id)] = {
                "position": 0,
                "file": self._file_of(user_id),
                "controller": member.role in ("owner", "moderator"),
                "isReady": _is_ready(member),
                "features": {"sharedPlaylists": True, "chat": True, "readiness": True},
            }
        self._lines.append({"List": {self.room_name: users}})

    # -- the room ---------------------------------------------------------------------
    def room_message(self, message: protocol.ServerMessage, now: float) -> None:
        if isinstance(message, protocol.Joined):
            self._joined(message, now)
        elif isinstance(message, protocol.PlaybackChanged):
            self._playback_changed(message, now)
        elif isinstance(message, protocol.SyncCommand):
            self.playback = message.playback
            self._send_room_state(now, do_seek=True, correcting=True)
        elif isinstance(message, protocol.Presence):
            self._presence(message)
        elif isinstance(message, protocol.PresenceBatch):
            for event in message.events:
                self._presence(event)
        elif isinstance(message, protocol.ChatOut):
            entry = message.message
            name = self._name(entry.user_id) if entry.user_id in self._members else entry.user_name
            self._lines.append({"Chat": {"username": name, "message": entry.message}})
        elif isinstance(message, protocol.QueueChanged):
            self._queue = message.queue
            self._send_playlist()
        elif isinstance(message, protocol.ErrorOut):
            self._error(message, now)
        elif isinstance(message, protocol.Closing):
            self.drop = message.message or message.reason
        # welcome, pong, chat_ack, chat_deleted and room carry nothing a Syncplay client shows.

    def _joined(self, joined: protocol.Joined, now: float) -> None:
        self.user_id = joined.you.user_id
        self._display_name = joined.you.user_name
        self.playback = joined.playback
        self._members = {m.user_id: m for m in joined.participants}
        self._members[joined.you.user_id] = joined.you
        self._names = {joined.you.user_id: self.username}
        for member in joined.participants:
            self._name(member.user_id)
        self._queue = joined.queue
        # As Syncplay's server: own readiness and the playlist first, then Hello.
        self._lines.append(
            {
                "Set": {
                    "ready": {
                        "username": self.username,
                        "isReady": None,
                        "manuallyInitiated": False,
                    }
                }
            }
        )
        self._send_playlist()
        self._lines.append(
            {
                "Hello": {
                    "username": self.username,
                    "room": {"name": self.room_name},
                    "version": self._client_version,
                    "realversion": SERVER_VERSION,
                    "motd": self._motd,
                    "features": {
                        "isolateRooms": True,
                        "readiness": True,
                        "managedRooms": False,
                        "persistentRooms": True,
                        "chat": True,
                        "sharedPlaylists": True,
                        "featureList": True,
                        "setOthersReadiness": False,
                        "maxChatMessageLength": self._limits.chat_length,
                        "maxUsernameLength": self._limits.name_length,
                        "maxRoomNameLength": self._limits.room_length,
                        "maxFilenameLength": self._limits.filename_length,
                    },
                }
            }
        )
        for member in joined.participants:
            if member.user_id != self.user_id and member.is_connected:
                self._present.add(member.user_id)
                self._user_event(member.user_id, {"joined": True})
        self._send_room_state(now, do_seek=True, correcting=False)
        self._next_state = now + STATE_INTERVAL

    def _playback_changed(self, change: protocol.PlaybackChanged, now: float) -> None:
        old = self.playback
        self.playback = change.playback
        own = self._pending_own and change.playback.set_by == self._display_name
        self._pending_own = False
        seek = change.reason in ("seek", "item") or (
            old is not None and change.playback.item_id != old.item_id
        )
        if own:
            # Its player made this change already: correct it only if it is off the room.
            seek = False
        # Sent at the instant the change takes effect, a forward delay early.
        when = max(now, change.execute_at - self.forward_delay)
        if own and not seek and change.reason == "pause":
            # Its player paused already, where the room did: say so now, nothing to hold.
            when = now
        self._pending = (when, seek)
        if when <= now:
            self.tick(now)

    def _presence(self, event: protocol.Presence) -> None:
        member = event.member
        before = self._members.get(member.user_id)
        self._members[member.user_id] = member
        if member.user_id == self.user_id:
            return
        # What the client's user list shows: connected members. A member away at our
        # join comes in when back; one device of several going is no leave.
        here = event.event in ("joined", "reconnected") or member.is_connected
        if here and member.user_id not in self._present:
            self._present.add(member.user_id)
            self._name(member.user_id)
            self._user_event(member.user_id, {"joined": True})
        elif not here and member.user_id in self._present:
            self._present.discard(member.user_id)
            self._user_event(member.user_id, {"left": True})
        if event.event == "left" and not member.is_connected:
            self._members.pop(member.user_id, None)
            self._names.pop(member.user_id, None)
        elif event.event in ("ready", "buffering", "readiness") or (
            before is not None and _is_ready(before) != _is_ready(member)
        ):
            self._lines.append(
                {
                    "Set": {
                        "ready": {
                            "username": self._name(member.user_id),
                            "isReady": _is_ready(member),
                            "manuallyInitiated": event.event == "readiness",
                        }
                    }
                }
            )

    def _error(self, error: protocol.ErrorOut, now: float) -> None:
        self._notice(error.message)
        if error.code in ("not-allowed", "forbidden", "rate-limited", "bad-message"):
            # A refused change: put the player back where the room is, as Syncplay's
            # server does for a non-operator in a managed room.
            self._pending_own = False
            self._send_room_state(now, do_seek=True, correcting=True)

    # -- time -------------------------------------------------------------------------
    def tick(self, now: float) -> None:
        """Send what is due: a change at its instant, the regular State; drop the silent."""
        if self.drop is None and now - self._last_heard >= SILENCE_TIMEOUT:
            self.drop = f"no message for {SILENCE_TIMEOUT:g} s"
            return
        if self._pending is not None and self._pending[0] <= now:
            _, seek = self._pending
            self._pending = None
            self._send_room_state(now, do_seek=seek or self._far_from_room(now), correcting=True)
            self._next_state = now + STATE_INTERVAL
        if self._next_state <= now:
            # While a change waits, the client hears the playback it knows, not the next.
            shown = self.shown if self._pending is not None else None
            self._send_room_state(
                now, do_seek=False, correcting=False, forced=False, playback=shown
            )
            self._next_state = now + STATE_INTERVAL

    def _far_from_room(self, now: float) -> bool:
        """Whether the client's player (as last reported, extrapolated) is off the room's
        position by more than SEEK_TOLERANCE."""
        if self._reported is None or self.playback is None:
            return True
        at, position, paused = self._reported
        if not paused:
            position += now - at
        return abs(position - position_at(self.playback, now)) > SEEK_TOLERANCE

    # -- sending ----------------------------------------------------------------------
    def _send_room_state(
        self,
        now: float,
        *,
        do_seek: bool,
        correcting: bool,
        forced: bool = True,
        playback: protocol.PlaybackWire | None = None,
    ) -> None:
        playback = playback or self.playback
        if playback is None:
            return
        self.shown = playback
        # A scheduled start is still a pause for a client that cannot schedule, until the
        # start has been sent (the forward delay may shrink in between: a start sent is sent).
        paused = playback.state != "playing" or (
            now + self.forward_delay < playback.anchor - 0.001
            and self._started_version != playback.version
        )
        if paused:
            position = playback.position
        else:
            # The client adds its forward delay to a playing position: take it off here.
            position = max(
                0.0, position_at(playback, now + self.forward_delay) - self.forward_delay
            )
        set_by = self._set_by_name(playback.set_by)
        if correcting and do_seek and set_by == self.username:
            # A client ignores a seek set by itself ("caught attempt to rewind with self").
            set_by = None
        self._send_state(
            now,
            paused=paused,
            position=position,
            do_seek=do_seek,
            forced=forced,
            set_by=set_by,
            version=playback.version,
        )

    def _send_state(
        self,
        now: float,
        *,
        paused: bool,
        position: float,
        do_seek: bool,
        forced: bool,
        set_by: str | None = None,
        version: int | None = None,
    ) -> None:
        """SyncServerProtocol.sendState; ``version``: the room playback it tells of."""
        ping: dict[str, Any] = {"latencyCalculation": now, "serverRtt": self._rtt}
        if self._client_stamp is not None:
            ping["clientLatencyCalculation"] = self._client_stamp + (
                now - self._client_stamp_arrival
            )
            self._client_stamp = None
        state: dict[str, Any] = {
            "ping": ping,
            "playstate": {
                "position": position,
                "paused": paused,
                "doSeek": do_seek,
                "setBy": set_by,
            },
        }
        if forced:
            self._server_ignoring += 1
        if self._server_ignoring or self._client_ignoring:
            ignoring: dict[str, int] = {}
            if self._server_ignoring:
                ignoring["server"] = self._server_ignoring
            if self._client_ignoring:
                ignoring["client"] = self._client_ignoring
                self._client_ignoring = 0
            state["ignoringOnTheFly"] = ignoring
        if forced or self._server_ignoring == 0:
            self._told_paused = paused
            if not paused and version is not None:
                self._started_version = version
            self._lines.append({"State": state})

    def notice(self, text: str) -> None:
        """A line from the server in the client's chat (a refusal the shell met, say)."""
        self._notice(text)

    def _notice(self, text: str) -> None:
        self._lines.append({"Chat": {"username": NOTICE_NAME, "message": text}})

    def _user_event(self, user_id: str, event: dict[str, Any]) -> None:
        user: dict[str, Any] = {"room": {"name": self.room_name}, "event": event}
        file = self._file_of(user_id)
        if file:
            user["file"] = file
        self._lines.append({"Set": {"user": {self._name(user_id): user}}})

    def _broadcast_own_file(self) -> None:
        if self.file is not None and self.user_id is not None:
            self._lines.append(
                {
                    "Set": {
                        "user": {
                            self.username: {
                                "room": {"name": self.room_name},
                                "file": self._file_of(self.user_id),
                            }
                        }
                    }
                }
            )

    def _file_of(self, user_id: str) -> dict[str, Any]:
        """A member's file as Syncplay shows it: this client's own; nothing for the others
        (a browser plays the room's item, not a file, and would only raise Syncplay's
        "different file" warnings)."""
        if user_id == self.user_id and self.file is not None:
            file: dict[str, Any] = {"name": self.file.name, "duration": self.file.duration or 0}
            if self.file.size is not None:
                file["size"] = self.file.size
            return file
        return {}

    def _set_by_name(self, display_name: str | None) -> str | None:
        """``set_by`` (a display name in the room) as this client knows that member."""
        if display_name is None or display_name == self._display_name:
            return None if display_name is None else self.username
        for user_id, member in self._members.items():
            if member.user_name == display_name:
                return self._name(user_id)
        return display_name

    def _name(self, user_id: str) -> str:
        """The unique name this client knows a member by (Syncplay keys users by name)."""
        name = self._names.get(user_id)
        if name is not None:
            return name
        member = self._members.get(user_id)
        base = (member.user_name if member is not None else user_id)[: self._limits.name_length]
        taken = {n.casefold() for n in self._names.values()}
        name = base
        while name.casefold() in taken:
            name += "_"  # as Syncplay's server does
        self._names[user_id] = name
        return name

    # -- the queue --------------------------------------------------------------------
    def _playlist(self) -> tuple[str, ...]:
        if self._queue is None:
            return ()
        return tuple(_item_name(item) for item in self._queue.items)

    def _send_playlist(self) -> None:
        queue = self._queue
        index = None
        if queue is not None and queue.current_item_id is not None:
            ids = [item.id for item in queue.items]
            if queue.current_item_id in ids:
                index = ids.index(queue.current_item_id)
        self._lines.append(
            {"Set": {"playlistChange": {"user": None, "files": list(self._playlist())}}}
        )
        self._lines.append({"Set": {"playlistIndex": {"user": None, "index": index}}})
        self._check_file()

    def _select(self, index: int | None) -> None:
        queue = self._queue
        if queue is None or index is None or not 0 <= index < len(queue.items):
            return
        item = queue.items[index]
        if item.id != queue.current_item_id:
            self._queue_plays.append(item.id)

    def _check_file(self) -> None:
        """Warn when the desktop's file is not the room's current item (by its duration)."""
        queue, file = self._queue, self.file
        if queue is None or file is None or file.duration is None or queue.current_item_id is None:
            return
        current = next((i for i in queue.items if i.id == queue.current_item_id), None)
        if current is None or current.duration is None:
            return
        if abs(current.duration - file.duration) > DIFFERENT_DURATION:
            self._notice(
                f"Your file {file.name!r} ({file.duration:.0f} s) does not look like the room's"
                f" {_item_name(current)!r} ({current.duration:.0f} s)."
            )


def _is_ready(member: protocol.Member) -> bool:
    """Syncplay's readiness of a member: it said it is ready, or it is not loading."""
    return member.ready or (member.is_connected and not member.buffering)


def _item_name(item: protocol.QueueItemInfo) -> str:
    return item.title or item.content_id
