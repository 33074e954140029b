"""SIGHUP: apply what can change without a restart, and say what cannot.

Applied live: the log level and format, the sync thresholds and timeouts of
every room (and of rooms opened later), chat limits, and the per-connection
message rate. Everything else (listen address, database, secrets, …) is named
in the log as needing a restart; the running values stay in force for it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from syncplayd.config import ConfigError, Settings, dump_settings
from syncplayd.logs import configure_logging

log = logging.getLogger(__name__)

#: Settings (dotted-path prefixes) that a reload applies to the running daemon.
LIVE_PREFIXES = (
    "logging.",
    "syncplay.sync.",
    "syncplay.chat.",
    "syncplay.websocket.max_messages_per_second",
    "syncplay.invitations.",
    "syncplay.rooms.allow_",
    "syncplay.rooms.default_max_participants",
    "syncplay.rooms.max_rooms_per_user",
    "syncplay.cleanup.",
)


@dataclass(frozen=True, slots=True)
class ReloadResult:
    """What a reload changed, and what it could not apply."""

    applied: list[str]
    needs_restart: list[str]
    error: str | None = None


def _flatten(tree: Mapping[str, object], prefix: str = "") -> dict[str, object]:
    flat: dict[str, object] = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def changed_keys(old: Settings, new: Settings) -> list[str]:
    """Dotted paths whose values differ (secrets compared masked, so a changed
    secret shows as a change only if its masked form differs: it needs a restart anyway)."""
    before, after = _flatten(dump_settings(old)), _flatten(dump_settings(new))
    return sorted(key for key in before.keys() | after.keys() if before.get(key) != after.get(key))


def plan(old: Settings, new: Settings) -> ReloadResult:
    """Split the changes into those applied live and those that need a restart."""
    keys = changed_keys(old, new)
    live = [k for k in keys if k.startswith(LIVE_PREFIXES)]
    return ReloadResult(applied=live, needs_restart=[k for k in keys if k not in live])


def reload(
    current: Settings, load: Callable[[], Settings], apply: Callable[[Settings], None]
) -> tuple[Settings, ReloadResult]:
    """Load the configuration again and apply what can change; return the settings in force."""
    try:
        new = load()
    except ConfigError as exc:
        log.error("reload refused, the configuration is unchanged: %s", exc)
        return current, ReloadResult([], [], str(exc))
    result = plan(current, new)
    if not result.applied and not result.needs_restart:
        log.info("reload: nothing changed")
        return current, result
    configure_logging(new.logging.level, new.logging.format)
    apply(new)
    if result.applied:
        log.info("reload applied: %s", ", ".join(result.applied))
    if result.needs_restart:
        log.warning(
            "reload cannot apply these without a restart: %s", ", ".join(result.needs_restart)
        )
    return new, result
