-- The price replica of a service that consumes the product events
-- (product_replica.h): names and prices kept current by those events, so the
-- service never calls the product service. price_ms / name_ms are the event
-- times of the values held, so an older event that arrives late never
-- overwrites a newer value. IF NOT EXISTS: the cart and order services
-- created this table in their own first migration before the contract
-- owned it, and those migrations stay as they were applied.
CREATE TABLE IF NOT EXISTS product_prices (
    product_id TEXT PRIMARY KEY,
    name TEXT NOT NULL DEFAULT '',
    price BIGINT,
    currency TEXT,
    price_ms BIGINT NOT NULL DEFAULT 0,
    name_ms BIGINT NOT NULL DEFAULT 0
);
