-- Event store, second layout (docs/data.md "Event store"). A stream's
-- version is the largest version of the UNIQUE (stream, version) index, so
-- es_streams goes. Positions are max(position) + 1 taken under a transaction
-- advisory lock keyed by this schema's es_events (held to commit, like the
-- es_head row lock it replaces, without writing a row): positions become
-- visible in commit order and a catch-up subscriber never passes over a late
-- commit. Ids the caller supplied (id_given = 1) stay unique through a
-- partial index; generated UUIDv7 ids are unique by construction and skip it.
DROP TABLE es_streams;
DROP TABLE es_head;
ALTER TABLE es_events ADD COLUMN id_given INTEGER NOT NULL DEFAULT 1;
ALTER TABLE es_events ALTER COLUMN id_given DROP DEFAULT;
ALTER TABLE es_events DROP CONSTRAINT es_events_id_key;
CREATE UNIQUE INDEX es_events_id ON es_events (id) WHERE id_given = 1;

-- The append lock's key: high half "SHOA", low half the table's OID, so each
-- schema's event store has its own lock.
CREATE FUNCTION es_lock_key() RETURNS BIGINT LANGUAGE sql STABLE AS
    'SELECT (1397247809::bigint << 32) | ''es_events''::regclass::oid::bigint';

-- The slow path of an append (the fast path is one INSERT that only tries the
-- lock; src/lib/eventstore/eventstore.c). Waits for the append lock; since
-- this function is VOLATILE each later statement runs on a fresh READ
-- COMMITTED snapshot, which then holds every committed append, so the
-- version and position read are exact. o_status: 0 appended; 1 version
-- mismatch (o_version: the stream's version); 2 the caller's id is already
-- stored. On 1 and 2 nothing was written.
CREATE FUNCTION es_append_one(p_stream TEXT, p_expected BIGINT, p_id TEXT, p_id_given BIGINT,
                              p_type TEXT, p_data TEXT, p_metadata TEXT, p_created_ms BIGINT,
                              OUT o_status INTEGER, OUT o_version BIGINT, OUT o_position BIGINT)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(es_lock_key());
    SELECT coalesce(max(version), 0) INTO o_version FROM es_events WHERE stream = p_stream;
    IF NOT (p_expected = -1 OR (p_expected = -3 AND o_version > 0) OR o_version = p_expected) THEN
        o_status := 1;
        RETURN;
    END IF;
    IF p_id_given = 1 AND EXISTS (SELECT 1 FROM es_events WHERE id = p_id AND id_given = 1) THEN
        o_status := 2;
        RETURN;
    END IF;
    SELECT coalesce(max(position), 0) + 1 INTO o_position FROM es_events;
    o_version := o_version + 1;
    INSERT INTO es_events (position, stream, version, id, id_given, type, data, metadata,
                           created_ms)
        VALUES (o_position, p_stream, o_version, p_id, p_id_given, p_type, p_data, p_metadata,
                p_created_ms);
    o_status := 0;
END;
$$;
