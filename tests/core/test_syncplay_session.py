"""``BridgeSession``: one Syncplay client in a syncplayd room, driven as the shell drives it.

Each test builds the session, hands it the room's ``joined``, then plays the
Syncplay client's ``State``/``Set``/``Chat``/``List`` and the room's messages at
explicit server times, and reads what came out: Syncplay lines
(``take_lines``), room frames (``take_frames``), playlist selections
(``take_queue_plays``) and ``drop``. Expectations follow Syncplay 1.6.9's real
client (``protocols.py``: ``SyncClientProtocol.handleState``/``sendState``;
``client.py``: ``updateGlobalState``/``_changePlayerStateAccordingToGlobalState``)
and server (``SyncServerProtocol``, ``PingService``).
"""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from syncplayd.core import protocol
from syncplayd.core.clock import position_at
from syncplayd.core.syncplay.session import (
    DIFFERENT_DURATION,
    DRIFT_COOLDOWN,
    DRIFT_TOLERANCE,
    HEARTBEAT_INTERVAL,
    NOTICE_NAME,
    RTT_SAMPLES,
    SERVER_VERSION,
    SILENCE_TIMEOUT,
    BridgeSession,
    Limits,
)
from syncplayd.core.syncplay.wire import (
    ClientState,
    FileInfo,
    PlayState,
    SetOther,
    SetPlaylist,
    SetPlaylistIndex,
    SetReady,
    SetRoom,
)

NOW = 100.0
ROOM = "movie-night"
CHAT_LIMIT = 150
LIMITS = Limits(chat_length=CHAT_LIMIT, name_length=16)


# -- the room's side -------------------------------------------------------------------
def member(
    user_id: str,
    name: str,
    *,
    role: str = "viewer",
    connected: bool = True,
    buffering: bool = False,
    ready: bool = False,
    sessions: int | None = None,
) -> protocol.Member:
    return protocol.Member(
        user_id=user_id,
        user_name=name,
        role=role,
        is_connected=connected,
        sessions=(1 if connected else 0) if sessions is None else sessions,
        buffering=buffering,
        latency_ms=None,
        ready=ready,
    )


ME = member("u-me", "alice")
BOB = member("u-bob", "Bob", role="owner")
CAROL_AWAY = member("u-carol", "Carol", connected=False)


def playback(
    state: str = "paused",
    position: float = 10.0,
    anchor: float = 99.0,
    *,
    version: int = 5,
    set_by: str | None = "Bob",
    item_id: str | None = "i1",
) -> protocol.PlaybackWire:
    return protocol.PlaybackWire(
        state=state,  # type: ignore[arg-type]
        position=position,
        rate=1.0,
        anchor=anchor,
        version=version,
        set_by=set_by,
        item_id=item_id,
    )


PAUSED = playback()
PLAYING = playback("playing")  # at t: 10 + (t - 99)


def item(item_id: str, title: str | None, duration: float | None) -> protocol.QueueItemInfo:
    return protocol.QueueItemInfo(
        id=item_id, content_type="url", content_id=f"https://media/{item_id}.mp4",
        title=title, duration=duration,
    )  # fmt: skip


ITEMS = [item("i1", "Film", 1440.0), item("i2", "Episode 2", 1500.0), item("i3", None, None)]


def queue(current: str | None = "i1") -> protocol.QueueInfo:
    return protocol.QueueInfo(
        room_id="r1", current_item_id=current, next_item_id=None, repeat="none", shuffle=False,
        items=list(ITEMS),
    )  # fmt: skip


def joined(
    pb: protocol.PlaybackWire = PAUSED,
    participants: tuple[protocol.Member, ...] = (BOB, CAROL_AWAY),
    *,
    you: protocol.Member = ME,
    q: protocol.QueueInfo | None = None,
) -> protocol.Joined:
    room = protocol.RoomInfo(
        id="r1", name="Movie night", owner_id="u-bob", content_type="url", content_id="x",
        is_public=True, has_password=False, max_participants=50,
        participant_count=len(participants) + 1,
        playback=protocol.RoomPlayback(
            state="paused", position=0.0, rate=1.0, version=1, updated_at=None
        ),
        playback_control="everyone", created_at="2025-01-01T00:00:00Z",
        updated_at="2025-01-01T00:00:00Z", ended_at=None,
    )  # fmt: skip
    sync = protocol.SyncSettings(
        heartbeat_interval=1.0, threshold_seconds=0.5, max_latency_ms=2000.0,
        ready_timeout_seconds=30.0, disconnect_timeout_seconds=30.0, max_rate_correction=0.05,
        control="everyone",
    )  # fmt: skip
    return protocol.Joined(
        session_id="s-me", server_time=NOW, room=room, playback=pb,
        participants=[you, *participants], chat=[], settings=sync, you=you,
        queue=queue() if q is None else q,
    )  # fmt: skip


def changed(
    pb: protocol.PlaybackWire, execute_at: float, reason: str = "play"
) -> protocol.PlaybackChanged:
    return protocol.PlaybackChanged(playback=pb, execute_at=execute_at, reason=reason)


def chat_out(user_id: str, name: str, text: str) -> protocol.ChatOut:
    return protocol.ChatOut(
        message=protocol.ChatEntry(
            id="m1", room_id="r1", user_id=user_id, user_name=name, message=text,
            created_at="2025-01-01T00:00:00Z",
        )
    )  # fmt: skip


# -- the client's side -----------------------------------------------------------------
def new_session(username: str = "alice", now: float = NOW) -> BridgeSession:
    return BridgeSession(
        username=username,
        room_name=ROOM,
        client_version="1.2.255",
        motd="Welcome!",
        limits=LIMITS,
        now=now,
    )


def report(
    session: BridgeSession,
    now: float,
    *,
    position: float | None = None,
    paused: bool = True,
    do_seek: bool = False,
    server: int | None = None,
    client: int | None = None,
    echo: float | None = None,
    stamp: float | None = None,
    client_rtt: float = 0.0,
) -> None:
    """A Syncplay client's State (``position=None``: no playstate, as while it waits)."""
    play = None if position is None else PlayState(position, paused, do_seek)
    session.heard(now)
    session.client_state(ClientState(play, echo, stamp, client_rtt, server, client), now)


def states(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The State bodies among ``lines``, each checked for what the real client reads
    unconditionally (``_handleStatePing`` needs ``latencyCalculation`` and, with a
    ``clientLatencyCalculation``, ``serverRtt``)."""
    found = [line["State"] for line in lines if "State" in line]
    for state in found:
        assert set(state["playstate"]) == {"position", "paused", "doSeek", "setBy"}
        assert "latencyCalculation" in state["ping"] and "serverRtt" in state["ping"]
    return found


def server_counter(state: dict[str, Any]) -> int | None:
    value: int | None = state.get("ignoringOnTheFly", {}).get("server")
    return value


def frames(session: BridgeSession) -> list[protocol.ClientMessage]:
    """The frames for the room, each checked to be a valid syncplayd client message."""
    taken = session.take_frames()
    for frame in taken:
        assert protocol.decode_client(msgspec.json.encode(frame)) == frame
    return taken


def joined_session(
    pb: protocol.PlaybackWire = PAUSED,
    *,
    rtt: float = 0.0,
    username: str = "alice",
    participants: tuple[protocol.Member, ...] = (BOB, CAROL_AWAY),
    you: protocol.Member = ME,
) -> BridgeSession:
    """Joined at NOW; the client answered the join's forced State (echoing its counter,
    where it was told, and ``rtt`` after it was sent), and everything was drained. With
    ``rtt``, the forward delay is then ``rtt / 2``."""
    session = new_session(username)
    session.room_message(joined(pb, participants, you=you), NOW)
    (state,) = states(session.take_lines())
    at = NOW + rtt
    play = state["playstate"]
    position = play["position"] + (0.0 if play["paused"] else rtt / 2)
    report(
        session, at, position=position, paused=play["paused"],
        server=server_counter(state), echo=state["ping"]["latencyCalculation"], client_rtt=rtt,
    )  # fmt: skip
    session.take_frames()
    assert session.take_lines() == []
    return session


# -- joining ---------------------------------------------------------------------------
def test_join_sends_what_syncplays_server_sends_in_its_order() -> None:
    session = new_session()
    before = session.joined
    session.room_message(joined(PAUSED, (BOB, CAROL_AWAY)), NOW)
    assert not before and session.joined
    lines = session.take_lines()
    files = ["Film", "Episode 2", ITEMS[2].content_id]  # a title, or the content
    assert lines[:3] == [
        {"Set": {"ready": {"username": "alice", "isReady": None, "manuallyInitiated": False}}},
        {"Set": {"playlistChange": {"user": None, "files": files}}},
        {"Set": {"playlistIndex": {"user": None, "index": 0}}},
    ]
    hello = lines[3]["Hello"]
    assert hello["username"] == "alice"
    assert hello["room"] == {"name": ROOM}
    assert hello["version"] == "1.2.255"  # the client's own, echoed
    assert hello["realversion"] == SERVER_VERSION
    assert hello["motd"] == "Welcome!"
    features = hello["features"]
    assert features["isolateRooms"] is True
    assert features["chat"] is True and features["readiness"] is True
    assert features["sharedPlaylists"] is True
    assert features["managedRooms"] is False
    assert features["maxChatMessageLength"] == CHAT_LIMIT
    assert features["maxUsernameLength"] == 16
    # Only the connected others: Carol is away.
    assert lines[4] == {
        "Set": {"user": {"Bob": {"room": {"name": ROOM}, "event": {"joined": True}}}}
    }
    assert len(lines) == 6
    (state,) = states(lines[5:])
    assert state["playstate"] == {"position": 10.0, "paused": True, "doSeek": True, "setBy": "Bob"}
    assert state["ignoringOnTheFly"] == {"server": 1}
    assert state["ping"]["latencyCalculation"] == NOW
    assert frames(session) == []


def test_join_into_a_playing_room_gives_the_position_now() -> None:
    session = new_session()
    session.room_message(joined(PLAYING), NOW)
    (state,) = states(session.take_lines())
    assert state["playstate"]["paused"] is False
    assert state["playstate"]["position"] == pytest.approx(11.0)
    assert state["playstate"]["doSeek"] is True


def test_join_without_a_current_item_has_no_index() -> None:
    session = new_session()
    session.room_message(joined(PAUSED, q=queue(current=None)), NOW)
    lines = session.take_lines()
    assert lines[2] == {"Set": {"playlistIndex": {"user": None, "index": None}}}


def test_nothing_is_sent_before_the_join() -> None:
    session = new_session()
    report(session, NOW, position=3.0, paused=False)
    session.tick(NOW + 5)
    assert session.take_lines() == []
    assert frames(session) == []


# -- ignoringOnTheFly ------------------------------------------------------------------
def test_reports_are_ignored_until_the_server_counter_is_echoed() -> None:
    session = new_session()
    session.room_message(joined(PAUSED), NOW)
    session.take_lines()
    # A stale report, sent before the client read the forced state: not a play.
    report(session, NOW + 0.05, position=3.0, paused=False)
    report(session, NOW + 0.06, position=3.0, paused=False, do_seek=True)
    assert frames(session) == []
    # The echo releases it, and that very State counts (Syncplay's handleState).
    report(session, NOW + 0.1, position=10.0, paused=True, server=1)
    assert [type(f) for f in frames(session)] == [protocol.Heartbeat]
    report(session, NOW + 0.2, position=10.0, paused=False)
    assert frames(session) == [protocol.Play(position=10.0)]


def test_a_stale_echo_does_not_release() -> None:
    session = new_session()
    session.room_message(joined(PAUSED), NOW)
    session.room_message(protocol.ErrorOut(code="not-allowed", message="no"), NOW + 0.05)
    (_, second) = states(session.take_lines())
    assert server_counter(second) == 2
    report(session, NOW + 0.1, position=10.0, paused=False, server=1)
    assert frames(session) == []
    report(session, NOW + 0.2, position=10.0, paused=False, server=2)
    assert frames(session) == [protocol.Play(position=10.0)]


def test_regular_states_wait_for_the_echo_but_forced_ones_do_not() -> None:
    session = new_session()
    session.room_message(joined(PAUSED), NOW)
    session.take_lines()
    session.tick(NOW + 1)
    session.tick(NOW + 2)
    assert session.take_lines() == []  # Syncplay: "if serverIgnoringOnTheFly == 0 or forced"
    session.room_message(protocol.SyncCommand(playback=PAUSED, offset=1.0), NOW + 2.5)
    (forced,) = states(session.take_lines())
    assert server_counter(forced) == 2
    report(session, NOW + 2.6, position=10.0, paused=True, server=2)
    session.tick(NOW + 3.5)
    (regular,) = states(session.take_lines())
    assert "ignoringOnTheFly" not in regular
    assert regular["playstate"]["doSeek"] is False


def test_a_client_counter_is_echoed_once() -> None:
    session = joined_session(PLAYING)
    report(session, NOW + 0.5, position=11.5, paused=False, client=3)
    session.tick(NOW + 1)
    (first,) = states(session.take_lines())
    assert first["ignoringOnTheFly"] == {"client": 3}
    session.tick(NOW + 2)
    (second,) = states(session.take_lines())
    assert "ignoringOnTheFly" not in second


def test_a_client_counter_goes_out_with_a_forced_state_too() -> None:
    session = joined_session(PAUSED)
    # The unpause State of the real client carries its fresh counter.
    report(session, NOW + 0.5, position=10.0, paused=False, client=1)
    (held,) = states(session.take_lines())
    assert held["ignoringOnTheFly"] == {"server": 1, "client": 1}


# -- the client's changes --------------------------------------------------------------
def test_a_client_pause_pauses_the_room_where_it_paused() -> None:
    session = joined_session(PLAYING, rtt=0.2)
    report(session, NOW + 0.5, position=11.4, paused=True)
    # Paused: the position is where the player stands, no forward delay.
    assert frames(session) == [protocol.Pause(position=11.4)]
    assert session.take_lines() == []


def test_a_client_unpause_plays_the_room_and_holds_the_player() -> None:
    session = joined_session(PAUSED, rtt=0.1)
    report(session, NOW + 0.5, position=10.0, paused=False)
    assert frames(session) == [protocol.Play(position=10.0)]
    (held,) = states(session.take_lines())
    # Paused again at once: the room starts a lead time later, with everyone.
    assert held["playstate"] == {
        "position": 10.0,
        "paused": True,
        "doSeek": False,
        "setBy": "alice",
    }
    assert server_counter(held) == 1
    # The room's play arrives; the client is told to play at its instant, not before.
    report(session, NOW + 0.52, position=10.0, paused=True, server=1)
    session.room_message(
        changed(playback("playing", 10.0, NOW + 0.8, version=6, set_by="alice"), NOW + 0.8),
        NOW + 0.55,
    )
    assert session.take_lines() == []
    assert session.next_wake() == pytest.approx(NOW + 0.75)
    session.tick(NOW + 0.75)
    (play,) = states(session.take_lines())
    assert play["playstate"]["paused"] is False
    assert play["playstate"]["setBy"] == "alice"
    assert play["playstate"]["doSeek"] is False
    assert play["playstate"]["position"] == pytest.approx(10.0 - 0.05)


@pytest.mark.parametrize(("paused", "expected"), [(False, 40.1), (True, 40.0)])
def test_a_client_seek_seeks_the_room(paused: bool, expected: float) -> None:
    pb = PAUSED if paused else PLAYING
    session = joined_session(pb, rtt=0.2)
    report(session, NOW + 0.5, position=40.0, paused=paused, do_seek=True)
    assert frames(session) == [protocol.Seek(position=pytest.approx(expected))]  # type: ignore[arg-type]
    assert session.take_lines() == []


def test_plain_reports_are_heartbeats_at_most_once_a_second() -> None:
    session = joined_session(PLAYING, rtt=0.2)  # a heartbeat at NOW + 0.2
    report(session, NOW + 1.0, position=12.0, paused=False)
    assert frames(session) == []  # 0.8 s after the last
    report(session, NOW + 1.2, position=12.2, paused=False)
    (beat,) = frames(session)
    assert beat == protocol.Heartbeat(
        position=pytest.approx(12.3),  # type: ignore[arg-type]
        server_time=NOW + 1.2,
        version=5,
        playing=True,
        rtt=pytest.approx(0.2),  # type: ignore[arg-type]
    )
    report(session, NOW + 1.2 + HEARTBEAT_INTERVAL / 2, position=12.7, paused=False)
    assert frames(session) == []
    report(session, NOW + 1.2 + HEARTBEAT_INTERVAL, position=13.2, paused=False)
    (beat,) = frames(session)
    assert isinstance(beat, protocol.Heartbeat)
    assert beat.server_time == NOW + 1.2 + HEARTBEAT_INTERVAL


def test_a_paused_heartbeat_has_no_rtt_before_a_ping() -> None:
    session = new_session()
    session.room_message(joined(PAUSED), NOW)
    report(session, NOW + 0.1, position=10.0, paused=True, server=1)
    (beat,) = frames(session)
    assert beat == protocol.Heartbeat(
        position=10.0, server_time=NOW + 0.1, version=5, playing=False, rtt=None
    )


def test_a_ping_only_state_changes_nothing() -> None:
    session = joined_session(PLAYING)
    report(session, NOW + 2, position=None)
    assert frames(session) == []
    assert session.take_lines() == []


def test_a_client_with_nothing_to_report_keeps_the_member_alive() -> None:
    # No file loaded: States carry no playstate; the room would drop the member after
    # its disconnect timeout without a heartbeat now and then. They say "in step".
    session = joined_session(PLAYING)
    sent = []
    for second in range(1, 12):
        report(session, NOW + second, position=None)
        sent += [(second, frame) for frame in frames(session)]
    assert [second for second, _ in sent] == [5, 10]
    for second, frame in sent:
        assert isinstance(frame, protocol.Heartbeat)
        assert frame.position == pytest.approx(position_at(PLAYING, NOW + second))
        assert frame.server_time == NOW + second and frame.playing
    assert session.take_lines() == []


# -- the room's changes ----------------------------------------------------------------
def test_a_room_play_is_sent_at_its_instant_less_the_forward_delay() -> None:
    session = joined_session(PAUSED, rtt=0.1)  # forward delay 0.05
    session.tick(NOW + 1)
    session.take_lines()
    session.room_message(
        changed(playback("playing", 10.0, NOW + 1.5, version=6), NOW + 1.5), NOW + 1.2
    )
    assert session.take_lines() == []
    assert session.next_wake() == pytest.approx(NOW + 1.45)
    session.tick(NOW + 1.44)
    assert session.take_lines() == []
    session.tick(NOW + 1.45)
    (state,) = states(session.take_lines())
    # The client adds its forward delay to a playing position: 10.0 when it arrives.
    assert state["playstate"] == {
        "position": pytest.approx(9.95), "paused": False, "doSeek": False, "setBy": "Bob",
    }  # fmt: skip
    assert server_counter(state) == 1
    assert session.next_wake() == pytest.approx(NOW + 2.45)


def test_a_room_change_already_due_is_sent_at_once() -> None:
    session = joined_session(PAUSED)
    session.room_message(changed(playback("playing", 10.0, NOW), NOW, "play"), NOW + 0.5)
    (state,) = states(session.take_lines())
    assert state["playstate"]["paused"] is False


def test_a_room_seek_is_a_do_seek() -> None:
    session = joined_session(PLAYING)
    session.room_message(
        changed(playback("playing", 50.0, NOW + 0.8, version=6), NOW + 0.8, "seek"), NOW + 0.5
    )
    session.tick(NOW + 0.8)
    (state,) = states(session.take_lines())
    assert state["playstate"] == {"position": 50.0, "paused": False, "doSeek": True, "setBy": "Bob"}


def test_a_room_pause_far_from_the_player_is_a_do_seek() -> None:
    session = joined_session(PLAYING)
    report(session, NOW + 1, position=5.0, paused=False)  # far behind the room's 12.0
    session.room_message(
        changed(playback("paused", 12.3, NOW + 1.3, version=6), NOW + 1.3, "pause"), NOW + 1.1
    )
    session.tick(NOW + 1.3)
    (state,) = states(session.take_lines())
    assert state["playstate"]["paused"] is True
    assert state["playstate"]["doSeek"] is True


def test_a_scheduled_start_is_a_pause_until_its_anchor() -> None:
    session = joined_session(playback("playing", 10.0, NOW + 3))
    for t in (1, 2):
        session.tick(NOW + t)
        (state,) = states(session.take_lines())
        assert state["playstate"]["paused"] is True
        assert state["playstate"]["position"] == 10.0
    session.tick(NOW + 3)
    (state,) = states(session.take_lines())
    assert state["playstate"]["paused"] is False


def test_a_start_once_sent_stays_a_start_when_the_forward_delay_shrinks() -> None:
    # The start went out a forward delay (0.05) before its anchor; then a short round trip
    # shrinks the delay, and a refusal puts the player back before the anchor: it must
    # say "playing", not "paused" (the desktop would stand still for a second).
    session = joined_session(PAUSED, rtt=0.1)
    session.room_message(
        changed(playback("playing", 10.0, NOW + 1.5, version=6), NOW + 1.5), NOW + 1.2
    )
    session.tick(NOW + 1.45)
    (start,) = states(session.take_lines())
    assert start["playstate"]["paused"] is False
    report(
        session, NOW + 1.46, server=server_counter(start),
        echo=start["ping"]["latencyCalculation"] + 0.009, client_rtt=0.001,
    )  # fmt: skip
    assert session.forward_delay < 0.01
    session.room_message(protocol.ErrorOut(code="not-allowed", message="no"), NOW + 1.47)
    (put_back,) = states(session.take_lines())
    assert put_back["playstate"]["paused"] is False
    assert put_back["playstate"]["doSeek"] is True


def test_set_by_is_the_members_syncplay_name() -> None:
    # The desktop's user is "bob" too: the room's Bob is "Bob_" to it.
    session = joined_session(PAUSED, username="bob", you=member("u-me", "bob"))
    session.room_message(
        changed(playback("playing", 10.0, NOW + 0.5, version=6, set_by="Bob"), NOW + 0.5),
        NOW + 0.2,
    )
    session.tick(NOW + 0.5)
    (state,) = states(session.take_lines())
    assert state["playstate"]["setBy"] == "Bob_"


def test_the_clients_own_seek_is_corrected_with_no_set_by() -> None:
    # A Syncplay client ignores a seek "by itself" (_serverSeeked): the room's seek,
    # made at the room's instant, must reach its player all the same.
    session = joined_session(PLAYING, you=member("u-me", "Alice A."))
    report(session, NOW + 0.5, position=40.0, paused=False, do_seek=True)
    assert frames(session) == [protocol.Seek(position=40.0)]
    mine = playback("playing", 40.0, NOW + 0.8, version=6, set_by="Alice A.")
    session.room_message(changed(mine, NOW + 0.8, "seek"), NOW + 0.55)
    session.tick(NOW + 0.8)
    (state,) = states(session.take_lines())
    assert state["playstate"]["doSeek"] is True
    assert state["playstate"]["setBy"] is None


def test_the_clients_own_pause_is_confirmed_at_once_as_its_own() -> None:
    session = joined_session(PLAYING, you=member("u-me", "Alice A."))
    report(session, NOW + 0.5, position=11.5, paused=True)
    mine = playback("paused", 11.5, NOW + 0.8, version=6, set_by="Alice A.")
    session.room_message(changed(mine, NOW + 0.8, "pause"), NOW + 0.51)
    (state,) = states(session.take_lines())
    assert state["playstate"] == {
        "position": 11.5,
        "paused": True,
        "doSeek": False,
        "setBy": "alice",
    }


def test_a_sync_command_is_a_forced_do_seek() -> None:
    session = joined_session(PLAYING)
    moved = playback("playing", 30.0, NOW + 1, version=6)
    session.room_message(protocol.SyncCommand(playback=moved, offset=-2.0), NOW + 1)
    (state,) = states(session.take_lines())
    assert state["playstate"]["doSeek"] is True
    assert state["playstate"]["position"] == 30.0
    assert server_counter(state) == 1


@pytest.mark.parametrize(
    ("new", "reason"),
    [
        (playback("playing", 50.0, NOW + 2.3, version=6), "seek"),
        (playback("paused", 13.3, NOW + 2.3, version=6), "pause"),
    ],
)
def test_a_pending_change_is_not_revealed_by_a_regular_state(
    new: protocol.PlaybackWire, reason: str
) -> None:
    # The desktop keeps playing until the change's instant: a regular State in between
    # must not tell it to pause (a real client pauses and shows "Bob paused" on it).
    session = joined_session(PLAYING)
    session.tick(NOW + 1)
    session.take_lines()
    session.room_message(changed(new, NOW + 2.3, reason), NOW + 1.9)
    session.tick(NOW + 2)  # the regular State is due, the change is not
    for state in states(session.take_lines()):
        assert state["playstate"]["paused"] is False
        assert state["playstate"]["position"] == pytest.approx(13.0)
    session.tick(NOW + 2.3)
    (applied,) = states(session.take_lines())
    assert applied["playstate"]["position"] == pytest.approx(new.position)


def test_a_report_during_a_pending_change_is_judged_against_the_old_playback() -> None:
    # The desktop is still on version 5 until the change's instant: a heartbeat saying
    # version 6 makes the room compare its position with the seek's target and send a
    # ``sync`` (a forced seek, before everyone else's).
    session = joined_session(PLAYING)
    session.room_message(
        changed(playback("playing", 50.0, NOW + 2.3, version=6), NOW + 2.3, "seek"), NOW + 1.9
    )
    report(session, NOW + 2.0, position=13.0, paused=False)
    for frame in frames(session):
        assert isinstance(frame, protocol.Heartbeat)
        assert frame.version == 5


# -- drift -----------------------------------------------------------------------------
def _room_at(t: float) -> float:
    return 10.0 + (t - 99.0)  # PLAYING


def _do_seeks(session: BridgeSession) -> list[dict[str, Any]]:
    return [s for s in states(session.take_lines()) if s["playstate"]["doSeek"]]


def test_two_reports_off_the_room_put_the_player_back_once() -> None:
    session = joined_session(PLAYING)
    off = DRIFT_TOLERANCE + 0.3
    report(session, NOW + 1, position=_room_at(NOW + 1) + off, paused=False)
    assert _do_seeks(session) == []
    report(session, NOW + 2, position=_room_at(NOW + 2) + off, paused=False)
    (fix,) = _do_seeks(session)
    assert fix["playstate"]["position"] == pytest.approx(_room_at(NOW + 2))
    assert fix["playstate"]["paused"] is False
    counter = server_counter(fix)
    assert counter == 1
    # Echoed, still off, but within the cooldown: no second seek.
    report(session, NOW + 2.1, position=_room_at(NOW + 2.1) + off, paused=False, server=counter)
    for t in (3.0, 4.0, 4.9):
        report(session, NOW + t, position=_room_at(NOW + t) + off, paused=False)
        assert _do_seeks(session) == [], t
    t = 2 + DRIFT_COOLDOWN + 0.5
    report(session, NOW + t, position=_room_at(NOW + t) + off, paused=False)
    assert len(_do_seeks(session)) == 1


def test_a_report_within_tolerance_resets_the_count() -> None:
    session = joined_session(PLAYING)
    off, near = DRIFT_TOLERANCE + 0.3, DRIFT_TOLERANCE / 2
    for t, delta in ((1, off), (2, near), (3, off)):
        report(session, NOW + t, position=_room_at(NOW + t) + delta, paused=False)
    assert _do_seeks(session) == []
    report(session, NOW + 4, position=_room_at(NOW + 4) - off, paused=False)  # behind counts too
    assert len(_do_seeks(session)) == 1


def test_a_paused_room_is_not_corrected() -> None:
    session = joined_session(PAUSED)
    for t in (1, 2, 3):
        report(session, NOW + t, position=25.0, paused=True)
    assert _do_seeks(session) == []


def test_the_forward_delay_counts_in_the_drift() -> None:
    session = joined_session(PLAYING, rtt=0.4)  # forward delay 0.2 (> the tolerance)
    for t in (1, 2, 3):
        # Reports a message age old: exactly the room's once the delay is added.
        report(session, NOW + t, position=_room_at(NOW + t) - 0.2, paused=False)
    assert _do_seeks(session) == []


# -- ping ------------------------------------------------------------------------------
def test_the_forward_delay_is_half_the_smallest_recent_round_trip() -> None:
    # Not Syncplay's moving average (see BridgeSession._ping): the client's own work
    # before it answers inflates round trips, the smallest of the last few is the network.
    session = new_session()
    session.room_message(joined(PAUSED), NOW)
    session.take_lines()
    # The client's own round trip (an asymmetry, to Syncplay) does not count.
    report(session, NOW + 0.3, position=10.0, server=1, echo=NOW, client_rtt=0.01)
    assert session.forward_delay == pytest.approx(0.15)
    (beat,) = frames(session)
    assert isinstance(beat, protocol.Heartbeat)
    assert beat.rtt == pytest.approx(0.3)
    session.tick(NOW + 1)
    (state,) = states(session.take_lines())
    assert state["ping"]["serverRtt"] == pytest.approx(0.3)  # the last round trip
    assert state["ping"]["latencyCalculation"] == NOW + 1
    report(session, NOW + 1.1, echo=NOW + 1, client_rtt=0.5)
    assert session.forward_delay == pytest.approx(0.05)
    t = NOW + 2.0
    for _ in range(RTT_SAMPLES - 2):  # larger ones: the 0.1 s stays the smallest
        report(session, t + 0.25, echo=t, client_rtt=0.25)
        t += 1
    assert session.forward_delay == pytest.approx(0.05)
    session.tick(t)
    (state,) = states(session.take_lines())
    assert state["ping"]["serverRtt"] == pytest.approx(0.25)
    # Reports without a playstate kept the member alive (KEEPALIVE_INTERVAL).
    assert all(isinstance(frame, protocol.Heartbeat) for frame in frames(session))
    report(session, t + 0.25, position=10.0, echo=t, client_rtt=0.25)
    (beat,) = frames(session)
    assert isinstance(beat, protocol.Heartbeat)
    assert beat.rtt == pytest.approx(0.1)
    # One more and the 0.1 s is RTT_SAMPLES round trips old: gone.
    report(session, t + 1.25, echo=t + 1, client_rtt=0.25)
    assert session.forward_delay == pytest.approx(0.125)


def test_a_negative_round_trip_is_ignored() -> None:
    session = joined_session(PAUSED, rtt=0.2)
    report(session, NOW + 1, echo=NOW + 5)  # a stamp from the future
    assert session.forward_delay == pytest.approx(0.1)


def test_the_clients_stamp_is_echoed_once_with_the_time_held() -> None:
    session = joined_session(PAUSED)
    report(session, NOW + 0.4, position=10.0, stamp=5000.0)
    session.tick(NOW + 1)
    (state,) = states(session.take_lines())
    assert state["ping"]["clientLatencyCalculation"] == pytest.approx(5000.6)
    session.tick(NOW + 2)
    (state,) = states(session.take_lines())
    assert "clientLatencyCalculation" not in state["ping"]


def test_pings_count_while_reports_are_ignored() -> None:
    # As Syncplay's server: the ping fields are read before the ignoring check.
    session = new_session()
    session.room_message(joined(PAUSED), NOW)
    report(session, NOW + 0.2, position=10.0, echo=NOW, client_rtt=0.2)
    assert frames(session) == []
    assert session.forward_delay == pytest.approx(0.1)


# -- presence --------------------------------------------------------------------------
def _user(name: str, event: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"room": {"name": ROOM}}
    if event is not None:
        body["event"] = {event: True}
    return {"Set": {"user": {name: body}}}


def test_others_joining_and_leaving() -> None:
    session = joined_session()
    dan = member("u-dan", "Dan")
    session.room_message(protocol.Presence(event="joined", member=dan), NOW + 1)
    # ``left`` carries the member as the room has it after: no session left.
    gone = member("u-dan", "Dan", connected=False)
    session.room_message(protocol.Presence(event="left", member=gone), NOW + 2)
    assert session.take_lines() == [_user("Dan", "joined"), _user("Dan", "left")]


def test_a_reconnect_of_an_unknown_member_is_a_join() -> None:
    session = joined_session()
    dan = member("u-dan", "Dan")
    session.room_message(protocol.Presence(event="reconnected", member=dan), NOW + 1)
    assert session.take_lines() == [_user("Dan", "joined")]


def test_a_second_device_of_a_known_member_is_no_join() -> None:
    session = joined_session()
    bob_twice = member("u-bob", "Bob", role="owner", sessions=2)
    session.room_message(protocol.Presence(event="reconnected", member=bob_twice), NOW + 1)
    assert session.take_lines() == []


def test_a_member_away_at_the_join_who_comes_back_is_announced() -> None:
    # Carol was not announced (not connected when the client joined): her return is
    # the first the Syncplay client hears of her.
    session = joined_session()
    carol = member("u-carol", "Carol")
    session.room_message(protocol.Presence(event="reconnected", member=carol), NOW + 1)
    assert _user("Carol", "joined") in session.take_lines()


def test_one_device_leaving_is_not_the_member_leaving() -> None:
    # Bob had two sessions; one left, he is still in the room (``left`` carries the
    # member as it is after, still connected).
    session = joined_session()
    bob_once = member("u-bob", "Bob", role="owner", sessions=1)
    session.room_message(protocol.Presence(event="left", member=bob_once), NOW + 1)
    assert _user("Bob", "left") not in session.take_lines()
    session.client_list()
    (listing,) = session.take_lines()
    assert "Bob" in listing["List"][ROOM]


def test_presence_about_oneself_sends_nothing() -> None:
    session = joined_session()
    session.room_message(
        protocol.Presence(event="buffering", member=member("u-me", "alice", buffering=True)),
        NOW + 1,
    )
    assert session.take_lines() == []


def test_names_that_collide_with_the_clients_get_an_underscore() -> None:
    session = joined_session()
    for n, name in enumerate(("ALICE", "alice_", "Alice")):
        session.room_message(
            protocol.Presence(event="joined", member=member(f"u-{n}", name)), NOW + 1
        )
    assert session.take_lines() == [
        _user("ALICE_", "joined"),
        _user("alice__", "joined"),
        _user("Alice___", "joined"),
    ]
    # The same names in chat and in List.
    session.room_message(chat_out("u-0", "ALICE", "hi"), NOW + 2)
    session.room_message(chat_out("u-me", "alice", "me"), NOW + 2)
    assert session.take_lines() == [
        {"Chat": {"username": "ALICE_", "message": "hi"}},
        {"Chat": {"username": "alice", "message": "me"}},
    ]
    session.client_list()
    (listing,) = session.take_lines()
    assert set(listing["List"][ROOM]) == {"alice", "Bob", "ALICE_", "alice__", "Alice___"}


def test_a_name_is_free_again_once_its_member_left() -> None:
    session = joined_session()
    first = member("u-1", "Alice", connected=False)
    session.room_message(protocol.Presence(event="joined", member=first), NOW + 1)
    session.room_message(protocol.Presence(event="left", member=first), NOW + 2)
    session.room_message(protocol.Presence(event="joined", member=member("u-2", "Alice")), NOW + 3)
    assert session.take_lines() == [
        _user("Alice_", "joined"),
        _user("Alice_", "left"),
        _user("Alice_", "joined"),
    ]


@pytest.mark.parametrize(
    ("event", "changes", "ready", "manual"),
    [
        ("buffering", {"buffering": True}, False, False),
        ("readiness", {"ready": True, "buffering": True}, True, True),
        ("ready", {}, True, False),
    ],
)
def test_readiness_changes_are_set_ready(
    event: str, changes: dict[str, Any], ready: bool, manual: bool
) -> None:
    session = joined_session(participants=(member("u-bob", "Bob", buffering=event == "ready"),))
    bob = member("u-bob", "Bob", **changes)
    session.room_message(protocol.Presence(event=event, member=bob), NOW + 1)  # type: ignore[arg-type]
    assert session.take_lines() == [
        {"Set": {"ready": {"username": "Bob", "isReady": ready, "manuallyInitiated": manual}}}
    ]


def test_other_presence_without_a_readiness_change_sends_nothing() -> None:
    session = joined_session()
    session.room_message(protocol.Presence(event="latency", member=BOB), NOW + 1)
    session.room_message(protocol.Presence(event="role", member=BOB), NOW + 1)
    assert session.take_lines() == []


def test_a_presence_batch_is_handled_event_by_event() -> None:
    session = joined_session()
    dan, eve = member("u-dan", "Dan"), member("u-eve", "Eve")
    batch = protocol.PresenceBatch(
        events=[
            protocol.Presence(event="joined", member=dan),
            protocol.Presence(event="joined", member=eve),
            protocol.Presence(event="buffering", member=member("u-dan", "Dan", buffering=True)),
            protocol.Presence(event="left", member=member("u-eve", "Eve", connected=False)),
        ]
    )
    session.room_message(batch, NOW + 1)
    assert session.take_lines() == [
        _user("Dan", "joined"),
        _user("Eve", "joined"),
        {"Set": {"ready": {"username": "Dan", "isReady": False, "manuallyInitiated": False}}},
        _user("Eve", "left"),
    ]


# -- chat ------------------------------------------------------------------------------
def test_room_chat_reaches_the_client() -> None:
    session = joined_session()
    session.room_message(chat_out("u-bob", "Bob", "popcorn?"), NOW + 1)
    # Someone no longer in the room: their name as stored.
    session.room_message(chat_out("u-gone", "Zed", "bye"), NOW + 1)
    assert session.take_lines() == [
        {"Chat": {"username": "Bob", "message": "popcorn?"}},
        {"Chat": {"username": "Zed", "message": "bye"}},
    ]


def test_client_chat_goes_to_the_room_cut_and_not_blank() -> None:
    session = joined_session()
    session.client_chat("  hello  ")
    session.client_chat("x" * (CHAT_LIMIT + 50))
    session.client_chat("   ")
    session.client_chat("")
    assert frames(session) == [
        protocol.Chat(message="hello"),
        protocol.Chat(message="x" * CHAT_LIMIT),
    ]


# -- errors and closing ----------------------------------------------------------------
def test_a_refused_change_is_a_notice_and_the_room_state() -> None:
    session = joined_session(PLAYING)
    report(session, NOW + 1, position=12.0, paused=True)
    assert frames(session) == [protocol.Pause(position=12.0)]
    session.room_message(
        protocol.ErrorOut(code="not-allowed", message="Only moderators control playback."),
        NOW + 1.01,
    )
    lines = session.take_lines()
    assert lines[0] == {
        "Chat": {"username": NOTICE_NAME, "message": "Only moderators control playback."}
    }
    (state,) = states(lines[1:])
    assert state["playstate"]["paused"] is False
    assert state["playstate"]["doSeek"] is True
    assert state["playstate"]["position"] == pytest.approx(_room_at(NOW + 1.01))
    assert server_counter(state) == 1


def test_other_errors_are_only_a_notice() -> None:
    session = joined_session()
    session.room_message(protocol.ErrorOut(code="muted", message="You are muted."), NOW + 1)
    assert session.take_lines() == [
        {"Chat": {"username": NOTICE_NAME, "message": "You are muted."}}
    ]


def test_closing_sets_drop() -> None:
    session = joined_session()
    session.room_message(protocol.Closing(reason="kicked", message="Kicked by Bob."), NOW + 1)
    assert session.drop == "Kicked by Bob."
    other = joined_session()
    other.room_message(protocol.Closing(reason="room-ended", message=""), NOW + 1)
    assert other.drop == "room-ended"


def test_a_silent_client_is_dropped() -> None:
    session = joined_session()  # last heard at NOW
    session.tick(NOW + SILENCE_TIMEOUT - 0.01)
    assert session.drop is None
    session.tick(NOW + SILENCE_TIMEOUT)
    assert session.drop is not None


def test_hearing_the_client_keeps_it() -> None:
    session = joined_session()
    session.heard(NOW + 10)
    session.tick(NOW + SILENCE_TIMEOUT + 1)
    assert session.drop is None
    session.tick(NOW + 10 + SILENCE_TIMEOUT)
    assert session.drop is not None


# -- Set -------------------------------------------------------------------------------
def test_a_file_is_shown_as_the_clients_and_checked_against_the_item() -> None:
    session = joined_session()
    near, far = 1440.0 + DIFFERENT_DURATION - 0.1, 1440.0 + DIFFERENT_DURATION + 0.1
    session.client_set(FileInfo("film.mkv", near, 123), NOW + 1)
    assert session.take_lines() == [
        {
            "Set": {
                "user": {
                    "alice": {
                        "room": {"name": ROOM},
                        "file": {"name": "film.mkv", "duration": near, "size": 123},
                    }
                }
            }
        }
    ]
    session.client_set(FileInfo("other.mkv", far, None), NOW + 2)
    notice, own = session.take_lines()
    assert notice["Chat"]["username"] == NOTICE_NAME
    assert "other.mkv" in notice["Chat"]["message"] and "Film" in notice["Chat"]["message"]
    assert own["Set"]["user"]["alice"]["file"] == {"name": "other.mkv", "duration": far}


def test_a_file_without_a_duration_or_an_item_without_one_is_not_checked() -> None:
    session = joined_session()
    session.client_set(FileInfo("stream", None, None), NOW + 1)
    assert all("Chat" not in line for line in session.take_lines())
    session.room_message(protocol.QueueChanged(queue=queue("i3")), NOW + 2)
    session.client_set(FileInfo("x.mkv", 99.0, None), NOW + 3)
    assert all("Chat" not in line for line in session.take_lines())


def test_a_new_current_item_rechecks_the_file() -> None:
    session = joined_session()
    session.client_set(FileInfo("film.mkv", 1440.0, None), NOW + 1)
    session.take_lines()
    session.room_message(protocol.QueueChanged(queue=queue("i2")), NOW + 2)
    lines = session.take_lines()
    assert lines[1] == {"Set": {"playlistIndex": {"user": None, "index": 1}}}
    assert lines[2]["Chat"]["username"] == NOTICE_NAME


def test_changing_rooms_is_refused_and_the_room_restated() -> None:
    session = joined_session()
    session.client_set(SetRoom(name="elsewhere"), NOW + 1)
    notice, room = session.take_lines()
    assert notice["Chat"]["username"] == NOTICE_NAME
    assert room == {"Set": {"room": {"name": ROOM}}}
    session.client_set(SetRoom(name=ROOM), NOW + 2)
    assert session.take_lines() == [{"Set": {"room": {"name": ROOM}}}]


def test_controller_auth_fails() -> None:
    session = joined_session()
    session.client_set(
        SetOther(name="controllerAuth", body={"room": "+demo:4E46A09AA7E5", "password": "AB-1"}),
        NOW + 1,
    )
    notice, auth = session.take_lines()
    assert notice["Chat"]["username"] == NOTICE_NAME
    assert auth == {
        "Set": {"controllerAuth": {"user": "alice", "room": "+demo:4E46A09AA7E5", "success": False}}
    }
    session.client_set(SetOther(name="controllerAuth", body=None), NOW + 2)
    _, auth = session.take_lines()
    assert auth["Set"]["controllerAuth"]["room"] == ROOM


def test_other_sets_are_ignored() -> None:
    session = joined_session()
    session.client_set(SetOther(name="features", body={"chat": True}), NOW + 1)
    assert session.take_lines() == []
    assert frames(session) == []


def test_a_playlist_index_plays_that_item() -> None:
    session = joined_session()
    session.client_set(SetPlaylistIndex(index=2), NOW + 1)
    assert session.take_queue_plays() == ["i3"]
    for index in (0, 3, None):  # the current one, out of range, none
        session.client_set(SetPlaylistIndex(index=index), NOW + 1)
    assert session.take_queue_plays() == []


def test_a_desktop_playlist_is_not_the_rooms() -> None:
    session = joined_session()
    session.client_set(SetPlaylist(files=("a.mkv", "b.mkv")), NOW + 1)
    notice, files, index = session.take_lines()
    assert notice["Chat"]["username"] == NOTICE_NAME
    assert files["Set"]["playlistChange"]["files"] == ["Film", "Episode 2", ITEMS[2].content_id]
    assert index["Set"]["playlistIndex"]["index"] == 0
    # The room's own playlist sent back, or an empty one: nothing to say.
    session.client_set(SetPlaylist(files=("Film", "Episode 2", ITEMS[2].content_id)), NOW + 2)
    session.client_set(SetPlaylist(files=()), NOW + 2)
    assert session.take_lines() == []


def test_manual_readiness_is_the_rooms_readiness() -> None:
    session = joined_session()
    session.client_set(SetReady(is_ready=True, manually_initiated=True), NOW + 1)
    session.client_set(SetReady(is_ready=False, manually_initiated=True), NOW + 2)
    # Syncplay toggles readiness with every pause: not the user's choice.
    session.client_set(SetReady(is_ready=True, manually_initiated=False), NOW + 3)
    session.client_set(SetReady(is_ready=None, manually_initiated=True), NOW + 4)
    assert frames(session) == [protocol.Readiness(ready=True), protocol.Readiness(ready=False)]


# -- List ------------------------------------------------------------------------------
def test_list_shows_this_room_with_the_clients_file() -> None:
    session = joined_session(
        participants=(BOB, CAROL_AWAY, member("u-dan", "Dan", role="moderator", buffering=True))
    )
    session.client_set(FileInfo("film.mkv", 1440.0, 7), NOW + 1)
    session.take_lines()
    session.client_list()
    (line,) = session.take_lines()
    assert list(line["List"]) == [ROOM]
    users = line["List"][ROOM]
    assert set(users) == {"alice", "Bob", "Dan"}  # Carol is away
    assert users["alice"]["file"] == {"name": "film.mkv", "duration": 1440.0, "size": 7}
    assert users["alice"]["isReady"] is True
    assert users["Bob"]["file"] == {}
    assert users["Bob"]["controller"] is True and users["Bob"]["isReady"] is True
    assert users["Dan"]["controller"] is True
    assert users["Dan"]["isReady"] is False  # buffering
    for entry in users.values():
        assert entry["position"] == 0
        assert set(entry) == {"position", "file", "controller", "isReady", "features"}
