-- Fewer index entries per event (docs/data.md "Outbox, relay, inbox").
-- Ids the library generated (UUIDv7, id_given = 0) are unique by
-- construction and skip the unique index; caller-given ids keep it. The
-- published_ms index goes: pruning deletes the published prefix by seq.
-- Existing rows count as caller-given.
ALTER TABLE outbox ADD COLUMN id_given INTEGER NOT NULL DEFAULT 1;
ALTER TABLE outbox ALTER COLUMN id_given DROP DEFAULT;
ALTER TABLE outbox DROP CONSTRAINT outbox_id_key;
CREATE UNIQUE INDEX outbox_id ON outbox (id) WHERE id_given = 1;
DROP INDEX outbox_published;
