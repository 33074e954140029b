-- 0006 cluster (SQLite): the same tables as PostgreSQL's, so that the two schemas stay
-- parallel, although multi-node mode refuses SQLite (it has neither advisory locks nor
-- notifications, and one file cannot be shared by daemons on several machines).
-- nodes is the registry: each running node's row, its heartbeat refreshed every few
-- seconds. room_owners mirrors which node runs each live room; node_id is not a foreign
-- key to nodes because a row may name a node that has gone.
CREATE TABLE nodes (
    node_id      TEXT    NOT NULL PRIMARY KEY,
    url          TEXT    NOT NULL,
    pid          INTEGER NOT NULL,
    started_at   TEXT    NOT NULL,
    heartbeat_at TEXT    NOT NULL
);

CREATE TABLE room_owners (
    room_id TEXT NOT NULL PRIMARY KEY REFERENCES rooms (id) ON DELETE CASCADE,
    node_id TEXT NOT NULL,
    since   TEXT NOT NULL
);
-- A node clears all of its rows at once (at start, after a crash, and at a clean stop).
CREATE INDEX room_owners_node_idx ON room_owners (node_id);
