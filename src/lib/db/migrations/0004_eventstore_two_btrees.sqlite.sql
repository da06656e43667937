-- Event store, second layout (docs/data.md "Event store"): an append writes
-- one rowid table and one index. es_events' rowid IS the global position:
-- SQLite serialises writers (BEGIN IMMEDIATE), so max(rowid)+1 is taken in
-- commit order and no head table is needed. A stream's version is the
-- largest version of the UNIQUE (stream, version) index, so es_streams goes.
-- Ids the caller supplied (id_given = 1) stay unique through a partial index;
-- generated UUIDv7 ids are unique by construction and skip it.
CREATE TABLE es_events_v2 (
    position INTEGER PRIMARY KEY,
    stream TEXT NOT NULL,
    version INTEGER NOT NULL,
    id TEXT NOT NULL,
    id_given INTEGER NOT NULL,
    type TEXT NOT NULL,
    data TEXT NOT NULL,
    metadata TEXT,
    created_ms INTEGER NOT NULL,
    UNIQUE (stream, version)
);
-- Existing rows keep their uniqueness check: we cannot tell which were generated.
INSERT INTO es_events_v2 (position, stream, version, id, id_given, type, data, metadata,
                          created_ms)
    SELECT position, stream, version, id, 1, type, data, metadata, created_ms FROM es_events;
DROP TABLE es_events;
DROP TABLE es_streams;
DROP TABLE es_head;
ALTER TABLE es_events_v2 RENAME TO es_events;
CREATE UNIQUE INDEX es_events_id ON es_events (id) WHERE id_given = 1;
