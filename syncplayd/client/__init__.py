"""The Python client of syncplayd's websocket: join a room and stay in step with it.

For integrators: an mpv shim, a bot, the test suite and the benchmarks. The
client connects, says ``hello`` and ``join``, keeps the room's state (members,
chat, settings, playback), estimates the server clock with NTP-style pings,
reports its position in heartbeats, moves its :class:`LocalPlayer` at the
instants the server schedules, corrects small drift with a gentle rate change,
and reconnects (resuming its session) when the socket drops.

Example::

    import trio
    from syncplayd.client import ClientOptions, open_sync_client
    from syncplayd.core.protocol import PlaybackChanged

    async def main(token: str, room_id: str) -> None:
        url = "ws://127.0.0.1:8750/api/v1/syncplay/ws"
        async with open_sync_client(url, token, room_id=room_id) as client:
            print(client.session_id, [m.user_name for m in client.participants.values()])
            mark = client.received_count  # replies can beat wait_for: look back from here
            await client.play()
            change = await client.wait_for(
                lambda m: isinstance(m, PlaybackChanged), timeout=2.0, since=mark
            )
            await trio.sleep(1.0)  # the player started at change.execute_at
            print(client.room_position(), client.player.position())
            message_id = await client.chat("Popcorn ready?")
            with trio.move_on_after(60):
                async for message in client.events():  # every server message but pongs
                    print(message)
            await client.leave()

    trio.run(main, token, room_id)

Tests and benchmarks pass ``options=ClientOptions(fast_ping_interval=0.05)`` for a
quick clock estimate, and ``clock_skew=`` to give a client a skewed clock.

Driving a real player: subclass :class:`LocalPlayer` (see its module docs for an
mpv shim) and pass it as ``player=``.
"""

from __future__ import annotations

from ._api import ClientCore as ClientCore
from ._client import SyncClient as SyncClient
from ._client import open_sync_client as open_sync_client
from ._options import FINAL_CLOSE_REASONS as FINAL_CLOSE_REASONS
from ._options import MAX_RETRY_AFTER as MAX_RETRY_AFTER
from ._options import TRANSIENT_REFUSALS as TRANSIENT_REFUSALS
from ._options import ClientOptions as ClientOptions
from ._options import SyncClosed as SyncClosed
from ._options import SyncConnectionError as SyncConnectionError
from ._options import SyncError as SyncError
from ._options import SyncRefused as SyncRefused
from ._options import backoff_delay as backoff_delay
from ._options import retry_delay as retry_delay
from ._player import LocalPlayer as LocalPlayer
from ._player import drift_action as drift_action
from ._segments import PlayerChange as PlayerChange
from ._segments import PlayerState as PlayerState

__all__ = [
    "FINAL_CLOSE_REASONS",
    "MAX_RETRY_AFTER",
    "TRANSIENT_REFUSALS",
    "ClientCore",
    "ClientOptions",
    "LocalPlayer",
    "PlayerChange",
    "PlayerState",
    "SyncClient",
    "SyncClosed",
    "SyncConnectionError",
    "SyncError",
    "SyncRefused",
    "backoff_delay",
    "drift_action",
    "open_sync_client",
    "retry_delay",
]
