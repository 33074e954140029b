"""The trio shell: daemon, HTTP API, websocket."""

from __future__ import annotations
