"""The layers import only downwards, and the core stays pure.

From the bottom up:

* ``core``: the sans-I/O engine. Imports nothing of ours but itself, and no I/O,
  clock or framework (``IMPURE``).
* shared: the top-level modules and packages beside the layers (``config``,
  ``identity``, ``logs``, ``passwords``, ``clocks``, ``openapi``, ``testing``,
  the package root...). Every layer above may use them, so they import only the
  core and one another.
* ``storage``, then ``service``, then ``server``: each may import what is below it.
* ``cli`` (and ``syncplayd/__main__.py``): the top; nothing else imports it.
* ``client``: the Python client library, a product of its own beside the daemon.
  It speaks the protocol of the core and imports nothing of the daemon's side.

Every import counts: ``import x``, ``from x import y``, relative imports, imports
inside functions and under ``if TYPE_CHECKING:``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "syncplayd"
IMPURE = (
    "trio", "quart", "quart_trio", "hypercorn", "httpx", "sqlite3", "psycopg", "psycopg_pool",
    "time", "socket", "asyncio", "threading", "os", "random",
)  # fmt: skip
LAYERS = ("core", "storage", "service", "server", "cli", "client")
DAEMON_SIDE = ("syncplayd.storage", "syncplayd.service", "syncplayd.server", "syncplayd.cli")
# What each layer must not import (a name or any name below it).
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "shared": (*DAEMON_SIDE, "syncplayd.client"),
    "storage": ("syncplayd.service", "syncplayd.server", "syncplayd.cli", "syncplayd.client"),
    "service": ("syncplayd.server", "syncplayd.cli", "syncplayd.client"),
    "server": ("syncplayd.cli", "syncplayd.client"),
    "cli": (),
    "client": DAEMON_SIDE,
}


def module_name(path: Path) -> str:
    """``syncplayd/server/http/app.py`` -> ``syncplayd.server.http.app``."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> str:
    if module == "syncplayd.__main__":
        return "cli"  # ``python -m syncplayd`` runs the daemon's command
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else "shared"


def imported_names(source: str, module: str, *, is_package: bool = False) -> set[str]:
    """Every module name ``source`` imports, anywhere in it, relative ones made absolute.

    ``from x import y`` yields both ``x`` and ``x.y`` (``y`` may be a module).
    """
    package = module if is_package else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*parent, base] if base else parent)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=module_name)
def test_each_module_imports_only_downwards(path: Path) -> None:
    module = module_name(path)
    layer = layer_of(module)
    names = imported_names(path.read_text(), module, is_package=path.name == "__init__.py")
    if layer == "core":
        bad = {
            n for n in names if _within(n, ("syncplayd",)) and not _within(n, ("syncplayd.core",))
        }
    else:
        bad = {n for n in names if _within(n, FORBIDDEN[layer])}
    assert not bad, f"{module} ({layer}) imports {sorted(bad)}"


@pytest.mark.parametrize("path", sorted((PACKAGE / "core").rglob("*.py")), ids=module_name)
def test_core_module_imports_nothing_impure(path: Path) -> None:
    names = imported_names(path.read_text(), module_name(path))
    bad = {n for n in names if _within(n, IMPURE)}
    assert not bad, f"{module_name(path)} imports {sorted(bad)}"


def test_every_kind_of_import_is_seen() -> None:
    source = """
from typing import TYPE_CHECKING
import syncplayd.storage.records
from syncplayd import cli
from . import rooms
from .. import clocks
from ..storage.base import Repository
if TYPE_CHECKING:
    from syncplayd.server.metrics import Metrics
def later() -> None:
    import syncplayd.client
"""
    names = imported_names(source, "syncplayd.service.admin")
    assert {
        "syncplayd.storage.records",
        "syncplayd.cli",
        "syncplayd.service.rooms",
        "syncplayd.clocks",
        "syncplayd.storage.base.Repository",
        "syncplayd.server.metrics",
        "syncplayd.client",
    } <= names
    assert imported_names("from . import _x", "syncplayd.core", is_package=True) >= {
        "syncplayd.core._x"
    }


@pytest.mark.parametrize(
    ("module", "layer"),
    [
        ("syncplayd.core.room._engine", "core"),
        ("syncplayd.server.http.app", "server"),
        ("syncplayd.config._schema", "shared"),
        ("syncplayd.identity", "shared"),
        ("syncplayd", "shared"),
        ("syncplayd.__main__", "cli"),
        ("syncplayd.client._client", "client"),
    ],
)
def test_layer_of(module: str, layer: str) -> None:
    assert layer_of(module) == layer
