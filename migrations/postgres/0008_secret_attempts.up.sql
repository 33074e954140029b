-- 0008 (PostgreSQL): failed-attempt budgets shared by the nodes. Guesses at room
-- passwords and invitation codes are counted per user and per client address in fixed
-- windows; in multi-node mode the nodes count here, in one place, since counters kept in
-- each node's memory would give a guesser whose requests are spread over N nodes N
-- budgets. One row per (scope, key): scope is what is counted ('user', 'address'), key
-- which one; window_start is when its window opened, count the attempts charged in it.
-- scope and key compare bytewise (COLLATE "C", as SQLite's text does): a charge locks
-- its rows in that order, and the purge deletes in the same order, so that two of them
-- never wait for each other's rows crosswise (a deadlock between nodes).
CREATE TABLE secret_attempts (
    scope        text COLLATE "C" NOT NULL,
    key          text COLLATE "C" NOT NULL,
    window_start timestamptz      NOT NULL,
    count        integer          NOT NULL CHECK (count >= 0),
    PRIMARY KEY (scope, key)
);
-- The purge deletes the windows that opened long ago.
CREATE INDEX secret_attempts_window_idx ON secret_attempts (window_start);
