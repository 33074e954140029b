"""The daemon's root: one nursery holding the HTTP server and its helpers.

``run`` owns every long-lived resource: the repository is opened before the
server starts and closed after it has stopped, so no request ever sees a
closed database.
"""

from __future__ import annotations

import dataclasses
import logging
import signal
import socket
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.config import Sockets

from syncplayd.clocks import ServerClock, monotonic
from syncplayd.config import Settings, mask_url
from syncplayd.identity import load_or_create_secret
from syncplayd.logs import register_secret
from syncplayd.server.http.app import create_app
from syncplayd.server.http.state import AppState
from syncplayd.server.live.cluster import Cluster, ClusterRooms, node_identity
from syncplayd.server.live.persister import Persister
from syncplayd.server.live.supervisor import RoomSupervisor
from syncplayd.server.live.syncplay_bridge import SyncplayBridge
from syncplayd.server.live.websocket import DirectRoute
from syncplayd.server.metrics import Metrics
from syncplayd.server.process import front_door, hypercorn_fixes
from syncplayd.server.process.admin_socket import (
    AdminSocketError,
    bind_admin_socket,
    serve_admin_socket,
)
from syncplayd.server.process.heap import (
    collect_frozen_garbage,
    freeze_young_objects,
    release_free_memory,
)
from syncplayd.server.process.maintenance import Maintenance
from syncplayd.server.process.proxy_socket import bind_proxy_socket, serve_proxy_socket
from syncplayd.server.process.reload import reload
from syncplayd.server.process.sdnotify import Notifier, run_watchdog
from syncplayd.service import RoomService
from syncplayd.storage import TimedRepository, open_repository
from syncplayd.storage.cluster import ClusterLink

log = logging.getLogger("syncplayd")

# How long in-flight HTTP requests get to finish after SIGTERM.
GRACEFUL_TIMEOUT_SECONDS = 5.0
# A connection that has not finished its request headers within this is closed by
# hypercorn (its keep_alive_timeout: it also bounds a slowloris upgrade).
HTTP_IDLE_TIMEOUT_SECONDS = 5.0


class StartupError(Exception):
    """The system refused a start-up step that a valid configuration asked for.

    ``setting`` is the configuration key that chooses another way
    (``server.listen``, ``server.state_dir``, ``database.url``, ``admin.socket``,
    ``proxy.socket``), ``target`` what was refused (an address, a path, a URL with
    its password masked), ``cause`` the system's reason. ``cli/daemon.py`` turns
    it into one line naming the cause and the fix.
    """

    def __init__(self, setting: str, target: str, cause: Exception) -> None:
        super().__init__(f"{target}: {cause}")
        self.setting = setting
        self.target = target
        self.cause = cause


def resolve_jwt_secret(settings: Settings) -> str:
    """The configured secret, or one generated into the state folder on first start.

    Raises:
        StartupError: the state folder or the secret in it cannot be created or read.
    """
    configured = settings.auth.jwt_secret
    if configured is not None:
        return configured.reveal()
    state_dir = Path(settings.server.state_dir)
    try:
        secret, created = load_or_create_secret(state_dir)
    except OSError as exc:
        raise StartupError("server.state_dir", str(state_dir), exc) from exc
    register_secret(secret)
    if created:
        log.warning(
            "no auth.jwt_secret configured: generated one into %s "
            "(share it with your media server, or set SYNCPLAY_AUTH_JWT_SECRET)",
            state_dir / "jwt_secret",
        )
    return secret


class _HypercornConfig(HypercornConfig):
    """hypercorn's configuration, plus ``TCP_USER_TIMEOUT`` on the listening TCP sockets.

    Accepted sockets inherit the option. The kernel then aborts a connection
    whose data stays unacknowledged, or unsent behind a closed receive window
    (a peer that stopped reading), for that long. hypercorn shields its socket
    writes, so without this such a write, and the connection, would last as
    long as the peer keeps it open (see ``server/live/connection.py``).
    """

    tcp_user_timeout_seconds: float | None = None

    def create_sockets(self) -> Sockets:
        sockets = super().create_sockets()
        option = getattr(socket, "TCP_USER_TIMEOUT", None)  # Linux only
        if self.tcp_user_timeout_seconds is not None and option is not None:
            milliseconds = int(self.tcp_user_timeout_seconds * 1000)
            for sock in (*sockets.secure_sockets, *sockets.insecure_sockets):
                if sock.family in (socket.AF_INET, socket.AF_INET6):
                    sock.setsockopt(socket.IPPROTO_TCP, option, milliseconds)
        return sockets


def hypercorn_config(settings: Settings) -> HypercornConfig:
    config = _HypercornConfig()
    config.bind = [settings.server.listen]
    config.graceful_timeout = GRACEFUL_TIMEOUT_SECONDS
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    # The reverse proxy terminates TLS and keeps connections alive; a large
    # backlog absorbs bursts of reconnecting clients after a restart.
    config.backlog = 2048
    config.websocket_ping_interval = settings.syncplay.websocket.ping_interval_seconds
    # Frames above this are cut by hypercorn with close code 1009 before we read
    # them; smaller ones above the protocol's 16 KiB get an error frame.
    config.websocket_max_message_size = settings.server.max_request_bytes
    # Without a read timeout a peer that stops sending (mid-body, or a dead
    # websocket) holds its connection forever.
    config.read_timeout = int(max(60.0, settings.syncplay.websocket.pong_timeout_seconds))
    config.keep_alive_timeout = HTTP_IDLE_TIMEOUT_SECONDS
    # A member that takes nothing for the disconnect timeout is closed as too-slow by
    # its connection; the kernel frees its socket at twice that (see _HypercornConfig).
    config.tcp_user_timeout_seconds = 2 * settings.syncplay.sync.disconnect_timeout_seconds
    return config


def bind_http(settings: Settings) -> list[socket.socket]:
    """The HTTP address bound (not yet listening), as hypercorn itself would bind it.

    Bound before the nurseries, so that a refusal is one plain exception rather
    than an exception group; ``front_door.serve`` listens on them.

    Raises:
        StartupError: the address is in use, not permitted (a port below 1024),
            not on this machine, or its host name does not resolve.
    """
    try:
        return hypercorn_config(settings).create_sockets().insecure_sockets
    except OSError as exc:  # socket.gaierror too
        raise StartupError("server.listen", settings.server.listen, exc) from exc


async def _bind_unix(
    setting: str, path: Path, bind: Callable[[Path], socket.socket]
) -> socket.socket:
    try:
        return await trio.to_thread.run_sync(bind, path)
    except AdminSocketError as exc:
        raise StartupError(setting, str(path), exc) from exc


async def run(
    settings: Settings,
    *,
    reload_settings: Callable[[], Settings] | None = None,
    notifier: Notifier | None = None,
    watchdog_interval: float | None = None,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until SIGTERM/SIGINT (or cancellation); report the bound URLs when listening.

    ``reload_settings`` reads the configuration again on SIGHUP; ``notifier``
    speaks systemd's notify protocol (READY once listening, WATCHDOG, STOPPING).
    """
    # First, before anything is opened: refuses a hypercorn the fixes were not checked
    # against (UnsupportedHypercorn), else patches four of its bugs (see the module).
    hypercorn_fixes.install()
    notifier = notifier or Notifier(None)
    secret = resolve_jwt_secret(settings)
    metrics = Metrics()
    try:
        opened = await open_repository(
            settings.database.url,
            pool_size=settings.database.pool_size,
            auto_migrate=settings.database.auto_migrate,
        )
    except OSError as exc:
        # The repository reports what it recognises as StorageUnavailable; a file
        # system refusal it did not foresee must still name the database.
        raise StartupError("database.url", mask_url(settings.database.url), exc) from exc
    repo = TimedRepository(opened, metrics)
    try:
        clock = ServerClock()
        service = RoomService(repo, settings.syncplay, shared_budgets=settings.cluster.enabled)
        persister = Persister(repo)
        supervisor = RoomSupervisor(settings, service, persister, clock, metrics)
        service.live = supervisor
        metrics.track_live(lambda: supervisor.live_rooms, lambda: supervisor.connections)
        state = AppState(settings, repo, service, secret, clock, supervisor, metrics)
        app = create_app(state)
        # Bound before the nurseries: a refusal (address or socket in use...) is a
        # plain error. The HTTP address first: a daemon started twice by mistake
        # is told so (rather than about its admin socket).
        http_sockets = await trio.to_thread.run_sync(bind_http, settings)
        cluster = None
        if settings.cluster.enabled:
            try:
                cluster = await _join_cluster(settings, repo, clock, http_sockets)
            except BaseException:
                for sock in http_sockets:
                    sock.close()
                raise
            supervisor.cluster = cluster
            cluster.attach(supervisor)
            service.live = ClusterRooms(supervisor, cluster)
        admin_path = settings.admin_socket_path()
        proxy_path = settings.proxy.socket
        bound: list[socket.socket] = list(http_sockets)
        try:
            admin_socket = await _bind_unix("admin.socket", admin_path, bind_admin_socket)
            bound.append(admin_socket)
            proxy_socket = None
            if proxy_path is not None:
                proxy_socket = await _bind_unix("proxy.socket", Path(proxy_path), bind_proxy_socket)
            bridge = None
            if settings.syncplay_bridge.listen is not None:
                bridge = SyncplayBridge(state, settings.syncplay_bridge)
                try:
                    await bridge.bind()
                except OSError as exc:
                    raise StartupError(
                        "syncplay_bridge.listen", settings.syncplay_bridge.listen, exc
                    ) from exc
                if cluster is not None:
                    # Registered with the node: the others relay its rooms' Syncplay clients here.
                    cluster.identity = dataclasses.replace(
                        cluster.identity, syncplay_bridge=bridge.reachable_at(cluster.identity.url)
                    )
        except BaseException:
            for sock in bound:
                sock.close()
            raise
        stop = trio.Event()
        stop_http = trio.Event()
        in_force = settings

        async def on_reload() -> None:
            nonlocal in_force
            if reload_settings is None:
                log.warning("reload: no configuration source to read again")
                return
            await notifier.reloading(status="reloading the configuration")
            try:

                def apply(new: Settings) -> None:
                    service.reconfigure(new.syncplay)
                    supervisor.reconfigure(new)

                in_force, _ = reload(in_force, reload_settings, apply)
            finally:
                await notifier.ready(status="running")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(_handle_signals, stop, on_reload)
            await nursery.start(persister.run)
            if cluster is not None:
                await nursery.start(cluster.run)
            await nursery.start(supervisor.run)
            maintenance = Maintenance(
                repo,
                settings.syncplay,
                is_busy=supervisor.is_busy,
                room_ended=supervisor.room_ended,
            )
            await nursery.start(maintenance.run)
            await nursery.start(release_free_memory)
            await nursery.start(collect_frozen_garbage)
            await nursery.start(freeze_young_objects)
            async with trio.open_nursery() as http:
                admin_binds: list[str] = await http.start(
                    partial(
                        serve_admin_socket,
                        app,
                        admin_path,
                        sock=admin_socket,
                        shutdown_trigger=stop_http.wait,
                        graceful_timeout=GRACEFUL_TIMEOUT_SECONDS,
                    )
                )
                log.info("admin API on %s", admin_binds[0].removeprefix("http://"))
                # WebSocket upgrades to the broadcast path, the rest to hypercorn.
                config = hypercorn_config(settings)
                route = DirectRoute(state, read_timeout=float(config.read_timeout or 60))
                ping_interval = settings.syncplay.websocket.ping_interval_seconds
                await nursery.start(route.run, ping_interval)
                if proxy_path is not None:
                    # The same app and listener settings as TCP; identity headers count here.
                    await http.start(
                        partial(
                            serve_proxy_socket,
                            app,
                            Path(proxy_path),
                            hypercorn_config(settings),
                            sock=proxy_socket,
                            route=route,
                            shutdown_trigger=stop_http.wait,
                        )
                    )
                    log.info("reverse proxy socket on unix:%s", proxy_path)
                binds: list[str] = await http.start(
                    partial(
                        front_door.serve,
                        app,
                        config,
                        http_sockets,
                        route=route,
                        shutdown_trigger=stop_http.wait,
                    )
                )
                for url in binds:
                    log.info("syncplayd listening on %s", url)
                if bridge is not None:
                    http.start_soon(partial(bridge.serve, shutdown_trigger=stop_http))
                    for address in bridge.addresses:
                        log.info("syncplay bridge listening on %s", address)
                if settings.web.enabled:
                    log.info("watch page at %s/syncplay/", binds[0])
                if settings.web.demo:
                    log.warning(
                        "demo mode: anyone who can open the page gets a guest token;"
                        " open %s/syncplay/ in two browser tabs",
                        binds[0],
                    )
                await notifier.ready(status="listening on " + ", ".join(binds))
                if watchdog_interval is not None:
                    await nursery.start(run_watchdog, notifier, watchdog_interval)
                task_status.started(binds)
                await stop.wait()
                await notifier.stopping(status="shutting down")
                log.info("shutting down: telling clients to reconnect")
                # Hypercorn does not close websockets itself: tell each client why
                # (close code 1012) first, then stop accepting and finish requests.
                with trio.move_on_after(GRACEFUL_TIMEOUT_SECONDS):
                    await supervisor.shutdown("server-restarting")
                if cluster is not None:
                    await cluster.leave()
                stop_http.set()
                http.cancel_scope.deadline = monotonic() + GRACEFUL_TIMEOUT_SECONDS
            # The persister flushes what is still pending as it is cancelled.
            nursery.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            await repo.aclose()
        log.info("stopped")


async def _join_cluster(
    settings: Settings, repo: TimedRepository, clock: ServerClock, http: list[socket.socket]
) -> Cluster:
    """Multi-node mode: this node's identity and its own database link for room locks.

    Raises:
        StartupError: the link cannot be opened (``database.url``).
    """
    host, port = http[0].getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    identity = node_identity(
        settings.cluster.node_id, settings.cluster.url, f"http://{shown}:{port}"
    )
    try:
        link = await ClusterLink.open(settings.database.url)
    except Exception as exc:
        raise StartupError("database.url", mask_url(settings.database.url), exc) from exc
    log.info("multi-node mode: this is node %s (%s)", identity.node_id, identity.url)
    return Cluster(repo, settings.database.url, identity, clock, link)


async def _handle_signals(stop: trio.Event, on_reload: Callable[[], Awaitable[None]]) -> None:
    # The receiver stays open through the shutdown: a SIGHUP then is ignored
    # rather than killing the process with the default action.
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
        async for signum in signals:
            log.info("received %s", signal.Signals(signum).name)
            if signum == signal.SIGHUP:
                if not stop.is_set():
                    await on_reload()
            else:
                stop.set()
