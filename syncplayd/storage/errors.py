"""Errors a repository raises for conditions the service must tell apart."""

from __future__ import annotations


class StorageError(Exception):
    """Base class for repository errors."""


class RoomNotFound(StorageError):
    """The room does not exist."""


class RoomEnded(StorageError):
    """The room has ended and accepts no new participants."""


class RoomFull(StorageError):
    """The room already has ``max_participants`` participants."""


class NotAParticipant(StorageError):
    """The user is not a participant of the room."""


class TooManyInvitations(StorageError):
    """The room already has as many live invitations as the caller allows."""


class DuplicateCode(StorageError):
    """An invitation with this code already exists (the caller draws a new one)."""


class StorageUnavailable(StorageError):
    """The database cannot be reached or refused the operation."""


class SchemaTooNew(StorageError):
    """The database was migrated by a newer syncplayd than this one."""
