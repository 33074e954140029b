"""A live room's member list as JSON, for ``joined.participants``, kept up to date per user.

Every joiner is sent the whole list, so a watch party of 2,000 arriving makes 2,000
lists. Folded and encoded afresh each time, that is 2,000 x 2,000 member entries;
looked up in a cache per user, still a pass in Python over every session at every
join. :class:`MemberList` keeps each user's entry encoded, in the room's order, and
at the next join updates only the users whose sessions changed since the table it
last read (``SessionTable.changes_since``, the engine's journal of its tables). When
that is not known (another room state, a change that moved a user in the order, a
reader too far behind) or the room's waiting rules changed (``behind`` depends on
them), it reads the whole table again.
"""

from __future__ import annotations

from syncplayd.core import protocol
from syncplayd.core import room as engine
from syncplayd.server.live.ws_frames import frame_text, text_frame_header


class MemberList:
    """``engine.members(state)``, each entry encoded as ``protocol.encode_member`` does."""

    __slots__ = ("_entries", "_rules", "_table")

    def __init__(self) -> None:
        #: user id -> entry and a comma, in the room's order
        self._entries: dict[str, bytes] = {}
        self._table: engine.SessionTable | None = None
        self._rules: tuple[object, ...] = ()

    def frame(self, state: engine.RoomState, before: bytes, after: bytes) -> bytes:
        """A server text frame: ``before``, the list as a JSON array, ``after``.

        Built by one join of the parts: a 2,000-member list is ~0.4 MB, and each copy of
        that size costs the kernel fresh pages (~0.2 ms), more than everything else here.
        """
        self._bring_up_to_date(state)
        parts = [b"", before, b"[", *self._entries.values(), b"]", after]
        if len(parts) > 5:
            parts[-3] = parts[-3][:-1]  # the last entry's comma
        parts[0] = text_frame_header(sum(map(len, parts)))
        return b"".join(parts)

    def json(self, state: engine.RoomState) -> str:
        """The list as a JSON array."""
        return frame_text(self.frame(state, b"", b""))

    def _bring_up_to_date(self, state: engine.RoomState) -> None:
        table = state.table
        rules = (state.control, state.wait_for_slow_members)
        changes = None
        if self._table is not None and rules == self._rules:
            changes = table.changes_since(self._table)
        if changes is None or not self._update(state, changes):
            self._read_all(state)
        self._table, self._rules = table, rules

    def _update(self, state: engine.RoomState, changes: list[tuple[str, engine.Change]]) -> bool:
        """Apply ``changes`` to the entries; ``False`` if they do not fit them (read all)."""
        entries = self._entries
        dirty: set[str] = set()
        for user_id, how in changes:
            if how == "gone":
                entries.pop(user_id, None)
                dirty.discard(user_id)
            elif how == "arrived":
                entries.pop(user_id, None)
                entries[user_id] = b""  # placed last now, written below
                dirty.add(user_id)
            elif user_id in entries:
                dirty.add(user_id)
            else:  # a change to a user never listed: not the table these entries were of
                return False
        for user_id in dirty:
            sessions = state.table.of_user(user_id)
            if not sessions:
                return False
            entries[user_id] = _entry(engine.member(state, sessions[0].session_id))
        return True

    def _read_all(self, state: engine.RoomState) -> None:
        self._entries = {member.user_id: _entry(member) for member in engine.members(state)}


def _entry(member: protocol.Member) -> bytes:
    return protocol.encode_member(member) + b","
