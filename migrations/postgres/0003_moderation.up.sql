-- 0003 moderation (PostgreSQL): whether moderators may act on other moderators, and the
-- bans and mutes of a room. A restriction outlives the membership (a banned user has left),
-- so it is its own table; one of each kind per user and room, replaced when made again.
ALTER TABLE rooms ADD COLUMN moderators_manage_moderators boolean NOT NULL DEFAULT false;

CREATE TABLE room_restrictions (
    room_id    uuid        NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    user_id    uuid        NOT NULL,
    kind       text        NOT NULL CHECK (kind IN ('ban', 'mute')),
    user_name  text,
    reason     text        CHECK (char_length(reason) <= 500),
    created_by uuid        NOT NULL,
    created_at timestamptz NOT NULL,
    expires_at timestamptz,
    PRIMARY KEY (room_id, kind, user_id)
);
-- For the purge of expired restrictions; lookups and listings use the primary key.
CREATE INDEX room_restrictions_expires_idx ON room_restrictions (expires_at);
