-- 0007 (PostgreSQL): where the other nodes reach this node's Syncplay listener, to forward
-- a Syncplay client whose room runs there, as HOST:PORT (an IPv6 host in brackets, as in
-- [::1]:8999). NULL: no listener. Rows from before get NULL until their node registers
-- again.
ALTER TABLE nodes ADD COLUMN syncplay_bridge text;
