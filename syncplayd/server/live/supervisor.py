"""The room supervisor: which rooms are live, and their lifetimes.

A room becomes live when its first connection joins and stops when it has had
no connection for ``sync.disconnect_timeout_seconds`` (so a member whose
network blips can resume its session). The supervisor's nursery holds one
child per live room; ending a room (REST, CLI, shutdown) closes each of its
connections with a reason and then cancels the room's nursery.

It is the service's view of the live rooms (:class:`~syncplayd.service.LiveRooms`):
whatever transport asked for a change, the service decides and stores it, then
calls one method here, which finds the live room and has it apply an engine
command or sends a frame (a chat message reaching the sockets or deleted from
them, a user removed with a reason, a new role, a mute, new settings, a new
queue, the room ended). Rooms that are not live ignore them.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from datetime import datetime
from uuid import UUID

import trio

from syncplayd.clocks import ServerClock, monotonic
from syncplayd.config import Settings
from syncplayd.core import protocol
from syncplayd.core.queue import Queue
from syncplayd.core.ratelimit import RateLimiter
from syncplayd.logs import log_context
from syncplayd.server.live.cluster import Cluster
from syncplayd.server.live.live_room import LiveOverview, LiveRoom, RoomDeps
from syncplayd.server.live.messages import chat_entry
from syncplayd.server.live.persister import Persister
from syncplayd.server.live.user_connections import UserConnections
from syncplayd.server.metrics import Metrics
from syncplayd.service import Removal, RoomService
from syncplayd.storage.records import ChatMessage, Role, Room

log = logging.getLogger(__name__)

IDLE_CHECK_SECONDS = 5.0
#: Joins one user may make at once before ``websocket.joins_per_minute`` paces them.
JOIN_BURST = 20.0


class RoomSupervisor:
    """Live rooms by id, and the sockets each user holds."""

    def __init__(
        self,
        settings: Settings,
        service: RoomService,
        persister: Persister,
        clock: ServerClock,
        metrics: Metrics | None = None,
        cluster: Cluster | None = None,
    ) -> None:
        self._deps = RoomDeps(
            settings, service, persister, clock, self.membership_changed, metrics or Metrics()
        )
        self._rooms: dict[UUID, LiveRoom] = {}
        self._opening: dict[UUID, trio.Lock] = {}
        #: Set once a live room has stopped and let go of its room (``_run_room``).
        self._finished: dict[LiveRoom, trio.Event] = {}
        self._nursery: trio.Nursery | None = None
        self.user_connections = UserConnections()
        self._joins = _join_budget(settings)
        self.shutting_down = False
        #: Multi-node mode: rooms are owned through it (``None``: the only node).
        self.cluster = cluster

    @property
    def live_rooms(self) -> int:
        return len(self._rooms)

    @property
    def connections(self) -> int:
        return sum(room.connection_count for room in self._rooms.values())

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            nursery.start_soon(self._reap_idle_rooms)
            task_status.started()

    def running(self, room_id: UUID) -> LiveRoom | None:
        """The room's live counterpart if it runs (a join then needs no queue read)."""
        live = self._rooms.get(room_id)
        return live if live is not None and not live.ended else None

    async def live_room(self, room: Room, queue: Queue, *, ask_handover: bool = True) -> LiveRoom:
        """The live room for ``room``, started if it is not live yet (from ``room`` and
        its ``queue`` as read by the join; a live room keeps its own, which the service
        keeps up to date).

        Raises:
            RoomElsewhere: multi-node mode, and another node runs the room (it was asked
                to hand it over, unless ``ask_handover`` is false).
        """
        live = self._rooms.get(room.id)
        if live is not None and not live.ended:
            return live
        assert self._nursery is not None, "supervisor not running"  # noqa: S101 - our bug
        lock = self._opening.setdefault(room.id, trio.Lock())
        async with lock:
            live = self._rooms.get(room.id)
            if live is not None and live.ended:
                # Still ending (a hand-over, say): until it has stored its state and let go
                # of the room's lock, a new live room would share that lock with it.
                await self._finished[live].wait()
                live = self._rooms.get(room.id)
            if live is None or live.ended:
                if self.cluster is not None:
                    await self.cluster.acquire(room.id, ask=ask_handover)
                live = LiveRoom(room, queue, self._deps)
                try:
                    await self._nursery.start(self._run_room, live)
                except BaseException:
                    if self.cluster is not None and room.id not in self._rooms:
                        with trio.CancelScope(shield=True):
                            await self.cluster.release(room.id)
                    raise
        return live

    async def _run_room(self, live: LiveRoom, *, task_status: trio.TaskStatus[None]) -> None:
        self._rooms[live.room_id] = live
        self._finished[live] = trio.Event()
        try:
            with log_context(room_id=str(live.room_id)):
                await live.run(task_status=task_status)
        except Exception:
            # A bug in one room must not take the daemon and every other room down.
            log.exception("room %s crashed; its connections are closed", live.room_id)
        finally:
            try:
                if self.cluster is not None:
                    # What the room changed goes to the database before the next node may
                    # load it from there; the ended room stays listed meanwhile, so that a
                    # join here waits for this (``live_room``) instead of sharing the lock.
                    with trio.CancelScope(shield=True), trio.move_on_after(5.0):
                        await self._deps.persister.flush()
                        await self.cluster.release(live.room_id)
            finally:
                if self._rooms.get(live.room_id) is live:
                    del self._rooms[live.room_id]
                    self._opening.pop(live.room_id, None)
                self._finished.pop(live).set()

    async def _reap_idle_rooms(self) -> None:
        while True:
            await trio.sleep(IDLE_CHECK_SECONDS)
            for live in list(self._rooms.values()):
                if live.is_idle:
                    await live.end("room-ended", "nobody is left in the room")

    async def shutdown(self, reason: protocol.CloseReason = "server-restarting") -> None:
        """End every live room with ``reason`` (graceful daemon stop)."""
        self.shutting_down = True
        await self._end_all(reason, "the server is restarting; reconnect in a moment")

    async def _end_all(self, reason: protocol.CloseReason, message: str) -> None:
        async with trio.open_nursery() as nursery:
            for live in list(self._rooms.values()):
                nursery.start_soon(live.end, reason, message)

    def paused_room_ids(self) -> list[UUID]:
        """The rooms live here that stand paused (moving one interrupts nobody's film)."""
        return [room_id for room_id, live in self._rooms.items() if not live.ended and live.paused]

    def live_room_ids(self) -> list[UUID]:
        """The rooms live on this node now."""
        return [room_id for room_id, live in self._rooms.items() if not live.ended]

    # -- multi-node (cluster.LocalRooms) ------------------------------------------------
    def is_live_here(self, room_id: UUID) -> bool:
        return self.get_live(room_id) is not None

    async def hand_over(self, room_id: UUID) -> None:
        """Another node was asked for the room: send its members there (through the proxy)."""
        live = self.get_live(room_id)
        if live is not None:
            await live.end("moved", "the room moves to another server; reconnecting")

    async def drop_all(self) -> None:
        """This node may have lost its rooms (its database link failed): close them all."""
        message = "the server lost its database link; reconnect in a moment"
        await self._end_all("server-restarting", message)

    def reconfigure(self, settings: Settings) -> None:
        """New settings (SIGHUP) for rooms opened from now on and for the live ones."""
        if (
            settings.syncplay.websocket.joins_per_minute
            != self._deps.settings.syncplay.websocket.joins_per_minute
        ):
            self._joins = _join_budget(settings)
        self._deps = dataclasses.replace(self._deps, settings=settings)
        for live in self._rooms.values():
            live.reconfigure(self._deps)

    def get_live(self, room_id: UUID) -> LiveRoom | None:
        """The room's live counterpart, if any; never starts one."""
        live = self._rooms.get(room_id)
        return live if live is not None and not live.ended else None

    def join_wait(self, user_id: UUID) -> float:
        """Count a join of the user: 0 if it may go ahead, else the seconds to wait.

        Checked before any work is done for the join, so that a join loop costs its
        author refusals, not the database and every room member a join notice.
        """
        return self._joins.hit(user_id, monotonic())

    def is_busy(self, room_id: UUID) -> bool:
        """Whether anyone is connected to the room right now."""
        live = self._rooms.get(room_id)
        if live is not None and live.connection_count > 0:
            return True
        return self.cluster is not None and self.cluster.owned_elsewhere(room_id)

    def connection_count(self, room_id: UUID) -> int:
        live = self.get_live(room_id)
        return live.connection_count if live is not None else 0

    def sessions_by_user(self, room_id: UUID) -> Counter[UUID]:
        """Connected sessions per user in the room (empty when it is not live)."""
        live = self.get_live(room_id)
        return live.sessions_by_user() if live is not None else Counter()

    def overview(self, room_id: UUID) -> LiveOverview | None:
        """What the room looks like live, for operators; ``None`` when it is not live."""
        live = self.get_live(room_id)
        return live.overview() if live is not None else None

    # -- what the service asks of live rooms (service.LiveRooms) --------------------------
    def chat_posted(self, message: ChatMessage) -> None:
        live = self._rooms.get(message.room_id)
        if live is not None:
            live.broadcast(protocol.ChatOut(message=chat_entry(message)))

    def room_ended(self, room_id: UUID) -> None:
        live = self._rooms.get(room_id)
        if live is not None and self._nursery is not None:
            self._nursery.start_soon(live.end, "room-ended", "the room has ended")

    def remove_user(self, room_id: UUID, user_id: UUID, reason: Removal, message: str) -> int:
        live = self.get_live(room_id)
        return live.remove_user(user_id, reason, message) if live is not None else 0

    def chat_deleted(self, room_id: UUID, message_id: UUID) -> None:
        live = self.get_live(room_id)
        if live is not None:
            deleted = protocol.ChatDeleted(room_id=str(room_id), message_id=str(message_id))
            live.broadcast(deleted)

    def room_updated(self, room: Room) -> None:
        live = self.get_live(room.id)
        if live is not None:
            live.room_updated(room)

    def role_changed(self, room_id: UUID, user_id: UUID, role: Role) -> None:
        live = self.get_live(room_id)
        if live is not None:
            live.set_role(user_id, role)

    def mute_changed(
        self, room_id: UUID, user_id: UUID, *, muted: bool, until: datetime | None = None
    ) -> None:
        live = self.get_live(room_id)
        if live is not None:
            live.set_muted(user_id, muted=muted, until=until)

    def queue_changed(self, room: Room, queue: Queue, current_changed: bool) -> None:
        live = self.get_live(room.id)
        if live is not None:
            live.queue_changed(room, queue, current_changed)

    # -- presence in storage ------------------------------------------------------------------
    def membership_changed(self, room_id: UUID, user_id: UUID, connected: bool) -> None:
        """Record ``is_connected`` behind: joins never wait for it.

        Through the persister, so that the newest change of a member is the one
        stored (in order, one write per burst), and one made while the database is
        down is written once it is back instead of being lost.
        """
        seen = self._deps.clock.wall()
        self._deps.persister.presence(room_id, user_id, connected, seen)


def _join_budget(settings: Settings) -> RateLimiter[UUID]:
    per_minute = settings.syncplay.websocket.joins_per_minute
    return RateLimiter(per_minute, burst=min(JOIN_BURST, max(1.0, per_minute)))
