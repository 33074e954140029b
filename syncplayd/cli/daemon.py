"""``syncplayd``: run the daemon, check its configuration, migrate its database."""

from __future__ import annotations

import errno
import gc
import ipaddress
import logging
import os
import socket
import sys
from functools import partial
from typing import TYPE_CHECKING, NoReturn
from urllib.parse import urlsplit

import click
import trio

from syncplayd import __version__
from syncplayd.cli.common import fail_config, load, run_migrations_command
from syncplayd.config import ConfigError, ConfigProblem, Settings, load_settings_from_path
from syncplayd.logs import configure_logging, register_secret
from syncplayd.storage import errors as storage_errors

if TYPE_CHECKING:
    from syncplayd.server.process.daemon import StartupError


def _overrides(**flags: str | None) -> dict[str, str]:
    paths = {
        "listen": "server.listen",
        "database_url": "database.url",
        "state_dir": "server.state_dir",
        "log_level": "logging.level",
        "demo": "web.demo",
        "demo_remote": "web.demo_allow_remote",
    }
    return {paths[name]: value for name, value in flags.items() if value is not None}


def tune_garbage_collector() -> None:
    """Fewer, cheaper collections for a long-running server with many live objects.

    Measured (docs/benchmarks.md): with CPython's defaults, full collections that
    free nothing ran every few seconds and froze every room for 65 ms (200
    members) to 2.5 s (5,000 connections). Freezing what start-up allocated takes
    it out of every pass, and a larger first-generation threshold makes passes rare;
    reference counting still frees almost everything at once. That holds only while
    closed connections leave no reference cycles (they would wait for a full
    collection, an hour away): tests/server/test_connection_garbage.py checks it.

    What survives a full collection is frozen as well (``freeze_survivors``): a full
    pass walks every tracked object, about 95 per member, and after a wave of joins
    one came due and froze every room for ~1 s at 10,000 connections
    (docs/benchmarks.md, capacity). Frozen objects are still freed by reference
    counting; what they might hold in a cycle is collected once an hour
    (``server/process/heap.py``). The young generation is collected and frozen every
    quarter second as well (``heap.freeze_young_objects``): CPython's count of it stays
    low while heartbeats replace records, and it would otherwise grow without bound.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 10, 10)
    if freeze_survivors not in gc.callbacks:
        gc.callbacks.append(freeze_survivors)


def freeze_survivors(phase: str, info: dict[str, int]) -> None:
    """A ``gc.callbacks`` hook: after a full collection, freeze what it kept."""
    if phase == "stop" and info.get("generation") == 2:
        gc.freeze()


def setup_logging(settings: Settings) -> None:
    configure_logging(settings.logging.level, settings.logging.format)
    # Exact values no pattern would spot: they never reach a log line.
    for secret in (settings.auth.jwt_secret, settings.proxy.secret):
        if secret is not None:
            register_secret(secret.reveal())
    register_secret(urlsplit(settings.database.url).password)


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # another host name: it may well resolve to a public address


def refusal(settings: Settings) -> ConfigError | None:
    """The settings that load but that the daemon will not serve with, or ``None``.

    Rules between settings that are not wrong as such, but expose the daemon:
    demo mode (guest tokens for anyone) on an address others can reach, and
    half of the proxy's TCP channel (an address without the secret believes
    every local process; a secret without addresses is not used). All that
    apply are reported together.
    """
    problems: list[ConfigProblem] = []
    if (
        settings.web.demo
        and not settings.web.demo_allow_remote
        and not _is_loopback(settings.server.listen_host)
    ):
        problems.append(
            ConfigProblem(
                f"demo mode hands a guest token to anyone who can reach {settings.server.listen};"
                " listen on a loopback address, or confirm with web.demo_allow_remote: true"
                " (--demo-remote)",
                ("web", "demo"),
            )
        )
    proxy = settings.proxy
    if proxy.trusted_addresses and proxy.secret is None:
        problems.append(
            ConfigProblem(
                "identity headers over TCP need proxy.secret (or proxy.secret_file) as well:"
                " from an address alone any local process could send them; or use proxy.socket",
                ("proxy", "trusted_addresses"),
            )
        )
    if proxy.secret is not None and not proxy.trusted_addresses:
        problems.append(
            ConfigProblem(
                "proxy.secret is only used with proxy.trusted_addresses (the proxy's address)",
                ("proxy", "secret"),
            )
        )
    return ConfigError.of(problems) if problems else None


def _listen_failure(
    address: str,
    error: Exception,
    where: str = "with --listen HOST:PORT or SYNCPLAY_LISTEN (server.listen)",
) -> str:
    fix = f"choose another {where}"
    if isinstance(error, socket.gaierror):
        cause = f"the host name does not resolve ({error.strerror})"
        fix = f"use an IP address, or a name this machine resolves, {where}"
    elif isinstance(error, OSError) and error.errno == errno.EADDRINUSE:
        cause = "the address is in use (another syncplayd?)"
    elif isinstance(error, OSError) and error.errno == errno.EACCES:
        cause = "permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE)"
        fix = f"choose a port from 1024 up {where}"
    elif isinstance(error, OSError) and error.errno == errno.EADDRNOTAVAIL:
        cause = "no network interface of this machine has that address"
    else:
        cause = _reason(error)
    return f"cannot listen on {address}: {cause}; {fix}"


def _reason(error: Exception) -> str:
    """An OSError as "Permission denied: '/path'", without its "[Errno 13]"; others as they are."""
    if isinstance(error, OSError) and error.strerror:
        return f"{error.strerror}: {error.filename!r}" if error.filename else error.strerror
    return str(error)


def startup_failure(exc: StartupError) -> str:
    """The one line that says what the system refused at start, and what to change."""
    user = f"uid {os.geteuid()}"
    if exc.setting == "server.listen":
        return _listen_failure(exc.target, exc.cause)
    if exc.setting == "syncplay_bridge.listen":
        where = "with SYNCPLAY_BRIDGE_LISTEN (syncplay_bridge.listen)"
        return "Syncplay bridge: " + _listen_failure(exc.target, exc.cause, where)
    if exc.setting == "server.state_dir":
        return (
            f"cannot use the state folder {exc.target}: {_reason(exc.cause)}; make it a folder"
            f" {user} can write, or choose another with --state-dir DIR or SYNCPLAY_STATE_DIR"
        )
    if exc.setting == "database.url":
        return (
            f"cannot open the database {exc.target}: {_reason(exc.cause)}; make it reachable"
            f" for {user}, or choose another with --database-url URL or SYNCPLAY_DATABASE_URL"
        )
    variable = "SYNCPLAY_" + exc.setting.replace(".", "_").upper()
    return f"{exc.cause}; choose another path with {exc.setting} ({variable})"


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    metavar="PATH",
    help="YAML configuration file [env: SYNCPLAY_CONFIG].",
)
@click.option(
    "--listen", metavar="HOST:PORT", help="Address to serve HTTP on [env: SYNCPLAY_LISTEN]."
)
@click.option(
    "--database-url",
    metavar="URL",
    help="sqlite:///PATH or postgresql://... [env: SYNCPLAY_DATABASE_URL].",
)
@click.option(
    "--state-dir",
    metavar="DIR",
    help="Folder for the default database and generated secret [env: SYNCPLAY_STATE_DIR].",
)
@click.option(
    "--log-level", type=click.Choice(["debug", "info", "warning", "error"]), help="Log level."
)
@click.option(
    "--demo",
    is_flag=True,
    default=None,
    help="Demo mode: serve a test video and guest tokens at /syncplay/ [env: SYNCPLAY_WEB_DEMO].",
)
@click.option(
    "--demo-remote",
    is_flag=True,
    default=None,
    help="Allow demo mode on a non-loopback address [env: SYNCPLAY_WEB_DEMO_ALLOW_REMOTE].",
)
@click.option("--check-config", is_flag=True, help="Validate the configuration and exit.")
@click.version_option(__version__, prog_name="syncplayd")
@click.pass_context
def main(
    ctx: click.Context,
    config_path: str | None,
    listen: str | None,
    database_url: str | None,
    state_dir: str | None,
    log_level: str | None,
    demo: bool | None,
    demo_remote: bool | None,
    check_config: bool,
) -> None:
    """Self-hosted watch-together server.

    With no subcommand, serve until SIGTERM or SIGINT. Configuration comes from
    defaults, then the YAML file, then SYNCPLAY_* environment variables, then flags.
    """
    overrides = _overrides(
        listen=listen,
        database_url=database_url,
        state_dir=state_dir,
        log_level=log_level,
        demo="true" if demo else None,
        demo_remote="true" if demo_remote else None,
    )
    settings = load(config_path, overrides, prog="syncplayd")
    ctx.obj = settings
    if ctx.invoked_subcommand is not None:
        return
    refused = refusal(settings)
    if refused is not None:
        fail_config("syncplayd", refused)
    if check_config:
        click.echo("configuration OK")
        return
    setup_logging(settings)
    # The server stack is only needed to serve.
    from syncplayd.server.process.admin_socket import AdminSocketError
    from syncplayd.server.process.daemon import StartupError, run
    from syncplayd.server.process.hypercorn_fixes import UnsupportedHypercorn
    from syncplayd.server.process.sdnotify import Notifier, watchdog_interval

    tune_garbage_collector()

    def reload_settings() -> Settings:
        # Same sources as at start; a bad file raises ConfigError and changes nothing.
        return load_settings_from_path(config_path, os.environ, overrides)

    try:
        trio.run(
            partial(
                run,
                settings,
                reload_settings=reload_settings,
                notifier=Notifier.from_environ(os.environ),
                watchdog_interval=watchdog_interval(os.environ),
            )
        )
    except KeyboardInterrupt:  # pragma: no cover - SIGINT is handled inside run
        pass
    except StartupError as exc:
        _cannot_start(startup_failure(exc))
    except storage_errors.StorageError as exc:
        _cannot_start(
            f"{exc}; fix it, or choose another with --database-url URL or SYNCPLAY_DATABASE_URL"
        )
    except (AdminSocketError, UnsupportedHypercorn) as exc:
        _cannot_start(str(exc))


def _cannot_start(reason: str) -> NoReturn:
    # One line, whatever the log format: a driver's message may span lines.
    logging.getLogger("syncplayd").error("cannot start: %s", " ".join(reason.split()))
    sys.exit(1)


@main.command()
@click.argument("action", type=click.Choice(["up", "down", "status"]), default="status")
@click.option(
    "--steps",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Migrations to revert (down).",
)
@click.pass_obj
def migrate(settings: Settings, action: str, steps: int) -> None:
    """Apply (up), revert (down) or list (status) database migrations."""
    for line in run_migrations_command(settings, action, steps, prog="syncplayd"):
        click.echo(line)
