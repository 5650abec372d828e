-- The stock ledger records movements per batch, product and kind (one row each), not per
-- order line: the orders and their items already say which order moved what; the ledger
-- says how the shelf moved over time. `order_count` keeps the number of orders behind a
-- row. (PostgreSQL made the same change in its 0003.)
ALTER TABLE stock_ledger ADD COLUMN order_count INTEGER NOT NULL DEFAULT 0;
