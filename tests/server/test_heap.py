"""The daemon hands free C-heap memory back to the system (``server/process/heap.py``)."""

from __future__ import annotations

import platform

import pytest
import trio
import trio.testing

from syncplayd.server.process import heap


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
