"""Hand the C heap's free memory back to the system, once a minute.

Frames, JSON text and buffers larger than 512 bytes bypass Python's own
allocator and come from the C library's ``malloc``. Under connection churn
glibc keeps what is freed inside its heaps (one per thread that allocated, and
the database work runs in threads) instead of returning it: the soak benchmark
(docs/benchmarks.md) saw the heaps' *free* part grow from 11 to 30 MiB in
five minutes while the part in use stayed at 22.5 MiB, and the daemon's
resident memory with it. ``malloc_trim(0)`` releases the free pages (also
those in the middle of a heap); with 2,000 connections it took 0.5 to 1.5 ms.

Other C libraries (musl) have no ``malloc_trim``; there this does nothing.
"""

from __future__ import annotations

import ctypes
import gc
import logging
from collections.abc import Callable

import trio

log = logging.getLogger(__name__)

TRIM_INTERVAL_SECONDS = 60.0


def find_malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim`` from this process, or ``None`` where there is none."""
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (AttributeError, OSError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


async def release_free_memory(
    interval: float = TRIM_INTERVAL_SECONDS,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Trim the C heap every ``interval`` seconds until cancelled."""
    trim = find_malloc_trim()
    task_status.started()
    if trim is None:
        log.debug("no malloc_trim in this C library: free heap memory stays with the process")
        return
    while True:
        await trio.sleep(interval)
        trim(0)


COLLECT_FROZEN_INTERVAL_SECONDS = 3600.0


async def collect_frozen_garbage(
    interval: float = COLLECT_FROZEN_INTERVAL_SECONDS,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Once an ``interval``, give the frozen objects one full collection, and freeze again.

    The daemon freezes what survives its full collections (``cli/daemon.py``), so
    that a full pass does not walk every member's objects; a cycle among frozen
    objects would never be freed. Here it is, at a known rate: one pause an hour
    (about 1 s at 10,000 connections) instead of one after every wave of joins.
    Does nothing where nothing was frozen (the collector left as CPython has it).
    """
    task_status.started()
    while True:
        await trio.sleep(interval)
        if gc.get_freeze_count() == 0:
            continue
        gc.unfreeze()
        gc.collect()  # freeze_survivors, when installed, freezes what is left
        gc.freeze()


FREEZE_YOUNG_INTERVAL_SECONDS = 0.25


async def freeze_young_objects(
    interval: float = FREEZE_YOUNG_INTERVAL_SECONDS,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Every ``interval`` seconds, collect the young generation, and freeze what is left.

    CPython starts a young collection when the tracked objects *allocated* outnumber
    those *freed* by its threshold, wherever the freed ones lived. In a busy room each
    heartbeat frees a member's old records and allocates new ones, so the count stays
    near zero while the young generation grows with everything those members hold:
    when a pass finally came, it walked hundreds of thousands of live objects and froze
    every room for 50-350 ms at 10,000 connections (docs/benchmarks.md, capacity).
    Collected here at a fixed rate, a pass walks only what was allocated since the
    last one and is still alive (a few milliseconds at 10,000 connections); cycles
    already garbage are freed by it, and what is left is frozen (``gc.freeze``, O(1))
    so that no later pass walks it again. Frozen objects are still freed by reference
    counting; a cycle among them waits for :func:`collect_frozen_garbage` (closed
    connections leave none: tests/server/test_connection_garbage.py). Does nothing
    where nothing was frozen at the start (a process that left the collector as
    CPython has it).
    """
    task_status.started()
    if gc.get_freeze_count() == 0:
        return
    while True:
        await trio.sleep(interval)
        gc.collect(0)
        gc.freeze()
