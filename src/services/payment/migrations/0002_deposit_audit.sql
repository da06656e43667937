-- The audit trail of deposits (docs/services/payment.md, "Deposits"): one row
-- per MoneyDeposited event a deposit command appends (not transfer-ins),
-- written in the command's transaction. version: the event's version in
-- account-<user_id>. actor_id/actor_role: who asked (the owner, or an admin on
-- the admin path). request_id: the gateway's X-Request-Id ("" when none).
-- The owner's own deposits of the current UTC day are summed from here for
-- the daily limit.
CREATE TABLE deposit_audit (
    user_id TEXT NOT NULL,
    version BIGINT NOT NULL,
    amount BIGINT NOT NULL,
    actor_id TEXT NOT NULL,
    actor_role TEXT NOT NULL,
    request_id TEXT NOT NULL,
    at_ms BIGINT NOT NULL,
    PRIMARY KEY (user_id, version)
);
CREATE INDEX deposit_audit_day ON deposit_audit (user_id, actor_id, at_ms);
