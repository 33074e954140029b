-- 0004 the play queue (PostgreSQL): a room's items in the user's order (ord), which one is
-- current, the repeat and shuffle modes, and two sync settings of the room. rooms keeps
-- content_type/content_id, always those of the current item (today's API reads them).
-- current_item_id has no foreign key: the repository rewrites a room's items and its
-- current_item_id in one transaction, and a key would make that order matter.
CREATE TABLE queue_items (
    id           uuid             NOT NULL PRIMARY KEY,
    room_id      uuid             NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    ord          integer          NOT NULL CHECK (ord >= 0),
    content_type text             NOT NULL,
    content_id   text             NOT NULL,
    title        text,
    -- Seconds, at most a week (the protocol's largest position); NULL until known.
    duration     double precision CHECK (duration > 0 AND duration <= 604800),
    shuffle_rank double precision NOT NULL CHECK (shuffle_rank >= 0 AND shuffle_rank < 1),
    added_by     uuid,
    added_at     timestamptz      NOT NULL
);
CREATE UNIQUE INDEX queue_items_room_ord_idx ON queue_items (room_id, ord);

ALTER TABLE rooms
    ADD COLUMN current_item_id uuid,
    ADD COLUMN queue_repeat text NOT NULL DEFAULT 'none'
        CHECK (queue_repeat IN ('none', 'one', 'all')),
    ADD COLUMN queue_shuffle boolean NOT NULL DEFAULT false,
    ADD COLUMN wait_for_slow_members text NOT NULL DEFAULT 'policy'
        CHECK (wait_for_slow_members IN ('always', 'policy', 'never')),
    ADD COLUMN start_when_ready boolean NOT NULL DEFAULT false;

-- Every room so far played one thing: that becomes its queue's one item, current, added
-- by the owner when the room was made, at a uniform random shuffle rank in [0, 1).
INSERT INTO queue_items (id, room_id, ord, content_type, content_id, shuffle_rank, added_by,
                         added_at)
SELECT gen_random_uuid(), id, 0, content_type, content_id, random(), owner_id, created_at
FROM rooms;
UPDATE rooms r SET current_item_id = q.id FROM queue_items q WHERE q.room_id = r.id;
