-- The user context (docs/services/user.md), CQRS as DESIGN §9 describes it.
--
-- Write model: `users` (commands CreateUser / UpdateUser) and `user_position`,
-- the one-row write sequence. Every command transaction bumps it first, so
-- user writes serialise on that row and each gets the next position, with no
-- gaps (a rolled-back command rolls its bump back too). The position travels
-- in the event data and in the command's response.
CREATE TABLE users (
    id TEXT PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('customer', 'admin')),
    password_hash TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    version BIGINT NOT NULL,
    position BIGINT NOT NULL
);
CREATE INDEX users_role ON users (role);

CREATE TABLE user_position (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    position BIGINT NOT NULL
);
INSERT INTO user_position (id, position) VALUES (1, 0);

-- Read model: fed only by shop.user.registered.v1 / shop.user.updated.v1
-- (state-carrying events, applied as upserts guarded by position). Email is
-- not unique here: across users, events may arrive in any order.
CREATE TABLE user_view (
    id TEXT PRIMARY KEY,
    email TEXT NOT NULL,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    position BIGINT NOT NULL
);
CREATE INDEX user_view_role ON user_view (role, id);

-- watermark: every position <= it has been applied (read-your-writes for
-- lists); positions applied above it wait in user_view_pending until the
-- gap below them closes. outbox_seq: the local projector's checkpoint in
-- this database's outbox.
CREATE TABLE user_view_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    watermark BIGINT NOT NULL,
    outbox_seq BIGINT NOT NULL
);
INSERT INTO user_view_state (id, watermark, outbox_seq) VALUES (1, 0, 0);

CREATE TABLE user_view_pending (
    position BIGINT PRIMARY KEY
);
