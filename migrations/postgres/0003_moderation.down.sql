DROP TABLE room_restrictions;
ALTER TABLE rooms DROP COLUMN moderators_manage_moderators;
