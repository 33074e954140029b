"""Invitation codes: short, random, and easy to read aloud or type.

The alphabet leaves out 0/O, 1/I/L so that a code copied by hand still works;
31 symbols give ~4.95 bits each, so the default 8 characters hold ~40 bits:
with expiry, far beyond what guessing over HTTP can reach.
"""

from __future__ import annotations

from collections.abc import Callable

ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"


def new_code(length: int, randbelow: Callable[[int], int]) -> str:
    """Draw ``length`` symbols with ``randbelow`` (``secrets.randbelow`` in production)."""
    return "".join(ALPHABET[randbelow(len(ALPHABET))] for _ in range(length))


def normalize_code(text: str) -> str:
    """Canonical form of a code someone typed: upper case, no spaces or dashes."""
    return "".join(ch for ch in text.upper() if ch not in " -")
