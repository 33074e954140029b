"""Where ``syncplayctl`` looked, and where people watch: the places its messages name.

``syncplayctl`` finds the daemon's admin socket and generated JWT secret through the
configuration it reads itself, which is not always the daemon's: run from another shell
or a checkout without ``SYNCPLAY_STATE_DIR``, it derives another state folder. A bare
"cannot reach the daemon" or "no secret" then leaves a newcomer guessing, so these
helpers say where it looked, why, and which variable or flag points it elsewhere.

The watch page's address is not a setting of the daemon (it only knows where it
listens, and a reverse proxy usually stands in front), so the links printed after
``rooms create`` and ``invitations create`` say which address they were built from.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from syncplayd.config import Settings

#: Where ``make run`` keeps the state of a daemon started from a checkout.
CHECKOUT_STATE = ".state"
_OTHER_STATE = "If the daemon uses another state folder, set SYNCPLAY_STATE_DIR to it"
_PUBLIC_URL_HINT = "pass --public-url or set SYNCPLAYCTL_PUBLIC_URL for the address people use"
# Wildcard listen addresses are recognised in a setting here, never bound.
_WILDCARDS = {"", "0.0.0.0", "[::]"}  # noqa: S104  # nosec B104


def state_dir_origin(config_path: str | None, environ: Mapping[str, str]) -> str:
    """Why the state folder is the one it is, in a few words."""
    if environ.get("SYNCPLAY_STATE_DIR"):
        return "from SYNCPLAY_STATE_DIR"
    config = config_path or environ.get("SYNCPLAY_CONFIG")
    if config:
        return f"server.state_dir in {config}, else the default"
    return "the default: SYNCPLAY_STATE_DIR is not set and no --config is given"


def _checkout_hint(name: str, looked_at: Path, cwd: Path) -> str:
    nearby = cwd / CHECKOUT_STATE / name
    if nearby == looked_at or not nearby.exists():
        return ""
    return (
        f"; a daemon started from this checkout (make run) keeps it at {nearby}:"
        f" SYNCPLAY_STATE_DIR={nearby.parent}"
    )


def socket_hint(
    settings: Settings, config_path: str | None, environ: Mapping[str, str], cwd: Path
) -> str:
    """What to add when the configured admin socket does not answer: why it was there."""
    path = settings.admin_socket_path()
    if settings.admin.socket is not None:
        source = (
            "SYNCPLAY_ADMIN_SOCKET"
            if environ.get("SYNCPLAY_ADMIN_SOCKET")
            else f"admin.socket in {config_path or environ.get('SYNCPLAY_CONFIG')}"
        )
        why = f"{path} is the socket {source} names"
    else:
        origin = state_dir_origin(config_path, environ)
        why = f"{path} is admin.sock in the state folder {settings.server.state_dir} ({origin})"
    return (
        f"syncplayctl looked there because {why}. {_OTHER_STATE} (or SYNCPLAY_ADMIN_SOCKET to"
        " its socket, or --config to its file), or pass --url unix:/path/admin.sock"
        + _checkout_hint(path.name, path, cwd)
    )


def secret_hint(
    settings: Settings,
    secret_path: Path,
    config_path: str | None,
    environ: Mapping[str, str],
    cwd: Path,
) -> str:
    """Why the generated secret was looked for where it was, and what else works."""
    origin = state_dir_origin(config_path, environ)
    return (
        f"it looked in the state folder {settings.server.state_dir} ({origin}), where the"
        f" daemon writes it on its first start. {_OTHER_STATE} (or --config to its file);"
        " or give the secret itself: SYNCPLAY_AUTH_JWT_SECRET or auth.jwt_secret_file"
        + _checkout_hint(secret_path.name, secret_path, cwd)
    )


# -- the watch page ------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class WatchBase:
    """Where the watch page is (``url``, no trailing slash), and what to say about it."""

    url: str | None
    note: str | None

    def link(self, **query: str) -> str | None:
        """The page's address with ``query`` (``room=ID`` or ``invite=CODE``)."""
        if self.url is None:
            return None
        text = "&".join(f"{key}={quote(value, safe='')}" for key, value in query.items())
        return f"{self.url}/syncplay/?{text}"


def watch_base(
    public_url: str | None, admin_url: str, daemon_config: Mapping[str, Any]
) -> WatchBase:
    """The watch page's base address, from the best source there is.

    ``--public-url`` if given; else the admin ``--url`` when it is HTTP (the page is on
    the same port); else the daemon's ``server.listen``, a wildcard host read as
    localhost. ``daemon_config`` is the running daemon's settings (``GET /config``).
    """
    if not daemon_config["web"]["enabled"]:
        return WatchBase(
            None, "no watch link: the daemon does not serve the watch page (web.enabled)"
        )
    if public_url:
        return WatchBase(public_url.rstrip("/"), None)
    if admin_url.startswith(("http://", "https://")):
        return WatchBase(admin_url.rstrip("/"), f"built from --url; {_PUBLIC_URL_HINT}")
    listen = str(daemon_config["server"]["listen"])
    host, _, port = listen.rpartition(":")
    if port == "0":
        return WatchBase(
            None,
            f"no watch link: the daemon's port is picked at start ({listen}); {_PUBLIC_URL_HINT}",
        )
    host = "localhost" if host in _WILDCARDS else host
    return WatchBase(
        f"http://{host}:{port}",
        f"built from the daemon's server.listen; behind a reverse proxy, {_PUBLIC_URL_HINT}",
    )
