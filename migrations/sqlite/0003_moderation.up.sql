-- 0003 moderation (SQLite): whether moderators may act on other moderators, and the bans
-- and mutes of a room. A restriction outlives the membership (a banned user has left), so
-- it is its own table; one of each kind per user and room, replaced when made again.
ALTER TABLE rooms ADD COLUMN moderators_manage_moderators INTEGER NOT NULL DEFAULT 0
    CHECK (moderators_manage_moderators IN (0, 1));

CREATE TABLE room_restrictions (
    room_id    TEXT NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    user_id    TEXT NOT NULL,
    kind       TEXT NOT NULL CHECK (kind IN ('ban', 'mute')),
    user_name  TEXT,
    reason     TEXT CHECK (length(reason) <= 500),
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT,
    PRIMARY KEY (room_id, kind, user_id)
);
-- For the purge of expired restrictions; lookups and listings use the primary key.
CREATE INDEX room_restrictions_expires_idx ON room_restrictions (expires_at);
