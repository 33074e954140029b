"""syncplayd: a self-hosted watch-together server."""

from __future__ import annotations

__version__ = "0.1.0"
