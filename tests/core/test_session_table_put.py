"""``SessionTable.put`` of one session replacing itself (every heartbeat) takes a shorter way
than the general one (``_with``); both must build the same table, indexes and all."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from syncplayd.core.room import Session
from syncplayd.core.room._sessions import SessionTable
from tests.core.roomkit import NOW
from tests.core.test_room_heartbeat_rtt import sessions


def tables_agree(fast: SessionTable, general: SessionTable) -> None:
    assert fast._by_id == general._by_id
    assert fast._order == general._order
    assert fast._by_user == general._by_user
    assert fast.tally == general.tally
    assert fast.oldest_seen() == general.oldest_seen()
    for hosts_only in (False, True):
        assert fast.first_stall(hosts_only=hosts_only) == general.first_stall(hosts_only=hosts_only)
    assert fast._worst == general._worst  # before a scan fills a stale one in
    assert fast.worst_rtt() == general.worst_rtt()


@given(st.data())
def test_replacing_one_session_builds_what_the_general_way_builds(data: st.DataObject) -> None:
    members = [data.draw(sessions(i)) for i in range(data.draw(st.integers(1, 5)))]
    table = SessionTable.of({s.session_id: s for s in members})
    # Some changes first, so that the queues and the worst round trip are not fresh.
    for old in data.draw(st.lists(st.sampled_from(members), max_size=4)):
        table = table.put(data.draw(sessions(int(old.session_id[1:]))))
    old = table[data.draw(st.sampled_from(list(table)))]
    new = data.draw(sessions(int(old.session_id[1:])))
    if data.draw(st.booleans()):  # mostly what a heartbeat changes
        rtt = data.draw(st.none() | st.floats(0.0, 5.0) | st.just(math.nan))
        new = Session(
            old.session_id,
            old.user_id,
            old.user_name,
            role=old.role,
            connected=old.connected,
            buffering=old.buffering,
            buffering_since=old.buffering_since,
            rtt=rtt,
            last_seen=NOW + data.draw(st.floats(-5.0, 5.0)),
            last_offset=0.1,
        )
    key = new.session_id
    tables_agree(table.put(new), table._with(((key, new),)))
