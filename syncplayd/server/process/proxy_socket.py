"""The reverse proxy's own way in: the app served once more, on ``proxy.socket``.

Why a socket: identity headers (``X-Remote-User-Id`` ...) make whoever sends them
that user, administrators included, so they may only be believed from the proxy.
A loopback address does not single the proxy out: every local user, and every
browser page on the host that rebinds a DNS name to 127.0.0.1, connects from it
too. A unix socket does: mode 0660 in a folder only the proxy's group and the
daemon may enter (docs/deployment.md has the set-up), so its file permissions
are the guard, as for the admin socket.

How a request is known to come from it: the socket server marks each scope it
hands to the app with ``scope[PROXY_SOCKET_SCOPE_KEY] = True``, a mark no HTTP
client can set (``admin_socket.py`` explains why a missing address is not
proof); ``server/http/auth.py`` reads it. It is a different mark from the admin
socket's: the proxy is trusted to name users, never to be the administrator.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.typing import ASGIFramework

from syncplayd.server.process import front_door
from syncplayd.server.process.admin_socket import bind_admin_socket, remove_socket, socket_app
from syncplayd.server.process.front_door import WebSocketRoute

#: Set on every ASGI scope that arrived through the proxy socket.
PROXY_SOCKET_SCOPE_KEY = "syncplayd.proxy_socket"


def bind_proxy_socket(path: Path) -> socket.socket:
    """A bound (not yet listening) unix socket at ``path``, mode 0660.

    Raises:
        AdminSocketError: the path is in use by another process, exists and is
            not a socket, or cannot be bound (the error names the proxy socket).
    """
    return bind_admin_socket(path, "proxy socket")


async def serve_proxy_socket(
    app: ASGIFramework,
    path: Path,
    config: HypercornConfig,
    *,
    sock: socket.socket | None = None,
    route: WebSocketRoute | None = None,
    shutdown_trigger: Callable[[], Awaitable[None]],
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``app`` on the unix socket ``path``, each scope marked as the proxy's.

    ``config`` is the TCP listener's (browsers' websockets come this way: the
    same pings, frame limit and timeouts), and WebSocket upgrades take the same
    broadcast path as on TCP (``route``, through the front door). Reports the
    binds once it listens and removes the socket file at exit.
    """
    if sock is None:
        sock = await trio.to_thread.run_sync(bind_proxy_socket, path)
    inode = os.lstat(path).st_ino  # to remove our socket file at exit, not a successor's
    try:
        await front_door.serve(
            socket_app(app, PROXY_SOCKET_SCOPE_KEY),
            config,
            [sock],
            route=route,
            scope={PROXY_SOCKET_SCOPE_KEY: True},
            shutdown_trigger=shutdown_trigger,
            task_status=task_status,
        )
    finally:
        remove_socket(path, inode)
