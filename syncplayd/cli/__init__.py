"""Command-line entry points: syncplayd and syncplayctl."""

from __future__ import annotations
