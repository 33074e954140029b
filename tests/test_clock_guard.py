"""tests/clock_guard.py fails a test that asked for a fake clock and ran without it."""

from __future__ import annotations

import pytest

pytest_plugins = ("pytester",)

SUITE = """
import hypothesis
import pytest
import trio
import trio.testing


@pytest.fixture
async def through_a_fixture(autojump_clock: trio.testing.MockClock) -> None:
    pass


async def test_fixture_only(through_a_fixture: None) -> None:
    await trio.sleep(0)


@pytest.mark.usefixtures("autojump_clock")
async def test_usefixtures() -> None:
    await trio.sleep(0)


def test_sync(autojump_clock: trio.testing.MockClock) -> None:
    pass


async def test_direct(through_a_fixture: None, autojump_clock: trio.testing.MockClock) -> None:
    await trio.sleep(3600)  # instant on the fake clock
    assert trio.current_time() == 3600


async def test_mock_clock_direct(mock_clock: trio.testing.MockClock) -> None:
    mock_clock.jump(5)
    assert trio.current_time() == 5


async def test_no_clock() -> None:
    await trio.sleep(0)


@hypothesis.settings(
    max_examples=2, suppress_health_check=[hypothesis.HealthCheck.function_scoped_fixture]
)
@hypothesis.given(hypothesis.strategies.integers())
async def test_hypothesis_fixture_only(through_a_fixture: None, n: int) -> None:
    await trio.sleep(0)


@hypothesis.settings(
    max_examples=2, suppress_health_check=[hypothesis.HealthCheck.function_scoped_fixture]
)
@hypothesis.given(hypothesis.strategies.integers())
async def test_hypothesis_direct(autojump_clock: trio.testing.MockClock, n: int) -> None:
    await trio.sleep(60)
"""


def test_a_clock_asked_for_only_by_a_fixture_fails_the_test(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\ntrio_mode = true\n")
    pytester.makeconftest('pytest_plugins = ("tests.clock_guard",)\n')
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest("-p", "no:cacheprovider", "-rA")
    result.assert_outcomes(passed=4, failed=4)
    result.stdout.fnmatch_lines(
        [
            "*Failed: test_fixture_only runs on the system clock although it asks for"
            " autojump_clock: pytest-trio installs a clock only from the test function's own"
            " arguments, so add `autojump_clock`",
            "*Failed: test_usefixtures runs on the system clock although it asks for*",
            "test_sync asks for autojump_clock but is not a trio test",
            "*Failed: test_hypothesis_fixture_only runs on the system clock although it asks*",
        ]
    )
