-- Event store, second layout (docs/data.md "Event store"). A stream's
-- version is the largest version of the UNIQUE (stream, version) index, so
-- es_streams goes. es_head stays: its row lock, held to commit, makes
-- positions visible in commit order (catch-up subscribers never pass over a
-- late commit). Ids the caller supplied (id_given = 1) stay unique through a
-- partial index; generated UUIDv7 ids are unique by construction and skip it.
DROP TABLE es_streams;
ALTER TABLE es_events ADD COLUMN id_given INTEGER NOT NULL DEFAULT 1;
ALTER TABLE es_events ALTER COLUMN id_given DROP DEFAULT;
ALTER TABLE es_events DROP CONSTRAINT es_events_id_key;
CREATE UNIQUE INDEX es_events_id ON es_events (id) WHERE id_given = 1;

-- Appends one event in one round trip. The first event of a batch
-- (p_position NULL) takes p_n positions from es_head first: that UPDATE waits
-- for every other appender's commit, and since this function is VOLATILE
-- each later statement runs on a fresh READ COMMITTED snapshot, so the
-- version read below is exact. Later events of the batch pass their position.
-- o_status: 0 appended; 1 version mismatch (o_version: the stream's version);
-- 2 unique conflict (an id already stored). On 1 and 2 nothing was written
-- and es_head is restored (the row stays locked until the transaction ends).
CREATE FUNCTION es_append_one(p_stream TEXT, p_expected BIGINT, p_n BIGINT, p_position BIGINT,
                              p_id TEXT, p_id_given BIGINT, p_type TEXT, p_data TEXT,
                              p_metadata TEXT, p_created_ms BIGINT,
                              OUT o_status INTEGER, OUT o_version BIGINT, OUT o_position BIGINT)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    cur BIGINT;
BEGIN
    IF p_position IS NULL THEN
        UPDATE es_head SET position = position + p_n WHERE one = 1
            RETURNING position - p_n + 1 INTO o_position;
    ELSE
        o_position := p_position;
    END IF;
    SELECT coalesce(max(version), 0) INTO cur FROM es_events WHERE stream = p_stream;
    o_version := cur;
    IF NOT (p_expected = -1 OR (p_expected = -3 AND cur > 0) OR cur = p_expected) THEN
        o_status := 1;
    ELSE
        INSERT INTO es_events (position, stream, version, id, id_given, type, data, metadata,
                               created_ms)
            VALUES (o_position, p_stream, cur + 1, p_id, p_id_given, p_type, p_data, p_metadata,
                    p_created_ms)
            ON CONFLICT DO NOTHING;
        IF FOUND THEN
            o_status := 0;
            o_version := cur + 1;
            RETURN;
        END IF;
        o_status := 2;
    END IF;
    IF p_position IS NULL THEN
        UPDATE es_head SET position = position - p_n WHERE one = 1;
    END IF;
    o_position := NULL;
END;
$$;
