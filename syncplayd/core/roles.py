"""Participant roles: shared by the permission rules, the sync engine and storage."""

from __future__ import annotations

import enum


class Role(enum.StrEnum):
    """A participant's role in a room, from most to least powerful."""

    OWNER = "owner"
    MODERATOR = "moderator"
    MEMBER = "member"
