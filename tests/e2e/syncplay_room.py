"""What the tests of the Syncplay listener share: its port, and a room seen from both sides.

The browser side is a WebSocket member (tests/e2e/raw.py), the desktop side a bare
Syncplay client (tests/e2e/syncplay_raw.py).
"""

from __future__ import annotations

import re
from typing import Any

from tests.daemon_process import DaemonProcess
from tests.e2e.raw import Raw
from tests.e2e.syncplay_raw import SyncplayRaw

_BRIDGE_LINE = r"syncplay bridge listening on 127\.0\.0\.1:(?P<port>\d+)"


def bridge_port(daemon: DaemonProcess, timeout: float = 10.0) -> int:
    """The listener's port, from its log line (logged right after the HTTP one)."""
    match = re.search(_BRIDGE_LINE, daemon.wait_for_log(_BRIDGE_LINE, timeout))
    assert match is not None
    return int(match["port"])


async def desktop_joined(ws: Raw, name: str) -> dict[str, Any]:
    """The member the WebSocket side sees join as the desktop guest ``name``."""
    presence = await ws.expect("presence", event="joined")
    while presence["member"]["user_name"] != name:
        presence = await ws.expect("presence", event="joined")
    member: dict[str, Any] = presence["member"]
    assert member["desktop"] is True, member
    return member


async def chat_both_ways(ws: Raw, guest: SyncplayRaw, ws_name: str, guest_name: str) -> None:
    """A line from each side reaches the other, with its author's name."""
    await guest.send({"Chat": "hi from mpv"})
    chat = await ws.expect("chat")
    assert (chat["message"]["user_name"], chat["message"]["message"]) == (guest_name, "hi from mpv")
    await ws.send({"type": "chat", "message": "hello desk", "client_id": "c1"})
    said = await guest.expect("Chat", lambda body: body["username"] == ws_name)
    assert said == {"username": ws_name, "message": "hello desk"}
