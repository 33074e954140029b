-- The column's check goes with it.
ALTER TABLE rooms DROP COLUMN syncplay_password_hash;
