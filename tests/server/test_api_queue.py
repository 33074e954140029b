"""A room's play queue over the public API, against a real daemon on SQLite and PostgreSQL.

Every answer is checked against api/openapi/syncplay.yaml by the Api client. Who may
do what, cell by cell, is tests/security/test_access_matrix.py; the rules under
concurrency with the repository's checkpoints, tests/service/test_queue.py; what live
sockets hear, the WebSocket tests.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from uuid import uuid4

import pytest

from syncplayd.core.queue import MAX_QUEUE_ITEMS
from tests.daemon_process import DaemonProcess, new_user
from tests.server.api_client import Api, api, uid

ROOM = "/rooms/{room_id}"
QUEUE = ROOM + "/queue"
ITEMS = QUEUE + "/items"
ITEM = ITEMS + "/{item_id}"
MOVE = ITEM + "/move"
PLAY = QUEUE + "/play"
NEXT = QUEUE + "/next"
PREVIOUS = QUEUE + "/previous"
MODE = QUEUE + "/mode"


def add(caller: Api, room_id: str, content_id: str, **fields: Any) -> dict[str, Any]:
    body = {"content_type": "episode", "content_id": content_id} | fields
    queue: dict[str, Any] = caller.call("POST", ITEMS, 201, json=body, room_id=room_id).json()
    return queue


def contents(queue: dict[str, Any]) -> list[str]:
    return [item["content_id"] for item in queue["items"]]


def playing(queue: dict[str, Any]) -> str | None:
    """The current item's content id."""
    for item in queue["items"]:
        if item["id"] == queue["current_item_id"]:
            content: str = item["content_id"]
            return content
    return None


def queue_events(daemon: DaemonProcess, room_id: str) -> list[dict[str, Any]]:
    """The room's ``queue`` event payloads, oldest first (through the admin API)."""
    admin = daemon.client(new_user("auditor", admin=True))
    response = admin.get(f"/api/v1/admin/rooms/{room_id}/events", params={"limit": 500})
    assert response.status_code == 200, response.text
    return [e["payload"] for e in reversed(response.json()["items"]) if e["type"] == "queue"]


def test_a_room_starts_with_its_content_as_the_queue(daemon: DaemonProcess) -> None:
    owner = api(daemon, "owner")
    room = owner.create_room(
        content_title="  The   Matrix ",
        content_duration=8160.5,
        wait_for_slow_members="never",
        start_when_ready=True,
    )
    assert (room["wait_for_slow_members"], room["start_when_ready"]) == ("never", True)
    queue = owner.call("GET", QUEUE, 200, room_id=room["id"]).json()
    assert queue == {
        "room_id": room["id"],
        "current_item_id": room["current_item_id"],
        "next_item_id": None,
        "repeat": "none",
        "shuffle": False,
        "items": [
            {
                "id": room["current_item_id"],
                "content_type": "movie",
                "content_id": "tt0133093",
                "title": "The Matrix",
                "duration": 8160.5,
            }
        ],
    }
    plain = owner.create_room()
    assert (plain["wait_for_slow_members"], plain["start_when_ready"]) == ("policy", False)
    (item,) = owner.call("GET", QUEUE, 200, room_id=plain["id"]).json()["items"]
    assert (item["title"], item["duration"]) == (None, None)


def test_a_film_night(daemon: DaemonProcess) -> None:
    """Queue, reorder, play, next and previous, remove, clear: the room plays the current item."""
    owner = api(daemon, "owner")
    room = owner.create_room(is_public=True, content_type="episode", content_id="e1")
    member = api(daemon, "member")
    member.call("POST", ROOM + "/join", 200, room_id=room["id"])
    rid = room["id"]
    add(member, rid, "e2", title="Two", duration=1440)
    add(member, rid, "e3")
    queue = add(owner, rid, "e1b", play_next=True)
    assert contents(queue) == ["e1", "e1b", "e2", "e3"] and playing(queue) == "e1"
    e1, e1b, e2, e3 = (item["id"] for item in queue["items"])
    assert queue["items"][2] | {"id": None} == {
        "id": None, "content_type": "episode", "content_id": "e2", "title": "Two",
        "duration": 1440,
    }  # fmt: skip
    queue = member.call("POST", MOVE, 200, json={"index": 99}, room_id=rid, item_id=e1b).json()
    assert contents(queue) == ["e1", "e2", "e3", "e1b"]
    queue = member.call("POST", NEXT, 200, json={"current_item_id": e1}, room_id=rid).json()
    assert playing(queue) == "e2"
    # The room plays the current item: its content is the room's.
    got = owner.call("GET", ROOM, 200, room_id=rid).json()
    assert (got["current_item_id"], got["content_id"]) == (e2, "e2")
    # Next from an item that is no longer current: 200, nothing moves.
    stale = member.call("POST", NEXT, 200, json={"current_item_id": e1}, room_id=rid).json()
    assert stale == queue
    queue = member.call("POST", PREVIOUS, 200, json={"current_item_id": e2}, room_id=rid).json()
    assert playing(queue) == "e1"
    queue = member.call("POST", PLAY, 200, json={"item_id": e3}, room_id=rid).json()
    assert playing(queue) == "e3"
    queue = owner.call("DELETE", ITEM, 200, room_id=rid, item_id=e3).json()
    assert contents(queue) == ["e1", "e2", "e1b"] and playing(queue) == "e1b"
    queue = owner.call("DELETE", ITEMS, 200, room_id=rid).json()
    assert contents(queue) == ["e1b"] and playing(queue) == "e1b"
    assert queue == owner.call("GET", QUEUE, 200, room_id=rid).json()
    ops = [(event["op"], event["by"]) for event in queue_events(daemon, rid)]
    by_owner, by_member = uid(owner), uid(member)
    assert ops == [
        ("add", by_member), ("add", by_member), ("add", by_owner), ("move", by_member),
        ("next", by_member), ("previous", by_member), ("play", by_member),
        ("remove", by_owner), ("clear", by_owner),
    ]  # fmt: skip


def test_repeat_and_shuffle(daemon: DaemonProcess) -> None:
    owner = api(daemon, "owner")
    room = owner.create_room()
    for n in range(2, 7):
        queue = add(owner, room["id"], f"e{n}")
    first, *_, last = (item["id"] for item in queue["items"])
    mode = owner.call("PUT", MODE, 200, json={"repeat": "all"}, room_id=room["id"]).json()
    assert (mode["repeat"], mode["shuffle"]) == ("all", False)
    wrapped = owner.call(
        "POST", PREVIOUS, 200, json={"current_item_id": first}, room_id=room["id"]
    ).json()
    assert wrapped["current_item_id"] == last  # repeat all wraps, backwards too
    shuffled = owner.call("PUT", MODE, 200, json={"shuffle": True}, room_id=room["id"]).json()
    assert (shuffled["repeat"], shuffled["shuffle"]) == ("all", True)
    # The people's order is what the queue shows; the shuffled order only plays.
    assert shuffled["items"] == wrapped["items"]
    # Stepping through the shuffled order visits every item once.
    seen, current = [last], last
    for _ in range(5):
        step = owner.call(
            "POST", NEXT, 200, json={"current_item_id": current}, room_id=room["id"]
        ).json()
        current = step["current_item_id"]
        seen.append(current)
    assert sorted(seen) == sorted(item["id"] for item in shuffled["items"])
    both = owner.call(
        "PUT", MODE, 200, json={"repeat": "one", "shuffle": False}, room_id=room["id"]
    ).json()
    assert (both["repeat"], both["shuffle"]) == ("one", False)


def test_new_content_by_a_room_update_is_the_current_items(daemon: DaemonProcess) -> None:
    owner = api(daemon, "owner")
    room = owner.create_room(content_duration=60)
    add(owner, room["id"], "later")
    updated = owner.call(
        "PUT", ROOM, 200, json={"content_id": "another-film", "start_when_ready": True},
        room_id=room["id"],
    ).json()  # fmt: skip
    assert updated["current_item_id"] == room["current_item_id"]
    assert updated["start_when_ready"] is True
    queue = owner.call("GET", QUEUE, 200, room_id=room["id"]).json()
    assert contents(queue) == ["another-film", "later"]
    assert queue["items"][0]["duration"] is None  # other media: its length is not known
    again = owner.call(
        "PUT", ROOM, 200, json={"wait_for_slow_members": "always"}, room_id=room["id"]
    )
    assert again.json()["wait_for_slow_members"] == "always"


def test_an_emptied_queue_takes_new_items(daemon: DaemonProcess) -> None:
    owner = api(daemon, "owner")
    room = owner.create_room()
    empty = owner.call(
        "DELETE", ITEM, 200, room_id=room["id"], item_id=room["current_item_id"]
    ).json()
    assert (empty["items"], empty["current_item_id"]) == ([], None)
    got = owner.call("GET", ROOM, 200, room_id=room["id"]).json()
    assert (got["current_item_id"], got["content_id"]) == (None, "tt0133093")
    queue = add(owner, room["id"], "fresh")
    assert playing(queue) == "fresh"
    assert owner.call("GET", ROOM, 200, room_id=room["id"]).json()["content_id"] == "fresh"


def test_who_may_change_the_queue(daemon: DaemonProcess) -> None:
    owner, member, stranger = api(daemon, "owner"), api(daemon, "member"), api(daemon)
    admin = api(daemon, "admin", admin=True)
    room = owner.create_room(is_public=True, playback_control="moderators")
    rid = room["id"]
    member.call("POST", ROOM + "/join", 200, room_id=rid)
    body = {"content_type": "movie", "content_id": "2"}
    refused = member.problem("POST", ITEMS, 403, "forbidden", json=body, room_id=rid)
    assert refused["detail"] == "only moderators control playback in this room"
    stranger.problem("POST", ITEMS, 403, "forbidden", json=body, room_id=rid)
    for who in (member, stranger):  # but everyone may look
        who.call("GET", QUEUE, 200, room_id=rid)
    add(admin, rid, "by the admin")  # an administrator need not join
    owner.call("PUT", ROOM, 200, json={"playback_control": "everyone"}, room_id=rid)
    add(member, rid, "by a member")
    stranger.problem("POST", ITEMS, 403, "not-a-member", json=body, room_id=rid)  # join first
    private = owner.create_room()
    stranger.problem("GET", QUEUE, 403, "not-a-member", room_id=private["id"])
    stranger.problem("POST", ITEMS, 403, "not-a-member", json=body, room_id=private["id"])


def test_refusals(daemon: DaemonProcess) -> None:
    owner = api(daemon, "owner")
    room = owner.create_room()
    rid, nobody = room["id"], str(uuid4())
    owner.problem("DELETE", ITEM, 404, "not-found", room_id=rid, item_id=nobody)
    owner.problem("POST", MOVE, 404, "not-found", json={"index": 0}, room_id=rid, item_id=nobody)
    owner.problem("POST", PLAY, 404, "not-found", json={"item_id": nobody}, room_id=rid)
    owner.problem("GET", QUEUE, 404, "not-found", room_id=nobody)
    owner.problem("DELETE", ITEM, 400, "bad-request", room_id=rid, item_id="first")
    owner.problem("GET", QUEUE, 400, "bad-request", room_id="mine")
    for body, field in [
        ({"content_type": "movie", "content_id": "1", "duration": 0}, "duration"),
        ({"content_type": "movie", "content_id": "1", "duration": 604801}, "duration"),
        ({"content_type": "movie", "content_id": "1", "title": "\x1b]52;c;x\x07"}, "title"),
        ({"content_type": "movie", "content_id": "1", "title": "t" * 201}, "title"),
        ({"content_type": "movie", "content_id": "https://evil.example/x.mp4"}, "content_id"),
        ({"content_type": "movie", "content_id": "1", "next": True}, "next"),
        ({"content_type": "movie"}, "content_id"),
    ]:
        problem = owner.problem("POST", ITEMS, 422, "validation-failed", json=body, room_id=rid)
        assert problem["errors"][0]["field"] == field, body
    for template, body, field in [
        (MOVE, {"index": -1}, "index"),
        (MOVE, {"index": 1.5}, "index"),
        (PLAY, {}, "item_id"),
        (NEXT, {"current_item_id": None}, "current_item_id"),
        (MODE, {}, "body"),
        (MODE, {"repeat": "twice"}, "repeat"),
    ]:
        method = "PUT" if template == MODE else "POST"
        path = {"room_id": rid, "item_id": room["current_item_id"]}
        problem = owner.problem(method, template, 422, "validation-failed", json=body, **path)
        assert problem["errors"][0]["field"] == field, (template, body)
    assert contents(owner.call("GET", QUEUE, 200, room_id=rid).json()) == ["tt0133093"]


def test_an_ended_rooms_queue_is_read_only(daemon: DaemonProcess) -> None:
    owner = api(daemon, "owner")
    room = owner.create_room()
    owner.call("DELETE", ROOM, 204, room_id=room["id"])
    assert len(owner.call("GET", QUEUE, 200, room_id=room["id"]).json()["items"]) == 1
    body = {"content_type": "movie", "content_id": "2"}
    owner.problem("POST", ITEMS, 410, "room-ended", json=body, room_id=room["id"])
    owner.problem("DELETE", ITEMS, 410, "room-ended", room_id=room["id"])
    owner.problem(
        "POST", NEXT, 410, "room-ended", json={"current_item_id": room["current_item_id"]},
        room_id=room["id"],
    )  # fmt: skip


def test_a_queue_holds_250_items(daemon: DaemonProcess) -> None:
    owner = api(daemon, "owner")
    room = owner.create_room()
    for n in range(MAX_QUEUE_ITEMS - 1):
        add(owner, room["id"], f"e{n}")
    body = {"content_type": "movie", "content_id": "one too many"}
    problem = owner.problem("POST", ITEMS, 409, "queue-full", json=body, room_id=room["id"])
    assert "250" in problem["detail"]
    queue = owner.call("GET", QUEUE, 200, room_id=room["id"]).json()
    assert len(queue["items"]) == MAX_QUEUE_ITEMS


def test_next_pressed_by_everyone_at_once_moves_once(daemon: DaemonProcess) -> None:
    owner = api(daemon, "owner")
    room = owner.create_room(is_public=True)
    for n in range(2, 5):
        add(owner, room["id"], f"e{n}")
    people = [owner]
    for n in range(7):
        person = api(daemon, f"viewer{n}")
        person.call("POST", ROOM + "/join", 200, room_id=room["id"])
        people.append(person)
    first = room["current_item_id"]
    start = threading.Barrier(len(people))

    def press(person: Api) -> str:
        start.wait(timeout=10)
        body = {"current_item_id": first}
        answer = person.call("POST", NEXT, 200, json=body, room_id=room["id"]).json()
        return playing(answer) or ""

    with ThreadPoolExecutor(len(people)) as pool:
        answers = list(pool.map(press, people))
    assert set(answers) == {"e2"}
    assert playing(owner.call("GET", QUEUE, 200, room_id=room["id"]).json()) == "e2"
    steps = [event for event in queue_events(daemon, room["id"]) if event["op"] == "next"]
    assert len(steps) == 1 and steps[0]["from"] == first


@pytest.mark.parametrize("kind", ["title", "duration"])
def test_null_title_and_duration_mean_not_known(daemon: DaemonProcess, kind: str) -> None:
    owner = api(daemon, "owner")
    room = owner.create_room(**{f"content_{kind}": None})
    queue = add(owner, room["id"], "x", **{kind: None})
    assert [item[kind] for item in queue["items"]] == [None, None]
