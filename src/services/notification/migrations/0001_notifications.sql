-- Notifications (docs/services/notification.md). One row per consumed event
-- (`event_id` unique: the inbox already makes the effect exactly-once; the
-- constraint is a second guard). `deliveries` is the outbox of the sender:
-- a row is written in the same transaction as its notification and marked
-- delivered only after the sender confirmed, so a crash in between
-- redelivers (idempotently: the mailbox file is named after the id).
CREATE TABLE notifications (
    notification_id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    event_id TEXT NOT NULL UNIQUE,
    created_ms BIGINT NOT NULL
);
CREATE INDEX notifications_by_user ON notifications (user_id, created_ms);
CREATE TABLE deliveries (
    notification_id TEXT PRIMARY KEY REFERENCES notifications (notification_id),
    attempts BIGINT NOT NULL DEFAULT 0,
    next_ms BIGINT NOT NULL,
    delivered_ms BIGINT,
    last_error TEXT
);
CREATE INDEX deliveries_pending ON deliveries (next_ms) WHERE delivered_ms IS NULL;
