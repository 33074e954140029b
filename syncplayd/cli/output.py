"""How ``syncplayctl`` prints: aligned tables and fields for people, JSON for scripts.

With ``--json`` a command prints the daemon's JSON answer as it is (indented),
so scripts see exactly the admin API's documents; ``events --follow`` prints
one compact JSON object per line instead (JSON Lines), since it never ends.

Names, ids and chat come from users, and a terminal obeys control characters:
ESC starts escape sequences (OSC 52 sets the clipboard, others retitle the
window or rewrite what is shown), BEL rings, C1 characters act as ESC on some
terminals. None is ever printed raw: tables and fields show them as escapes
(``\\x1b``), JSON as ``\\u`` escapes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import click

MAX_CELL = 60
ELLIPSIS = "…"
# C0 controls, DEL and C1 controls.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# What json.dumps leaves raw with ensure_ascii=False (it escapes C0 itself).
_JSON_RAW_CONTROL = re.compile(r"[\x7f-\x9f]")


def printable(text: str) -> str:
    """``text`` with every control character written as an escape (ESC as ``\\x1b``)."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m[0]):02x}", text)


def echo_json(data: Any, *, compact: bool = False) -> None:
    """Print ``data`` as JSON (indented unless ``compact``), no control character raw."""
    if compact:
        text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    else:
        text = json.dumps(data, ensure_ascii=False, indent=2)
    # Outside strings JSON is plain ASCII, so these can only be inside a string.
    click.echo(_JSON_RAW_CONTROL.sub(lambda m: f"\\u{ord(m[0]):04x}", text))


def cell(value: Any, *, width: int | None = MAX_CELL) -> str:
    """One value as table text: ``-`` for null, yes/no for booleans, shortened timestamps."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict | list):
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    else:
        text = str(value)
    text = printable(" ".join(text.split()))  # no newlines or tabs inside a row
    if width is not None and len(text) > width:
        text = text[: width - 1] + ELLIPSIS
    return text


def when(value: str | None) -> str:
    """An RFC 3339 timestamp shortened to ``YYYY-MM-DD HH:MM:SS`` (UTC)."""
    if not value:
        return "-"
    return value.replace("T", " ")[:19]


def table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """Left-aligned columns separated by two spaces, with a header line."""
    lines = [list(headers), *[list(row) for row in rows]]
    widths = [max(len(line[i]) for line in lines) for i in range(len(headers))]
    return "\n".join(
        "  ".join(text.ljust(width) for text, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def fields(pairs: Sequence[tuple[str, Any]]) -> str:
    """``name:  value`` lines, the values aligned."""
    width = max((len(name) for name, _ in pairs), default=0) + 1
    return "\n".join(
        f"{(name + ':').ljust(width)}  {cell(value, width=None)}" for name, value in pairs
    )


Column = tuple[str, Callable[[dict[str, Any]], str]]


def echo_table(items: Sequence[dict[str, Any]], columns: Sequence[Column]) -> None:
    """Print ``items`` as a table of ``(header, extract)`` columns."""
    headers = [header for header, _ in columns]
    click.echo(table(headers, ([extract(item) for _, extract in columns] for item in items)))


def echo_page(page: dict[str, Any], columns: Sequence[Column], noun: str) -> None:
    """A page of the admin API as a table, then ``shown N of TOTAL`` when paged."""
    items: list[dict[str, Any]] = page.get("items", [])
    if not items:
        click.echo(f"no {noun}")
        return
    echo_table(items, columns)
    total, offset = page.get("total", len(items)), page.get("offset", 0)
    if total > len(items):
        end = offset + len(items)
        click.echo(f"({offset + 1}-{end} of {total} {noun}; use --offset {end} for more)")
