-- Balances read model of the payment service (docs/services/payment.md).
-- Fed only by the catch-up subscription `payment.balances` over the event
-- store (checkpoint in es_checkpoints, written in the same transaction);
-- never authoritative: the wallets are their `account-<user_id>` streams.
-- `position` is the global position of the last event applied to the row,
-- so the audit can compare each row with the replay at exactly that point.
CREATE TABLE wallet_balances (
    user_id TEXT PRIMARY KEY,
    balance BIGINT NOT NULL,
    version BIGINT NOT NULL,
    position BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL
);
