-- Saga instances (DESIGN §9): one row per orchestrated saga. `state` is the
-- engine's state as JSON (src/lib/saga/state.c); status and next_wake_ms are
-- kept in columns for the listings (resume at start, stuck for the admin
-- endpoint). `version` gives optimistic concurrency: every save is
-- UPDATE … WHERE version = <loaded>.
CREATE TABLE saga_instances (
    id TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    status TEXT NOT NULL,
    input TEXT NOT NULL,
    state TEXT NOT NULL,
    stuck_reason TEXT NOT NULL,
    version BIGINT NOT NULL,
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL,
    next_wake_ms BIGINT
);
CREATE INDEX saga_instances_status ON saga_instances (status, type, id);

-- Every transition's history entries: what was sent, what came back, when.
CREATE TABLE saga_history (
    saga_id TEXT NOT NULL REFERENCES saga_instances (id) ON DELETE CASCADE,
    seq BIGINT NOT NULL,
    at_ms BIGINT NOT NULL,
    kind TEXT NOT NULL,
    step TEXT NOT NULL,
    call_kind TEXT NOT NULL,
    attempt BIGINT NOT NULL,
    detail TEXT NOT NULL,
    PRIMARY KEY (saga_id, seq)
);
