"""The pure play-queue model: each operation, then properties over random sequences of them.

The properties (hypothesis) are the issue's: every operation keeps a valid current item
(``current_id`` is ``None`` exactly when the queue is empty, and otherwise one of its
items), no operation grows a queue past ``MAX_QUEUE_ITEMS``, and next/previous with a
stale item id change nothing.
"""

from __future__ import annotations

import dataclasses
import math
import uuid
from collections.abc import Sequence
from typing import Any
from uuid import UUID

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from syncplayd.core import protocol
from syncplayd.core import queue as q
from syncplayd.core.queue import MAX_DURATION, MAX_QUEUE_ITEMS, Queue, QueueError, QueueItem


def item(name: str, rank: float = 0.5, duration: float | None = None) -> QueueItem:
    """An item whose content id is ``name`` (ids are UUIDs, names are for reading)."""
    return QueueItem(uuid.uuid4(), "episode", name, None, duration, rank)


def queue_of(*names: str, ranks: Sequence[float] = (), **modes: Any) -> Queue:
    """A queue of items named ``names`` (the first current), added one by one."""
    queue = Queue((), None)
    for n, name in enumerate(names):
        queue = q.add(queue, item(name, ranks[n] if ranks else 0.5), play_next=False)
    return q.set_mode(queue, **modes)


def names(items: Sequence[QueueItem]) -> list[str]:
    return [i.content_id for i in items]


def by_name(queue: Queue, name: str) -> QueueItem:
    return next(i for i in queue.items if i.content_id == name)


def current_name(queue: Queue) -> str | None:
    return None if queue.current is None else queue.current.content_id


# -- the records -------------------------------------------------------------------------------


def test_max_duration_is_the_protocols_largest_position() -> None:
    assert MAX_DURATION == protocol.MAX_POSITION


@pytest.mark.parametrize(
    ("duration", "rank"),
    [(0.0, 0.5), (-1.0, 0.5), (math.nan, 0.5), (math.inf, 0.5), (MAX_DURATION + 1, 0.5),
     (None, 1.0), (None, -0.01), (None, math.nan)],
)  # fmt: skip
def test_an_item_refuses_values_out_of_range(duration: float | None, rank: float) -> None:
    with pytest.raises(QueueError) as refused:
        item("x", rank, duration)
    assert refused.value.code == "bad-message"


def test_an_item_takes_the_bounds() -> None:
    assert item("x", 0.0, MAX_DURATION).duration == MAX_DURATION
    assert item("x", math.nextafter(1.0, 0.0), 1e-3).shuffle_rank < 1


def test_a_queue_refuses_broken_invariants() -> None:
    one, two = item("a"), item("b")
    with pytest.raises(ValueError, match="unique"):
        Queue((one, one), one.id)
    with pytest.raises(ValueError, match="exactly when"):
        Queue((one,), None)
    with pytest.raises(ValueError, match="exactly when"):
        Queue((), one.id)
    with pytest.raises(ValueError, match="not in the queue"):
        Queue((one,), two.id)
    with pytest.raises(ValueError, match="repeat"):
        Queue((one,), one.id, repeat="twice")  # type: ignore[arg-type]


# -- add ---------------------------------------------------------------------------------------


def test_the_first_item_becomes_current_and_others_go_to_the_end() -> None:
    queue = q.add(Queue((), None), item("a"), play_next=True)
    assert (names(queue.items), current_name(queue)) == (["a"], "a")
    queue = q.add(queue, item("b"), play_next=False)
    queue = q.add(queue, item("c"), play_next=False)
    assert (names(queue.items), current_name(queue)) == (["a", "b", "c"], "a")


def test_play_next_goes_right_after_the_current_item() -> None:
    queue = queue_of("a", "b", "c")
    queue = q.play(queue, by_name(queue, "b").id)
    queue = q.add(queue, item("n"), play_next=True)
    assert names(queue.items) == ["a", "b", "n", "c"]
    assert q.after_end(queue) == by_name(queue, "n").id
    # At the end of the queue, play next is the end.
    queue = q.play(queue, by_name(queue, "c").id)
    queue = q.add(queue, item("m"), play_next=True)
    assert names(queue.items) == ["a", "b", "n", "c", "m"]


def test_play_next_plays_next_when_shuffled_too() -> None:
    queue = queue_of("a", "b", "c", ranks=[0.5, 0.1, 0.9], shuffle=True)
    assert names(queue.play_order()) == ["b", "a", "c"]
    queue = q.play(queue, by_name(queue, "b").id)
    queue = q.add(queue, item("n", rank=0.95), play_next=True)
    assert names(queue.play_order()) == ["b", "n", "a", "c"]
    assert names(queue.items) == ["a", "b", "n", "c"]  # the user's order: after b as well
    assert 0.1 < by_name(queue, "n").shuffle_rank < 0.5
    # Only the new item's rank was chosen: the others keep their places.
    assert [i.shuffle_rank for i in queue.items if i.content_id != "n"] == [0.5, 0.1, 0.9]
    # Last in play order: between its rank and 1.
    queue = q.play(queue, by_name(queue, "c").id)
    queue = q.add(queue, item("z", rank=0.0), play_next=True)
    assert names(queue.play_order())[-2:] == ["c", "z"]
    assert by_name(queue, "z").shuffle_rank < 1


def test_play_next_in_a_spent_gap_spreads_the_ranks_keeping_the_order() -> None:
    # Two neighbours whose ranks have no float between them.
    low = 0.25
    queue = queue_of("a", "b", ranks=[low, math.nextafter(low, 1.0)], shuffle=True)
    order = names(queue.play_order())
    assert order == ["a", "b"]
    queue = q.add(queue, item("n"), play_next=True)
    assert names(queue.play_order()) == ["a", "n", "b"]
    assert len({i.shuffle_rank for i in queue.items}) == 3
    assert all(0 <= i.shuffle_rank < 1 for i in queue.items)
    # Many play-nexts into one place still put each right after the current item.
    for n in range(80):
        queue = q.add(queue, item(f"p{n}"), play_next=True)
        assert names(queue.play_order())[:2] == ["a", f"p{n}"]


def test_a_full_queue_refuses_more() -> None:
    queue = queue_of(*(f"i{n}" for n in range(MAX_QUEUE_ITEMS)))
    assert len(queue.items) == MAX_QUEUE_ITEMS
    for play_next in (False, True):
        with pytest.raises(QueueError) as refused:
            q.add(queue, item("one more"), play_next=play_next)
        assert refused.value.code == "queue-full"
    # Room again after a removal.
    assert len(q.add(q.remove(queue, queue.items[5].id), item("x"), play_next=True).items) == 250


def test_an_id_is_added_once() -> None:
    queue = queue_of("a", "b")
    with pytest.raises(QueueError) as refused:
        q.add(queue, queue.items[1], play_next=False)
    assert refused.value.code == "bad-message"


# -- remove, move, clear, play -----------------------------------------------------------------


def test_removing_the_current_item_plays_the_next_then_the_previous() -> None:
    queue = queue_of("a", "b", "c")
    queue = q.play(queue, by_name(queue, "b").id)
    queue = q.remove(queue, by_name(queue, "b").id)
    assert (names(queue.items), current_name(queue)) == (["a", "c"], "c")
    queue = q.remove(queue, by_name(queue, "c").id)  # the last: the previous one
    assert current_name(queue) == "a"
    queue = q.remove(queue, by_name(queue, "a").id)
    assert queue == Queue((), None)


def test_removing_the_current_item_follows_the_play_order() -> None:
    queue = queue_of("a", "b", "c", ranks=[0.5, 0.1, 0.9], shuffle=True)  # plays b, a, c
    queue = q.play(queue, by_name(queue, "b").id)
    assert current_name(q.remove(queue, by_name(queue, "b").id)) == "a"


def test_removing_another_item_keeps_the_current_one() -> None:
    queue = queue_of("a", "b", "c")
    queue = q.remove(queue, by_name(queue, "b").id)
    assert (names(queue.items), current_name(queue)) == (["a", "c"], "a")


def test_move_clamps_the_index_and_keeps_the_current_item() -> None:
    queue = queue_of("a", "b", "c", "d")
    assert names(q.move(queue, by_name(queue, "d").id, 1).items) == ["a", "d", "b", "c"]
    assert names(q.move(queue, by_name(queue, "a").id, 99).items) == ["b", "c", "d", "a"]
    assert names(q.move(queue, by_name(queue, "c").id, -5).items) == ["c", "a", "b", "d"]
    assert names(q.move(queue, by_name(queue, "b").id, 1).items) == ["a", "b", "c", "d"]
    assert current_name(q.move(queue, by_name(queue, "a").id, 3)) == "a"


def test_clear_keeps_only_the_current_item() -> None:
    queue = queue_of("a", "b", "c", repeat="all")
    queue = q.play(queue, by_name(queue, "b").id)
    cleared = q.clear(queue)
    assert (names(cleared.items), current_name(cleared), cleared.repeat) == (["b"], "b", "all")
    assert q.clear(Queue((), None)) == Queue((), None)


def test_play_makes_an_item_current() -> None:
    queue = queue_of("a", "b")
    assert current_name(q.play(queue, by_name(queue, "b").id)) == "b"


@pytest.mark.parametrize("op", ["remove", "move", "play"])
def test_an_unknown_item_is_not_found(op: str) -> None:
    queue = queue_of("a")
    calls = {
        "remove": lambda: q.remove(queue, uuid.uuid4()),
        "move": lambda: q.move(queue, uuid.uuid4(), 0),
        "play": lambda: q.play(queue, uuid.uuid4()),
    }
    with pytest.raises(QueueError) as refused:
        calls[op]()
    assert refused.value.code == "not-found"


# -- next, previous and the end of an item ------------------------------------------------------


def test_step_goes_through_the_play_order_and_stops_at_the_ends() -> None:
    queue = queue_of("a", "b", "c")
    forward = q.step(queue, by_name(queue, "a").id, 1)
    assert current_name(forward) == "b"
    assert current_name(q.step(forward, by_name(queue, "b").id, -1)) == "a"
    assert q.step(queue, by_name(queue, "a").id, -1) is queue  # the start
    last = q.play(queue, by_name(queue, "c").id)
    assert q.step(last, by_name(queue, "c").id, 1) is last  # the end
    # Repeat one does not hold next back.
    assert current_name(q.step(q.set_mode(queue, repeat="one"), queue.items[0].id, 1)) == "b"


def test_step_wraps_with_repeat_all() -> None:
    queue = queue_of("a", "b", "c", repeat="all")
    assert current_name(q.step(queue, by_name(queue, "a").id, -1)) == "c"
    last = q.play(queue, by_name(queue, "c").id)
    assert current_name(q.step(last, by_name(queue, "c").id, 1)) == "a"


def test_step_follows_the_shuffled_order() -> None:
    queue = queue_of("a", "b", "c", ranks=[0.5, 0.1, 0.9], shuffle=True)  # b, a, c
    assert current_name(q.step(queue, by_name(queue, "a").id, 1)) == "c"
    assert current_name(q.step(queue, by_name(queue, "a").id, -1)) == "b"


def test_a_stale_step_changes_nothing() -> None:
    """Two members press next at once: both name a; the second finds b current."""
    queue = queue_of("a", "b", "c")
    a = by_name(queue, "a").id
    once = q.step(queue, a, 1)
    assert q.step(once, a, 1) is once
    assert q.step(once, a, -1) is once
    assert q.step(Queue((), None), a, 1) == Queue((), None)


def test_step_refuses_other_directions() -> None:
    queue = queue_of("a", "b")
    with pytest.raises(ValueError, match="direction"):
        q.step(queue, queue.items[0].id, 2)  # type: ignore[arg-type]


def test_after_end_per_repeat_mode() -> None:
    queue = queue_of("a", "b")
    a, b = by_name(queue, "a").id, by_name(queue, "b").id
    assert q.after_end(queue) == b
    last = q.play(queue, b)
    assert q.after_end(last) is None  # the room stays ended
    assert q.after_end(q.set_mode(last, repeat="all")) == a
    assert q.after_end(q.set_mode(last, repeat="one")) == b
    assert q.after_end(q.set_mode(queue, repeat="one")) == a
    solo = queue_of("solo", repeat="all")
    assert q.after_end(solo) == solo.items[0].id
    assert q.after_end(Queue((), None)) is None
    assert queue.next_id() == b


def test_after_end_follows_the_shuffled_order() -> None:
    queue = queue_of("a", "b", "c", ranks=[0.5, 0.1, 0.9], shuffle=True)  # b, a, c
    assert q.after_end(queue) == by_name(queue, "c").id
    assert q.after_end(q.play(queue, by_name(queue, "c").id)) is None
    # Shuffle off and on again gives the same order: ranks stay with the items.
    again = q.set_mode(q.set_mode(queue, shuffle=False), shuffle=True)
    assert again.play_order() == queue.play_order()


def test_equal_ranks_are_ordered_by_id() -> None:
    queue = queue_of("a", "b", "c", ranks=[0.5, 0.5, 0.5], shuffle=True)
    assert [i.id for i in queue.play_order()] == sorted(i.id for i in queue.items)


# -- durations and modes -----------------------------------------------------------------------


def test_the_first_duration_wins() -> None:
    queue = queue_of("a", "b")
    a = by_name(queue, "a").id
    timed = q.with_duration(queue, a, 60.5)
    assert by_name(timed, "a").duration == 60.5
    assert q.with_duration(timed, a, 90.0) is timed
    assert q.with_duration(timed, uuid.uuid4(), 5.0) is timed  # removed meanwhile
    with pytest.raises(QueueError) as refused:
        q.with_duration(queue, by_name(queue, "b").id, math.nan)
    assert refused.value.code == "bad-message"


def test_set_mode() -> None:
    queue = queue_of("a")
    assert (q.set_mode(queue, repeat="one").repeat, q.set_mode(queue, shuffle=True).shuffle) == (
        "one",
        True,
    )
    assert q.set_mode(queue) == queue
    with pytest.raises(QueueError) as refused:
        q.set_mode(queue, repeat="twice")  # type: ignore[arg-type]
    assert refused.value.code == "bad-message"


# -- properties --------------------------------------------------------------------------------

ids = st.uuids(version=4)
ranks = st.floats(min_value=0.0, max_value=1.0, exclude_max=True)
durations = st.none() | st.floats(min_value=1e-3, max_value=MAX_DURATION)
new_items = st.builds(
    QueueItem, ids, st.just("episode"), st.text(max_size=3), st.none(), durations, ranks
)


@st.composite
def operations(draw: st.DrawFn) -> tuple[str, Any]:
    """One operation, naming an existing item by its index (taken modulo the size) or a
    random, unknown id."""
    kind = draw(
        st.sampled_from(
            ["add", "add_next", "remove", "move", "clear", "play", "next", "previous",
             "stale_next", "mode", "duration", "fill"]
        )
    )  # fmt: skip
    return kind, draw(st.tuples(st.integers(0, 300), new_items, ids, st.integers(-5, 300)))


def apply(queue: Queue, op: tuple[str, Any]) -> Queue:
    kind, (index, new, unknown, to) = op
    pick = queue.items[index % len(queue.items)].id if queue.items else unknown
    current = queue.current_id
    match kind:
        case "add" | "add_next":
            return q.add(queue, new, play_next=kind == "add_next")
        case "fill":  # straight to the limit, to meet it often
            while len(queue.items) < MAX_QUEUE_ITEMS:
                queue = q.add(queue, dataclasses.replace(new, id=uuid.uuid4()), play_next=False)
            return queue
        case "remove":
            return q.remove(queue, pick)
        case "move":
            return q.move(queue, pick, to)
        case "clear":
            return q.clear(queue)
        case "play":
            return q.play(queue, pick)
        case "next" | "previous":
            return q.step(queue, current or unknown, 1 if kind == "next" else -1)
        case "stale_next":
            return q.step(queue, pick, 1)
        case "mode":
            return q.set_mode(queue, repeat=("none", "one", "all")[index % 3], shuffle=to % 2 == 0)
        case _:
            return q.with_duration(queue, pick, 1.0 + index)


def run(ops: list[tuple[str, Any]]) -> list[tuple[str, Queue, Queue, str | None]]:
    """Apply ``ops`` in turn from an empty queue; a refused one leaves the queue as it was.

    Returns, per operation, its kind, the queue before and after, and the refusal's code.
    """
    steps: list[tuple[str, Queue, Queue, str | None]] = []
    queue = Queue((), None)
    for op in ops:
        before, code = queue, None
        try:
            queue = apply(queue, op)
        except QueueError as refused:
            code = refused.code
        steps.append((op[0], before, queue, code))
    return steps


def check_invariants(queue: Queue) -> None:
    ids_ = [i.id for i in queue.items]
    assert len(set(ids_)) == len(ids_)
    assert len(ids_) <= MAX_QUEUE_ITEMS
    assert (queue.current_id is None) == (not queue.items)
    assert queue.current_id is None or queue.current_id in ids_
    assert sorted(i.id for i in queue.play_order()) == sorted(ids_)
    nxt = q.after_end(queue)
    assert nxt is None or nxt in ids_


@settings(max_examples=300, deadline=None)
@given(st.lists(operations(), max_size=40))
def test_every_operation_keeps_a_valid_current_item(ops: list[tuple[str, Any]]) -> None:
    for kind, before, after, refused in run(ops):
        assert refused in (None, "queue-full", "not-found", "bad-message")
        if refused == "queue-full":
            assert len(before.items) == MAX_QUEUE_ITEMS
        check_invariants(after)
        if kind in ("move", "clear", "mode", "duration", "add", "add_next") and before.items:
            assert after.current_id == before.current_id, kind


@settings(max_examples=300, deadline=None)
@given(st.lists(operations(), max_size=30), ids, st.sampled_from([1, -1]))
def test_a_stale_step_changes_nothing_ever(
    ops: list[tuple[str, Any]], stale: UUID, direction: int
) -> None:
    for _, _, queue, _ in run(ops):
        for entry in [*queue.items, None]:
            expected = stale if entry is None else entry.id
            if expected != queue.current_id:
                assert q.step(queue, expected, direction) is queue  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None)
@given(st.lists(operations(), min_size=1, max_size=30))
def test_next_then_previous_comes_back_unless_at_an_end(ops: list[tuple[str, Any]]) -> None:
    queue = run(ops)[-1][2]
    if queue.current_id is None:
        return
    forward = q.step(queue, queue.current_id, 1)
    assert forward.current_id is not None
    back = q.step(forward, forward.current_id, -1)
    at_end = queue.play_order()[-1].id == queue.current_id
    if not at_end or queue.repeat == "all":
        assert back.current_id == queue.current_id
    else:
        assert forward is queue
    # Only the current item moved: items and modes are as they were.
    assert (forward.items, forward.repeat, forward.shuffle) == (
        queue.items, queue.repeat, queue.shuffle,
    )  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(st.lists(new_items, min_size=1, max_size=20), st.integers(0, 25), new_items)
def test_play_next_is_what_plays_next_in_either_order(
    items: list[QueueItem], current: int, new: QueueItem
) -> None:
    items = list({i.id: i for i in items}.values())
    assume(new.id not in {i.id for i in items})
    for shuffle in (False, True):
        queue = q.set_mode(Queue(tuple(items), items[0].id), shuffle=shuffle)
        queue = q.play(queue, items[current % len(items)].id)
        added = q.add(queue, new, play_next=True)
        assert q.after_end(q.set_mode(added, repeat="none")) == new.id
        # Everyone else keeps their relative place in both orders.
        others = [i.id for i in added.play_order() if i.id != new.id]
        assert others == [i.id for i in queue.play_order()]
        assert [i.id for i in added.items if i.id != new.id] == [i.id for i in queue.items]
