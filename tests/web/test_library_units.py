"""The browser client library's own unit tests, run under Node's built-in test runner.

They live beside this file as ``*.test.mjs`` (``node --test tests/web/``); this
test makes them part of the README's test command. Node is required in CI.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def test_node_unit_tests_pass() -> None:
    node = shutil.which("node")
    if node is None:
        message = "Node.js is not installed (apt-get install nodejs)"
        if os.environ.get("CI") == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    files = sorted(HERE.glob("*.test.mjs"))
    assert files, "no *.test.mjs files"
    result = subprocess.run(
        [node, "--test", "--test-reporter=tap", *map(str, files)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-4000:]
    # The runner's summary: tests ran and none failed.
    assert "# fail 0" in result.stdout
    passed = int(result.stdout.split("# pass ")[1].split()[0])
    assert passed >= 20, f"only {passed} node tests ran"
