"""The README's pictures are the browser tests' screenshots: with
``SYNCPLAY_UPDATE_README_IMAGES=1`` the tests that take them copy them to ``docs/images/``."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from playwright.sync_api import Page

README_IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"


def wanted() -> bool:
    """Whether this run updates the README's pictures."""
    return os.environ.get("SYNCPLAY_UPDATE_README_IMAGES") == "1"


def update(shot: Path, picture: str) -> None:
    """Copy the screenshot ``shot`` to the README's ``picture``, if this run updates them."""
    if wanted():
        shutil.copyfile(shot, README_IMAGES / picture)


def capture(page: Page, picture: str) -> None:
    """The whole of ``page``, from its top, as the README's ``picture``, if this run updates
    them (a focused chat box scrolls a page taller than the window)."""
    if wanted():
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=README_IMAGES / picture, full_page=True)
