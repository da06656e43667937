-- shoal-inventory: stock per product, reservations per order.
-- available = stock - reserved; `reserved` is the sum of the quantities of the
-- items of reservations in status 'reserved' (GET /admin/audit checks it).
-- The constraints are named so that tests can drop them to inject violations.
CREATE TABLE stock (
    product_id TEXT PRIMARY KEY,
    stock BIGINT NOT NULL,
    reserved BIGINT NOT NULL DEFAULT 0,
    updated_ms BIGINT NOT NULL,
    CONSTRAINT stock_nonneg CHECK (stock >= 0),
    CONSTRAINT reserved_nonneg CHECK (reserved >= 0),
    CONSTRAINT reserved_le_stock CHECK (reserved <= stock)
);

-- One row per order (order_id is the idempotency key of POST /reservations).
-- A release of an order never reserved leaves a 'released' row without items
-- (a tombstone), so a reservation arriving after its compensation is refused.
CREATE TABLE reservations (
    order_id TEXT PRIMARY KEY,
    status TEXT NOT NULL CONSTRAINT reservation_status CHECK (status IN ('reserved', 'committed', 'released')),
    reason TEXT NOT NULL DEFAULT '',
    created_ms BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL
);
CREATE INDEX reservations_due ON reservations (expires_ms) WHERE status = 'reserved';

CREATE TABLE reservation_items (
    order_id TEXT NOT NULL CONSTRAINT items_order_fk REFERENCES reservations (order_id),
    product_id TEXT NOT NULL,
    qty BIGINT NOT NULL CONSTRAINT items_qty_positive CHECK (qty > 0),
    PRIMARY KEY (order_id, product_id)
);
CREATE INDEX reservation_items_product ON reservation_items (product_id);

-- shop.order.confirmed.v1 for an order whose reservation was not active
-- (released, expired, unknown): recorded for an operator, never applied.
CREATE TABLE commit_anomalies (
    event_id TEXT PRIMARY KEY,
    order_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    at_ms BIGINT NOT NULL
);
