ALTER TABLE rooms DROP COLUMN playback_control;
