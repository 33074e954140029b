-- rooms.content_type/content_id already hold the current item's content: they stay.
DROP TABLE queue_items;
ALTER TABLE rooms DROP COLUMN start_when_ready;
ALTER TABLE rooms DROP COLUMN wait_for_slow_members;
ALTER TABLE rooms DROP COLUMN queue_shuffle;
ALTER TABLE rooms DROP COLUMN queue_repeat;
ALTER TABLE rooms DROP COLUMN current_item_id;
