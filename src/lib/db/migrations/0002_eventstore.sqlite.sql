-- Event store (DESIGN §9). es_streams holds each stream's current version;
-- appends update it with the expected version in the WHERE clause, so two
-- appenders with the same expectation cannot both succeed. es_head holds the
-- last global position: every append takes it with an UPDATE (a row lock on
-- PostgreSQL held to commit), so positions become visible in order and a
-- catch-up subscriber never passes over a position that commits later.
CREATE TABLE es_streams (
    stream TEXT PRIMARY KEY,
    version INTEGER NOT NULL
);
CREATE TABLE es_head (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    position INTEGER NOT NULL
);
INSERT INTO es_head (one, position) VALUES (1, 0);
CREATE TABLE es_events (
    position INTEGER PRIMARY KEY,
    stream TEXT NOT NULL,
    version INTEGER NOT NULL,
    id TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    data TEXT NOT NULL,
    metadata TEXT,
    created_ms INTEGER NOT NULL,
    UNIQUE (stream, version)
);
CREATE TABLE es_snapshots (
    stream TEXT NOT NULL,
    version INTEGER NOT NULL,
    data TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    PRIMARY KEY (stream, version)
);
CREATE TABLE es_checkpoints (
    subscriber TEXT PRIMARY KEY,
    position INTEGER NOT NULL
);
