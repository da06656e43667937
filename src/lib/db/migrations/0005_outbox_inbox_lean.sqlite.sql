-- Fewer b-trees per event (docs/data.md "Outbox, relay, inbox").
-- Outbox: ids the library generated (UUIDv7, id_given = 0) are unique by
-- construction and skip the unique index; caller-given ids keep it. The
-- published_ms index goes: pruning deletes the published prefix by seq.
-- Existing rows count as caller-given. Inbox: a WITHOUT ROWID table, so a
-- claim writes the key b-tree and the age index only.
CREATE TABLE outbox_v2 (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL,
    id_given INTEGER NOT NULL,
    subject TEXT NOT NULL,
    type TEXT NOT NULL,
    envelope TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    published_ms INTEGER
);
INSERT INTO outbox_v2 (seq, id, id_given, subject, type, envelope, created_ms, published_ms)
    SELECT seq, id, 1, subject, type, envelope, created_ms, published_ms FROM outbox;
DROP TABLE outbox;
ALTER TABLE outbox_v2 RENAME TO outbox;
CREATE UNIQUE INDEX outbox_id ON outbox (id) WHERE id_given = 1;
CREATE INDEX outbox_pending ON outbox (seq) WHERE published_ms IS NULL;

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
