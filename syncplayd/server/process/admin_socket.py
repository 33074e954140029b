"""The admin API's unix socket: where ``syncplayctl`` reaches the daemon without a token.

Requests that arrive on it are trusted: the file permissions (mode 0660) are the
guard. How a request is known to come from the socket: hypercorn 0.18 puts
``scope["server"] = None`` (and ``scope["client"] = None``) for ``AF_UNIX``
connections, but a missing address is not proof (other ASGI servers and test
clients leave ``server`` out too). So the socket server wraps the app and marks
each scope it hands over with ``scope[SOCKET_SCOPE_KEY] = True``; only that mark,
which no HTTP client can set, grants trust (``server/http/admin.py`` reads it).
"""

from __future__ import annotations

import logging
import os
import socket
import stat
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import cast

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve
from hypercorn.typing import ASGIFramework, ASGIReceiveCallable, ASGISendCallable, Scope

#: Set on every ASGI scope that arrived through the admin socket.
SOCKET_SCOPE_KEY = "syncplayd.admin_socket"
SOCKET_MODE = 0o660


class AdminSocketError(Exception):
    """The admin socket cannot be served (in use, not a socket, cannot bind)."""


def socket_app(app: ASGIFramework, mark: str = SOCKET_SCOPE_KEY) -> ASGIFramework:
    """``app`` as served on the admin socket: scopes marked trusted, no second lifespan.

    ``mark`` is the scope key set to ``True``; the proxy socket
    (``proxy_socket.py``) is served the same way under a key of its own.

    The TCP server already runs the app's lifespan (QuartTrio keeps its
    nursery there); running it twice would start the app twice, so the
    socket server's lifespan is answered here.
    """

    async def asgi(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        marked = cast("Scope", {**scope, mark: True})
        await app(marked, receive, send)

    return asgi


def _in_use(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


def bind_admin_socket(path: Path, what: str = "admin socket") -> socket.socket:
    """A bound (not yet listening) unix socket at ``path``, mode 0660.

    A stale socket file is removed; a socket someone still serves is not.
    The mode is set before ``listen``, so no one can connect in between.
    ``what`` names the socket in error messages.

    Raises:
        AdminSocketError: see :func:`serve_admin_socket`.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        mode = path.lstat().st_mode
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise AdminSocketError(f"cannot use the {what} path {path}: {exc}") from exc
    else:
        if not stat.S_ISSOCK(mode):
            raise AdminSocketError(f"{path} exists and is not a socket; not replacing it")
        if _in_use(path):
            raise AdminSocketError(f"another process serves the {what} {path}")
        path.unlink()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(path))
        os.chmod(path, SOCKET_MODE)
    except OSError as exc:
        sock.close()
        raise AdminSocketError(f"cannot bind the {what} {path}: {exc}") from exc
    return sock


async def serve_admin_socket(
    app: ASGIFramework,
    path: Path,
    *,
    sock: socket.socket | None = None,
    shutdown_trigger: Callable[[], Awaitable[None]] | None = None,
    graceful_timeout: float = 5.0,
    mark: str = SOCKET_SCOPE_KEY,
    config: HypercornConfig | None = None,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``app`` on the unix socket ``path`` until ``shutdown_trigger`` returns.

    Reports hypercorn's binds (``["http://unix:/path"]``) once it listens and
    removes the socket file at exit (unless another process replaced it).

    ``sock`` is the socket :func:`bind_admin_socket` bound at ``path``, for a
    caller that binds early (outside its nurseries, so that a failure is a
    plain exception rather than an exception group); by default it is bound here.
    ``mark`` is the scope key that tells the app where a request came from;
    ``config`` the hypercorn settings to serve with (its bind is replaced),
    by default hypercorn's own.

    Raises:
        AdminSocketError: the socket is in use, the path exists and is not a
            socket, or binding failed (for example a path longer than the
            108 bytes a unix socket address holds).
    """
    if sock is None:
        sock = await trio.to_thread.run_sync(bind_admin_socket, path)
    inode = os.lstat(path).st_ino  # to remove our socket file at exit, not a successor's
    config = config or HypercornConfig()
    # Hypercorn adopts the bound socket (and listens on it) through its fd.
    config.bind = [f"fd://{sock.detach()}"]
    config.graceful_timeout = graceful_timeout
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    try:
        await serve(
            socket_app(app, mark),
            config,
            shutdown_trigger=shutdown_trigger,
            task_status=task_status,
            mode="asgi",
        )
    finally:
        remove_socket(path, inode)


def remove_socket(path: Path, inode: int) -> None:
    try:
        if os.lstat(path).st_ino == inode:
            os.unlink(path)
    except OSError:
        pass
