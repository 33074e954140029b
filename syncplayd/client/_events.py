"""Fan-out of received server messages: a bounded channel, a history and waiters.

Every bound is fixed: the channel drops its *oldest* message when full (a
consumer that falls behind loses old news, never the newest state), the history
is a ring, and waiters exist only while a :meth:`EventHub.wait_for` call runs.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import trio

from syncplayd.core.protocol import ServerMessage

from ._options import SyncError

__all__ = ["EventHub", "Predicate"]

Predicate = Callable[[ServerMessage], bool]


@dataclass(eq=False)
class _Waiter:
    predicate: Predicate
    event: trio.Event = field(default_factory=trio.Event)
    result: ServerMessage | None = None
    error: BaseException | None = None


class EventHub:
    """Receives every server message once and hands it to the channel and the waiters."""

    def __init__(self, capacity: int, history: int) -> None:
        self._send, self._receive = trio.open_memory_channel[ServerMessage](capacity)
        self._history: deque[tuple[int, ServerMessage]] = deque(maxlen=history)
        self._waiters: set[_Waiter] = set()
        self._closed: SyncError | None = None
        self.received = 0  #: sequence number of the last message (0: none yet)
        self.dropped = 0  #: messages dropped from the channel because it was full

    @property
    def channel(self) -> trio.MemoryReceiveChannel[ServerMessage]:
        """The receive side of the bounded channel (one shared object: one consumer)."""
        return self._receive

    def publish(self, message: ServerMessage, *, to_channel: bool = True) -> None:
        """Record ``message``: history, waiters, and (unless ``to_channel`` is false) channel."""
        self.received += 1
        self._history.append((self.received, message))
        for waiter in list(self._waiters):
            if waiter.event.is_set():
                continue
            try:
                matched = waiter.predicate(message)
            except Exception as exc:  # noqa: BLE001 - re-raised in the waiting task
                waiter.error = exc
                waiter.event.set()
                continue
            if matched:
                waiter.result = message
                waiter.event.set()
        if to_channel and self._closed is None:
            self._offer(message)

    def _offer(self, message: ServerMessage) -> None:
        try:
            self._send.send_nowait(message)
        except trio.WouldBlock:
            # Full: drop the oldest one. The receive side may be held by a consumer
            # blocked in receive(), but then the buffer would not be full.
            with contextlib.suppress(trio.WouldBlock, trio.ClosedResourceError):
                self._receive.receive_nowait()
            self.dropped += 1
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                self._send.send_nowait(message)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the consumer closed its side: nobody listens

    async def wait_for(
        self,
        predicate: Predicate,
        timeout: float,  # noqa: ASYNC109 - a deadline inside would not compose better
        *,
        since: int | None = None,
    ) -> ServerMessage:
        """The first message matching ``predicate`` (after sequence number ``since``, if given).

        Raises:
            TimeoutError: nothing matched within ``timeout`` seconds.
            SyncError: the client closed for good before a match.
        """
        if since is not None:
            for seq, message in self._history:
                if seq > since and predicate(message):
                    return message
        if self._closed is not None:
            raise self._closed
        waiter = _Waiter(predicate)
        self._waiters.add(waiter)
        try:
            with trio.move_on_after(timeout):
                await waiter.event.wait()
        finally:
            self._waiters.discard(waiter)
        if waiter.error is not None:
            raise waiter.error
        if waiter.result is not None:
            return waiter.result
        raise TimeoutError(f"no matching message within {timeout} s")

    def close(self, error: SyncError) -> None:
        """No more messages: end the channel (after what it holds) and fail the waiters."""
        if self._closed is not None:
            return
        self._closed = error
        self._send.close()
        for waiter in self._waiters:
            if not waiter.event.is_set():
                waiter.error = error
                waiter.event.set()
