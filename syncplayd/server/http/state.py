"""What the HTTP app needs from the daemon, injected at creation (no globals)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from quart import current_app

from syncplayd.clocks import ServerClock
from syncplayd.config import Settings
from syncplayd.server.metrics import Metrics
from syncplayd.service import RoomService
from syncplayd.storage.base import Repository

if TYPE_CHECKING:
    from syncplayd.server.live.supervisor import RoomSupervisor


@dataclass(slots=True)
class AppState:
    """The daemon's shared objects, reachable from handlers via ``current_app``."""

    settings: Settings
    repo: Repository
    service: RoomService
    jwt_secret: str
    clock: ServerClock = field(default_factory=ServerClock)
    #: The realtime side; ``None`` in tests of the REST API alone.
    supervisor: RoomSupervisor | None = None
    metrics: Metrics = field(default_factory=Metrics)


def app_state() -> AppState:
    """The daemon's objects, in a request handler."""
    state: AppState = current_app.extensions["syncplayd"]
    return state
