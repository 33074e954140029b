-- 0007 (SQLite): where the other nodes reach this node's Syncplay listener, to forward
-- a Syncplay client whose room runs there, as HOST:PORT (an IPv6 host in brackets, as in
-- [::1]:8999). NULL: no listener. The same column as PostgreSQL's, so that the two
-- schemas stay parallel, although multi-node mode refuses SQLite.
ALTER TABLE nodes ADD COLUMN syncplay_bridge TEXT;
