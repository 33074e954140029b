-- 0008 (SQLite): failed-attempt budgets shared by the nodes. Guesses at room passwords
-- and invitation codes are counted per user and per client address in fixed windows; in
-- multi-node mode the nodes count in the database, since counters kept in each node's
-- memory would give a guesser whose requests are spread over N nodes N budgets. The same
-- table as PostgreSQL's, so that the two schemas stay parallel, although multi-node mode
-- refuses SQLite (one node counts in memory). One row per (scope, key): scope is what is
-- counted ('user', 'address'), key which one; window_start is when its window opened,
-- count the attempts charged in it.
CREATE TABLE secret_attempts (
    scope        TEXT    NOT NULL,
    key          TEXT    NOT NULL,
    window_start TEXT    NOT NULL,
    count        INTEGER NOT NULL CHECK (count >= 0),
    PRIMARY KEY (scope, key)
);
-- The purge deletes the windows that opened long ago.
CREATE INDEX secret_attempts_window_idx ON secret_attempts (window_start);
