"""One websocket connection of a client: ``hello``/``join``, then four tasks until it ends.

Theory of operation
-------------------
:meth:`Connection.join` sends ``hello`` and waits for ``welcome``, then sends
``join`` (with ``resume=<session id>`` on a reconnect; if the server refuses the
resume, once more without it) and waits for ``joined``; each round trip also
seeds the clock estimate (``t1 = t2 =`` the server time in the answer).
:meth:`Connection.serve` then runs, until the socket ends:

* the reader, which decodes every frame and hands it to the client state (pongs
  become clock samples), and returns after a ``closing`` message;
* the pinger: NTP pings, ``fast_ping_count`` fast ones and then slow ones;
* the heartbeat: the player's position at the estimated server time, with its
  version, every ``settings.heartbeat_interval`` seconds;
* the drift loop: gentle rate correction (a resync only with ``local_resync``) every
  ``drift_check_interval`` seconds;
* the end reporter (``options.report_end``): ``ended`` once the local player reaches the
  end of its item, or the room's end stops it there (once until it leaves the end).

Expected network failures never escape a task (they would arrive wrapped in an
exception group, STACK_NOTES trap 3): a task that ends, for whatever reason,
cancels the others, and the supervisor (``_client.py``) decides what comes next.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import msgspec
import trio
from trio_websocket import ConnectionClosed, WebSocketConnection

from syncplayd.core.clock import ntp_sample
from syncplayd.core.protocol import (
    MAX_POSITION,
    ClientMessage,
    Closing,
    Ended,
    ErrorOut,
    Heartbeat,
    Hello,
    Join,
    Joined,
    Ping,
    Pong,
    ServerMessage,
    Welcome,
    decode_server,
)

from ._options import FINAL_CLOSE_REASONS, TRANSIENT_REFUSALS, SyncRefused
from ._state import ClientState

__all__ = ["Connection"]

log = logging.getLogger("syncplayd.client")

#: Pings whose pong never came are forgotten beyond this many.
MAX_OUTSTANDING_PINGS = 32

_M = TypeVar("_M", Welcome, Joined)


def encode(message: ClientMessage) -> str:
    """A client message as the text of one frame."""
    return msgspec.json.encode(message).decode()


def decode(frame: str | bytes) -> ServerMessage | None:
    """A server frame as a message; ``None`` (logged) for one this client cannot read."""
    try:
        return decode_server(frame)
    except msgspec.DecodeError as exc:  # ValidationError is a DecodeError
        log.warning("ignoring an undecodable server frame: %s", exc)
        return None


class Connection:
    """One established websocket of ``client``."""

    def __init__(self, client: ClientState, ws: WebSocketConnection) -> None:
        self._client = client
        self._ws = ws
        self._ping_id = 0
        self._pings: dict[int, float] = {}  # ping id -> t0, bounded
        self.welcome: Welcome | None = None

    # -- handshake ---------------------------------------------------------------------
    async def join(self, hello: Hello, join: Join) -> Joined:
        """``hello`` then ``join``; the client state holds the snapshot when this returns.

        Raises:
            SyncRefused: an ``error`` or ``closing`` answered instead.
            ConnectionClosed: the socket ended.
        """
        client, clock = self._client, self._client.local_time
        t0 = clock()
        await self._ws.send_message(encode(hello))
        welcome = await self._expect(Welcome)
        t3 = clock()
        client._estimator.reset()  # a new connection may take another path (or server)
        client._estimator.add(ntp_sample(t0, welcome.server_time, welcome.server_time, t3))
        self.welcome = welcome
        client._hub.publish(welcome)
        while True:
            t0 = clock()
            await self._ws.send_message(encode(join))
            try:
                joined = await self._expect(Joined)
            except SyncRefused as exc:
                # A transient refusal is no reason to give up the session: the
                # supervisor retries with resume after a backoff.
                if (
                    join.resume is None
                    or exc.code in FINAL_CLOSE_REASONS
                    or exc.code in TRANSIENT_REFUSALS
                ):
                    raise
                log.info("resume of %s refused (%s): joining afresh", join.resume, exc.code)
                join = msgspec.structs.replace(join, resume=None)
                continue
            t3 = clock()
            client._estimator.add(ntp_sample(t0, joined.server_time, joined.server_time, t3))
            client._install(joined)
            client._hub.publish(joined)
            return joined

    async def _expect(self, kind: type[_M]) -> _M:
        """Read until a ``kind`` message; an ``error``/``closing`` raises :class:`SyncRefused`."""
        while True:
            message = decode(await self._ws.get_message())
            if message is None:
                continue
            if isinstance(message, kind):
                return message
            self._client._dispatch(message)
            if isinstance(message, ErrorOut):
                raise SyncRefused(message.code, message.message, message.ref)
            if isinstance(message, Closing):
                raise SyncRefused(message.reason, message.message)

    # -- established -------------------------------------------------------------------
    async def serve(self) -> None:
        """Run the connection's tasks until the socket ends (or a ``closing`` arrives)."""
        try:
            async with trio.open_nursery() as nursery:
                self._client._attach(self._ws, nursery.cancel_scope)
                tasks = (
                    self._reader,
                    self._pinger,
                    self._heartbeats,
                    self._drift_loop,
                    self._end_reporter,
                )
                for task in tasks:
                    nursery.start_soon(self._guard, task, nursery.cancel_scope)
        finally:
            self._client._detach()

    @staticmethod
    async def _guard(task: Callable[[], Awaitable[None]], scope: trio.CancelScope) -> None:
        try:
            await task()
        except ConnectionClosed:
            pass
        finally:
            scope.cancel()

    async def _reader(self) -> None:
        while True:
            frame = await self._ws.get_message()
            received = self._client.local_time()
            message = decode(frame)
            if message is None:
                continue
            if isinstance(message, Pong):
                self._pong(message, received)
                continue
            self._client._dispatch(message)
            if isinstance(message, Closing):
                return  # the server closes next; no need to wait for it

    def _pong(self, pong: Pong, received: float) -> None:
        if self._pings.pop(pong.id, None) is None:
            return  # not one of ours
        sample = ntp_sample(pong.t0, pong.t1, pong.t2, received)
        if self._client._estimator.add(sample):
            self._client.last_rtt = sample.delay
            self._client._clock_sampled.set()
            self._client._clock_sampled = trio.Event()

    async def _pinger(self) -> None:
        sent = 0
        while True:
            self._ping_id += 1
            t0 = self._client.local_time()
            self._pings[self._ping_id] = t0
            while len(self._pings) > MAX_OUTSTANDING_PINGS:
                del self._pings[next(iter(self._pings))]  # lost pongs: forget the oldest
            await self._ws.send_message(encode(Ping(id=self._ping_id, t0=t0)))
            sent += 1
            await trio.sleep(self._client._estimator.next_ping_interval(sent))

    async def _heartbeats(self) -> None:
        client = self._client
        while True:
            settings = client._view.settings
            await trio.sleep(max(0.05, settings.heartbeat_interval) if settings else 1.0)
            now = client.local_time()
            state = client.player.state_at(now)
            position = min(MAX_POSITION, max(0.0, client.player.position(now)))
            rtt = None if client.last_rtt is None else min(60.0, client.last_rtt)
            beat = Heartbeat(
                position=position,
                server_time=client._estimator.server_time(now),
                version=state.version,
                playing=state.playing,
                rtt=rtt,
            )
            await self._ws.send_message(encode(beat))

    async def _end_reporter(self) -> None:
        """Send ``ended`` when the player stands at the end of its item, once until it leaves
        the end (the room's own end, or a resync there, is no second end)."""
        client = self._client
        if not client._options.report_end:
            await trio.sleep_forever()  # a task that returns ends the connection
        while True:
            changed = client._player_changed
            now = client.local_time()
            state = client.player.state_at(now)
            item = state.item_id
            if item is not None and state.at_end(now):
                if client._end_reported != item:
                    client._end_reported = item
                    await self._ws.send_message(encode(Ended(item_id=item)))
                    continue
                wake = client.player.pending_at
            else:
                # Away from the end (another item, a restart): its next end is news again.
                client._end_reported = None
                ends = state.end_time()
                pending = client.player.pending_at
                times = [t for t in (ends, pending) if t is not None]
                wake = min(times) if times else None
            if wake is None:
                await changed.wait()
                continue
            # At least a millisecond: rounding must not make this a busy loop.
            with trio.move_on_after(max(0.001, wake - now)):
                await changed.wait()

    async def _drift_loop(self) -> None:
        while True:
            await trio.sleep(self._client._options.drift_check_interval)
            self._client._correct_drift()
