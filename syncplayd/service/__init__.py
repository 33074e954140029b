"""The service layer: business rules between the HTTP API and storage."""

from __future__ import annotations

from syncplayd.service.errors import FieldError as FieldError
from syncplayd.service.errors import ServiceError as ServiceError
from syncplayd.service.invitations import Invitations as Invitations
from syncplayd.service.moderation import Kick as Kick
from syncplayd.service.moderation import Moderation as Moderation
from syncplayd.service.moderation import Removal as Removal
from syncplayd.service.queue import PlayQueue as PlayQueue
from syncplayd.service.rooms import Admission as Admission
from syncplayd.service.rooms import LiveRooms as LiveRooms
from syncplayd.service.rooms import RoomChanges as RoomChanges
from syncplayd.service.rooms import RoomQuery as RoomQuery
from syncplayd.service.rooms import RoomService as RoomService
