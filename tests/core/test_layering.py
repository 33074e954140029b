"""The core stays pure: no I/O, no clock, nothing from the shell or storage."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[2] / "syncplayd" / "core"
FORBIDDEN = (
    "trio", "quart", "quart_trio", "hypercorn", "httpx", "sqlite3", "psycopg", "psycopg_pool",
    "time", "socket", "asyncio", "threading", "os", "random",
    "syncplayd.server", "syncplayd.storage", "syncplayd.service", "syncplayd.cli",
    "syncplayd.config", "syncplayd.client",
)  # fmt: skip


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", sorted(CORE.rglob("*.py")), ids=lambda p: p.name)
def test_core_module_imports_nothing_impure(path: Path) -> None:
    bad = {
        name for name in _imports(path)
        if any(name == f or name.startswith(f + ".") for f in FORBIDDEN)
    }  # fmt: skip
    assert not bad, f"{path.name} imports {sorted(bad)}"
