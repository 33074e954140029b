-- 0004 the play queue (SQLite): a room's items in the user's order (ord), which one is
-- current, the repeat and shuffle modes, and two sync settings of the room. rooms keeps
-- content_type/content_id, always those of the current item (today's API reads them).
-- current_item_id has no foreign key: the repository rewrites a room's items and its
-- current_item_id in one transaction, and a key would make that order matter.
CREATE TABLE queue_items (
    id           TEXT    NOT NULL PRIMARY KEY,
    room_id      TEXT    NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    ord          INTEGER NOT NULL CHECK (ord >= 0),
    content_type TEXT    NOT NULL,
    content_id   TEXT    NOT NULL,
    title        TEXT,
    -- Seconds, at most a week (the protocol's largest position); NULL until known.
    duration     REAL    CHECK (duration > 0 AND duration <= 604800),
    shuffle_rank REAL    NOT NULL CHECK (shuffle_rank >= 0 AND shuffle_rank < 1),
    added_by     TEXT,
    added_at     TEXT    NOT NULL
);
CREATE UNIQUE INDEX queue_items_room_ord_idx ON queue_items (room_id, ord);

ALTER TABLE rooms ADD COLUMN current_item_id TEXT;
ALTER TABLE rooms ADD COLUMN queue_repeat TEXT NOT NULL DEFAULT 'none'
    CHECK (queue_repeat IN ('none', 'one', 'all'));
ALTER TABLE rooms ADD COLUMN queue_shuffle INTEGER NOT NULL DEFAULT 0
    CHECK (queue_shuffle IN (0, 1));
ALTER TABLE rooms ADD COLUMN wait_for_slow_members TEXT NOT NULL DEFAULT 'policy'
    CHECK (wait_for_slow_members IN ('always', 'policy', 'never'));
ALTER TABLE rooms ADD COLUMN start_when_ready INTEGER NOT NULL DEFAULT 0
    CHECK (start_when_ready IN (0, 1));

-- Every room so far played one thing: that becomes its queue's one item, current, added
-- by the owner when the room was made. The id is a random UUID 4 in canonical lowercase
-- text (SQLite has no generator: random bytes, with the version and variant digits set);
-- the shuffle rank is uniform in [0, 1) from 53 random bits.
INSERT INTO queue_items (id, room_id, ord, content_type, content_id, shuffle_rank, added_by,
                         added_at)
SELECT lower(substr(h, 1, 8) || '-' || substr(h, 9, 4) || '-4' || substr(h, 14, 3) || '-'
             || substr('89ab', 1 + (random() & 3), 1) || substr(h, 18, 3) || '-'
             || substr(h, 21, 12)),
       id, 0, content_type, content_id,
       (random() & 9007199254740991) / 9007199254740992.0, owner_id, created_at
FROM (SELECT hex(randomblob(16)) AS h, id, content_type, content_id, owner_id, created_at
      FROM rooms);
UPDATE rooms SET current_item_id = (SELECT q.id FROM queue_items q WHERE q.room_id = rooms.id);
