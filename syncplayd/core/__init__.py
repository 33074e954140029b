"""The sans-I/O core: pure rules, no trio, no I/O, no clock reads."""

from __future__ import annotations
