-- 0005 (SQLite): a second verifier of a room's password, for Syncplay desktop clients.
-- They send the MD5 hex of the password, never the password, so password_hash cannot
-- check them; this is an argon2id hash of that MD5 hex (which is itself as good as the
-- password to the Syncplay listener, so it is never stored as is). It goes with the
-- password, set and cleared with it: the check keeps a verifier from outliving it. A room
-- whose password was set before this migration has none until its owner sets it again.
ALTER TABLE rooms ADD COLUMN syncplay_password_hash TEXT
    CHECK (syncplay_password_hash IS NULL OR password_hash IS NOT NULL);
