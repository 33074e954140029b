-- 0001 initial schema (PostgreSQL).

CREATE TABLE rooms (
    id                  uuid             NOT NULL PRIMARY KEY,
    name                text             NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    owner_id            uuid             NOT NULL,
    content_type        text             NOT NULL,
    content_id          text             NOT NULL,
    is_public           boolean          NOT NULL,
    password_hash       text,
    max_participants    integer          NOT NULL CHECK (max_participants >= 1),
    playback_state      text             NOT NULL DEFAULT 'paused'
                                         CHECK (playback_state IN ('paused', 'playing', 'waiting')),
    playback_position   double precision NOT NULL DEFAULT 0,
    playback_rate       double precision NOT NULL DEFAULT 1,
    playback_version    bigint           NOT NULL DEFAULT 0,
    playback_updated_at timestamptz,
    playback_updated_by uuid,
    created_at          timestamptz      NOT NULL,
    updated_at          timestamptz      NOT NULL,
    ended_at            timestamptz
);
CREATE INDEX rooms_created_at_idx ON rooms (created_at);
CREATE INDEX rooms_public_ended_idx ON rooms (is_public, ended_at);
CREATE INDEX rooms_owner_idx ON rooms (owner_id);
CREATE INDEX rooms_content_idx ON rooms (content_type, content_id);

CREATE TABLE participants (
    room_id      uuid        NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    user_id      uuid        NOT NULL,
    user_name    text        NOT NULL,
    role         text        NOT NULL CHECK (role IN ('owner', 'moderator', 'member')),
    is_connected boolean     NOT NULL DEFAULT false,
    joined_at    timestamptz NOT NULL,
    last_seen_at timestamptz NOT NULL,
    PRIMARY KEY (room_id, user_id)
);
CREATE INDEX participants_user_idx ON participants (user_id);

CREATE TABLE chat_messages (
    id         uuid        NOT NULL PRIMARY KEY,
    room_id    uuid        NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    user_id    uuid        NOT NULL,
    user_name  text        NOT NULL,
    message    text        NOT NULL,
    created_at timestamptz NOT NULL
);
CREATE INDEX chat_messages_room_created_idx ON chat_messages (room_id, created_at, id);

CREATE TABLE events (
    id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    room_id    uuid        NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    user_id    uuid,
    type       text        NOT NULL,
    payload    jsonb       NOT NULL,
    created_at timestamptz NOT NULL
);
CREATE INDEX events_room_id_idx ON events (room_id, id);

-- The constraint is named so that the repository can tell a taken code
-- (DuplicateCode) from any other unique violation.
CREATE TABLE invitations (
    id              uuid        NOT NULL PRIMARY KEY,
    code            text        NOT NULL CONSTRAINT invitations_code_key UNIQUE,
    room_id         uuid        NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    created_by      uuid        NOT NULL,
    invited_user_id uuid,
    expires_at      timestamptz NOT NULL,
    max_uses        integer     CHECK (max_uses >= 1),
    use_count       integer     NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL
);
CREATE INDEX invitations_expires_idx ON invitations (expires_at);
CREATE INDEX invitations_room_idx ON invitations (room_id);
