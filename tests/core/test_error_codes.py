"""The declared error codes are the documented ones: OpenAPI, api.md and protocol.md agree.

:mod:`syncplayd.core.error_codes` is the one list in the code; the contract and the two
documents each list the codes again for their readers. These tests fail as soon as any of
them gains, loses or misspells a code the others do not.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from syncplayd.core.error_codes import ERROR_FRAME_CODES, PROBLEM_CODES, UPGRADE_REFUSAL_CODES

ROOT = Path(__file__).resolve().parents[2]
_CODE_CELL = re.compile(r"`([a-z]+(?:-[a-z]+)*)`")

# Codes the server sends that a document does not list yet. Each entry is checked to be
# still missing, so it has to go as soon as the document is fixed.
NOT_YET_DOCUMENTED: dict[str, set[str]] = {}


def section(path: str, heading: str) -> str:
    """The text under a Markdown heading, up to the next heading of the same or a higher level."""
    text = (ROOT / path).read_text()
    level = heading.split(" ", 1)[0]
    assert set(level) == {"#"}, heading
    start = text.index(f"\n{heading}\n")
    end = re.compile(rf"^#{{1,{len(level)}}} ", re.MULTILINE).search(text, start + len(heading) + 2)
    return text[start : end.start() if end else len(text)]


def table_codes(text: str, column: int) -> list[str]:
    """The codes in one column of the Markdown tables in ``text`` (header rows left out)."""
    rows = [line for line in text.splitlines() if line.startswith("|")]
    separators = {i for i, row in enumerate(rows) if re.fullmatch(r"[|\s:-]+", row)}
    headers = {i - 1 for i in separators}
    codes = []
    for i, row in enumerate(rows):
        if i in separators or i in headers:
            continue
        cell = row.strip("|").split("|")[column].strip()
        match = _CODE_CELL.fullmatch(cell)
        assert match, f"not a code: {cell!r} in {row!r}"
        codes.append(match.group(1))
    return codes


def openapi_problem_codes() -> list[str]:
    spec = yaml.safe_load((ROOT / "api/openapi/syncplay.yaml").read_text())
    enum: list[str] = spec["components"]["schemas"]["ProblemCode"]["enum"]
    return enum


def documented_as_declared(where: str, documented: list[str], declared: frozenset[str]) -> None:
    assert len(documented) == len(set(documented)), f"{where} lists a code twice"
    missing = NOT_YET_DOCUMENTED.get(where, set())
    assert missing <= declared, f"{where}: {missing - declared} are not codes at all"
    assert not missing & set(documented), f"{where} documents {missing}: drop the exception"
    assert set(documented) == declared - missing, (
        f"{where} only: {sorted(set(documented) - declared)}; "
        f"declared only: {sorted(declared - missing - set(documented))}"
    )


def test_openapi_enum_is_the_problem_codes() -> None:
    documented_as_declared("openapi ProblemCode", openapi_problem_codes(), PROBLEM_CODES)


def test_api_md_lists_the_problem_codes() -> None:
    # `not-a-member` has two rows (403 and 404): one code, two statuses.
    codes = sorted(set(table_codes(section("docs/api.md", "## Errors"), column=1)))
    documented_as_declared("api.md", codes, PROBLEM_CODES)


def test_protocol_md_lists_the_error_frame_codes() -> None:
    codes = table_codes(section("docs/protocol.md", "### 4.9 Errors"), column=0)
    documented_as_declared("protocol.md §4.9", codes, ERROR_FRAME_CODES)


def test_protocol_md_lists_the_upgrade_refusals() -> None:
    text = section("docs/protocol.md", "### 2.3 Refusals before the upgrade")
    documented_as_declared("protocol.md §2.3", table_codes(text, column=1), UPGRADE_REFUSAL_CODES)


@pytest.mark.parametrize(
    "codes",
    [PROBLEM_CODES, ERROR_FRAME_CODES, UPGRADE_REFUSAL_CODES],
    ids=["problem", "frame", "upgrade"],
)
def test_codes_are_url_safe_kebab_case(codes: frozenset[str]) -> None:
    # They end up in the problem ``type`` URN and in metric labels.
    assert all(_CODE_CELL.fullmatch(f"`{code}`") for code in codes), sorted(codes)
