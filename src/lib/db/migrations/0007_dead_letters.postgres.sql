-- Dead letters kept in the consuming service's own database (docs/events.md,
-- "Dead letters on the in-process broker"): one row per consumer group and
-- event (`dkey`: the event id, or "seq:<n>" for a message without one), the
-- dead-letter document as `letter` (topic, group, reason, deliveries, at and
-- the original envelope). `seq` never repeats: it names the row in
-- /admin/dlq message ids.
CREATE TABLE dead_letters (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    consumer TEXT NOT NULL,
    dkey TEXT NOT NULL,
    topic TEXT NOT NULL,
    letter TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);
CREATE UNIQUE INDEX dead_letters_key ON dead_letters (consumer, dkey);
CREATE INDEX dead_letters_topic ON dead_letters (topic, seq);
