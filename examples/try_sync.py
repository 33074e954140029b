"""Two members in one room: Ada presses play, and both players start at the same instant.

Run it against a daemon (``make run``) with two users' tokens and a room, as the
README's "Try the sync" shows::

    ADA=... BOB=... ROOM=... .venv/bin/python examples/try_sync.py

``SYNCPLAYD_URL`` names another daemon (default ``http://127.0.0.1:8750``).
"""

from __future__ import annotations

import os
from typing import cast

import trio

from syncplayd.client import open_sync_client
from syncplayd.core.protocol import PlaybackChanged

BASE_URL = os.environ.get("SYNCPLAYD_URL", "http://127.0.0.1:8750")
# The sync protocol's WebSocket, on the same port as the REST API.
WS_URL = BASE_URL.replace("http", "ws", 1).rstrip("/") + "/api/v1/syncplay/ws"


async def main(ada_token: str, bob_token: str, room_id: str) -> None:
    async with (
        open_sync_client(WS_URL, ada_token, room_id=room_id) as ada,
        open_sync_client(WS_URL, bob_token, room_id=room_id) as bob,
    ):
        print("in the room:", sorted(m.user_name for m in bob.participants.values()))
        mark = bob.received_count  # replies can beat wait_for: look back from here
        await ada.play(position=10.0)
        # The message the predicate matched, so a PlaybackChanged.
        change = cast(
            "PlaybackChanged",
            await bob.wait_for(lambda m: isinstance(m, PlaybackChanged), timeout=2.0, since=mark),
        )
        print("both start at server time", change.execute_at)
        await trio.sleep(2.0)
        print(
            f"room {ada.room_position():.3f}  ada {ada.player.position():.3f}"
            f"  bob {bob.player.position():.3f}"
        )
        # Leaving the block without leave() only disconnects: the member could come back.
        await bob.leave()
        await ada.leave()


if __name__ == "__main__":
    trio.run(main, os.environ["ADA"], os.environ["BOB"], os.environ["ROOM"])
