"""A pytest plugin: a test that asks for a fake clock must run on it.

pytest-trio hands ``trio.run`` a clock only when it is one of the *test
function's own* arguments. A clock asked for by a fixture (``autojump_clock``
taken by a ``world`` fixture, say) is built and then ignored: the test runs on
the system clock and every ``trio.sleep`` waits for real, silently.

This plugin checks it at run time. For a test whose fixture closure holds
``autojump_clock`` or ``mock_clock``, it wraps the test function so that, inside
the trio run and before the test's body, ``trio.lowlevel.current_clock()`` must
be that very clock; otherwise the test fails with the fix in the message. A sync
test asking for one fails too: it has no trio run to put a clock in.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
import trio

CLOCK_FIXTURES = ("autojump_clock", "mock_clock")


def _requested_clock(item: pytest.Function) -> tuple[str, trio.abc.Clock] | None:
    for name in CLOCK_FIXTURES:
        clock = item.funcargs.get(name)
        if isinstance(clock, trio.abc.Clock):
            return name, clock
    return None


def _on_clock(
    test: Callable[..., Awaitable[None]], clock: trio.abc.Clock, message: str
) -> Callable[..., Awaitable[None]]:
    @functools.wraps(test)
    async def checked(**kwargs: Any) -> None:
        if trio.lowlevel.current_clock() is not clock:
            pytest.fail(message, pytrace=False)
        await test(**kwargs)

    return checked


def _check_clock(item: pytest.Function, name: str, clock: trio.abc.Clock) -> None:
    if item.get_closest_marker("trio") is None:
        pytest.fail(f"{item.name} asks for {name} but is not a trio test", pytrace=False)
    message = (
        f"{item.name} runs on the system clock although it asks for {name}: pytest-trio "
        f"installs a clock only from the test function's own arguments, so add `{name}`"
    )
    hypothesis = getattr(item.obj, "hypothesis", None)
    if hypothesis is not None:  # pytest-trio runs the inner test of a @given test
        hypothesis.inner_test = _on_clock(hypothesis.inner_test, clock, message)
    else:
        item.obj = _on_clock(item.obj, clock, message)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    # tryfirst: this wrapper runs before pytest-trio's, which then wraps (and runs
    # inside trio.run) the checking test function installed here.
    if isinstance(item, pytest.Function) and (requested := _requested_clock(item)):
        _check_clock(item, *requested)
    return (yield)
