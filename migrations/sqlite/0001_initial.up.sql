-- 0001 initial schema (SQLite).
-- UUIDs are canonical lowercase TEXT; timestamps are TEXT in one fixed ISO-8601 UTC
-- format with microseconds (2025-01-01T12:00:00.000000+00:00) so that text order is
-- time order; booleans are 0/1 integers.

CREATE TABLE rooms (
    id                  TEXT    NOT NULL PRIMARY KEY,
    name                TEXT    NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    owner_id            TEXT    NOT NULL,
    content_type        TEXT    NOT NULL,
    content_id          TEXT    NOT NULL,
    is_public           INTEGER NOT NULL CHECK (is_public IN (0, 1)),
    password_hash       TEXT,
    max_participants    INTEGER NOT NULL CHECK (max_participants >= 1),
    playback_state      TEXT    NOT NULL DEFAULT 'paused'
                                CHECK (playback_state IN ('paused', 'playing', 'waiting')),
    playback_position   REAL    NOT NULL DEFAULT 0,
    playback_rate       REAL    NOT NULL DEFAULT 1,
    playback_version    INTEGER NOT NULL DEFAULT 0,
    playback_updated_at TEXT,
    playback_updated_by TEXT,
    created_at          TEXT    NOT NULL,
    updated_at          TEXT    NOT NULL,
    ended_at            TEXT
);
CREATE INDEX rooms_created_at_idx ON rooms (created_at);
CREATE INDEX rooms_public_ended_idx ON rooms (is_public, ended_at);
CREATE INDEX rooms_owner_idx ON rooms (owner_id);
CREATE INDEX rooms_content_idx ON rooms (content_type, content_id);

CREATE TABLE participants (
    room_id      TEXT    NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    user_id      TEXT    NOT NULL,
    user_name    TEXT    NOT NULL,
    role         TEXT    NOT NULL CHECK (role IN ('owner', 'moderator', 'member')),
    is_connected INTEGER NOT NULL DEFAULT 0 CHECK (is_connected IN (0, 1)),
    joined_at    TEXT    NOT NULL,
    last_seen_at TEXT    NOT NULL,
    PRIMARY KEY (room_id, user_id)
);
CREATE INDEX participants_user_idx ON participants (user_id);

CREATE TABLE chat_messages (
    id         TEXT NOT NULL PRIMARY KEY,
    room_id    TEXT NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    user_id    TEXT NOT NULL,
    user_name  TEXT NOT NULL,
    message    TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX chat_messages_room_created_idx ON chat_messages (room_id, created_at, id);

-- AUTOINCREMENT: ids are never reused, so "events after id N" stays meaningful even
-- after the newest rows of a deleted room are gone.
CREATE TABLE events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    room_id    TEXT NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    user_id    TEXT,
    type       TEXT NOT NULL,
    payload    TEXT NOT NULL CHECK (json_valid(payload)),
    created_at TEXT NOT NULL
);
CREATE INDEX events_room_id_idx ON events (room_id, id);

CREATE TABLE invitations (
    id              TEXT    NOT NULL PRIMARY KEY,
    code            TEXT    NOT NULL UNIQUE,
    room_id         TEXT    NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    created_by      TEXT    NOT NULL,
    invited_user_id TEXT,
    expires_at      TEXT    NOT NULL,
    max_uses        INTEGER CHECK (max_uses >= 1),
    use_count       INTEGER NOT NULL DEFAULT 0,
    created_at      TEXT    NOT NULL
);
CREATE INDEX invitations_expires_idx ON invitations (expires_at);
CREATE INDEX invitations_room_idx ON invitations (room_id);
