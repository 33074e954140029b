-- The nodes keep their rows; only where their Syncplay listeners are goes.
ALTER TABLE nodes DROP COLUMN syncplay_bridge;
