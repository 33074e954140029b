"""What the HTTP app needs from the daemon, injected at creation (no globals)."""

from __future__ import annotations

from dataclasses import dataclass

from syncplayd.config import Settings
from syncplayd.service import RoomService
from syncplayd.storage.base import Repository


@dataclass(frozen=True, slots=True)
class AppState:
    """The daemon's shared objects, reachable from handlers via ``current_app``."""

    settings: Settings
    repo: Repository
    service: RoomService
    jwt_secret: str
