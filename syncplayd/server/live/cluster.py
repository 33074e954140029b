"""Several nodes on one PostgreSQL: who runs which live room, and changes between nodes.

A live room runs on exactly one node: the one holding the room's session-level
advisory lock on its :class:`~syncplayd.storage.cluster.ClusterLink` (a
connection of its own). A node that dies loses that connection, PostgreSQL
releases its locks, and the next node a member of the room reaches takes the
room over from what is stored (docs/architecture.md, "Several nodes"). The
``room_owners`` table mirrors the locks for people and for routing hints; the
``nodes`` table is the registry (a heartbeat every ``HEARTBEAT_SECONDS``).

Changes decided on one node for a room live on another (a REST kick, a chat
posted over REST, a room update) travel as PostgreSQL notifications on one
channel: :class:`ClusterRooms` is the service's ``LiveRooms`` for the whole
cluster, applying a change locally when the room is live here and publishing it
otherwise. Notifications from one node arrive in the order it sent them (one
connection, one sender task); each node applies those for rooms it runs.

When a member reaches a node that does not run its room while another does, the
node asks the owner to hand the room over (``handover``) and tells the member to
come back in a moment (``moved``): the owner flushes what it has not stored yet,
closes its members' sockets with ``moved`` and lets go of the lock. Through the
proxy (``hash $arg_room consistent``) every member then lands on the node the
proxy chose, so after any change of the node set each room converges on one owner.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import socket
from collections.abc import Iterable, Set
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Protocol
from uuid import UUID

import trio

from syncplayd.clocks import ServerClock, monotonic
from syncplayd.core.queue import Queue
from syncplayd.service import Removal
from syncplayd.storage.base import Repository
from syncplayd.storage.cluster import ClusterLink
from syncplayd.storage.errors import StorageError
from syncplayd.storage.records import ChatMessage, NodeRecord, Role, Room

log = logging.getLogger(__name__)

CHANNEL: Final = "syncplayd"
HEARTBEAT_SECONDS: Final = 2.0
#: A node whose heartbeat is older than this is taken for gone (status, routing hints).
NODE_STALE_SECONDS: Final = 3 * HEARTBEAT_SECONDS
#: How often the node checks that its lock connection still works.
PING_SECONDS: Final = 1.0
#: A node asks another for the same room at most this often.
HANDOVER_EVERY_SECONDS: Final = 2.0
#: A node that comes back gets its rooms back once it has been up this long: the proxy
#: may still count it down for a moment after its failure (nginx: fail_timeout).
HANDBACK_AFTER_SECONDS: Final = 2 * HEARTBEAT_SECONDS
#: A room handed back that the proxy sends here again anyway (it may count the other node
#: down for a moment) is handed back again after this long, at most HANDBACK_TRIES times.
HANDBACK_RETRY_SECONDS: Final = 5.0
HANDBACK_TRIES: Final = 3
#: After a node joins, rooms that stand paused are sent through the proxy again for this
#: long (a playing room is not interrupted to be moved; it moves at its next pause).
REBALANCE_WINDOW_SECONDS: Final = 600.0
REBALANCE_SECOND_PASS_SECONDS: Final = 60.0
STARTUP_GRACE_SECONDS: Final = 10.0
#: Rooms moved per heartbeat while rebalancing (members reconnect in waves, not all at once).
REBALANCE_BATCH: Final = 50
#: What a member sent elsewhere is told: come back in about this long.
RETRY_AFTER_SECONDS: Final = 1.0
#: Notifications waiting to be sent; more are dropped (and logged): a node that cannot
#: reach its database cannot tell others anyway.
OUTBOX: Final = 10_000


def is_alive(node: NodeRecord, now: float) -> bool:
    """Whether ``node`` had a heartbeat within ``NODE_STALE_SECONDS`` of ``now`` (Unix time)."""
    return node.heartbeat_at.timestamp() >= now - NODE_STALE_SECONDS


def newcomers(
    nodes: Iterable[NodeRecord], *, me: str, known: Set[str], started: float, now: float
) -> set[str]:
    """The live nodes that joined a running deployment: rooms are rebalanced towards them.

    A node never seen before is a newcomer if it started more than ``STARTUP_GRACE_SECONDS``
    after the deployment did: the earliest start among the live nodes and this one
    (``started``, Unix time). Nodes starting together are peers from the start. The
    deployment's start, not this node's: a node restarted into a running cluster just
    before a new node is added would otherwise take the newcomer for a peer and keep the
    rooms the proxy now sends to it.
    """
    live = [n for n in nodes if is_alive(n, now)]
    deployment = min([started, *(n.started_at.timestamp() for n in live)])
    return {
        n.node_id
        for n in live
        if n.node_id != me
        and n.node_id not in known
        and n.started_at.timestamp() > deployment + STARTUP_GRACE_SECONDS
    }


class RoomElsewhere(Exception):
    """The room runs on another node (or is being handed over): come back later."""

    def __init__(self, room_id: UUID, owner: str | None) -> None:
        super().__init__(f"room {room_id} is live on {owner or 'another node'}")
        self.room_id = room_id
        self.owner = owner
        self.retry_after = RETRY_AFTER_SECONDS


class LocalRooms(Protocol):
    """What the cluster needs of this node's RoomSupervisor."""

    def is_live_here(self, room_id: UUID) -> bool: ...
    def paused_room_ids(self) -> list[UUID]: ...
    async def hand_over(self, room_id: UUID) -> None: ...
    async def drop_all(self) -> None: ...
    def chat_posted(self, message: ChatMessage) -> None: ...
    def chat_deleted(self, room_id: UUID, message_id: UUID) -> None: ...
    def room_ended(self, room_id: UUID) -> None: ...
    def room_updated(self, room: Room) -> None: ...
    def role_changed(self, room_id: UUID, user_id: UUID, role: Role) -> None: ...
    def mute_changed(
        self, room_id: UUID, user_id: UUID, *, muted: bool, until: datetime | None = None
    ) -> None: ...
    def remove_user(self, room_id: UUID, user_id: UUID, reason: Removal, message: str) -> int: ...
    def queue_changed(self, room: Room, queue: Queue, current_changed: bool) -> None: ...


@dataclass(frozen=True, slots=True)
class _Adoption:
    """A room taken over from ``node`` (which was gone) at ``since`` (wall clock)."""

    node: str
    since: float
    tries: int = 0
    not_before: float = 0.0  # monotonic: the next handback no earlier than this
    handed_back_at: float = 0.0  # monotonic


@dataclass(frozen=True, slots=True)
class NodeIdentity:
    node_id: str
    url: str
    #: Where the other nodes reach this node's Syncplay listener (``HOST:PORT``), if it has one.
    syncplay_bridge: str | None = None


class Cluster:
    """This node's part in the cluster (see the module docstring)."""

    def __init__(
        self,
        repo: Repository,
        database_url: str,
        identity: NodeIdentity,
        clock: ServerClock,
        link: ClusterLink,
    ) -> None:
        self._repo = repo
        self._database_url = database_url
        self.identity = identity
        self._clock = clock
        #: The lock connection; opened before the daemon serves (a start-up error if it
        #: cannot be), replaced if it fails.
        self._link: ClusterLink | None = link
        self._local: LocalRooms | None = None
        self._outbox_send, self._outbox = trio.open_memory_channel[str](OUTBOX)
        self._asked: dict[UUID, float] = {}
        self._owners: dict[UUID, str] = {}  # room -> node, as last read (for is_busy)
        self._live_nodes: set[str] = set()
        #: Rooms taken over from a node that was gone: that node, and when (wall clock,
        #: seconds). When it has started again since, their members are sent through the
        #: proxy again (it may prefer that node).
        self._adopted: dict[UUID, _Adoption] = {}
        self._handed_back: dict[UUID, _Adoption] = {}
        #: Nodes seen while this process ran; one never seen before that started after the
        #: deployment did has joined (``newcomers``), and opens a rebalance window.
        self._known_nodes: set[str] = set()
        self._started_wall = clock.wall().timestamp()
        self._joined: set[str] = set()
        self._leaving = False
        self._rebalance_from = self._rebalance_until = self._second_pass_at = 0.0
        self._rebalanced: set[UUID] = set()
        self.started = trio.Event()

    @property
    def node_id(self) -> str:
        return self.identity.node_id

    def attach(self, local: LocalRooms) -> None:
        self._local = local

    # -- the node's tasks ---------------------------------------------------------------
    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Register, then keep the heartbeat, the lock connection's watch, the listener and
        the sender running; reopen the link (after dropping every room) if it fails."""
        await self._register()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._heartbeat)
            nursery.start_soon(self._send)
            await nursery.start(self._keep_link)
            task_status.started()
            self.started.set()

    async def _register(self) -> None:
        now = self._clock.wall()
        node = NodeRecord(
            node_id=self.node_id, url=self.identity.url, pid=os.getpid(),
            started_at=now, heartbeat_at=now, syncplay_bridge=self.identity.syncplay_bridge,
        )  # fmt: skip
        # Rows of ours left by a crash: our locks died with that process.
        await self._repo.clear_node_rooms(self.node_id)
        await self._repo.upsert_node(node)
        log.info("cluster node %s (%s) registered", self.node_id, self.identity.url)

    async def syncplay_bridge_of(self, node_id: str) -> str | None:
        """Where another node's Syncplay listener is reached, read now; ``None`` if that
        node runs none, or is gone (no heartbeat for ``NODE_STALE_SECONDS``).

        Raises:
            StorageError: the database is unavailable.
        """
        now = self._clock.wall().timestamp()
        for node in await self._repo.list_nodes():
            if node.node_id == node_id and is_alive(node, now):
                return node.syncplay_bridge
        return None

    async def leave(self) -> None:
        """Clean stop: our rooms were ended (their locks released); say we are gone."""
        self._leaving = True
        with trio.CancelScope(shield=True), trio.move_on_after(5.0):
            try:
                await self._repo.clear_node_rooms(self.node_id)
                await self._repo.remove_node(self.node_id)
            except StorageError as exc:
                log.warning("cluster node %s could not deregister: %s", self.node_id, exc)
            if self._link is not None:
                await self._link.aclose()
                self._link = None

    async def _heartbeat(self) -> None:
        while True:
            await trio.sleep(HEARTBEAT_SECONDS)
            try:
                if not await self._repo.touch_node(self.node_id, self._clock.wall()):
                    await self._register()
                await self._refresh_view()
            except StorageError as exc:
                log.warning("cluster heartbeat failed: %s", exc)

    async def _refresh_view(self) -> None:
        now = self._clock.wall().timestamp()
        nodes = await self._repo.list_nodes()
        self._live_nodes = {n.node_id for n in nodes if is_alive(n, now)}
        self._joined = newcomers(
            nodes, me=self.node_id, known=self._known_nodes, started=self._started_wall, now=now
        )
        self._known_nodes |= self._live_nodes
        self._owners = {o.room_id: o.node_id for o in await self._repo.room_owners()}
        # Started again since we took its room (a stale heartbeat of the dead process does
        # not count), and up long enough for the proxy to send members to it again.
        restarted = {
            n.node_id: n.started_at.timestamp()
            for n in nodes
            if n.node_id in self._live_nodes
            and n.started_at.timestamp() <= self._clock.wall().timestamp() - HANDBACK_AFTER_SECONDS
        }
        now = monotonic()
        await self._rebalance(now)
        back = [
            room
            for room, adoption in self._adopted.items()
            if restarted.get(adoption.node, float("-inf")) > adoption.since
            and now >= adoption.not_before
        ]
        if back and self._local is not None:
            # Graceful: flushed, members told "moved", lock released (supervisor.hand_over).
            log.info("node(s) back: sending %d adopted room(s) through the proxy again", len(back))
            for room_id in back:
                adoption = self._adopted.pop(room_id)
                self._handed_back[room_id] = dataclasses.replace(
                    adoption, tries=adoption.tries + 1, handed_back_at=now
                )
            await self._hand_over(back)

    async def _rebalance(self, now: float) -> None:
        """A node joined: rooms standing paused here are sent through the proxy again, so
        that those the proxy now prefers the new node for go there (the others come back
        here); a moment's reconnect while paused interrupts nobody."""
        joined = self._joined
        if joined:
            log.info("node(s) %s joined: moving paused rooms through the proxy", sorted(joined))
            # From a moment after its start (the proxy's list may be updated just after it),
            # with a second pass a minute later for rooms the proxy still sent back here.
            self._rebalance_from = now + HANDBACK_AFTER_SECONDS
            self._second_pass_at = now + REBALANCE_SECOND_PASS_SECONDS
            self._rebalance_until = now + REBALANCE_WINDOW_SECONDS
            self._rebalanced.clear()
        if self._second_pass_at and now >= self._second_pass_at:
            self._second_pass_at = 0.0
            self._rebalanced.clear()
        if not self._rebalance_from <= now < self._rebalance_until or self._local is None:
            return
        batch = [
            room_id
            for room_id in self._local.paused_room_ids()
            if room_id not in self._rebalanced and room_id not in self._adopted
        ][:REBALANCE_BATCH]
        self._rebalanced.update(batch)
        await self._hand_over(batch)

    async def _hand_over(self, rooms: list[UUID]) -> None:
        """Hand these rooms over at once (each waits a moment for its members' goodbyes;
        one after the other, the heartbeat would wait for all of them)."""
        local = self._local
        if local is None or not rooms:
            return
        async with trio.open_nursery() as nursery:
            for room_id in rooms:
                nursery.start_soon(local.hand_over, room_id)

    async def _keep_link(self, *, task_status: trio.TaskStatus[None]) -> None:
        started = False
        backoff = 0.5
        while True:
            if self._link is None:
                try:
                    self._link = await ClusterLink.open(self._database_url)
                except Exception as exc:  # noqa: BLE001 - any failure: retry; no rooms meanwhile
                    log.warning("cluster link to the database failed: %s; retrying", exc)
                    await trio.sleep(backoff)
                    backoff = min(5.0, backoff * 2)
                    continue
            backoff = 0.5
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._listen, self._link, nursery.cancel_scope)
                if not started:
                    started = True
                    task_status.started()
                await self._watch(self._link)
                nursery.cancel_scope.cancel()
            if self._leaving:
                return  # our own clean stop closed the link
            # The connection failed: PostgreSQL may already have given our rooms to
            # others. Stop serving them before anything else.
            log.error("cluster link lost: closing this node's rooms (clients reconnect)")
            link, self._link = self._link, None
            if self._local is not None:
                await self._local.drop_all()
            if link is not None:
                with trio.CancelScope(shield=True):
                    await link.aclose()

    async def _watch(self, link: ClusterLink) -> None:
        # A periodic check, not a wait for a state: nothing announces a dead connection.
        while await link.ping(timeout=2 * PING_SECONDS):  # noqa: ASYNC110
            await trio.sleep(PING_SECONDS)

    # -- ownership ----------------------------------------------------------------------
    async def acquire(self, room_id: UUID, *, ask: bool = True) -> None:
        """Make this node the room's owner, or raise :class:`RoomElsewhere` (after asking
        the owner, if there is one and ``ask``, to hand the room over).

        Raises:
            RoomElsewhere: another node holds the room's lock.
        """
        link = self._link
        if link is None:
            raise RoomElsewhere(room_id, None)  # no database link: nothing may run here
        if await link.try_lock(room_id):
            try:
                before = await self._repo.room_owner(room_id)
                await self._repo.set_room_owner(room_id, self.node_id, self._clock.wall())
            except BaseException:
                await link.unlock(room_id)
                raise
            self._owners[room_id] = self.node_id
            handed = self._handed_back.pop(room_id, None)
            if before is not None and before.node_id != self.node_id:
                # Its row outlived its lock: that node died (a handover clears the row).
                self._adopted[room_id] = _Adoption(before.node_id, self._clock.wall().timestamp())
                log.info("took over room %s from %s", room_id, before.node_id)
            elif (
                handed is not None
                and handed.tries < HANDBACK_TRIES
                and monotonic() - handed.handed_back_at < 6 * HANDBACK_RETRY_SECONDS
            ):
                # Handed back, and the proxy sent its members here again: it may have
                # counted the other node down for a moment. Try again a little later.
                self._adopted[room_id] = dataclasses.replace(
                    handed, not_before=monotonic() + HANDBACK_RETRY_SECONDS
                )
            return
        owner = await self._repo.room_owner(room_id)
        owner_id = owner.node_id if owner is not None else None
        now = monotonic()
        if ask and now - self._asked.get(room_id, float("-inf")) >= HANDOVER_EVERY_SECONDS:
            self._asked[room_id] = now
            self.publish("handover", room_id, to=self.node_id)
        raise RoomElsewhere(room_id, owner_id)

    async def release(self, room_id: UUID) -> None:
        """The room stopped here (its state flushed): let the next node have it."""
        self._owners.pop(room_id, None)
        self._adopted.pop(room_id, None)
        link = self._link
        try:
            await self._repo.clear_room_owner(room_id, self.node_id)
        except StorageError as exc:
            log.warning("cluster: could not clear the owner of room %s: %s", room_id, exc)
        if link is not None:
            await link.unlock(room_id)

    def owned_elsewhere(self, room_id: UUID) -> bool:
        """Whether a live node other than this one runs the room (as last read)."""
        owner = self._owners.get(room_id)
        return owner is not None and owner != self.node_id and owner in self._live_nodes

    # -- changes between nodes ----------------------------------------------------------
    def publish(self, op: str, room_id: UUID, **args: object) -> None:
        """Queue a notification for every node (sent in order by one task)."""
        payload = json.dumps({"from": self.node_id, "op": op, "room": str(room_id), **args})
        try:
            self._outbox_send.send_nowait(payload)
        except trio.WouldBlock:
            log.warning("cluster: %d notifications waiting; dropped %s for %s", OUTBOX, op, room_id)

    async def _send(self) -> None:
        async for payload in self._outbox:
            while True:
                link = self._link
                if link is None:
                    await trio.sleep(0.5)
                    continue
                try:
                    await link.notify(CHANNEL, payload)
                    break
                except Exception as exc:  # noqa: BLE001 - the link is being replaced
                    log.warning("cluster: a notification failed (%s); retrying", exc)
                    await trio.sleep(0.5)

    async def _listen(self, link: ClusterLink, scope: trio.CancelScope) -> None:
        try:
            async with link.listen(CHANNEL) as payloads:
                async for payload in payloads:
                    await self._dispatch(payload)
        except Exception as exc:  # noqa: BLE001 - the watch notices and reopens the link
            log.warning("cluster listener stopped: %s", exc)
            scope.cancel()

    async def _dispatch(self, payload: str) -> None:
        local = self._local
        try:
            message = json.loads(payload)
            room_id = UUID(message["room"])
            op = message["op"]
        except (ValueError, KeyError, TypeError):
            log.warning("cluster: a malformed notification was ignored")
            return
        if local is None or message.get("from") == self.node_id:
            return
        if op == "handover":
            if local.is_live_here(room_id):
                log.info("handing room %s over to %s", room_id, message.get("to"))
                await local.hand_over(room_id)
            return
        if not local.is_live_here(room_id):
            return
        try:
            await self._apply(local, op, room_id, message)
        except StorageError as exc:
            log.warning("cluster: %s for room %s not applied: %s", op, room_id, exc)

    async def _apply(
        self, local: LocalRooms, op: str, room_id: UUID, message: dict[str, Any]
    ) -> None:
        repo = self._repo
        if op == "chat_posted":
            chat = await repo.get_chat_message(UUID(message["message_id"]))
            if chat is not None:
                local.chat_posted(chat)
        elif op == "chat_deleted":
            local.chat_deleted(room_id, UUID(message["message_id"]))
        elif op == "room_ended":
            local.room_ended(room_id)
        elif op == "room_updated":
            room = await repo.get_room(room_id)
            if room is not None:
                local.room_updated(room)
        elif op == "role_changed":
            local.role_changed(room_id, UUID(message["user"]), Role(message["role"]))
        elif op == "mute_changed":
            until = message.get("until")
            local.mute_changed(
                room_id,
                UUID(message["user"]),
                muted=bool(message["muted"]),
                until=None if until is None else datetime.fromisoformat(until),
            )
        elif op == "remove_user":
            local.remove_user(room_id, UUID(message["user"]), message["reason"], message["text"])
        elif op == "queue_changed":
            room, queue = await repo.get_room(room_id), await repo.get_queue(room_id)
            if room is not None and queue is not None:
                local.queue_changed(room, queue, bool(message["current_changed"]))


class ClusterRooms:
    """The service's ``LiveRooms`` for a cluster: here if the room is live here, else
    published for the node that runs it."""

    def __init__(self, local: LocalRooms, cluster: Cluster) -> None:
        self._local = local
        self._cluster = cluster

    def _here(self, room_id: UUID) -> bool:
        return self._local.is_live_here(room_id)

    def chat_posted(self, message: ChatMessage) -> None:
        if self._here(message.room_id):
            self._local.chat_posted(message)
        else:
            self._cluster.publish("chat_posted", message.room_id, message_id=str(message.id))

    def chat_deleted(self, room_id: UUID, message_id: UUID) -> None:
        if self._here(room_id):
            self._local.chat_deleted(room_id, message_id)
        else:
            self._cluster.publish("chat_deleted", room_id, message_id=str(message_id))

    def room_ended(self, room_id: UUID) -> None:
        if self._here(room_id):
            self._local.room_ended(room_id)
        else:
            self._cluster.publish("room_ended", room_id)

    def room_updated(self, room: Room) -> None:
        if self._here(room.id):
            self._local.room_updated(room)
        else:
            self._cluster.publish("room_updated", room.id)

    def role_changed(self, room_id: UUID, user_id: UUID, role: Role) -> None:
        if self._here(room_id):
            self._local.role_changed(room_id, user_id, role)
        else:
            self._cluster.publish("role_changed", room_id, user=str(user_id), role=role.value)

    def mute_changed(
        self, room_id: UUID, user_id: UUID, *, muted: bool, until: datetime | None = None
    ) -> None:
        if self._here(room_id):
            self._local.mute_changed(room_id, user_id, muted=muted, until=until)
        else:
            self._cluster.publish(
                "mute_changed",
                room_id,
                user=str(user_id),
                muted=muted,
                until=None if until is None else until.isoformat(),
            )

    def remove_user(self, room_id: UUID, user_id: UUID, reason: Removal, message: str) -> int:
        if self._here(room_id):
            return self._local.remove_user(room_id, user_id, reason, message)
        self._cluster.publish(
            "remove_user", room_id, user=str(user_id), reason=reason, text=message
        )
        return 0

    def queue_changed(self, room: Room, queue: Queue, current_changed: bool) -> None:
        if self._here(room.id):
            self._local.queue_changed(room, queue, current_changed)
        else:
            self._cluster.publish("queue_changed", room.id, current_changed=current_changed)


def node_identity(node_id: str | None, url: str | None, listen_url: str) -> NodeIdentity:
    """The node's id and URL from ``cluster.node_id``/``cluster.url``, or from where it
    listens (``listen_url``: ``http://HOST:PORT`` once bound)."""
    port = listen_url.rsplit(":", 1)[-1]
    return NodeIdentity(
        node_id=node_id or f"{socket.gethostname()}:{port}"[:64],
        url=url or listen_url,
    )
