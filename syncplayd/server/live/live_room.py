"""A live room: the engine's state, its connections, and the tasks that drive them.

Each live room runs in its own nursery: one reader task per connection, a
clock task that wakes the engine when it asked to be woken, and a heartbeat
task for the periodic checks (idle sessions, ready timeouts). Each
connection's writer runs in its socket's handler task instead (see
:mod:`syncplayd.server.live.connection`). The room applies commands to the pure
engine (:mod:`syncplayd.core.room`) and carries out the effects it returns;
trio runs one task at a time, so an ``apply`` and its effects are atomic. The
effects that need the database beyond the write-behind (advancing the queue at
an item's end, storing a measured duration) run in tasks of their own, never
inside ``apply``: the queue's answer comes back through the service
(``queue_changed``), like any other queue change.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import trio

from syncplayd.clocks import ServerClock
from syncplayd.config import Settings
from syncplayd.core import protocol
from syncplayd.core import room as engine
from syncplayd.core.queue import Queue
from syncplayd.core.ratelimit import RateLimiter
from syncplayd.logs import log_context
from syncplayd.server.live.cluster import RoomElsewhere
from syncplayd.server.live.connection import BaseConnection, Frame, PendingPong
from syncplayd.server.live.member_list import MemberList
from syncplayd.server.live.messages import queue_info, room_info
from syncplayd.server.live.persister import Persister
from syncplayd.server.live.stored import initial_state, stored_playback, sync_config, user_uuid
from syncplayd.server.metric_labels import message_type
from syncplayd.server.metrics import Metrics
from syncplayd.service import Removal, RoomService, ServiceError
from syncplayd.storage.errors import StorageError
from syncplayd.storage.records import NewEvent, Participant, Restriction, Role, Room, Standing

log = logging.getLogger(__name__)

END_GRACE_SECONDS = 2.0
#: Comings and goings are sent at most this often, the latest per user, together in
#: one ``presence_batch``: a burst of joins and leaves (a reconnect loop, a join flood,
#: a watch party arriving) costs each member one message per window instead of one
#: per event, so joins cost O(N) in all rather than O(N) each. The window grows with
#: the room (``PRESENCE_SECONDS_PER_MEMBER`` per member, at most ``_MAX``): a member of
#: a 2,000-seat room sees arrivals half a second late, and the room sends 2 frames a
#: second to each member during the flood instead of 20.
PRESENCE_WINDOW_SECONDS = 0.05
PRESENCE_WINDOW_MAX_SECONDS = 0.5
PRESENCE_SECONDS_PER_MEMBER = 0.00025
_COALESCED_PRESENCE = frozenset({"joined", "reconnected", "disconnected", "left"})
#: How many times a join reads the joiner's standing (ban, mute) while moderation changes
#: race the read; then the last read stands, so that a moderator clicking mute and unmute
#: in a loop cannot hold a join forever.
STANDING_READS = 5


@dataclass(frozen=True, slots=True)
class RoomDeps:
    """What a live room needs from the daemon."""

    settings: Settings
    service: RoomService
    persister: Persister
    clock: ServerClock
    on_membership: Callable[[UUID, UUID, bool], None]  # (room, user, connected)
    metrics: Metrics


@dataclass(frozen=True, slots=True)
class StandingRead:
    """A joiner's standing as read outside the room (the service's join), and the room's
    :attr:`LiveRoom.moderation_count` taken before that read began."""

    standing: Standing
    count_before: int


@dataclass(frozen=True, slots=True)
class SessionOverview:
    """One session of a live room, and whether a socket serves it right now."""

    session: engine.Session
    has_socket: bool


@dataclass(frozen=True, slots=True)
class LiveOverview:
    """A live room as operators see it (``syncplayctl rooms show``)."""

    connections: int
    control: engine.ControlMode
    playback: protocol.PlaybackWire
    members: list[protocol.Member]
    sessions: list[SessionOverview]


class LiveRoom:
    """One room with connected participants."""

    def __init__(self, room: Room, queue: Queue, deps: RoomDeps) -> None:
        self.room_id = room.id
        self._deps = deps
        self._clock = deps.clock
        self._state = initial_state(room, queue, deps.settings, deps.clock.now())
        #: The queue as the service last told it (``joined.queue``).
        self._queue = queue
        self._connections: dict[str, BaseConnection] = {}
        #: user -> how many of ``_connections`` are theirs: whether a user's last socket
        #: went, without a look at every other (2,000 members dropping at once would
        #: otherwise cost 2,000 x 2,000 comparisons).
        self._sockets_of: Counter[UUID] = Counter()
        self._nursery: trio.Nursery | None = None
        self._cancel = trio.CancelScope()
        self._wake = trio.Event()
        self._wake_at: float | None = None
        self._empty_since: float | None = deps.clock.now()
        # Heartbeats and pings need a handful of frames per second; the rest of
        # the allowance is for people clicking around.
        per_second = deps.settings.syncplay.websocket.max_messages_per_second
        self._limits: RateLimiter[str] = RateLimiter(per_second * 60, burst=per_second * 2)
        self.ended = False
        #: Why it ended (``end``'s reason); a join that meets a room ended to move is
        #: told to come back, not that the room is over.
        self.end_reason: protocol.CloseReason | None = None
        self.stopped = trio.Event()
        self._frame_started: float | None = None
        self._pending_presence: dict[str, tuple[protocol.Presence, str | None]] = {}
        #: Each user's member entry, encoded: a join's snapshot encodes again only the
        #: users whose sessions changed.
        self._member_list = MemberList()
        self._presence_due = trio.Event()
        #: user id -> the timer that ends their mute (mutes with an expiry only).
        self._mute_timers: dict[str, trio.CancelScope] = {}
        #: Bumped by every mute, role change and removal the service sends here, so that a
        #: join can tell whether one raced its read of the joiner's standing (``_standing``).
        self._moderation_changes = 0

    @property
    def moderation_count(self) -> int:
        """How many moderation changes (mutes, role changes, removals) reached the room:
        taken before a read of a joiner's standing, unchanged at ``attach`` when none can
        have raced it."""
        return self._moderation_changes

    def reconfigure(self, deps: RoomDeps) -> None:
        """Take new settings (SIGHUP): sync thresholds and the message rate."""
        self._deps = deps
        self._state = dataclasses.replace(self._state, config=sync_config(deps.settings))
        per_second = deps.settings.syncplay.websocket.max_messages_per_second
        self._limits = RateLimiter(per_second * 60, burst=per_second * 2)

    # -- lifecycle ---------------------------------------------------------------------
    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            with self._cancel:
                async with trio.open_nursery() as nursery:
                    self._nursery = nursery
                    nursery.start_soon(self._clock_task)
                    nursery.start_soon(self._heartbeat_task)
                    nursery.start_soon(self._presence_task)
                    task_status.started()
        finally:
            self.ended = True
            self.stopped.set()

    async def end(self, reason: protocol.CloseReason, message: str) -> None:
        """Tell every connection why, give them a moment to hear it, then stop."""
        self.ended = True
        self.end_reason = reason
        for connection in list(self._connections.values()):
            connection.close(reason, message)
        with trio.move_on_after(END_GRACE_SECONDS):
            for connection in list(self._connections.values()):
                await connection.done.wait()
        self._cancel.cancel()

    @property
    def connection_count(self) -> int:
        return len(self._connections)

    @property
    def paused(self) -> bool:
        """Nothing moves on anyone's screen (paused, or stopped at an item's end)."""
        return self._state.playback.state == "paused"

    def sessions_by_user(self) -> Counter[UUID]:
        """Sockets per user."""
        return Counter(c.principal.user_id for c in self._connections.values())

    def overview(self) -> LiveOverview:
        now = self._clock.now()
        return LiveOverview(
            connections=len(self._connections),
            control=self._state.control,
            playback=engine.snapshot(self._state, now),
            members=engine.members(self._state),
            sessions=[
                SessionOverview(s, s.session_id in self._connections)
                for s in self._state.sessions.values()
            ],
        )

    def remove_user(self, user_id: UUID, reason: Removal, message: str) -> int:
        """Every session of the user leaves with ``reason``; returns how many had sockets."""
        self._moderation_changes += 1
        user = str(user_id)
        with_socket = sum(
            1
            for s in self._state.sessions.values()
            if s.user_id == user and s.session_id in self._connections
        )
        self.apply(engine.RemoveUser(user_id=user, reason=reason, message=message))
        return with_socket

    def set_role(self, user_id: UUID, role: Role) -> None:
        """The service changed the user's role: their sessions and everyone's view follow."""
        self._moderation_changes += 1  # a join reading the user's standing reads it again
        self.apply(engine.SetRole(user_id=str(user_id), role=role.value))

    def set_muted(self, user_id: UUID, *, muted: bool, until: datetime | None = None) -> None:
        """The service muted or unmuted the user: presence ``muted``/``unmuted`` to everyone.

        A mute ``until`` a time ends here by itself then, so that everyone's People
        list stops showing it (the chat path reads the stored mute and its expiry).
        """
        self._moderation_changes += 1
        self.apply(engine.SetMuted(user_id=str(user_id), muted=muted))
        self._time_mute(str(user_id), until if muted else None)

    def _time_mute(self, user_id: str, until: datetime | None) -> None:
        """(Re)start or stop the timer that ends ``user_id``'s mute at ``until``."""
        timer = self._mute_timers.pop(user_id, None)
        if timer is not None:
            timer.cancel()
        if until is None or self._nursery is None:
            return
        timer = self._mute_timers[user_id] = trio.CancelScope()
        deadline = self._clock.to_trio(self._clock.from_datetime(until))
        self._nursery.start_soon(self._end_mute, user_id, timer, deadline)

    async def _end_mute(self, user_id: str, timer: trio.CancelScope, deadline: float) -> None:
        with timer:
            await trio.sleep_until(deadline)
            if self._mute_timers.get(user_id) is timer:
                del self._mute_timers[user_id]
                self.apply(engine.SetMuted(user_id=user_id, muted=False))

    def room_updated(self, room: Room) -> None:
        """The room's settings or owner changed: new control mode and waiting rules, and a
        ``room`` frame.

        The ``room`` frame goes out before what the new rules set off (a waiting room
        may resume once members stop counting), so that clients read the change of
        rules before its effect.
        """
        now = self._clock.now()
        control = engine.SetControl(mode=room.playback_control.value)
        rules = engine.SetRoomRules(
            wait_for_slow_members=room.wait_for_slow_members,
            start_when_ready=room.start_when_ready,
        )
        self._state, effects = engine.apply(self._state, control, now)
        self._state, more = engine.apply(self._state, rules, now)
        self.broadcast(protocol.RoomChanged(room=room_info(room), settings=self._sync_settings()))
        for effect in effects + more:
            self._execute(effect)

    def queue_changed(self, room: Room, queue: Queue, current_changed: bool) -> None:
        """The service changed the queue: a ``queue`` frame, then the room follows it.

        The frame goes first, so that a client knows the new current item (its media)
        before the playback that starts it. Another current item, or the same one
        started again (``current_changed``), is loaded from 0; otherwise the room
        takes the stored duration of its item (storage's first value wins).
        """
        self._queue = queue
        self.broadcast(protocol.QueueChanged(queue=queue_info(room.id, queue)))
        current = queue.current
        item_id = None if current is None else str(current.id)
        duration = None if current is None else current.duration
        if current_changed or item_id != self._state.item_id:
            self.apply(engine.LoadItem(item_id=item_id, duration=duration))
        else:
            self.apply(engine.SetDuration(item_id=item_id, duration=duration))

    def _sync_settings(self) -> protocol.SyncSettings:
        heartbeat = self._deps.settings.syncplay.sync.heartbeat_interval_seconds
        return engine.sync_settings(self._state, heartbeat_interval=heartbeat)

    @property
    def is_idle(self) -> bool:
        idle_for = self._deps.settings.syncplay.sync.disconnect_timeout_seconds
        return (
            not self._connections
            and self._empty_since is not None
            and self._clock.now() - self._empty_since > idle_for
        )

    # -- attaching connections --------------------------------------------------------------
    async def attach(
        self,
        connection: BaseConnection,
        participant: Participant,
        room: Room,
        recent_chat: list[protocol.ChatEntry],
        resume: str | None,
        read: StandingRead | None = None,
    ) -> None:
        """Join a connection to the room; its reader then runs in the room (``connection.done``
        is set when it ends).

        ``recent_chat`` is emptied once it has been sent (see below).

        ``participant`` is the membership the service's join read; the room reads it
        again with the joiner's standing, and joins the user as it stands then (a role
        changed meanwhile counts; a removal refuses the join). With ``read``, the standing
        the service read, the room reads nothing when no moderation change reached it
        since before that read: one database round trip less per join.

        Raises:
            ServiceError: ``room-ended``; ``banned``, or ``not-a-member`` when a ban, a
                kick or a leave landed after the service let the user in (the join's
                check and this attach are apart).
        """
        participant, mute = await self._standing(participant.user_id, read)
        # No await from here to the Connect: no mute, role change or removal can slip in
        # between.
        if self._nursery is None or self.ended:
            if self.end_reason in ("moved", "server-restarting"):
                raise RoomElsewhere(self.room_id, None)  # it moves on: come back in a moment
            raise ServiceError(410, "room-ended", "the room has ended")
        user_id = str(participant.user_id)
        known = self._state.sessions.get(resume) if resume else None
        session_id = resume if known is not None and known.user_id == user_id else None
        if session_id is None:
            session_id = secrets.token_urlsafe(12)
        replaced = self._connections.get(session_id)
        if replaced is not None:
            replaced.close("replaced", "this session was resumed on another connection")
            self._sockets_of[replaced.principal.user_id] -= 1  # its reader finds it gone
        connection.session_id = session_id
        self._connections[session_id] = connection
        self._sockets_of[connection.principal.user_id] += 1
        self._empty_since = None
        self.apply(
            engine.Connect(
                session_id=session_id,
                user_id=user_id,
                user_name=participant.user_name,
                role=participant.role.value,
                resume=session_id == resume,
                muted=mute is not None,
                desktop=connection.desktop,
            )
        )
        if mute is not None and user_id not in self._mute_timers:
            self._time_mute(user_id, mute.expires_at)
        now = self._clock.now()
        joined = protocol.Joined(
            session_id=session_id,
            server_time=now,
            room=room_info(room),
            playback=engine.snapshot(self._state, now),
            participants=[],
            chat=recent_chat,
            settings=self._sync_settings(),
            you=engine.member(self._state, session_id),
            queue=queue_info(self.room_id, self._queue),
        )
        # The member list goes in as the kept entries, already encoded (``MemberList``).
        # Its key is the only place ``"participants":[]`` can stand unescaped: inside a
        # JSON string the quotes would be escaped.
        before, _, after = protocol.encode_bytes(joined).partition(b'"participants":[]')
        wire = self._member_list.frame(self._state, before + b'"participants":', after)
        connection.send(Frame.of_wire(wire, "joined"))
        # Sent (written, or queued encoded). The caller's list lasts as long as the
        # connection: up to history_limit messages per connection would stay in memory.
        recent_chat.clear()
        self._deps.on_membership(self.room_id, participant.user_id, True)
        # The reader task inherits this context: its log lines name the user and session.
        with log_context(room_id=str(self.room_id), user_id=user_id, session_id=session_id):
            self._nursery.start_soon(self._serve, connection)

    async def _standing(
        self, user_id: UUID, read: StandingRead | None
    ) -> tuple[Participant, Restriction | None]:
        """The joiner's membership as stored now, and their mute in force, if any.

        Read from storage, since the engine only knows the users it has sessions
        of. A mute, role change, kick or ban stored while this read is on its way
        reaches the room (``set_muted``, ``set_role``, ``remove_user``) while the
        joiner has no session yet, and would be lost; the change counter tells, and
        the read is repeated.

        ``read`` stands for the first read when the counter has not moved since before
        it: every change stored before it began is in it, and every change stored after
        reaches the room after it began (the service tells the room once it has stored
        one), so none reached the room, none is lost. Else the room reads anew.

        Raises:
            ServiceError: ``banned``; ``not-a-member`` when the membership is gone (a
                kick, a ban or a leave since the service's join).
        """
        moderation = self._deps.service.moderation
        if read is not None and read.count_before == self._moderation_changes:
            standing = read.standing
        else:
            for _ in range(STANDING_READS):
                seen = self._moderation_changes
                standing = await moderation.standing(self.room_id, user_id)
                if self._moderation_changes == seen:
                    break
        moderation.refuse_banned_by(standing)
        if standing.participant is None:
            raise ServiceError(
                403, "not-a-member", "you were removed from this room while joining it"
            )
        return standing.participant, moderation.mute_by(standing)

    async def _serve(self, connection: BaseConnection) -> None:
        session_id = connection.session_id
        try:
            await connection.serve_reader(self._on_frame)
        finally:
            if self._connections.get(session_id) is connection:
                del self._connections[session_id]
                if session_id in self._state.sessions and not self.ended:
                    self.apply(engine.Disconnect(session_id=session_id))
                if session_id not in self._state.sessions:
                    # It left: no resume will come back to this bucket (every leave
                    # and rejoin makes a new session, so the table would only grow).
                    self._limits.forget(session_id)
                user = connection.principal.user_id
                self._sockets_of[user] -= 1
                if self._sockets_of[user] <= 0:
                    del self._sockets_of[user]
                    self._deps.on_membership(self.room_id, user, False)
            if not self._connections:
                self._empty_since = self._clock.now()

    # -- the engine ----------------------------------------------------------------------------
    def apply(self, command: engine.Command) -> None:
        """Apply a command and carry out its effects (raises ``Refused``, state unchanged)."""
        self._state, effects = engine.apply(self._state, command, self._clock.now())
        for effect in effects:
            self._execute(effect)

    def broadcast(self, message: protocol.ServerMessage, exclude: str | None = None) -> None:
        self.broadcast_frame(Frame(protocol.encode(message), message_type(message)), exclude)

    def broadcast_frame(self, frame: Frame, exclude: str | None = None) -> None:
        """Send ``frame`` (encoded once) to every member but ``exclude``.

        A member on the front door's socket gets the frame's bytes written at once
        (``DirectConnection``): no task switch and no encoding per member.
        """
        sent = 0
        for session_id, connection in list(self._connections.items()):
            if session_id != exclude and connection.send_frame(frame):
                sent += 1
        self._deps.metrics.message_out(frame.kind, sent)
        if self._frame_started is not None:
            # From the frame that caused it to every member's outbox.
            self._deps.metrics.observe_fanout(time.perf_counter() - self._frame_started)

    def _execute(self, effect: engine.Effect) -> None:
        match effect:
            case engine.Broadcast(message=protocol.Presence() as message, exclude=exclude) if (
                message.event in _COALESCED_PRESENCE
            ):
                # A newer event about the user replaces an unsent one: the member entry
                # it carries is the user's whole state after it.
                self._pending_presence[message.member.user_id] = (message, exclude)
                self._presence_due.set()
            case engine.Broadcast(message=protocol.Presence() as message, exclude=exclude):
                # A held event about the same user goes first: sent after this one, its
                # older member entry would replace the newer one on every client.
                held = self._pending_presence.pop(message.member.user_id, None)
                if held is not None:
                    self.broadcast(*held)
                self.broadcast(message, exclude)
            case engine.Broadcast(message=message, exclude=exclude):
                self.broadcast(message, exclude)
            case engine.SendTo(session_id=session_id, message=message):
                target = self._connections.get(session_id)
                if target is not None:
                    target.send(message)
            case engine.PersistPlayback(playback=playback, user_id=user_id):
                self._deps.persister.playback(self.room_id, stored_playback(playback, user_id))
            case engine.LogEvent(type=kind, user_id=user_id, payload=payload):
                self._deps.persister.event(
                    NewEvent(
                        room_id=self.room_id,
                        type=kind,
                        created_at=self._clock.wall(),
                        user_id=user_uuid(user_id),
                        payload=dict(payload),
                    )
                )
            case engine.CloseSession(session_id=session_id, reason=reason, message=text):
                target = self._connections.get(session_id)
                if target is not None:
                    target.close(reason, text)
            case engine.WakeAt(time=at):
                self._wake_at = at
                self._wake.set()
            case engine.Advance(item_id=item_id):
                self._spawn(self._advance, UUID(item_id))
            case engine.RecordDuration(item_id=item_id, duration=duration):
                self._spawn(self._record_duration, UUID(item_id), duration)

    def _spawn(self, work: Callable[..., Awaitable[None]], *args: object) -> None:
        """Run ``work`` in a task of the room's: effects are carried out without awaiting."""
        if self._nursery is not None and not self.ended:
            self._nursery.start_soon(work, *args)

    async def _advance(self, item_id: UUID) -> None:
        """The item ended for everyone: the queue moves on (its change comes back here)."""
        try:
            await self._deps.service.queue.advance(self.room_id, item_id)
        except (ServiceError, StorageError) as exc:
            # The room stays ended; people can still press next.
            log.warning(
                "room %s: the queue did not advance after %s: %s", self.room_id, item_id, exc
            )

    async def _record_duration(self, item_id: UUID, duration: float) -> None:
        try:
            await self._deps.service.queue.record_duration(self.room_id, item_id, duration)
        except (ServiceError, StorageError) as exc:
            # The room knows the duration; it is only not stored for the next time.
            log.warning("room %s: duration of %s not stored: %s", self.room_id, item_id, exc)

    async def _clock_task(self) -> None:
        while True:
            if self._wake_at is None:
                await self._wake.wait()
                self._wake = trio.Event()
                continue
            wake = self._wake
            with trio.move_on_at(self._clock.to_trio(self._wake_at)):
                await wake.wait()
                self._wake = trio.Event()
                continue  # a new deadline arrived: sleep until that one instead
            self._wake_at = None
            self.apply(engine.Tick())

    async def _presence_task(self) -> None:
        while True:
            await self._presence_due.wait()
            window = len(self._connections) * PRESENCE_SECONDS_PER_MEMBER
            await trio.sleep(min(max(window, PRESENCE_WINDOW_SECONDS), PRESENCE_WINDOW_MAX_SECONDS))
            self._presence_due = trio.Event()
            pending, self._pending_presence = self._pending_presence, {}
            self._send_presence(list(pending.values()))

    def _send_presence(self, pending: list[tuple[protocol.Presence, str | None]]) -> None:
        """One window's comings and goings: alone as ``presence``, else in batches.

        Each event is encoded once; a batch is their concatenation. A member that
        an event excludes (a joiner, about its own arrival) gets the window without it.
        """
        limit = protocol.MAX_PRESENCE_BATCH
        for start in range(0, len(pending), limit):
            chunk = [(protocol.encode(m), ex) for m, ex in pending[start : start + limit]]
            everyone = _presence_frame([event for event, _ in chunk])
            excluded = {ex for _, ex in chunk if ex is not None}
            sent = Counter[str]()
            for session_id, connection in list(self._connections.items()):
                frame = everyone
                if session_id in excluded:
                    frame = _presence_frame([event for event, ex in chunk if ex != session_id])
                if frame is not None and connection.send_frame(frame):
                    sent[frame.kind] += 1
            for kind, count in sent.items():
                self._deps.metrics.message_out(kind, count)

    async def _heartbeat_task(self) -> None:
        interval = self._deps.settings.syncplay.sync.heartbeat_interval_seconds
        while True:
            await trio.sleep(interval)
            self.apply(engine.Tick())  # idle sessions and ready timeouts

    # -- frames from clients ----------------------------------------------------------------------
    async def _on_frame(self, connection: BaseConnection, data: str | bytes) -> None:
        self._frame_started = time.perf_counter()
        try:
            await self._handle_frame(connection, data)
        finally:
            self._frame_started = None

    def _refuse(
        self, connection: BaseConnection, code: str, message: str, ref: str | None = None
    ) -> None:
        self._deps.metrics.error(code)
        connection.send(protocol.ErrorOut(code=code, message=message, ref=ref))

    async def _handle_frame(self, connection: BaseConnection, data: str | bytes) -> None:
        metrics = self._deps.metrics
        received = self._clock.now()
        session_id = connection.session_id
        if self._limits.hit(session_id, received) > 0:
            # Dropped. One notice per second: answering every frame of a flood
            # would only fill the flooder's outbox.
            if received - connection.limited_notice_at >= 1.0:
                connection.limited_notice_at = received
                self._refuse(connection, "rate-limited", "too many messages")
            return
        if isinstance(data, bytes):
            metrics.message_in("other")
            self._refuse(connection, "bad-message", "binary frames are not supported")
            return
        try:
            message = protocol.decode_client(data)
        except protocol.ProtocolError as exc:
            metrics.message_in("other")
            self._refuse(connection, exc.code, exc.message, exc.ref)
            return
        try:
            await self._dispatch(connection, message, received)
        except protocol.ProtocolError as exc:  # includes the engine's Refused
            self._refuse(connection, exc.code, exc.message, exc.ref)
        except ServiceError as exc:
            self._refuse(connection, exc.code, exc.detail)
        except StorageError as exc:
            # Sync goes on from memory; only what needed the database is refused.
            log.warning(
                "room %s: database unavailable for a %s: %s", self.room_id, type(exc).__name__, exc
            )
            self._refuse(connection, "unavailable", "the database is unavailable; retry")
        finally:
            # Counted after its broadcast went out: the count is not in anyone's way.
            metrics.message_in(message_type(message))

    async def _dispatch(
        self, connection: BaseConnection, message: protocol.ClientMessage, received: float
    ) -> None:
        sid = connection.session_id
        match message:
            case protocol.Ping(id=ping_id, t0=t0):
                connection.send(PendingPong(ping_id, t0, received))
            case protocol.Heartbeat():
                before = self._state.sessions.get(sid)
                # The round trip in the same command: one pass of the engine, not two.
                self.apply(
                    engine.Heartbeat(
                        session_id=sid,
                        position=message.position,
                        server_time=message.server_time,
                        version=message.version,
                        playing=message.playing,
                        rtt=message.rtt,
                    )
                )
                after = self._state.sessions.get(sid)
                if (
                    after is not None
                    and after.last_offset is not None
                    and (before is None or after.last_offset is not before.last_offset)
                ):
                    self._deps.metrics.sync_offset(after.last_offset)
            case protocol.Play(position=position):
                self.apply(engine.Play(session_id=sid, position=position))
            case protocol.Pause(position=position):
                self.apply(engine.Pause(session_id=sid, position=position))
            case protocol.Seek(position=position):
                self.apply(engine.Seek(session_id=sid, position=position))
            case protocol.SetRate(rate=rate):
                self.apply(engine.SetRate(session_id=sid, rate=rate))
            case protocol.Buffering(position=position):
                self.apply(engine.Buffering(session_id=sid, position=position))
            case protocol.Ready(position=position):
                self.apply(engine.Ready(session_id=sid, position=position))
            case protocol.Media(item_id=item_id, duration=duration):
                self.apply(engine.Media(session_id=sid, item_id=_item(item_id), duration=duration))
            case protocol.Ended(item_id=item_id):
                self.apply(engine.Ended(session_id=sid, item_id=_item(item_id)))
            case protocol.Readiness(ready=ready):
                self.apply(engine.Readiness(session_id=sid, ready=ready))
            case (
                protocol.Next(current_item_id=item_id) | protocol.Previous(current_item_id=item_id)
            ):
                await self._step(connection, message, UUID(_item(item_id)))
            case protocol.Chat(message=text, client_id=client_id):
                try:
                    stored = await self._deps.service.post_chat(
                        connection.principal, self.room_id, text
                    )
                except ServiceError as exc:
                    # ``ref`` ties the refusal to the message, so the client fails fast.
                    raise protocol.ProtocolError(exc.code, exc.detail, ref=client_id) from None
                except StorageError as exc:
                    log.warning("room %s: chat not stored: %s", self.room_id, exc)
                    detail = "the database is unavailable; retry"
                    raise protocol.ProtocolError("unavailable", detail, ref=client_id) from None
                connection.send(protocol.ChatAck(client_id=client_id, message_id=str(stored.id)))
            case protocol.Leave():
                # The service removes the membership and then, through the supervisor,
                # this user's sessions here (each socket closed with ``left``).
                try:
                    await self._deps.service.leave(connection.principal, self.room_id)
                except ServiceError as exc:
                    if exc.code != "not-a-member":
                        raise
                    # No membership left to remove (a race with a REST leave): the
                    # sessions still go, the same way.
                    self.remove_user(connection.principal.user_id, "left", "you left the room")
            case protocol.Hello() | protocol.Join():
                raise protocol.ProtocolError("already-joined", "this connection is in a room")

    async def _step(
        self, connection: BaseConnection, message: protocol.Next | protocol.Previous, item_id: UUID
    ) -> None:
        """``next``/``previous``: the queue's, with the socket's principal, as REST's.

        A stale ``current_item_id`` changes nothing and says nothing (someone else's
        press got there first); a change reaches every socket as ``queue`` and
        ``playback``. Refused control is ``not-allowed``, as for play and pause.
        """
        queue = self._deps.service.queue
        step = queue.next if isinstance(message, protocol.Next) else queue.previous
        try:
            await step(connection.principal, self.room_id, item_id)
        except ServiceError as exc:
            if exc.code == "forbidden":
                raise protocol.ProtocolError("not-allowed", exc.detail) from None
            raise


def _presence_frame(events: list[str]) -> Frame | None:
    """Encoded ``presence`` messages as one frame: the message alone, or a ``presence_batch``
    (written as msgspec writes one: ``tests/server/test_live_room.py`` decodes it)."""
    if not events:
        return None
    if len(events) == 1:
        return Frame(events[0], "presence")
    return Frame('{"type":"presence_batch","events":[' + ",".join(events) + "]}", "presence_batch")


def _item(value: str) -> str:
    """A queue item id from a client, as the room writes it (``str(UUID)``).

    Raises:
        ProtocolError: ``bad-message``, when it is not a UUID.
    """
    try:
        return str(UUID(value))
    except ValueError:
        raise protocol.ProtocolError("bad-message", "an item id is a UUID") from None
