"""Records for the storage tests, at fixed times so that ordering is deliberate."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from uuid import UUID

from syncplayd.storage import Invitation, NewRoom

T0 = datetime(2025, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)


def at(seconds: float) -> datetime:
    """``T0`` plus ``seconds``."""
    return T0 + timedelta(seconds=seconds)


def new_room(
    *,
    owner: UUID | None = None,
    owner_name: str = "Olive",
    name: str = "Movie night",
    public: bool = True,
    max_participants: int = 10,
    created: float = 0.0,
    content_type: str = "movie",
    content_id: str = "m-1",
    password_hash: str | None = None,
    syncplay_password_hash: str | None = None,
    room_id: UUID | None = None,
) -> NewRoom:
    return NewRoom(
        id=room_id or uuid.uuid4(),
        name=name,
        owner_id=owner or uuid.uuid4(),
        owner_name=owner_name,
        content_type=content_type,
        content_id=content_id,
        is_public=public,
        password_hash=password_hash,
        syncplay_password_hash=syncplay_password_hash,
        max_participants=max_participants,
        created_at=at(created),
    )


def invitation(
    room_id: UUID,
    *,
    code: str | None = None,
    expires: float = 3600.0,
    max_uses: int | None = None,
    use_count: int = 0,
    invited_user_id: UUID | None = None,
) -> Invitation:
    return Invitation(
        id=uuid.uuid4(),
        code=code or uuid.uuid4().hex[:10].upper(),
        room_id=room_id,
        created_by=uuid.uuid4(),
        invited_user_id=invited_user_id,
        expires_at=at(expires),
        max_uses=max_uses,
        use_count=use_count,
        created_at=at(0),
    )
