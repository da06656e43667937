-- The inbox as a WITHOUT ROWID table (SQLite only; PostgreSQL tables have
-- no rowid): a claim then writes the (consumer, event_id) key b-tree and the
-- age index, not a rowid table besides. Existing claims are kept.
CREATE TABLE inbox_v2 (
    consumer TEXT NOT NULL,
    event_id TEXT NOT NULL,
    received_ms INTEGER NOT NULL,
    PRIMARY KEY (consumer, event_id)
) WITHOUT ROWID;
INSERT INTO inbox_v2 (consumer, event_id, received_ms)
    SELECT consumer, event_id, received_ms FROM inbox;
DROP TABLE inbox;
ALTER TABLE inbox_v2 RENAME TO inbox;
CREATE INDEX inbox_age ON inbox (received_ms);
