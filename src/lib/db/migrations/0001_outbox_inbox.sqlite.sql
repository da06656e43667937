-- Transactional outbox (DESIGN §7): one row per event, written in the
-- caller's transaction; published_ms stays NULL until the relay's publisher
-- confirmed it. seq is the commit order (SQLite has a single writer).
CREATE TABLE outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    subject TEXT NOT NULL,
    type TEXT NOT NULL,
    envelope TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    published_ms INTEGER
);
CREATE INDEX outbox_pending ON outbox (seq) WHERE published_ms IS NULL;
CREATE INDEX outbox_published ON outbox (published_ms) WHERE published_ms IS NOT NULL;

-- Idempotent consumer: the ids each consumer has processed.
CREATE TABLE inbox (
    consumer TEXT NOT NULL,
    event_id TEXT NOT NULL,
    received_ms INTEGER NOT NULL,
    PRIMARY KEY (consumer, event_id)
);
CREATE INDEX inbox_age ON inbox (received_ms);
