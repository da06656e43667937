-- The stock ledger: `received` counts every unit that ever came in (the initial stock and every
-- restock), `committed` every unit that left with a confirmed order. The audit checks
-- stock = received - committed >= 0 for every product. Existing rows start their ledger at
-- their current stock.
ALTER TABLE stock ADD COLUMN received BIGINT NOT NULL DEFAULT 0;
ALTER TABLE stock ADD COLUMN committed BIGINT NOT NULL DEFAULT 0;
UPDATE stock SET received = stock;
