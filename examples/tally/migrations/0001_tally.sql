-- Write model: one row per increment command.
CREATE TABLE tally_commands (
    id TEXT PRIMARY KEY,
    counter TEXT NOT NULL,
    amount BIGINT NOT NULL
);
-- Read model, fed only by shop.tally.incremented.v1 events.
CREATE TABLE tally_view (
    counter TEXT PRIMARY KEY,
    total BIGINT NOT NULL,
    events BIGINT NOT NULL
);
