-- rooms.content_type/content_id already hold the current item's content: they stay.
DROP TABLE queue_items;
ALTER TABLE rooms
    DROP COLUMN start_when_ready,
    DROP COLUMN wait_for_slow_members,
    DROP COLUMN queue_shuffle,
    DROP COLUMN queue_repeat,
    DROP COLUMN current_item_id;
