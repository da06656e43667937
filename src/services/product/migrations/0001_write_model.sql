-- Command side of the catalogue (docs/services/product.md). `products` is the
-- write model; its `version` equals the version of the product's event stream
-- (`product-<id>` in the library event store), which holds every product event
-- this service emitted. `product_stock` is the local record of the latest
-- stock figures inventory announced (shop.inventory.stock_changed.v1): with the
-- events it is everything a rebuild of the read model needs.
CREATE TABLE products (
    id TEXT PRIMARY KEY,
    sku TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    category TEXT NOT NULL,
    price_amount BIGINT NOT NULL CHECK (price_amount > 0),
    price_currency TEXT NOT NULL,
    version BIGINT NOT NULL CHECK (version > 0),
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL
);
CREATE TABLE product_stock (
    product_id TEXT PRIMARY KEY,
    stock BIGINT NOT NULL,
    reserved BIGINT NOT NULL,
    available BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL
);
