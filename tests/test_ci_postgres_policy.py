"""In CI a PostgreSQL test that cannot reach its server fails; elsewhere it skips."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
UNREACHABLE = "postgresql://postgres@127.0.0.1:1/nowhere?connect_timeout=2"
TARGET = "tests/storage/test_fixtures.py::test_database_url_works_from_another_process"


def _run(ci: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "SYNCPLAY_TEST_DATABASE_URL")}
    env["SYNCPLAY_TEST_DATABASE_URL"] = UNREACHABLE
    if ci is not None:
        env["CI"] = ci
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "postgres", TARGET],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("ci", "exit_code", "outcome"), [("true", 1, "error"), (None, 0, "skipped")]
)
def test_unreachable_postgres(ci: str | None, exit_code: int, outcome: str) -> None:
    result = _run(ci)
    assert result.returncode == exit_code, result.stdout + result.stderr
    assert outcome in result.stdout.splitlines()[-1], result.stdout
