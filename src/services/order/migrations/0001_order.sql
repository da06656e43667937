-- shoal-order: the orders (write model) with their items, the order
-- service's own replica of product names and prices (kept by product events;
-- new orders are priced from it, never by calling the catalogue), and the
-- per-user order history read model fed by the order's own events. The saga
-- tables (saga_instances, saga_history) and idempotency_keys come from the
-- library migrations.
CREATE TABLE orders (
    order_id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    status TEXT NOT NULL CONSTRAINT orders_status CHECK
        (status IN ('pending', 'confirmed', 'shipped', 'delivered', 'cancelled')),
    total_amount BIGINT NOT NULL CONSTRAINT orders_total CHECK (total_amount >= 0),
    currency TEXT NOT NULL,
    ship_name TEXT NOT NULL,
    ship_line1 TEXT NOT NULL,
    ship_city TEXT NOT NULL,
    ship_postal_code TEXT NOT NULL,
    ship_country TEXT NOT NULL,
    cancel_reason TEXT,
    cancel_note TEXT,
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL
);
CREATE INDEX orders_by_user ON orders (user_id, created_ms);

CREATE TABLE order_items (
    order_id TEXT NOT NULL REFERENCES orders (order_id),
    line INTEGER NOT NULL,
    product_id TEXT NOT NULL,
    qty BIGINT NOT NULL CONSTRAINT order_items_qty CHECK (qty BETWEEN 1 AND 99),
    unit_price BIGINT NOT NULL CONSTRAINT order_items_price CHECK (unit_price >= 0),
    currency TEXT NOT NULL,
    PRIMARY KEY (order_id, line)
);

-- price_ms / name_ms: event times of the values held, so a late older event
-- never overwrites a newer value.
CREATE TABLE product_prices (
    product_id TEXT PRIMARY KEY,
    name TEXT NOT NULL DEFAULT '',
    price BIGINT,
    currency TEXT,
    price_ms BIGINT NOT NULL DEFAULT 0,
    name_ms BIGINT NOT NULL DEFAULT 0
);

-- Read model: one row per order, updated monotonically in status_rank, items
-- as JSON with the product names of the replica.
CREATE TABLE order_history (
    order_id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    status TEXT NOT NULL,
    status_rank INTEGER NOT NULL,
    items TEXT,
    total_amount BIGINT,
    currency TEXT,
    cancel_reason TEXT,
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL
);
CREATE INDEX order_history_by_user ON order_history (user_id, created_ms, order_id);
