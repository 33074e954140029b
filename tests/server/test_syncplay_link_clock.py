"""The clock task of a Syncplay connection sleeps until something is due.

``SyncplayLink.run_clock`` sends a desktop client its ``State`` every second and drops a
silent one; between those it must sleep. It used to wake itself after each of its own
writes (the wake-up that tells it a change came early), so every connected Syncplay
client kept the daemon's loop busy at 100 % of a core, and the database calls of
everyone else waited behind it (joins took seconds with a few desktop clients in).
"""

from __future__ import annotations

import trio
import trio.testing

from syncplayd.core.syncplay import wire
from syncplayd.core.syncplay.session import BridgeSession, Limits
from syncplayd.server.live.syncplay_link import SyncplayLink
from tests.core.test_syncplay_session import NOW, joined

SECONDS = 5.0


async def test_the_clock_wakes_about_once_a_second(autojump_clock: trio.testing.MockClock) -> None:
    client, server = trio.testing.memory_stream_pair()
    session = BridgeSession(
        username="desk",
        room_name="room",
        client_version="1.6.9",
        motd="",
        limits=Limits(chat_length=1000, name_length=64),
        now=NOW,
    )
    session.room_message(joined(), NOW)  # a joined client: its States are due every second
    start = trio.current_time()
    link = SyncplayLink(
        server,
        wire.LineReader(),
        session,
        lambda: NOW + trio.current_time() - start,
        chat_limit=1000,
        send_timeout=5.0,
    )
    ticks = 0
    tick = session.tick

    def counted(now: float) -> None:
        nonlocal ticks
        ticks += 1
        # A loop that wakes itself never lets the mock clock move: stop it here.
        assert ticks < 1000, "the clock task does not sleep"
        tick(now)

    session.tick = counted  # type: ignore[method-assign]
    async with trio.open_nursery() as nursery:
        nursery.start_soon(link.run_clock)
        await trio.sleep(SECONDS)
        link.stop_clock()
    # One State a second, and the odd early wake-up; not thousands.
    assert ticks <= 2 * SECONDS + 2, ticks
    await client.aclose()
