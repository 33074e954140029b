"""The room engine: a sans-I/O state machine for one watch-together room.

``apply(state, command, now) -> (state, effects)`` is the whole interface; the
rules and their reasons are in :mod:`syncplayd.core.room._engine` ("Theory of
operation"). The values live in ``_state`` and ``_events`` (the sessions in
``_sessions``: a persistent map with its indexes, so that one member's heartbeat
does not cost in proportion to the room); read-only helpers for the shell
(snapshots, member lists, restoring from storage) in ``_views``; the transitions
in ``_playback``, ``_membership`` and ``_items`` (the media: its item, duration,
end, and readiness).
"""

from __future__ import annotations

from syncplayd.core.room._engine import apply as apply
from syncplayd.core.room._events import Advance as Advance
from syncplayd.core.room._events import Broadcast as Broadcast
from syncplayd.core.room._events import Buffering as Buffering
from syncplayd.core.room._events import CloseReason as CloseReason
from syncplayd.core.room._events import CloseSession as CloseSession
from syncplayd.core.room._events import Command as Command
from syncplayd.core.room._events import Connect as Connect
from syncplayd.core.room._events import Disconnect as Disconnect
from syncplayd.core.room._events import Effect as Effect
from syncplayd.core.room._events import Ended as Ended
from syncplayd.core.room._events import Heartbeat as Heartbeat
from syncplayd.core.room._events import Leave as Leave
from syncplayd.core.room._events import LoadItem as LoadItem
from syncplayd.core.room._events import LogEvent as LogEvent
from syncplayd.core.room._events import Media as Media
from syncplayd.core.room._events import Pause as Pause
from syncplayd.core.room._events import PersistPlayback as PersistPlayback
from syncplayd.core.room._events import Play as Play
from syncplayd.core.room._events import Readiness as Readiness
from syncplayd.core.room._events import Ready as Ready
from syncplayd.core.room._events import RecordDuration as RecordDuration
from syncplayd.core.room._events import RemoveUser as RemoveUser
from syncplayd.core.room._events import RttSample as RttSample
from syncplayd.core.room._events import Seek as Seek
from syncplayd.core.room._events import SendTo as SendTo
from syncplayd.core.room._events import SetControl as SetControl
from syncplayd.core.room._events import SetDuration as SetDuration
from syncplayd.core.room._events import SetMuted as SetMuted
from syncplayd.core.room._events import SetRate as SetRate
from syncplayd.core.room._events import SetRole as SetRole
from syncplayd.core.room._events import SetRoomRules as SetRoomRules
from syncplayd.core.room._events import Tick as Tick
from syncplayd.core.room._events import WakeAt as WakeAt
from syncplayd.core.room._sessions import Change as Change
from syncplayd.core.room._sessions import SessionTable as SessionTable
from syncplayd.core.room._state import CONTROL_MODES as CONTROL_MODES
from syncplayd.core.room._state import ROLES as ROLES
from syncplayd.core.room._state import ControlMode as ControlMode
from syncplayd.core.room._state import Playback as Playback
from syncplayd.core.room._state import PlayState as PlayState
from syncplayd.core.room._state import Refused as Refused
from syncplayd.core.room._state import Role as Role
from syncplayd.core.room._state import RoomState as RoomState
from syncplayd.core.room._state import Session as Session
from syncplayd.core.room._state import SlowPolicy as SlowPolicy
from syncplayd.core.room._state import SyncConfig as SyncConfig
from syncplayd.core.room._state import is_control_mode as is_control_mode
from syncplayd.core.room._state import is_role as is_role
from syncplayd.core.room._state import is_slow_policy as is_slow_policy
from syncplayd.core.room._views import behind as behind
from syncplayd.core.room._views import blocking as blocking
from syncplayd.core.room._views import end_time as end_time
from syncplayd.core.room._views import live_position as live_position
from syncplayd.core.room._views import member as member
from syncplayd.core.room._views import members as members
from syncplayd.core.room._views import new_room as new_room
from syncplayd.core.room._views import next_deadline as next_deadline
from syncplayd.core.room._views import restore_playback as restore_playback
from syncplayd.core.room._views import snapshot as snapshot
from syncplayd.core.room._views import sync_settings as sync_settings
