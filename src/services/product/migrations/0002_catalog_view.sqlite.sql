-- Query side (SQLite): the denormalised catalogue, fed only by events, and
-- its FTS5 full-text index over name, description and category. The index is
-- an external-content table over catalog_view kept in step by triggers, so
-- the view can be dropped and rebuilt (DELETE fires the delete trigger).
CREATE TABLE catalog_view (
    seq INTEGER PRIMARY KEY,
    product_id TEXT NOT NULL UNIQUE,
    sku TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    category TEXT NOT NULL,
    price_amount INTEGER NOT NULL,
    price_currency TEXT NOT NULL,
    available INTEGER NOT NULL DEFAULT 0,
    version INTEGER NOT NULL
);
CREATE INDEX catalog_view_category ON catalog_view (category, price_amount);
CREATE INDEX catalog_view_price ON catalog_view (price_amount);
CREATE INDEX catalog_view_name ON catalog_view (name);
CREATE VIRTUAL TABLE catalog_fts USING fts5(
    name, description, category,
    content = 'catalog_view', content_rowid = 'seq'
);
CREATE TRIGGER catalog_view_ai AFTER INSERT ON catalog_view BEGIN
    INSERT INTO catalog_fts (rowid, name, description, category)
    VALUES (new.seq, new.name, new.description, new.category);
END;
CREATE TRIGGER catalog_view_ad AFTER DELETE ON catalog_view BEGIN
    INSERT INTO catalog_fts (catalog_fts, rowid, name, description, category)
    VALUES ('delete', old.seq, old.name, old.description, old.category);
END;
CREATE TRIGGER catalog_view_au AFTER UPDATE OF name, description, category ON catalog_view BEGIN
    INSERT INTO catalog_fts (catalog_fts, rowid, name, description, category)
    VALUES ('delete', old.seq, old.name, old.description, old.category);
    INSERT INTO catalog_fts (rowid, name, description, category)
    VALUES (new.seq, new.name, new.description, new.category);
END;
