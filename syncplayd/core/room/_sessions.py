"""A room's sessions as a persistent map, with what the frequent paths need kept up to date.

Heartbeats and round-trip samples replace one session many times a second in a
room of thousands. Copying a dict of every session for each of them made one
member's heartbeat cost in proportion to the room. :class:`SessionTable` is an
``immutables.Map`` (a hash array mapped trie: a change copies O(log32 N) nodes
and shares the rest with the old map, which stays valid) plus, kept up to date by
the same two operations (:meth:`SessionTable.put` and :meth:`SessionTable.without`):

* the arrival order (a tuple of keys): iteration keeps the dict's order, in
  which members are listed and effects are emitted. Replacing a session, which
  is what heartbeats do, shares it; a join appends and a leave removes one key,
  a copy of N pointers (microseconds at thousands of sessions);
* the sessions of each user (``user_id -> keys``, in arrival order), so that a
  member's view folds only that user's sessions;
* a :class:`Tally` of sessions by kind, so that "does anyone block?", "has
  everyone ended?", "is everyone ready?" are answered without a scan;
* the earliest ``last_seen`` of the connected sessions and the earliest
  ``buffering_since`` of the blocking ones (:class:`_Queue`), the room's
  deadlines, so that working out whether the next wake-up moved does not visit
  every session after each command;
* the largest round trip of the connected sessions and the key holding it, for
  the lead of every play and seek. A change that raises it (or leaves the holder
  at it) keeps it known; one that lowers the holder's, or disconnects or removes
  the holder, marks it stale, and the next :meth:`SessionTable.worst_rtt` scans
  once and remembers the answer on that table (which never changes, so neither
  does the answer); the tables made from it afterwards carry it on.

The tables made from one another also share a journal (:class:`_Journal`) of
which users each one changed: a reader that keeps something per user (the live
room's encoded member list, sent to every joiner) asks
:meth:`SessionTable.changes_since` the table it last read and updates only
those users, instead of visiting every session at every join.

It is a read-only ``Mapping[str, Session]``: ``RoomState.sessions`` shows it
through a ``MappingProxyType`` and callers read it like the dict it replaces.
"""

from __future__ import annotations

import math
from collections.abc import ItemsView, Iterable, Iterator, KeysView, Mapping, ValuesView
from enum import Enum
from operator import itemgetter
from types import MappingProxyType
from typing import TYPE_CHECKING, Literal, NamedTuple, TypeAlias, TypeVar, overload

from immutables import Map

if TYPE_CHECKING:
    # At run time only the sessions' attributes are read: no import cycle with ``_state``.
    from syncplayd.core.room._state import Session

T = TypeVar("T")


class Tally(NamedTuple):
    """How many sessions are of each kind the engine asks "is there anyone ...?" about.

    "Hosts" are owners and moderators, who may control playback in every room;
    "members" only in an ``everyone`` room. Whether the room holds for a kind then
    depends only on the room's rules (see ``_views.any_blocking``).

    Attributes:
        blocking_hosts: hosts that count (``Session.counts``) and buffer (``Session.blocks``).
        blocking_members: plain members that do.
        unended_hosts: hosts that count and have not reached the end of the item.
        unended_members: plain members that do.
        unready: connected sessions whose user is not ready.
        ready: sessions whose user is ready (connected or not).
    """

    blocking_hosts: int = 0
    blocking_members: int = 0
    unended_hosts: int = 0
    unended_members: int = 0
    unready: int = 0
    ready: int = 0


def kind(session: Session) -> int:
    """The :class:`Tally` fields ``session`` counts in, as a bit mask (bit i: field i)."""
    host = session.role != "member"
    bits = 0
    if session.counts:
        if session.buffering:
            bits |= 1 if host else 2
        if not session.ended:
            bits |= 4 if host else 8
    if session.ready:
        bits |= 32
    elif session.connected:
        bits |= 16
    return bits


def _retally(tally: Tally, old: int, new: int) -> Tally:
    counts = list(tally)
    for i in range(len(counts)):
        counts[i] += (new >> i & 1) - (old >> i & 1)
    return Tally(*counts)


def _seen(session: Session) -> float | None:
    # When a connected session goes idle is ``last_seen`` plus the timeout.
    return session.last_seen if session.connected else None


def _stall(session: Session) -> tuple[bool, float] | None:
    # A blocker's ready timeout runs from ``buffering_since``; hosts and plain members
    # apart, since whether the room waits for the latter depends on its control mode.
    since = session.buffering_since
    if since is None or not session.blocks:
        return None
    return session.role != "member", since


def _rtt(session: Session) -> float | None:
    # Exactly the round trips ``room_lead`` weighs: connected sessions', NaN ignored as
    # ``lead_time`` ignores it (and NaN would poison every comparison of the maximum).
    rtt = session.rtt
    if rtt is None or not session.connected or math.isnan(rtt):
        return None
    return rtt


class _Stale(Enum):
    # A one-member enum: a sentinel that mypy narrows away with ``is``.
    STALE = 0


_STALE: Literal[_Stale.STALE] = _Stale.STALE
_Worst: TypeAlias = "tuple[str, float] | Literal[_Stale.STALE] | None"
"""(key, round trip) of a session with the largest; ``None``: no session has one;
``_STALE``: not known until the next scan."""


def _scan_worst(sessions: Iterable[tuple[str, Session]]) -> tuple[str, float] | None:
    worst: tuple[str, float] | None = None
    for key, session in sessions:
        rtt = _rtt(session)
        if rtt is not None and (worst is None or rtt > worst[1]):
            worst = (key, rtt)
    return worst


class _Queue:
    """Keys with a time each, in the order they were placed, the earliest time read in O(1).

    The times placed are ``now`` of the command placing them, which never goes
    back, so the order of placing is the order of time and the earliest is the
    first key still present (found by moving the head past the keys that left,
    each once). Should a time ever be placed before a later one (a caller's
    clock going back), the queue says so and :meth:`first` looks at every key
    of the queue instead, until it is empty again: slower, never wrong.
    """

    __slots__ = ("_entries", "_head", "_in_order", "_last", "_seq_of", "_tail")

    def __init__(
        self,
        entries: Map[int, tuple[str, float]],
        seq_of: Map[str, int],
        head: int,
        tail: int,
        in_order: bool,
        last: float,
    ) -> None:
        self._entries = entries  # place number -> (key, time)
        self._seq_of = seq_of  # key -> its place number
        self._head = head  # the smallest place number present (== tail when empty)
        self._tail = tail  # the next place number
        self._in_order = in_order
        self._last = last  # the latest time placed since the queue was last empty

    @classmethod
    def of(cls, pairs: Iterable[tuple[str, float]]) -> _Queue:
        """The queue of ``pairs`` (key, time), placed in order of time."""
        ordered = sorted(pairs, key=itemgetter(1))
        entries = Map(enumerate(ordered))
        seq_of = Map((key, seq) for seq, (key, _) in enumerate(ordered))
        last = ordered[-1][1] if ordered else -math.inf
        return cls(entries, seq_of, 0, len(ordered), True, last)

    def first(self) -> float | None:
        """The earliest time in the queue (``None``: empty)."""
        entries = self._entries
        if not entries:
            return None
        if self._in_order:
            return entries[self._head][1]
        return min(time for _, time in entries.values())

    def place(self, key: str, time: float | None) -> _Queue:
        """This queue with ``key`` at ``time`` (placed last), or without it (``None``)."""
        entries, seq_of = self._entries, self._seq_of
        seq = seq_of.get(key)
        if seq is not None:
            if entries[seq][1] == time:
                return self
            entries, seq_of = entries.delete(seq), seq_of.delete(key)
        elif time is None:
            return self
        head, tail, in_order, last = self._head, self._tail, self._in_order, self._last
        if not entries:
            head, in_order, last = tail, True, -math.inf
        if time is not None:
            entries, seq_of = entries.set(tail, (key, time)), seq_of.set(key, tail)
            in_order = in_order and time >= last
            last = max(last, time)
            tail += 1
        while head < tail and head not in entries:
            head += 1
        return _Queue(entries, seq_of, head, tail, in_order, last)


_NO_QUEUE = _Queue(Map(), Map(), 0, 0, True, -math.inf)


Change: TypeAlias = Literal["changed", "arrived", "gone"]
"""How a user's sessions changed from one table to the next: ``arrived`` (the user had
none and is now listed last), ``gone`` (the user's last session left), ``changed``."""

_Step: TypeAlias = "str | tuple[tuple[str, Change], ...] | None"
"""One table's changes from the table it was made from: a user id alone (that user
``changed``: a heartbeat), the users and how, or ``None``: a user may have moved in the
order (a user's first session left while another stays, or a key was given to another
user), which a reader of changes cannot follow."""

#: The journal keeps the changes of at least this many tables, and of twice as many as the
#: room has sessions: a reader further behind than that reads the whole table again.
JOURNAL_MIN_ENTRIES = 16


class _Journal:
    """The changes of each table made from one root table (:data:`_Step`), by version.

    Versions count up as tables are made, so a table's version is above the one it was
    made from; :meth:`SessionTable.changes_since` walks from a table to its parents. The
    oldest changes are forgotten first. Written as tables are made and read only by
    ``changes_since``: the engine decides nothing by it.
    """

    __slots__ = ("_entries", "_next", "_oldest")

    def __init__(self) -> None:
        self._entries: dict[int, tuple[int, _Step]] = {}  # version -> (parent's, changes)
        self._next = 1
        self._oldest = 1

    def record(self, parent: int, step: _Step, keep: int) -> int:
        """Note a new table made from ``parent`` with ``step``; return its version."""
        version = self._next
        self._next = version + 1
        entries = self._entries
        entries[version] = (parent, step)
        while len(entries) > keep:  # the versions present are oldest..version, each once
            del entries[self._oldest]
            self._oldest += 1
        return version


class SessionTable(Mapping[str, "Session"]):
    """Session id -> session, in order of arrival; immutable, changed by copy (see the module).

    Build one with :meth:`of`; the engine changes it with :meth:`put` and
    :meth:`without`, each returning a new table and leaving this one as it was.
    """

    __slots__ = (
        "_by_id",
        "_by_user",
        "_host_stalls",
        "_journal",
        "_member_stalls",
        "_order",
        "_seen",
        "_tally",
        "_version",
        "_worst",
    )

    def __init__(
        self,
        by_id: Map[str, Session],
        order: tuple[str, ...],
        by_user: Map[str, tuple[str, ...]],
        tally: Tally,
        seen: _Queue,
        stalls: tuple[_Queue, _Queue],
        worst: _Worst,
        journal: _Journal | None = None,
        version: int = 0,
    ) -> None:
        # Internal: the parts must agree; use ``of``, ``put`` and ``without``.
        self._by_id = by_id
        self._order = order
        self._by_user = by_user
        self._tally = tally
        self._seen = seen
        self._member_stalls, self._host_stalls = stalls
        self._worst = worst
        self._journal = journal
        self._version = version

    @classmethod
    def of(cls, sessions: Mapping[str, Session]) -> SessionTable:
        """The table of ``sessions`` (key -> session), in their iteration order."""
        if isinstance(sessions, SessionTable):
            return sessions
        table = EMPTY._with(sessions.items())
        # Placed one by one, times out of order would leave the queues slow for good.
        seen = _Queue.of((k, t) for k, s in table.items() if (t := _seen(s)) is not None)
        stalls = [(k, _stall(s)) for k, s in table.items()]
        members = _Queue.of((k, st[1]) for k, st in stalls if st is not None and not st[0])
        hosts = _Queue.of((k, st[1]) for k, st in stalls if st is not None and st[0])
        return SessionTable(
            table._by_id,
            table._order,
            table._by_user,
            table._tally,
            seen,
            (members, hosts),
            table._worst,
            _Journal(),  # a root: the tables made from it share this journal
        )

    # -- reading -----------------------------------------------------------------------------

    @property
    def tally(self) -> Tally:
        """How many sessions are of each kind."""
        return self._tally

    def of_user(self, user_id: str) -> list[Session]:
        """The sessions of ``user_id``, in order of arrival (none: an empty list)."""
        by_id = self._by_id
        return [by_id[key] for key in self._by_user.get(user_id, ())]

    def oldest_seen(self) -> float | None:
        """The earliest ``last_seen`` of a connected session (``None``: nobody is connected)."""
        return self._seen.first()

    def first_stall(self, *, hosts_only: bool) -> float | None:
        """The earliest ``buffering_since`` of a blocking session (``Session.blocks``), of
        owners and moderators only or of everyone (``None``: no such session)."""
        times = [self._host_stalls.first()]
        if not hosts_only:
            times.append(self._member_stalls.first())
        return min((t for t in times if t is not None), default=None)

    def worst_rtt(self) -> float | None:
        """The largest ``rtt`` of a connected session, NaN ignored (``None``: no such session).

        Kept up to date by the changes while they raise it; after the holder's fell,
        or it disconnected or left, the first call scans the sessions once and the
        table remembers the answer (see the module).
        """
        worst = self._worst
        if worst is _STALE:
            worst = _scan_worst(self._by_id.items())
            # The only write after construction: a cache of what the sessions already say.
            self._worst = worst
        return None if worst is None else worst[1]

    def changes_since(self, earlier: SessionTable) -> list[tuple[str, Change]] | None:
        """The users whose sessions changed from ``earlier`` to this table, each with how,
        in the order of the changes (a user may be listed more than once).

        ``None`` when that is not known: this table was not made from ``earlier`` (through
        any number of ``put`` and ``without``), ``earlier`` is further behind than the
        journal remembers, or a change on the way moved a user in the order (``_Step``).
        The caller then reads the whole table.
        """
        journal = self._journal
        if journal is None or journal is not earlier._journal:
            return None
        entries = journal._entries
        version, stop = self._version, earlier._version
        steps: list[str | tuple[tuple[str, Change], ...]] = []
        while version != stop:
            entry = entries.get(version) if version > stop else None
            if entry is None:  # passed ``earlier`` (another branch), or forgotten
                return None
            version, step = entry
            if step is None:
                return None
            steps.append(step)
        changes: list[tuple[str, Change]] = []
        for step in reversed(steps):
            if isinstance(step, str):
                changes.append((step, "changed"))
            else:
                changes.extend(step)
        return changes

    def __getitem__(self, key: str) -> Session:
        return self._by_id[key]

    def __contains__(self, key: object) -> bool:
        return key in self._by_id

    def __iter__(self) -> Iterator[str]:
        return iter(self._order)

    def __len__(self) -> int:
        return len(self._by_id)

    @overload
    def get(self, key: str, /) -> Session | None: ...
    @overload
    def get(self, key: str, /, default: Session | T) -> Session | T: ...
    def get(self, key: str, /, default: object = None) -> object:
        return self._by_id.get(key, default)

    def keys(self) -> KeysView[str]:
        return KeysView(self)

    def values(self) -> ValuesView[Session]:
        return _Values(self)

    def items(self) -> ItemsView[str, Session]:
        return _Items(self)

    def copy(self) -> SessionTable:
        """The table itself: it never changes. (This is also how ``RoomState`` finds the
        table behind its ``MappingProxyType``, whose ``copy()`` calls this one.)"""
        return self

    def __eq__(self, other: object) -> bool:
        if isinstance(other, MappingProxyType):
            other = other.copy()
        if isinstance(other, SessionTable):
            return self._by_id == other._by_id
        if isinstance(other, Mapping):
            return dict(self.items()) == dict(other.items())
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # equal to dicts, which are not hashable

    def __repr__(self) -> str:
        return f"SessionTable({dict(self.items())!r})"

    # -- changing ----------------------------------------------------------------------------

    def put(self, *sessions: Session) -> SessionTable:
        """This table with ``sessions`` added (at the end) or replaced (in place), by id."""
        if len(sessions) == 1:
            session = sessions[0]
            key = session.session_id
            old = self._by_id.get(key)
            if old is not None and old.user_id == session.user_id:
                # What every heartbeat does: one session replaced by itself, changed. The
                # order and the users' index stay; one ``set`` instead of a mutation (with
                # cold caches, every object and function a heartbeat touches costs).
                stalls = [self._member_stalls, self._host_stalls]
                tally, seen, worst = _reindex(
                    key, old, session, self._tally, self._seen, stalls, self._worst
                )
                by_id = self._by_id.set(key, session)
                journal, version = self._record(session.user_id, len(by_id))
                kept = self._order, self._by_user
                return SessionTable(
                    by_id, *kept, tally, seen, (stalls[0], stalls[1]), worst, journal, version
                )
        return self._with((session.session_id, session) for session in sessions)

    def _record(self, step: _Step, size: int) -> tuple[_Journal, int]:
        """The journal of a table made from this one with ``step``, and that table's version."""
        journal = self._journal
        if journal is None:  # ``EMPTY``, shared by every room: each room starts its own
            journal = _Journal()
        return journal, journal.record(self._version, step, max(JOURNAL_MIN_ENTRIES, 2 * size))

    def _with(self, pairs: Iterable[tuple[str, Session]]) -> SessionTable:
        by_user, tally, seen, worst = self._by_user, self._tally, self._seen, self._worst
        stalls = [self._member_stalls, self._host_stalls]
        added: list[str] = []
        changes: list[tuple[str, Change]] | None = []
        with self._by_id.mutate() as by_id:
            for key, session in pairs:
                old = by_id.get(key)
                by_id[key] = session
                user_id = session.user_id
                if old is None:
                    added.append(key)
                    keys = by_user.get(user_id, ())
                    by_user = by_user.set(user_id, (*keys, key))
                    if changes is not None:
                        changes.append((user_id, "changed" if keys else "arrived"))
                elif old.user_id != user_id:
                    by_user = _drop_key(by_user, old.user_id, key)
                    # Among the user's keys in arrival order, as everything else lists them
                    # (the key keeps its place). Never on the engine's paths: a key is one
                    # connection's, of one user.
                    place = {k: i for i, k in enumerate((*self._order, *added))}.__getitem__
                    keys = (*by_user.get(user_id, ()), key)
                    by_user = by_user.set(user_id, tuple(sorted(keys, key=place)))
                    changes = None  # the key's place is now the other user's
                elif changes is not None:
                    changes.append((user_id, "changed"))
                tally, seen, worst = _reindex(key, old, session, tally, seen, stalls, worst)
            table = by_id.finish()
        order = (*self._order, *added) if added else self._order
        journal, version = self._record(None if changes is None else tuple(changes), len(table))
        return SessionTable(
            table, order, by_user, tally, seen, (stalls[0], stalls[1]), worst, journal, version
        )

    def without(self, *keys: str) -> SessionTable:
        """This table without the sessions under ``keys`` (absent ones are ignored)."""
        by_user, tally, seen, order = self._by_user, self._tally, self._seen, self._order
        worst = self._worst
        stalls = [self._member_stalls, self._host_stalls]
        changes: list[tuple[str, Change]] | None = []
        with self._by_id.mutate() as by_id:
            for key in keys:
                old = by_id.pop(key, None)
                if old is None:
                    continue
                at = order.index(key)
                order = order[:at] + order[at + 1 :]
                user_id = old.user_id
                first = by_user[user_id][0] == key
                by_user = _drop_key(by_user, user_id, key)
                if changes is not None:
                    if user_id not in by_user:
                        changes.append((user_id, "gone"))
                    elif first:
                        changes = None  # the user is now listed where their next session is
                    else:
                        changes.append((user_id, "changed"))
                tally = _retally(tally, kind(old), 0)
                seen = seen.place(key, None)
                stall = _stall(old)
                if stall is not None:
                    stalls[stall[0]] = stalls[stall[0]].place(key, None)
                if worst is not _STALE and worst is not None and worst[0] == key:
                    worst = _STALE
            table = by_id.finish()
        journal, version = self._record(None if changes is None else tuple(changes), len(table))
        return SessionTable(
            table, order, by_user, tally, seen, (stalls[0], stalls[1]), worst, journal, version
        )


def _reindex(
    key: str,
    old: Session | None,
    new: Session,
    tally: Tally,
    seen: _Queue,
    stalls: list[_Queue],
    worst: _Worst,
) -> tuple[Tally, _Queue, _Worst]:
    """The tally, the ``last_seen`` queue and the worst round trip once ``new`` replaces
    ``old`` (``None``: ``new`` is added) under ``key``; ``stalls`` (members', hosts')
    is updated in place."""
    if old is None:
        old_kind, old_seen, old_stall = 0, None, None
    else:
        old_kind, old_seen, old_stall = kind(old), _seen(old), _stall(old)
    new_kind, new_seen, new_stall = kind(new), _seen(new), _stall(new)
    if new_kind != old_kind:
        tally = _retally(tally, old_kind, new_kind)
    if new_seen != old_seen:
        seen = seen.place(key, new_seen)
    if new_stall != old_stall:
        if old_stall is not None:
            stalls[old_stall[0]] = stalls[old_stall[0]].place(key, None)
        if new_stall is not None:
            stalls[new_stall[0]] = stalls[new_stall[0]].place(key, new_stall[1])
    if worst is not _STALE:
        # Inline, not ``_rtt``: this runs on every heartbeat. A NaN compares
        # neither greater nor equal, so it never becomes nor stays the worst.
        rtt = new.rtt if new.connected else None
        if worst is None:
            if rtt is not None and not math.isnan(rtt):
                worst = (key, rtt)
        elif worst[0] == key:
            # The holder itself: still the largest unless it fell, when only a
            # scan can tell who has the largest now (a heartbeat must not pay
            # for one).
            worst = (key, rtt) if rtt is not None and rtt >= worst[1] else _STALE
        elif rtt is not None and rtt > worst[1]:
            worst = (key, rtt)
    return tally, seen, worst


def _drop_key(
    by_user: Map[str, tuple[str, ...]], user_id: str, key: str
) -> Map[str, tuple[str, ...]]:
    rest = tuple(k for k in by_user[user_id] if k != key)
    return by_user.set(user_id, rest) if rest else by_user.delete(user_id)


class _Values(ValuesView["Session"]):
    __slots__ = ()
    _mapping: SessionTable

    def __iter__(self) -> Iterator[Session]:
        table = self._mapping
        return map(table._by_id.__getitem__, table._order)


class _Items(ItemsView[str, "Session"]):
    __slots__ = ()
    _mapping: SessionTable

    def __iter__(self) -> Iterator[tuple[str, Session]]:
        table = self._mapping
        return zip(table._order, map(table._by_id.__getitem__, table._order), strict=True)


EMPTY = SessionTable(Map(), (), Map(), Tally(), _NO_QUEUE, (_NO_QUEUE, _NO_QUEUE), None)
"""The table of no sessions."""
