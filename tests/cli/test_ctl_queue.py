"""``syncplayctl rooms queue`` and the queue settings against a real daemon.

Every command runs on both transports (the ``via`` fixture, ``conftest.py``). The admin's
changes go through the same service as a member's: the public API reads the same queue,
the event log names the admin, and a member's socket hears each change at once.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

import pytest
import trio
from click.testing import CliRunner

from syncplayd.cli.admin_client import AdminClient
from syncplayd.cli.ctl import main
from syncplayd.identity import decode_token
from tests.cli.ctl_support import Daemon, ctl, failing, new_room
from tests.daemon_process import SECRET, new_user
from tests.e2e.raw import raw_client

API = "/api/v1/syncplay"
SOCKET_ADMIN_ID = str(UUID(int=0))


def _admin_id(daemon: Daemon, via: list[str]) -> str:
    """Who the admin API acts as on this transport: the socket's nil UUID, or the token's."""
    if via[1].startswith("unix:"):
        return SOCKET_ADMIN_ID
    return str(decode_token(daemon.admin_token_file.read_text().strip(), SECRET).user_id)


def _queue(runner: CliRunner, via: list[str], room_id: str) -> dict[str, Any]:
    queue: dict[str, Any] = ctl(runner, via, "rooms", "queue", room_id)
    return queue


def _contents(queue: dict[str, Any]) -> list[str]:
    return [item["content_id"] for item in queue["items"]]


def _current(queue: dict[str, Any]) -> str:
    (item,) = [i for i in queue["items"] if i["id"] == queue["current_item_id"]]
    content_id: str = item["content_id"]
    return content_id


def _human(runner: CliRunner, via: list[str], *args: str) -> str:
    result = runner.invoke(main, [*via, *args])
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    return result.stdout


def _room_with_items(runner: CliRunner, via: list[str], *content_ids: str) -> str:
    """A room whose queue is tt0133093 (new_room's content) followed by ``content_ids``."""
    room_id: str = new_room(runner, via)["id"]
    for content_id in content_ids:
        ctl(runner, via, "rooms", "queue", "add", room_id, content_id)
    return room_id


# -- reading ---------------------------------------------------------------------------------------
def test_a_new_room_has_a_one_item_queue(runner: CliRunner, via: list[str]) -> None:
    room = new_room(runner, via)
    queue = _queue(runner, via, room["id"])
    (item,) = queue["items"]
    assert queue == {
        "room_id": room["id"],
        "current_item_id": item["id"],
        "next_item_id": None,
        "repeat": "none",
        "shuffle": False,
        "items": [
            {
                "id": item["id"],
                "content_type": "movie",
                "content_id": "tt0133093",
                "title": None,
                "duration": None,
            }
        ],
    }
    assert room["current_item_id"] == item["id"]
    # `rooms queue show ROOM` is the long form; global options go before or after ROOM.
    assert ctl(runner, via, "rooms", "queue", "show", room["id"]) == queue
    answer = runner.invoke(main, ["rooms", "queue", room["id"], *via, "--json"])
    assert answer.exit_code == 0, answer.output

    text = _human(runner, via, "rooms", "queue", room["id"][:8])
    lines = text.splitlines()
    assert lines[0] == f"room {room['id']}: item 1 of 1, repeat none, shuffle off"
    assert lines[1].split() == ["#", "ITEM", "TITLE", "CONTENT", "DURATION"]
    assert lines[2].split() == ["▶", "1", item["id"][:8], "-", "movie", "tt0133093", "-"]


def test_the_public_api_reads_what_the_admin_changed(
    runner: CliRunner, via: list[str], daemon: Daemon
) -> None:
    owner = new_user("Owner")
    room_id = new_room(runner, via, owner=str(owner.user_id))["id"]
    admin_view = ctl(runner, via, "rooms", "queue", "add", room_id, "tt2", "--title", "Two")
    with daemon.process.client(owner) as http:
        seen = http.get(f"{API}/rooms/{room_id}/queue")
    assert seen.status_code == 200, seen.text
    assert seen.json() == admin_view


# -- changing it -----------------------------------------------------------------------------------
def test_add_at_the_end_and_next(runner: CliRunner, via: list[str], daemon: Daemon) -> None:
    room_id = new_room(runner, via)["id"]
    args = ["rooms", "queue", "add", room_id, "ep1", "--type", "episode", "--title", "Pilot"]
    queue = ctl(runner, via, *args, "--duration", "1500.5")
    assert queue["items"][1] | {"id": None} == {
        "id": None,
        "content_type": "episode",
        "content_id": "ep1",
        "title": "Pilot",
        "duration": 1500.5,
    }
    queue = ctl(runner, via, "rooms", "queue", "add", room_id, "tt9", "--next")
    assert _contents(queue) == ["tt0133093", "tt9", "ep1"]
    assert _current(queue) == "tt0133093"  # adding never changes what plays
    assert queue["items"][1]["content_type"] == "movie"  # --type's default

    text = _human(runner, via, "rooms", "queue", "add", room_id, "ep2", "--type", "episode")
    lines = text.splitlines()
    assert lines[0] == f"added episode ep2 to room {room_id}"
    assert lines[1] == f"room {room_id}: item 1 of 4, repeat none, shuffle off"
    last = lines[-1].split()  # not the current item: no marker
    assert (last[0], last[2:]) == ("4", ["-", "episode", "ep2", "-"])
    # The pilot's row: its title and its duration as people read it.
    assert "Pilot" in lines[5] and "25:00" in lines[5]

    events = [e for e in ctl(runner, via, "events", room_id)["items"] if e["type"] == "queue"]
    assert len(events) == 3
    assert {e["payload"]["by"] for e in events} == {_admin_id(daemon, via)}
    assert {e["payload"]["op"] for e in events} == {"add"}


def test_remove_move_and_clear(runner: CliRunner, via: list[str]) -> None:
    room_id = _room_with_items(runner, via, "b", "c", "d")
    queue = _queue(runner, via, room_id)
    ids = {item["content_id"]: item["id"] for item in queue["items"]}

    # ITEM by position, by id prefix and by whole id.
    queue = ctl(runner, via, "rooms", "queue", "move", room_id, "4", "1")
    assert _contents(queue) == ["d", "tt0133093", "b", "c"]
    queue = ctl(runner, via, "rooms", "queue", "move", room_id, ids["b"][:6], "9999")  # the end
    assert _contents(queue) == ["d", "tt0133093", "c", "b"]
    text = _human(runner, via, "rooms", "queue", "move", room_id, ids["c"], "1")
    assert text.splitlines()[0] == f"moved movie c to position 1 in room {room_id}"

    queue = ctl(runner, via, "rooms", "queue", "remove", room_id, "2")
    assert _contents(queue) == ["c", "tt0133093", "b"]
    text = _human(runner, via, "rooms", "queue", "remove", room_id, ids["b"][:5])
    assert text.splitlines()[0] == f"removed movie b from room {room_id}"
    assert _contents(_queue(runner, via, room_id)) == ["c", "tt0133093"]

    # Removing the current item makes the next one current.
    queue = ctl(runner, via, "rooms", "queue", "remove", room_id, ids["tt0133093"])
    assert (_contents(queue), _current(queue)) == (["c"], "c")
    room = ctl(runner, via, "rooms", "show", room_id)
    assert (room["current_item_id"], room["content_id"]) == (ids["c"], "c")

    for content_id in ("x", "y"):
        ctl(runner, via, "rooms", "queue", "add", room_id, content_id)
    queue = ctl(runner, via, "rooms", "queue", "clear", room_id)
    assert (_contents(queue), _current(queue)) == (["c"], "c")


def test_play_next_and_previous(runner: CliRunner, via: list[str]) -> None:
    room_id = _room_with_items(runner, via, "b", "c")

    queue = ctl(runner, via, "rooms", "queue", "play", room_id, "2")
    assert _current(queue) == "b"
    room = ctl(runner, via, "rooms", "show", room_id)
    assert room["content_id"] == "b"  # the room plays what the queue's current item is
    assert room["playback"]["position"] == 0

    assert _current(ctl(runner, via, "rooms", "queue", "next", room_id)) == "c"
    text = _human(runner, via, "rooms", "queue", "next", room_id)
    assert text.splitlines()[0] == (
        f"nothing after the current item (repeat none): room {room_id} stays on movie c"
    )
    assert _current(_queue(runner, via, room_id)) == "c"

    text = _human(runner, via, "rooms", "queue", "previous", room_id)
    assert text.splitlines()[0] == f"room {room_id} now plays movie b"
    assert _current(ctl(runner, via, "rooms", "queue", "previous", room_id)) == "tt0133093"
    assert _current(ctl(runner, via, "rooms", "queue", "previous", room_id)) == "tt0133093"

    # Repeat all wraps both ways.
    assert ctl(runner, via, "rooms", "queue", "repeat", room_id, "all")["repeat"] == "all"
    assert _current(ctl(runner, via, "rooms", "queue", "previous", room_id)) == "c"
    assert _current(ctl(runner, via, "rooms", "queue", "next", room_id)) == "tt0133093"


def test_a_stale_next_changes_nothing(daemon: Daemon) -> None:
    owner = new_user("Owner")
    with AdminClient(f"unix:{daemon.socket}") as client:
        created = client.create_room(
            owner_id=owner.user_id, owner_name="Owner", name="stale", content_type="movie",
            content_id="a",
        )  # fmt: skip
        room_id = UUID(created["id"])
        first = UUID(created["current_item_id"])
        client.queue_add(room_id, content_type="movie", content_id="b")
        client.queue_add(room_id, content_type="movie", content_id="c")
        # Two "next" sent for the same item, as two members pressing it at once: one step.
        after = client.queue_step(room_id, first, forward=True)
        again = client.queue_step(room_id, first, forward=True)
        assert again == after
        assert _current(again) == "b"
        assert _current(client.queue_step(room_id, first, forward=False)) == "b"


def test_repeat_and_shuffle(runner: CliRunner, via: list[str], daemon: Daemon) -> None:
    room_id = _room_with_items(runner, via, "b", "c", "d")
    order = _contents(_queue(runner, via, room_id))
    for mode in ("one", "all", "none"):
        queue = ctl(runner, via, "rooms", "queue", "repeat", room_id, mode)
        assert (queue["repeat"], queue["shuffle"]) == (mode, False)
    text = _human(runner, via, "rooms", "queue", "repeat", room_id, "all")
    assert text.splitlines()[:2] == [
        f"repeat is all in room {room_id}",
        f"room {room_id}: item 1 of 4, repeat all, shuffle off",
    ]

    queue = ctl(runner, via, "rooms", "queue", "shuffle", room_id, "on")
    assert (queue["repeat"], queue["shuffle"]) == ("all", True)
    assert _contents(queue) == order  # the queue's own order is kept for "off"
    # Shuffled, next still visits every item once before wrapping.
    seen = [_current(queue)]
    for _ in range(3):
        seen.append(_current(ctl(runner, via, "rooms", "queue", "next", room_id)))
    assert sorted(seen) == sorted(order)
    assert _current(ctl(runner, via, "rooms", "queue", "next", room_id)) == seen[0]
    text = _human(runner, via, "rooms", "queue", "shuffle", room_id, "off")
    assert text.splitlines()[0] == f"shuffle is off in room {room_id}"

    modes = [
        e["payload"]
        for e in ctl(runner, via, "events", room_id)["items"]
        if e["type"] == "queue" and e["payload"]["op"] == "mode"
    ]
    assert modes and {m["by"] for m in modes} == {_admin_id(daemon, via)}


# -- refusals --------------------------------------------------------------------------------------
def test_unknown_items_are_one_line(runner: CliRunner, via: list[str]) -> None:
    room_id = _room_with_items(runner, via, "b")
    line = failing(runner, [*via, "rooms", "queue", "remove", room_id, "3"])
    assert line == f"syncplayctl: there is no item 3: the queue of room {room_id} has 2"
    line = failing(runner, [*via, "rooms", "queue", "play", room_id, "ffff0000"])
    assert line == "syncplayctl: no queue item id starts with ffff0000"
    stranger = str(uuid4())
    line = failing(runner, [*via, "rooms", "queue", "move", room_id, stranger, "1"])
    assert line == f"syncplayctl: there is no item {stranger} in the queue of room {room_id}"
    assert len(_queue(runner, via, room_id)["items"]) == 2


@pytest.mark.parametrize(
    "args",
    [
        ["remove", "0"],  # positions start at 1
        ["remove", "ab"],  # neither a position nor a long enough prefix
        ["move", "1", "0"],
        ["repeat", "twice"],
        ["shuffle", "yes"],
        ["add", "x", "--duration", "0"],
        ["add", "x", "--duration", "-5"],
    ],
)
def test_usage_errors(runner: CliRunner, via: list[str], args: list[str]) -> None:
    room_id = new_room(runner, via)["id"]
    verb, *rest = args
    result = runner.invoke(main, [*via, "rooms", "queue", verb, room_id, *rest])
    assert result.exit_code == 2, result.output
    assert len(_queue(runner, via, room_id)["items"]) == 1


def test_a_mistyped_verb_is_not_taken_for_a_room(runner: CliRunner) -> None:
    result = runner.invoke(main, ["rooms", "queue", "nxt", "6f1c0a52"])
    assert result.exit_code == 2, result.output
    assert "No such command 'nxt'. Did you mean 'next'?" in result.stderr


def test_the_daemon_refusals_are_one_line(runner: CliRunner, via: list[str]) -> None:
    room_id = new_room(runner, via)["id"]
    line = failing(runner, [*via, "rooms", "queue", "add", room_id, "x", "--type", "a b"])
    assert line.startswith("syncplayctl: content_type: ") and line.endswith(
        "(422 validation-failed)"
    )
    line = failing(runner, [*via, "rooms", "queue", "add", room_id, "x", "--duration", "1e9"])
    assert line.startswith("syncplayctl: duration: ") and line.endswith("(422 validation-failed)")

    ctl(runner, via, "rooms", "end", room_id)
    line = failing(runner, [*via, "rooms", "queue", "add", room_id, "x"])
    assert line.endswith("(410 room-ended)")


def test_a_full_queue_is_refused(daemon: Daemon, runner: CliRunner) -> None:
    via = ["--url", f"unix:{daemon.socket}"]
    room_id = new_room(runner, via)["id"]
    with AdminClient(f"unix:{daemon.socket}") as client:
        for n in range(249):
            client.queue_add(UUID(room_id), content_type="movie", content_id=f"m{n}")
    line = failing(runner, [*via, "rooms", "queue", "add", room_id, "one-too-many"])
    assert line == "syncplayctl: a queue holds at most 250 items (409 queue-full)"
    assert len(_queue(runner, via, room_id)["items"]) == 250


# -- the room's settings ---------------------------------------------------------------------------
def test_slow_members_and_readiness_settings(runner: CliRunner, via: list[str]) -> None:
    room = new_room(runner, via)
    assert (room["wait_for_slow_members"], room["start_when_ready"]) == ("policy", False)
    args = ["rooms", "update", room["id"], "--wait-for-slow-members", "never"]
    updated = ctl(runner, via, *args, "--start-when-ready")
    assert (updated["wait_for_slow_members"], updated["start_when_ready"]) == ("never", True)

    shown = ctl(runner, via, "rooms", "show", room["id"])
    assert (shown["wait_for_slow_members"], shown["start_when_ready"]) == ("never", True)
    assert shown["queue"]["current_item_id"] == shown["current_item_id"]
    text = _human(runner, via, "rooms", "show", room["id"])
    assert (
        _field(text, "buffering") == "the room never waits: a member who buffers catches up alone"
    )
    assert _field(text, "start") == "when everyone is ready"
    assert _field(text, "queue") == "item 1 of 1, repeat none, shuffle off"
    assert _field(text, "current") == "movie tt0133093"

    updated = ctl(runner, via, "rooms", "update", room["id"], "--no-start-when-ready")
    assert (updated["wait_for_slow_members"], updated["start_when_ready"]) == ("never", False)
    result = runner.invoke(
        main, [*via, "rooms", "update", room["id"], "--wait-for-slow-members", "sometimes"]
    )
    assert result.exit_code == 2, result.output


def test_rooms_show_names_the_current_item(runner: CliRunner, via: list[str]) -> None:
    room_id = new_room(runner, via)["id"]
    args = ["rooms", "queue", "add", room_id, "ep7", "--type", "episode", "--title", "Finale"]
    ctl(runner, via, *args, "--duration", "3725")
    ctl(runner, via, "rooms", "queue", "next", room_id)
    text = _human(runner, via, "rooms", "show", room_id)
    assert _field(text, "queue") == "item 2 of 2, repeat none, shuffle off"
    assert _field(text, "current") == '"Finale" (episode ep7), 1:02:05'
    assert _field(text, "content") == "episode ep7"
    assert text.splitlines()[-1].startswith("live:")

    # An ended room still shows what it played last.
    ctl(runner, via, "rooms", "end", room_id)
    text = _human(runner, via, "rooms", "show", room_id)
    assert _field(text, "current") == '"Finale" (episode ep7), 1:02:05'


def test_a_room_created_with_a_title_and_a_duration(runner: CliRunner, via: list[str]) -> None:
    room = new_room(runner, via, title="The Matrix", duration="8160")
    (item,) = _queue(runner, via, room["id"])["items"]
    assert (item["title"], item["duration"]) == ("The Matrix", 8160)
    text = _human(runner, via, "rooms", "show", room["id"])
    assert _field(text, "current") == '"The Matrix" (movie tt0133093), 2:16:00'


def _field(text: str, name: str) -> str:
    (line,) = [line for line in text.splitlines() if line.startswith(f"{name}:")]
    return line.split(":", 1)[1].strip()


# -- live: the room's sockets hear the admin's changes ---------------------------------------------
async def test_queue_changes_reach_live_sockets(
    runner: CliRunner, via: list[str], daemon: Daemon
) -> None:
    owner = new_user("Owner")

    async def call(*args: str) -> Any:
        return await trio.to_thread.run_sync(lambda: ctl(runner, via, *args))

    room = await call(
        "rooms", "create", "--owner", str(owner.user_id), "--owner-name", "Owner",
        "--name", "live", "--content-type", "movie", "--content-id", "1",
    )  # fmt: skip
    room_id = room["id"]
    async with raw_client(daemon.process, owner, room_id) as watcher:
        assert watcher.joined is not None
        assert watcher.joined["queue"]["current_item_id"] == room["current_item_id"]

        added = await call("rooms", "queue", "add", room_id, "2", "--title", "Two")
        told = await watcher.expect("queue")
        assert told["queue"] == added

        moved_on = await call("rooms", "queue", "next", room_id)
        second = moved_on["current_item_id"]
        assert second != room["current_item_id"]
        assert (await watcher.expect("queue"))["queue"] == moved_on
        # The room loads the new item from its start.
        with trio.fail_after(10):
            while True:
                playback = (await watcher.expect("playback"))["playback"]
                if playback.get("item_id") == second:
                    break
        assert playback["position"] == 0


async def test_rooms_show_says_when_the_media_has_ended(
    runner: CliRunner, via: list[str], daemon: Daemon
) -> None:
    owner = new_user("Owner")

    async def show() -> str:
        return await trio.to_thread.run_sync(lambda: _human(runner, via, "rooms", "show", rid))

    room = await trio.to_thread.run_sync(
        lambda: new_room(runner, via, owner=str(owner.user_id), duration="1")
    )
    rid = room["id"]
    assert _field(await show(), "playback") == "paused at 0.0 s of 1.0 s, rate 1.0 (version 0)"
    async with raw_client(daemon.process, owner, rid) as watcher:
        await watcher.send({"type": "play"})
        with trio.fail_after(10):
            while not (await watcher.expect("playback"))["playback"].get("ended"):
                pass
        # The live room knows at once; the daemon writes the stored playback behind, in
        # another process: poll, bounded, until it is written.
        assert _field(await show(), "live") == "1 connections, ended at 1.0 s of 1.0 s"
        for _ in range(200):
            text = await show()
            if _field(text, "playback").startswith("ended"):
                break
            await trio.sleep(0.05)
    assert _field(text, "playback").startswith("ended at 1.0 s of 1.0 s (version ")
