"""``syncplayd``: run the daemon, check its configuration, migrate its database."""

from __future__ import annotations

import gc
import ipaddress
import logging
import os
import sys
from functools import partial
from urllib.parse import urlsplit

import click
import trio

from syncplayd import __version__
from syncplayd.cli.common import fail_config, load, run_migrations_command
from syncplayd.config import ConfigError, Settings, load_settings_from_path
from syncplayd.logs import configure_logging, register_secret
from syncplayd.storage import errors as storage_errors


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
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 10, 10)


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
    """A setting that loads but that the daemon will not serve with, or ``None``.

    Rules between settings that are not wrong as such, but expose the daemon:
    demo mode (guest tokens for anyone) on an address others can reach, and
    half of the proxy's TCP channel (an address without the secret believes
    every local process; a secret without addresses is not used).
    """
    if (
        settings.web.demo
        and not settings.web.demo_allow_remote
        and not _is_loopback(settings.server.listen_host)
    ):
        return ConfigError(
            f"demo mode hands a guest token to anyone who can reach {settings.server.listen};"
            " listen on a loopback address, or confirm with web.demo_allow_remote: true"
            " (--demo-remote)",
            ("web", "demo"),
        )
    proxy = settings.proxy
    if proxy.trusted_addresses and proxy.secret is None:
        return ConfigError(
            "identity headers over TCP need proxy.secret (or proxy.secret_file) as well:"
            " from an address alone any local process could send them; or use proxy.socket",
            ("proxy", "trusted_addresses"),
        )
    if proxy.secret is not None and not proxy.trusted_addresses:
        return ConfigError(
            "proxy.secret is only used with proxy.trusted_addresses (the proxy's address)",
            ("proxy", "secret"),
        )
    return None


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
        fail_config("syncplayd", str(refused))
    if check_config:
        click.echo("configuration OK")
        return
    setup_logging(settings)
    # The server stack is only needed to serve.
    from syncplayd.server.process.admin_socket import AdminSocketError
    from syncplayd.server.process.daemon import run
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
    except (storage_errors.StorageError, AdminSocketError, UnsupportedHypercorn) as exc:
        logging.getLogger("syncplayd").error("cannot start: %s", exc)
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
