"""The daemon hands free C-heap memory back to the system (``server/process/heap.py``)."""

from __future__ import annotations

import gc
import platform
import weakref

import pytest
import trio
import trio.testing

from syncplayd.cli.daemon import freeze_survivors
from syncplayd.server.process import heap
from syncplayd.server.process.heap import collect_frozen_garbage


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_malloc_trim_is_found_on_glibc() -> None:
    trim = heap.find_malloc_trim()
    assert trim is not None
    assert trim(0) in (0, 1)  # 1: memory was released, 0: there was none to release


async def test_the_heap_is_trimmed_once_per_interval(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[float] = []

    def trim(pad: int) -> int:
        calls.append(trio.current_time())
        return 1

    monkeypatch.setattr(heap, "find_malloc_trim", lambda: trim)
    start = trio.current_time()
    with trio.move_on_after(200):
        await heap.release_free_memory(60.0)
    assert [round(t - start) for t in calls] == [60, 120, 180]


async def test_without_malloc_trim_the_task_ends_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(heap, "find_malloc_trim", lambda: None)
    with trio.fail_after(1):
        await heap.release_free_memory(60.0)


class _Node:
    """A cycle-capable object that a weak reference can watch."""

    def __init__(self) -> None:
        self.me: _Node | None = None


def test_a_full_collection_freezes_what_it_kept_and_a_young_one_does_not() -> None:
    before = gc.get_freeze_count()
    kept = [_Node() for _ in range(100)]
    try:
        freeze_survivors("stop", {"generation": 1, "collected": 0, "uncollectable": 0})
        assert gc.get_freeze_count() == before
        freeze_survivors("start", {"generation": 2, "collected": 0, "uncollectable": 0})
        assert gc.get_freeze_count() == before
        freeze_survivors("stop", {"generation": 2, "collected": 0, "uncollectable": 0})
        assert gc.get_freeze_count() >= before + len(kept)
    finally:
        gc.unfreeze()
        if before:
            gc.freeze()  # what was frozen before stays frozen (the test process's own)


async def test_frozen_garbage_in_a_cycle_is_collected_once_an_interval(
    autojump_clock: trio.testing.MockClock,
) -> None:
    before = gc.get_freeze_count()
    node = _Node()
    node.me = node  # a cycle: reference counting alone never frees it
    watch = weakref.ref(node)
    gc.freeze()
    del node
    gc.collect()
    assert watch() is not None  # frozen: no full collection frees it
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(collect_frozen_garbage, 60.0)
            await trio.sleep(61)
            assert watch() is None  # the task's collection freed it
            assert gc.get_freeze_count() > 0  # and froze the rest again
            nursery.cancel_scope.cancel()
    finally:
        gc.unfreeze()
        if before:
            gc.freeze()


async def test_young_objects_are_frozen_once_an_interval(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """So that no young collection walks more than an interval's worth of live objects."""
    before = gc.get_freeze_count()
    gc.freeze()  # a tuned collector: start-up's objects are frozen
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(heap.freeze_young_objects, 1.0)
            frozen = gc.get_freeze_count()
            kept = [_Node() for _ in range(100)]
            dropped = _Node()
            dropped.me = dropped  # a cycle: reference counting alone never frees it
            watch = weakref.ref(dropped)
            del dropped
            await trio.sleep(0.5)
            assert gc.get_freeze_count() < frozen + len(kept)  # not before the interval
            await trio.sleep(1)
            assert gc.get_freeze_count() >= frozen + len(kept)
            assert watch() is None  # young garbage is collected, not frozen
            nursery.cancel_scope.cancel()
    finally:
        gc.unfreeze()
        if before:
            gc.freeze()


async def test_nothing_is_frozen_where_the_collector_is_left_alone(
    autojump_clock: trio.testing.MockClock,
) -> None:
    gc.unfreeze()  # (the test process freezes nothing of its own)
    with trio.fail_after(1):
        await heap.freeze_young_objects(0.1)  # returns at once
    assert gc.get_freeze_count() == 0
