"""The desktop-client harness (tests/e2e/desktop.py), proved against Debian's real Syncplay server.

Two real clients, each with its own headless mpv, share a room of ``syncplay-server``: what one
types must reach the other's mpv, as it would between two people. This pins the harness's
console commands, output formats and mpv readings before they are pointed at syncplayd.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from tests.e2e.desktop import (
    CONNECTED,
    DesktopClient,
    desktop_client,
    open_syncplay_server,
    require_desktop_tools,
    wait_until,
)

ROOT = Path(__file__).resolve().parents[2]
VIDEO = ROOT / "syncplayd" / "web" / "demo" / "demo.webm"  # 60 s


@pytest.fixture
def desktop_tools() -> None:
    # A sync fixture: pytest.skip raised inside a trio test loses its reason.
    require_desktop_tools()


async def _loaded(client: DesktopClient) -> bool:
    return await client.position() is not None


async def _playing(client: DesktopClient) -> bool:
    return not await client.paused()


async def _past(client: DesktopClient, position: float) -> bool:
    now = await client.position()
    return now is not None and now > position


def _gone(pid: int) -> bool:
    """Whether the process is gone (a zombie left for a non-reaping init counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


@pytest.mark.slow
@pytest.mark.usefixtures("desktop_tools")
async def test_two_desktop_clients_follow_each_other(nursery: trio.Nursery, tmp_path: Path) -> None:
    timings: dict[str, float] = {}
    with trio.fail_after(40):
        async with open_syncplay_server("--isolate-rooms") as server:
            start = trio.current_time()
            async with desktop_client(
                nursery, port=server.port, name="alice", room="demo", video=VIDEO, tmp=tmp_path
            ) as alice:
                await alice.wait_for_output(CONNECTED)
                timings["connect"] = trio.current_time() - start
                async with desktop_client(
                    nursery, port=server.port, name="bob", room="demo", video=VIDEO, tmp=tmp_path
                ) as bob:
                    await bob.wait_for_output(CONNECTED)
                    # Both see the other's file, and both mpvs have theirs loaded.
                    await bob.wait_for_output(r"alice is playing 'demo\.webm' \(01:00\)")
                    await alice.wait_for_output(r"bob is playing 'demo\.webm' \(01:00\)")
                    await wait_until(lambda: _loaded(alice), 10, what="alice's mpv loading")
                    await wait_until(lambda: _loaded(bob), 10, what="bob's mpv loading")
                    timings["both ready"] = trio.current_time() - start
                    assert await bob.paused()  # Syncplay joins paused

                    # (a) bob's user list (no timestamps) names alice and, starred, himself.
                    mark = bob.mark()
                    await bob.command("l")
                    await bob.wait_for_output(r"^In room 'demo':$", since=mark)
                    await bob.wait_for_output(r"^<alice> is playing:$", since=mark)
                    await bob.wait_for_output(r"^\*<bob>\* is playing:$", since=mark)

                    # (b) alice unpauses ("p"; see set_paused): bob's mpv plays, and advances.
                    mark = bob.mark()
                    sent = trio.current_time()
                    await alice.set_paused(False)
                    await wait_until(lambda: _playing(bob), 5, what="bob's mpv playing")
                    timings["unpause"] = trio.current_time() - sent
                    await bob.wait_for_output(r"\] alice unpaused$", since=mark)
                    before = await bob.position()
                    assert before is not None
                    await wait_until(
                        lambda: _past(bob, before + 0.5), 5, what="bob's position advancing"
                    )

                    # (c) alice seeks to 0:30: bob follows, still playing.
                    mark = bob.mark()
                    await alice.command("s 30")
                    sought = trio.current_time()

                    async def at_30() -> bool:
                        position = await bob.position()
                        expected = 30.0 + (trio.current_time() - sought)
                        return position is not None and abs(position - expected) < 1.0

                    timings["seek"] = await wait_until(at_30, 3, what="bob at 0:30")
                    # Syncplay prints the room's position, 30 s plus the message's age, rounded.
                    await bob.wait_for_output(r"\] alice jumped from \S+ to 00:3[01]$", since=mark)
                    assert not await bob.paused()

                    # (d) alice pauses: bob's mpv pauses.
                    mark = bob.mark()
                    sent = trio.current_time()
                    await alice.command("p")
                    await wait_until(bob.paused, 5, what="bob's mpv pausing")
                    timings["pause"] = trio.current_time() - sent
                    await bob.wait_for_output(r"\] alice paused$", since=mark)

                    # (e) alice's chat reaches bob.
                    mark = bob.mark()
                    sent = trio.current_time()
                    await alice.command("ch hi there")
                    await bob.wait_for_output(r"\] <alice> hi there$", since=mark)
                    timings["chat"] = trio.current_time() - sent

                    bob_mpv = await bob.mpv_pid()
                    mark = alice.mark()
                    closing = trio.current_time()
                # Closing a client ends it and its mpv; the server tells the others.
                timings["close"] = trio.current_time() - closing
                assert bob.process.returncode is not None
                assert _gone(bob_mpv)
                await alice.wait_for_output(r"\] bob has left$", since=mark)
    print("desktop harness timings (s):", {k: round(v, 2) for k, v in timings.items()})


@pytest.mark.parametrize(
    ("ci", "exit_code", "outcome"), [("true", 1, "error"), (None, 0, "skipped")]
)
def test_missing_desktop_tools(ci: str | None, exit_code: int, outcome: str) -> None:
    """Without the tools a desktop test skips, except in CI, where it fails."""
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["SYNCPLAY_TEST_MPV"] = "/nonexistent/mpv"
    if ci is not None:
        env["CI"] = ci
    target = f"{Path(__file__).relative_to(ROOT)}::test_two_desktop_clients_follow_each_other"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", target],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == exit_code, result.stdout + result.stderr
    assert outcome in result.stdout.splitlines()[-1], result.stdout
    assert "/nonexistent/mpv" in result.stdout
