-- shoal-cart: carts per user, and the cart's own replica of product names and
-- prices, kept current by product events (the cart never calls the product
-- service). price_ms / name_ms are the event times of the values held, so an
-- older event that arrives late never overwrites a newer value.
CREATE TABLE product_prices (
    product_id TEXT PRIMARY KEY,
    name TEXT NOT NULL DEFAULT '',
    price BIGINT,
    currency TEXT,
    price_ms BIGINT NOT NULL DEFAULT 0,
    name_ms BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE cart_items (
    user_id TEXT NOT NULL,
    product_id TEXT NOT NULL,
    qty BIGINT NOT NULL CONSTRAINT cart_qty_range CHECK (qty BETWEEN 1 AND 99),
    added_ms BIGINT NOT NULL,
    PRIMARY KEY (user_id, product_id)
);
