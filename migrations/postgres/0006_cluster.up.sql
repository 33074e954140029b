-- 0006 cluster (PostgreSQL): several syncplayd nodes on one database.
-- nodes is the registry: each running node's row, its heartbeat refreshed every few
-- seconds (a row whose heartbeat is old belongs to a node that is gone).
-- room_owners mirrors, for people and for routing hints, which node runs each live room.
-- It is not what decides ownership: a session-level advisory lock held by the owner is
-- (syncplayd/storage/cluster.py), and the lock goes with a dead node's connection while
-- its rows stay until someone clears them. So node_id is not a foreign key to nodes: a
-- row may name a node that has gone.
CREATE TABLE nodes (
    node_id      text        NOT NULL PRIMARY KEY,
    url          text        NOT NULL,
    pid          integer     NOT NULL,
    started_at   timestamptz NOT NULL,
    heartbeat_at timestamptz NOT NULL
);

CREATE TABLE room_owners (
    room_id uuid        NOT NULL PRIMARY KEY REFERENCES rooms (id) ON DELETE CASCADE,
    node_id text        NOT NULL,
    since   timestamptz NOT NULL
);
-- A node clears all of its rows at once (at start, after a crash, and at a clean stop).
CREATE INDEX room_owners_node_idx ON room_owners (node_id);
