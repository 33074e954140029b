-- Who may control playback in a room: everyone, or the owner and moderators only.
ALTER TABLE rooms ADD COLUMN playback_control TEXT NOT NULL DEFAULT 'everyone'
    CHECK (playback_control IN ('everyone', 'moderators'));
