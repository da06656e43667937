-- Query side (PostgreSQL): the denormalised catalogue, fed only by events,
-- with a generated tsvector (the 'simple' configuration: no stemming, the
-- same matching on every locale; name weighs A, category B, description C)
-- under a GIN index.
CREATE TABLE catalog_view (
    product_id TEXT PRIMARY KEY,
    sku TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    category TEXT NOT NULL,
    price_amount BIGINT NOT NULL,
    price_currency TEXT NOT NULL,
    available BIGINT NOT NULL DEFAULT 0,
    version BIGINT NOT NULL,
    tsv tsvector GENERATED ALWAYS AS (
        setweight(to_tsvector('simple'::regconfig, name), 'A') ||
        setweight(to_tsvector('simple'::regconfig, category), 'B') ||
        setweight(to_tsvector('simple'::regconfig, description), 'C')
    ) STORED
);
CREATE INDEX catalog_view_category ON catalog_view (category, price_amount);
CREATE INDEX catalog_view_price ON catalog_view (price_amount);
CREATE INDEX catalog_view_name ON catalog_view ((name COLLATE "C"));
CREATE INDEX catalog_view_tsv ON catalog_view USING GIN (tsv);
